import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { diskube, diskubeJson, requireTools, scratch } from './support.js';

// Issue 14's "done when": overlay chains of depth 1-3 in qcow2 and VMDK, extended-L2 qcow2 and a
// differencing VHD round-trip identical through `backup` and `restore` of the built binary. The
// disks hold no filesystem, so every byte the chain has is kept, and the restore must equal the
// chain's own bytes exactly: `qemu-img convert -O raw` where QEMU reads the chain, the parent
// with the child's blocks over it for the VHD (QEMU does not read differencing VHDs).

const have = requireTools('qemu-img', 'qemu-io');
const MiB = 1 << 20;

/** backup → restore of `image` through the binary; the restored raw bytes. */
async function roundTrip(dir: string, image: string): Promise<Buffer> {
  const name = image.replace(/\W/g, '_');
  await diskubeJson(['backup', join(dir, image), join(dir, `${name}.dkb`)]);
  await diskubeJson(['restore', join(dir, `${name}.dkb`), join(dir, `${name}.img`)]);
  return readFileSync(join(dir, `${name}.img`));
}

describe.runIf(have)('every kind of chain round-trips through backup and restore', () => {
  it('qcow2 depth 1 to 3 (zero clusters included), extended L2, VMDK depth 2 and 3', async () => {
    const dir = await scratch();
    const run = (tool: string, ...args: string[]) =>
      execFileSync(tool, args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    const io = (format: string, file: string, ...commands: string[]) =>
      run('qemu-io', '-f', format, ...commands.flatMap((c) => ['-c', c]), file);
    const convert = (image: string) => {
      run('qemu-img', 'convert', '-O', 'raw', image, `${image}.raw`);
      return readFileSync(join(dir, `${image}.raw`));
    };
    const kinds: Array<[string, number]> = [];
    const check = async (image: string, layers: number) => {
      const inspect = await diskubeJson<{ container: { chain: unknown[] } }>([
        'inspect',
        join(dir, image),
      ]);
      expect(inspect.container.chain, image).toHaveLength(layers);
      expect(Buffer.compare(await roundTrip(dir, image), convert(image)), image).toBe(0);
      kinds.push([image, layers]);
    };

    run('qemu-img', 'create', '-f', 'qcow2', 'q1.qcow2', '24M');
    io('qcow2', 'q1.qcow2', 'write -P 0x11 0 8M', 'write -P 0x12 12M 3M');
    run('qemu-img', 'create', '-f', 'qcow2', '-b', 'q1.qcow2', '-F', 'qcow2', 'q2.qcow2');
    io('qcow2', 'q2.qcow2', 'write -P 0x21 1M 64k', 'write -z 4M 1M', 'write -P 0x22 20M 1M');
    run('qemu-img', 'create', '-f', 'qcow2', '-b', 'q2.qcow2', '-F', 'qcow2', 'q3.qcow2');
    io('qcow2', 'q3.qcow2', 'write -P 0x31 4M 4k', 'write -z 12M 64k', 'write -P 0x32 23M 1M');
    for (const [image, depth] of [
      ['q1.qcow2', 1],
      ['q2.qcow2', 2],
      ['q3.qcow2', 3],
    ] as const) {
      await check(image, depth);
    }

    // Extended L2: 2 KiB subclusters of a 64 KiB cluster, some data, some zero.
    run('qemu-img', 'create', '-f', 'qcow2', '-o', 'extended_l2=on', 'x1.qcow2', '8M');
    io('qcow2', 'x1.qcow2', 'write -P 0x41 0 3M');
    run(
      'qemu-img',
      'create',
      '-f',
      'qcow2',
      '-o',
      'extended_l2=on',
      '-b',
      'x1.qcow2',
      '-F',
      'qcow2',
      'x2.qcow2',
    );
    io('qcow2', 'x2.qcow2', 'write -P 0x42 1k 1k', 'write -z 33k 2k', 'write -P 0x43 5245952 5k');
    await check('x2.qcow2', 2);

    const vmdkOver = (parent: string, child: string) =>
      run(
        'qemu-img',
        'create',
        '-f',
        'vmdk',
        '-o',
        `backing_file=${parent},backing_fmt=vmdk`,
        child,
      );
    run('qemu-img', 'create', '-f', 'vmdk', 'v1.vmdk', '8M');
    io('vmdk', 'v1.vmdk', 'write -P 0x51 0 3M', 'write -P 0x52 6M 1M');
    vmdkOver('v1.vmdk', 'v2.vmdk');
    io('vmdk', 'v2.vmdk', 'write -P 0x53 1M 64k', 'write -P 0x54 7M 128k');
    vmdkOver('v2.vmdk', 'v3.vmdk');
    io('vmdk', 'v3.vmdk', 'write -P 0x55 2M 4k');
    await check('v2.vmdk', 2);
    await check('v3.vmdk', 3);
    expect(kinds).toHaveLength(6);
  });

  it('a differencing VHD (built from the VHD spec over qemu-img images) restores as parent plus child', async () => {
    const dir = await scratch();
    const run = (tool: string, ...args: string[]) =>
      execFileSync(tool, args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    const vpc = ['-f', 'vpc', '-o', 'subformat=dynamic,force_size=on'];
    run('qemu-img', 'create', ...vpc, 'parent.vhd', '8M');
    run(
      'qemu-io',
      '-f',
      'vpc',
      '-c',
      'write -P 0x61 0 5M',
      '-c',
      'write -P 0x62 7M 512k',
      'parent.vhd',
    );
    // The child starts as a dynamic VHD of the same size with one block written (QEMU marks
    // every sector of a block it allocates as the child's); it is then made differencing.
    run('qemu-img', 'create', ...vpc, 'plain.vhd', '8M');
    run('qemu-io', '-f', 'vpc', '-c', 'write -P 0x63 2M 1M', 'plain.vhd');
    run('qemu-img', 'convert', '-O', 'raw', 'parent.vhd', 'parent.raw');
    run('qemu-img', 'convert', '-O', 'raw', 'plain.vhd', 'plain.raw');
    const expected = readFileSync(join(dir, 'parent.raw'));
    const own = readFileSync(join(dir, 'plain.raw'));
    own.copy(expected, 2 * MiB, 2 * MiB, 4 * MiB); // block 1 (2 MiB blocks) is the child's

    const parent = readFileSync(join(dir, 'parent.vhd'));
    const plain = readFileSync(join(dir, 'plain.vhd'));
    // Footer (last 512 bytes, copy at 0): disk type 4 = differencing. Dynamic header at 512:
    // parent unique id (0x28) = the parent footer's (0x44), parent name UTF-16BE (0x40), one
    // W2ru locator (0x240) to ".\parent.vhd" in UTF-16LE, in a sector added before the footer.
    const body = plain.subarray(0, plain.length - 512);
    const locatorAt = body.length;
    const child = Buffer.concat([body, Buffer.alloc(512), plain.subarray(plain.length - 512)]);
    const relative = Buffer.from('.\\parent.vhd', 'utf16le');
    relative.copy(child, locatorAt);
    const dyn = 512;
    parent.copy(child, dyn + 0x28, parent.length - 512 + 0x44, parent.length - 512 + 0x54);
    const name = Buffer.from('parent.vhd', 'utf16le').swap16();
    name.copy(child, dyn + 0x40);
    child.write('W2ru', dyn + 0x240, 'latin1');
    child.writeUInt32BE(512, dyn + 0x244);
    child.writeUInt32BE(relative.length, dyn + 0x248);
    child.writeBigUInt64BE(BigInt(locatorAt), dyn + 0x250);
    const checksum = (at: number, length: number, field: number) => {
      child.writeUInt32BE(0, at + field);
      let sum = 0;
      for (let i = at; i < at + length; i++) sum += child[i]!;
      child.writeUInt32BE(~sum >>> 0, at + field);
    };
    checksum(dyn, 1024, 0x24);
    for (const at of [0, child.length - 512]) {
      child.writeUInt32BE(4, at + 0x3c);
      checksum(at, 512, 0x40);
    }
    writeFileSync(join(dir, 'child.vhd'), child);

    const inspect = await diskubeJson<{
      container: { chain: Array<{ format: string; name: string }> };
    }>(['inspect', join(dir, 'child.vhd')]);
    expect(inspect.container.chain.map((l) => [l.format, l.name])).toEqual([
      ['vhd', null],
      ['vhd', 'parent.vhd'],
    ]);
    expect(Buffer.compare(await roundTrip(dir, 'child.vhd'), expected)).toBe(0);
    // Without its parent the child is refused (exit 6), not read as if it had none.
    rmSync(join(dir, 'parent.vhd'));
    const orphan = await diskube(['backup', join(dir, 'child.vhd'), join(dir, 'orphan.dkb')]);
    expect(orphan.code).toBe(6);
    expect(orphan.stderr).toContain('parent.vhd');
  });
});
