import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import { writeSnapshot } from '@diskube/format';
import { mapImage } from 'diskube';
import { openImageFile } from 'diskube/node';
const image = process.argv[2];
const counting = () => { let bytes = 0; return { stream: new Writable({ write(c, _e, cb) { bytes += c.length; cb(); } }), bytes: () => bytes }; };
const opened = await openImageFile(image);
const map = await mapImage(opened);
const snap = async (used) => (await writeSnapshot({ source: opened.disk, used, blockSize: map.blockSize, tailUsed: map.tail.used, out: counting().stream, compress: { type: 'zstd', level: 3 } })).fileLength;
const all = await snap(map.used);
const seen = new Map(); const unique = map.used.clone(); let dup = 0, dupFar = 0; let ord = 0;
const buf = new Uint8Array(map.blockSize);
for (const [s, len] of map.used.runs()) for (let i = s; i < s + len; i++) {
  await opened.disk.read(i * map.blockSize, buf);
  if (buf.every((b) => b === 0)) continue;
  const h = createHash('sha256').update(buf).digest('base64');
  const o = seen.get(h);
  if (o !== undefined) { dup++; unique.clear(i); if (Math.floor(o / 1024) !== Math.floor(ord / 1024)) dupFar++; } else { seen.set(h, ord); ord++; }
}
const u = await snap(unique);
console.log(JSON.stringify({ all, u, dup, dupFar, saved: all - u, refsCost: dup * 4, net: all - u - dup * 4, pct: ((all - u - dup*4) / all * 100).toFixed(3) }));
await opened.close();
