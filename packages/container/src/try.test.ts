import { dirname, join } from 'node:path';
import { openFileSource } from '@diskube/core/node';
import { test } from 'vitest';
import { openContainer } from './index.js';
import { containerImage, readRaw, VARIANTS } from './images.test-support.js';
test('try', async () => {
const raw = readRaw();
for (const v of VARIANTS) {
  const path = containerImage(v);
  const f = await openFileSource(path);
  try {
    const { format, disk, info } = await openContainer(f, { resolveExtent: (n) => openFileSource(join(dirname(path), n)) });
    const buf = new Uint8Array(disk.size);
    const t = performance.now();
    await disk.read(0, buf);
    const ms = performance.now() - t;
    let diff = -1;
    for (let i = 0; i < Math.min(buf.length, raw.length); i++) if (buf[i] !== raw[i]) { diff = i; break; }
    let z = 0; for await (const [o, l] of disk.unallocatedRanges()) z += l;
    console.log(v, format, disk.size, JSON.stringify(info.details), 'firstdiff', diff, 'zero', z, ms.toFixed(0), 'ms');
  } catch (e) { console.log(v, 'ERR', e); }
}
});
