import type { VolumeGroupLayout, VolumeManager } from '@diskube/core';
import { probePhysicalVolume, readPhysicalVolume } from './physical-volume.js';

/**
 * LVM2 as a `VolumeManager` for `@diskube/partition`'s `mapDisk`: a PV (a partition or a whole
 * disk) becomes its VG's LVs as block sources, each LV's used ranges mapped back onto the PV.
 */
export const lvmVolumeManager: VolumeManager = {
  name: 'lvm2',
  probe: probePhysicalVolume,
  async open(source, options = {}): Promise<VolumeGroupLayout | null> {
    options.signal?.throwIfAborted();
    const pv = await readPhysicalVolume(source);
    if (!pv) return null;
    return {
      format: 'lvm2',
      name: pv.vg.name,
      metadata: pv.metadata,
      volumes: pv.volumes.map((lv) => ({
        name: lv.name,
        size: lv.size,
        source: lv.source,
        keptWhole: lv.keptWhole,
        parentRanges: lv.pvRanges,
        toParent: (ranges) => lv.toPv(ranges as Iterable<[number, number]>),
      })),
      facts: {
        vg: pv.vg.name,
        pv: pv.label.uuid,
        seqno: pv.vg.seqno,
        extentSize: pv.vg.extentSize,
        extents: pv.pv.peCount,
        freeExtents: pv.freeExtents,
        pvs: pv.vg.physicalVolumes.length,
      },
      warnings: pv.warnings,
    };
  },
};
