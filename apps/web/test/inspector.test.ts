// The built page in real headless Chromium, on DSL-built images, checked against the CLI.
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildImage } from '@diskube/mkimage';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  diskubeFails,
  diskubeJson,
  launchChromium,
  requireBrowserTools,
  serveDist,
  WEB,
} from './support.js';

const have = await requireBrowserTools('qemu-img', 'mke2fs', 'mkntfs', 'mkswap', 'sfdisk', 'gcc');

const GPT_DISK = `disk 256M gpt
  partition 96M ext4 label=root
    file /etc/hostname "web-01"
    file /var/lib/big.bin 6M random seed=72
    file /stale 4M random seed=73
    delete /stale
  partition 96M ntfs label=DATA
    file /Users/u/notes.txt 2M text
    file /Users/u/photo.bin 3M random seed=74
  partition rest swap`;

const DIRTY_EXT4 = `disk 32M
  filesystem ext4 label=dirty
    file /a.bin 1M random seed=75
    dirty`;

const OTHER_CONTAINERS: Array<[string, string[]]> = [
  ['qcow2 compressed', ['-O', 'qcow2', '-c']],
  ['vdi', ['-O', 'vdi']],
  ['vmdk sparse', ['-O', 'vmdk', '-o', 'subformat=monolithicSparse']],
  ['vmdk streamOptimized', ['-O', 'vmdk', '-o', 'subformat=streamOptimized']],
  ['vhd', ['-O', 'vpc', '-o', 'subformat=dynamic,force_size=on']],
  ['vhdx', ['-O', 'vhdx']],
];

interface CliInspection {
  size: number;
  usedBytes: number;
  container: { format: string };
  parts: Array<{
    number: number | null;
    offset: number;
    size: number;
    content: string | null;
    label: string | null;
    usedBytes: number;
    filesystem: { blockSize: number; usedBlocks: number } | null;
  }>;
}

interface PageRow {
  number: string;
  offset: number;
  size: number;
  content: string;
  label: string;
  /** Bytes the filesystem uses, or null where there is none (swap, unknown). */
  used: number | null;
  kept: number;
  cells: string[];
}

async function load(page: Page, url: string, image: string, fullCopy = false): Promise<string> {
  await page.goto(url);
  await page.waitForSelector('body[data-state="idle"]');
  if (fullCopy) await page.getByTestId('full-copy').check();
  await page.getByTestId('file-input').setInputFiles(image);
  await page.waitForSelector('body[data-state="done"], body[data-state="refused"]');
  return (await page.getAttribute('body', 'data-state'))!;
}

function rows(page: Page): Promise<PageRow[]> {
  return page.$$eval('[data-testid="part"]', (trs) =>
    trs.map((tr) => {
      const d = (tr as HTMLElement).dataset;
      return {
        number: d.number!,
        offset: Number(d.offset),
        size: Number(d.size),
        content: d.content!,
        label: d.label!,
        used: d.usedBytes === '' ? null : Number(d.usedBytes),
        kept: Number(d.keptBytes),
        cells: [...tr.querySelectorAll('td')].map((td) => td.textContent ?? ''),
      };
    }),
  );
}

const withoutCells = ({ cells: _cells, ...row }: PageRow) => row;

async function keptBytes(page: Page): Promise<number> {
  return Number(await page.getByTestId('summary').getAttribute('data-kept-bytes'));
}

/** The page shows exactly what `diskube inspect --json` and `diskube used --json` say. */
async function expectMatchesCli(page: Page, image: string): Promise<void> {
  const cli = await diskubeJson<CliInspection>('inspect', image);
  const used = await diskubeJson<{ usedBytes: number }>('used', image);
  expect(await keptBytes(page)).toBe(used.usedBytes);
  expect(cli.usedBytes).toBe(used.usedBytes);
  expect((await rows(page)).map(withoutCells), 'partition rows').toEqual(
    cli.parts.map((p) => ({
      number: String(p.number ?? ''),
      offset: p.offset,
      size: p.size,
      content: p.content ?? '',
      label: p.label ?? '',
      used: p.filesystem && p.filesystem.usedBlocks * p.filesystem.blockSize,
      kept: p.usedBytes,
    })),
  );
  const format = cli.container.format;
  expect(await page.getByTestId('container').textContent()).toContain(
    format === 'raw' ? 'raw disk' : format,
  );
}

