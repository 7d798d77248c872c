import { btrfsDriver } from '@diskube/btrfs';
import type { FilesystemDriver, VolumeManager } from '@diskube/core';
import { extDriver } from '@diskube/ext';
import { fatDriver } from '@diskube/fat';
import { lvmVolumeManager } from '@diskube/lvm';
import { ntfsDriver } from '@diskube/ntfs';
import { xfsDriver } from '@diskube/xfs';

/**
 * Every filesystem driver diskube ships, in probe order. Pass your own list to any call that
 * takes `drivers` to add one (`[...defaultDrivers, myXfsDriver]`) or to leave one out; a driver
 * is any object implementing `FilesystemDriver` from `@diskube/core`.
 */
export const defaultDrivers: readonly FilesystemDriver[] = Object.freeze([
  extDriver,
  ntfsDriver,
  xfsDriver,
  fatDriver,
  btrfsDriver,
]);

/**
 * Every volume manager diskube ships (LVM2): tried on a partition, or a whole disk without a
 * table, that no driver claims. Pass `volumeManagers: []` to keep PVs whole instead.
 */
export const defaultVolumeManagers: readonly VolumeManager[] = Object.freeze([lvmVolumeManager]);
