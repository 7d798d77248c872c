import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildImage } from '@diskube/mkimage';
import { describe, expect, it } from 'vitest';
import { expectFilesystemsIntact } from './images.js';
import { requireTools, scratch } from './support.js';

const have = requireTools(
  'qemu-img',
  'mke2fs',
  'debugfs',
  'e2fsck',
  'mkntfs',
  'ntfsfix',
  'sfdisk',
  'gcc',
);
const SCRIPT = join(import.meta.dirname, 'third-party/backup-qcow2.mjs');

describe.runIf(have)('a third-party program on the library', () => {
  it('imports only published entry points and stays under 20 lines', async () => {
    const source = await readFile(SCRIPT, 'utf8');
    expect(source.trimEnd().split('\n').length).toBeLessThan(20);
    const imports = [...source.matchAll(/from '([^']+)'/g)].map((m) => m[1]);
    expect(imports).toEqual(['diskube/node']);
  });

  it('backs up and restores a qcow2: qemu-img check clean, fsck clean, every file identical', async () => {
    const { image, manifest } = await buildImage(`disk 96M gpt
  partition 48M ext4
    prefill random seed=61
    file /etc/hostname "third-party"
    file /var/big 6M random seed=62
    file /stale 6M random seed=63
    delete /stale
  partition rest ntfs
    prefill random seed=64
    file /docs/a.txt 1M text`);
    const dir = await scratch();
    const qcow2 = join(dir, 'vm.qcow2');
    execFileSync('qemu-img', ['convert', '-O', 'qcow2', image, qcow2]);
    // Run as its own process, resolving `diskube` the way an installed dependency resolves.
    const out = execFileSync(process.execPath, [SCRIPT, qcow2, dir], { encoding: 'utf8' });
    const summary = JSON.parse(out) as { stored: number; used: number; format: string };
    expect(summary.format).toBe('qcow2');
    expect(summary.stored).toBeLessThan(summary.used);
    execFileSync('qemu-img', ['check', join(dir, 'restored.qcow2')]);
    const raw = join(dir, 'restored.img');
    execFileSync('qemu-img', ['convert', '-O', 'raw', join(dir, 'restored.qcow2'), raw]);
    expect(await expectFilesystemsIntact(raw, manifest, dir)).toBeGreaterThan(2);
  });
});
