// vitest globalSetup: one private Swift s3api for the whole test run (see swift-s3.mjs), and one
// temporary directory for local-backend repositories; both removed at the end. The endpoint
// reaches the tests through `inject('s3')` (src/backends.test-support.ts).
//
// Swift missing: under CI=true the run fails; locally the S3 cases skip, loudly.
import { mkdtempSync, rmSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { missingSwiftTools, startSwift } from './swift-s3.mjs';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const tmpRoot = mkdtempSync(join(tmpdir(), 'diskube-repository-test-'));
  project.provide('tmpRoot', tmpRoot);
  const missing = missingSwiftTools();
  if (missing.length > 0) {
    const message = `Swift s3api is not installed (missing ${missing.join(', ')}): the S3 backend is NOT tested. Run scripts/setup.sh.`;
    if (process.env.CI === 'true') throw new Error(`${message} It is required under CI=true.`);
    console.warn(`\n!!! ${message}\n`);
    project.provide('s3', { skip: message });
    return async () => rmSync(tmpRoot, { recursive: true, force: true });
  }
  const swift = await startSwift();
  // Free space, so a run that fails on a full disk says so (the e2e images share it).
  const fs = statfsSync(tmpRoot);
  console.log(
    `Swift s3api at ${swift.endpoint} (cold start ${(swift.coldStartMs / 1000).toFixed(1)} s, ${((fs.bavail * fs.bsize) / 2 ** 30).toFixed(1)} GiB free in ${tmpdir()})`,
  );
  project.provide('s3', {
    endpoint: swift.endpoint,
    region: swift.region,
    accessKeyId: swift.accessKeyId,
    secretAccessKey: swift.secretAccessKey,
  });
  return async () => {
    await swift.destroy();
    rmSync(tmpRoot, { recursive: true, force: true });
  };
}
