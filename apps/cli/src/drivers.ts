import type { FilesystemDriver } from '@diskube/core';
import { extDriver } from '@diskube/ext';
import { ntfsDriver } from '@diskube/ntfs';

/** Every filesystem driver the CLI knows. Adding a filesystem is one line here. */
export const DRIVERS: readonly FilesystemDriver[] = [extDriver, ntfsDriver];
