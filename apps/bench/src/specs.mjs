/**
 * The benchmark disks, in the @diskube/mkimage DSL. Both have the same shape: compressible
 * text logs, incompressible random data (one big file, many small ones, some medium ones) and
 * deleted files whose blocks stay behind as stale data in free space.
 *
 * The stale files are deleted one by one rather than as a directory: `delete DIR` of a
 * directory that is the last entry of its parent fails in debugfs ("unlink_file_by_name: No
 * free space in the directory").
 */

/** Full mode: a 4 GiB ext4 with about 1.5 GiB in use and 0.5 GiB of stale data. */
export const FULL_SPEC = `disk 4G
  filesystem ext4 block=4K label=bench
    file /stale/old-vm.img 320M random seed=901
    file /stale/old-build.log 192M text
    file /var/log/syslog 320M text
    file /var/log/app/requests.log 192M text
    file /opt/docs/manual.txt 64M text
    file /data/db.bin 512M random seed=11
    file /data/media.mp4 256M random seed=12
    files /home/user/docs 20000 small seed=13
    files /srv/cache 400 256K seed=14
    files /usr/share/assets 2000 16K seed=15
    delete /stale/old-vm.img
    delete /stale/old-build.log
`;

/** Quick mode (smoke test): the same shape at 256 MiB with about 90 MiB in use. */
export const QUICK_SPEC = `disk 256M
  filesystem ext4 block=4K label=bench
    file /stale/old-vm.img 24M random seed=901
    file /stale/old-build.log 8M text
    file /var/log/syslog 24M text
    file /var/log/app/requests.log 8M text
    file /opt/docs/manual.txt 4M text
    file /data/db.bin 32M random seed=11
    file /data/media.mp4 8M random seed=12
    files /home/user/docs 2000 small seed=13
    files /srv/cache 40 256K seed=14
    files /usr/share/assets 200 16K seed=15
    delete /stale/old-vm.img
    delete /stale/old-build.log
`;
