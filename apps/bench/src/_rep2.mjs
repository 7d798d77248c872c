import { createHash } from 'node:crypto';
import { mapImage } from 'diskube';
import { openImageFile } from 'diskube/node';
const opened = await openImageFile(process.argv[2]);
const map = await mapImage(opened);
const seen = new Map(); let ord = 0; let dup = 0, runs = 0, prevI = -2, prevT = -2, blocks=0, usedRuns=0;
const buf = new Uint8Array(map.blockSize);
const byTarget = new Map();
for (const [s, len] of map.used.runs()) { usedRuns++; for (let i = s; i < s + len; i++) {
  await opened.disk.read(i * map.blockSize, buf); blocks++;
  if (buf.every((b) => b === 0)) continue;
  const h = createHash('sha256').update(buf).digest('base64');
  const o = seen.get(h);
  if (o !== undefined) { dup++; byTarget.set(o, (byTarget.get(o)??0)+1); if (!(i === prevI + 1 && o === prevT + 1)) runs++; prevI = i; prevT = o; } else { seen.set(h, ord); ord++; }
}}
const top = [...byTarget.entries()].sort((a,b)=>b[1]-a[1]).slice(0,5);
console.log({ blocks, usedRuns, dup, runs, distinctTargets: byTarget.size, top });
await opened.close();
