// A third party's program: back up a qcow2 and restore it through the published entry point only.
import { backup, restore, verify } from 'diskube/node';

const [image, dir] = process.argv.slice(2);
const controller = new AbortController();
process.once('SIGINT', () => controller.abort());
const snapshot = await backup({
  image,
  out: `${dir}/vm.dkb`,
  signal: controller.signal,
  onWarning: (warning) => console.error(`warning: ${warning.message}`),
});
const { ok } = await verify(snapshot.path);
if (!ok) throw new Error(`${snapshot.path} is damaged`);
const restored = await restore({ backup: snapshot.path, out: `${dir}/restored.qcow2` });
const { fileLength: stored, usedBytes: used } = snapshot;
console.log(
  JSON.stringify({ stored, used, written: restored.bytesWritten, format: restored.format }),
);