describe.runIf(have)('the inspector in headless Chromium', () => {
  let browser: Browser;
  let server: Server;
  let url: string;
  let page: Page;
  let dir = '';
  let gpt: string;
  let qcow2: string;
  let dirty: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'diskube-web-'));
    [{ image: gpt }, { image: dirty }] = await Promise.all([
      buildImage(GPT_DISK),
      buildImage(DIRTY_EXT4),
    ]);
    // Named links: the page shows the file's name, and the cache names images by hash.
    await symlink(gpt, join(dir, 'vm-disk.img'));
    gpt = join(dir, 'vm-disk.img');
    qcow2 = join(dir, 'vm-disk.qcow2');
    execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', gpt, qcow2]);
    ({ url, server } = await serveDist());
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1200, height: 1000 } });
    page.setDefaultTimeout(90_000); // a loaded CI machine: every package's tests run at once
    page.on('pageerror', (error) => {
      throw error;
    });
  });

  afterAll(async () => {
    await browser?.close();
    server?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('shows the layers, the kept bytes and the block map of a GPT disk (ext4, NTFS, swap)', async () => {
    expect(await load(page, url, gpt)).toBe('done');
    await expectMatchesCli(page, gpt);
    const shown = await rows(page);
    expect(shown.map((r) => r.content)).toEqual(['ext4', 'ntfs', 'swap']);
    expect(shown.map((r) => r.label)).toEqual(['root', 'DATA', '']);
    expect(shown[0]!.cells.slice(1)).toEqual([
      '1',
      '1.00 MiB',
      '96.0 MiB',
      'Linux filesystem',
      'ext4',
      'root',
      expect.stringMatching(/^[\d.]+ MiB$/),
      expect.stringMatching(/^[\d.]+ MiB \([\d.]+%\)$/),
    ]);
    expect(await page.getByTestId('table').textContent()).toMatch(/^GPT, 3 partitions/);
    expect(await page.getByTestId('summary').textContent()).toMatch(
      /A backup would store ≈ [\d.]+ MiB of 256\.0 MiB/,
    );
    // Read lazily: a few MiB of metadata, not the 256 MiB image.
    const read = Number(await page.getByTestId('reads').getAttribute('data-bytes-read'));
    expect(read).toBeLessThan(16 << 20);

    // Hovering names the partition under the pointer and its byte range.
    const map = page.getByTestId('block-map');
    const box = (await map.boundingBox())!;
    const at = async (fraction: number) => {
      // Cells run row by row; aim at the one `fraction` of the way through the disk.
      const grid = await map.evaluate((c: HTMLCanvasElement) => [c.width, c.height] as const);
      const [columns, gridRows] = grid;
      const cell = Math.floor(fraction * columns * gridRows);
      const x = box.x + ((cell % columns) + 0.5) * (box.width / columns);
      const y = box.y + (Math.floor(cell / columns) + 0.5) * (box.height / gridRows);
      await page.mouse.move(x, y);
      return page.getByTestId('map-hover').textContent();
    };
    expect(await at(0.2)).toMatch(/^Partition 1 \(ext4 “root”\) · bytes \d+–\d+/);
    expect(await at(0.55)).toMatch(/^Partition 2 \(ntfs “DATA”\) · bytes \d+–\d+/);
    expect(await at(0.9)).toMatch(/^Partition 3 \(swap\) · bytes \d+–\d+/);
    expect(await at(0)).toMatch(/^Outside partitions \(tables, boot area, gaps\) · bytes 0–/);
    await at(0.12);

    const shot = await page.screenshot({ fullPage: true });
    expect(shot.length).toBeGreaterThan(10_000);
    // The README's picture is refreshed on request only, so a test run leaves the tree clean.
    const target =
      process.env.DISKUBE_UPDATE_SCREENSHOT === '1'
        ? join(WEB, 'screenshot.png')
        : join(dir, 'screenshot.png');
    await writeFile(target, shot);
  });

  it('reads the same disk inside a qcow2 and shows the same layers', async () => {
    expect(await load(page, url, qcow2)).toBe('done');
    await expectMatchesCli(page, qcow2);
    expect(await page.getByTestId('container').textContent()).toMatch(
      /^qcow2, virtual disk 256\.0 MiB, allocation unit 64\.0 KiB/,
    );
    expect(await keptBytes(page)).toBe(
      (await diskubeJson<{ usedBytes: number }>('used', gpt)).usedBytes,
    );
  });

  it('reads it inside every other container format too', async () => {
    // The raw disk as the page shows it is the reference (checked against the CLI above).
    expect(await load(page, url, gpt)).toBe('done');
    const raw = { kept: await keptBytes(page), rows: await rows(page) };
    for (const [format, args] of OTHER_CONTAINERS) {
      const file = join(dir, `vm-disk.${format.replace(/ /g, '-')}`);
      execFileSync('qemu-img', ['convert', '-f', 'raw', ...args, gpt, file]);
      expect(await load(page, url, file), format).toBe('done');
      expect(await keptBytes(page), format).toBe(raw.kept);
      expect((await rows(page)).map(withoutCells), format).toEqual(raw.rows.map(withoutCells));
    }
  });

  it('refuses a dirty ext4 in plain words, and keeps all of it when asked', async () => {
    const cli = await diskubeFails('inspect', dirty);
    expect(cli.code, cli.stderr).toBe(5);
    expect(await load(page, url, dirty)).toBe('refused');
    const refusal = page.getByTestId('refusal');
    expect(await refusal.getAttribute('data-code')).toBe('DIRTY');
    const text = (await refusal.textContent())!;
    expect(text).toContain('not cleanly unmounted');
    expect(text).toContain('--full-copy-on-doubt');
    expect(text).toContain('journal needs recovery'); // the library's own message

    expect(await load(page, url, dirty, true)).toBe('done');
    const used = await diskubeJson<{ usedBytes: number }>('used', dirty, '--full-copy-on-doubt');
    expect(await keptBytes(page)).toBe(used.usedBytes);
    const warning = page.getByTestId('warning').first();
    expect(await warning.getAttribute('data-code')).toBe('assumed-used');
    expect(await warning.textContent()).toMatch(
      /^Its allocation maps cannot be trusted, so all of it is kept/,
    );
  });
});
