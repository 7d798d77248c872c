// A 1 TiB sparse disk in the page: read lazily, mapped and drawn in well under a second.
// Slow to build the first time and heavy on a shared machine, so it runs on request only:
//   DISKUBE_WEB_LARGE=1 pnpm --filter @diskube/web exec vitest run test/large.test.ts
import { mkdtemp, symlink } from 'node:fs/promises';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildImage } from '@diskube/mkimage';
import type { Browser } from 'playwright-core';
import { afterAll, describe, expect, it } from 'vitest';
import { diskubeJson, launchChromium, requireBrowserTools, serveDist } from './support.js';

const wanted = process.env.DISKUBE_WEB_LARGE === '1';
const have = wanted && (await requireBrowserTools('mke2fs', 'sfdisk'));

const TERABYTE_DISK = `disk 1T gpt
  partition rest ext4 label=big
    file /hello "hi"
    file /data.bin 64M random seed=90`;

describe.runIf(have)('a 1 TiB sparse disk', () => {
  let browser: Browser | undefined;
  let server: Server | undefined;

  afterAll(async () => {
    await browser?.close();
    server?.close();
  });

  it('is inspected and drawn without reading the disk', async () => {
    const { image } = await buildImage(TERABYTE_DISK);
    const file = join(await mkdtemp(join(tmpdir(), 'diskube-web-')), 'terabyte.img');
    await symlink(image, file);
    const served = await serveDist();
    server = served.server;
    browser = await launchChromium();
    const page = await browser.newPage();
    await page.goto(served.url);
    await page.waitForSelector('body[data-state="idle"]');
    const started = performance.now();
    await page.getByTestId('file-input').setInputFiles(file);
    await page.waitForSelector('body[data-state="done"]', { timeout: 60_000 });
    const totalMs = performance.now() - started;
    const drawMs = Number(await page.getByTestId('map-scale').getAttribute('data-draw-ms'));
    const reads = page.getByTestId('reads');
    const read = Number(await reads.getAttribute('data-bytes-read'));
    const kept = Number(await page.getByTestId('summary').getAttribute('data-kept-bytes'));
    console.log(
      `1 TiB: pick to rendered ${totalMs.toFixed(0)} ms, block map ${drawMs} ms; ${await reads.textContent()}`,
    );
    expect(kept).toBe((await diskubeJson<{ usedBytes: number }>('used', file)).usedBytes);
    expect(drawMs).toBeLessThan(1000);
    expect(read).toBeLessThan(256 << 20);
  });
});
