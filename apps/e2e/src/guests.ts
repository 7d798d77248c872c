// Default Linux server layouts, shrunk, shared by the LVM, btrfs and container tests. Every LV
// and filesystem is prefilled with random bytes and has a file deleted where the builder can,
// so free blocks hold stale data; the PVs keep free extents.

/** Ubuntu Server: BIOS boot, ESP, and an LVM PV with an ext4 root LV and a swap LV. */
export const UBUNTU_LVM_DISK = `disk 192M gpt
  partition 1M raw type=bios
  partition 32M fat type=efi
    file /EFI/BOOT/BOOTX64.EFI 300K random seed=80
  partition rest lvm vg=ubuntu-vg
    lv ubuntu-lv 96M ext4
      prefill random seed=81
      file /etc/hostname "ubuntu"
      file /usr/lib/big 8M random seed=82
      files /etc/conf 100 small
      file /var/stale 12M random seed=83
      delete /var/stale
    lv swap 16M swap`;

/** RHEL/Rocky/Alma: ESP, XFS /boot, and an LVM PV with XFS root, swap and XFS /home LVs. */
export const RHEL_LVM_DISK = `disk 400M gpt
  partition 16M fat type=efi
    file /EFI/redhat/shimx64.efi 200K random seed=84
  partition 100M xfs name=boot
    file /vmlinuz 4M random seed=85
  partition rest lvm vg=rhel
    lv root 120M xfs
      prefill random seed=86
      file /etc/redhat-release "Red Hat"
      file /usr/lib/big 10M random seed=87
      file /var/stale 10M random seed=88
      delete /var/stale
    lv swap 16M swap
    lv home 100M xfs segments=2
      prefill random seed=89
      file /user/notes.txt 1M text`;

/**
 * Fedora: ESP, ext4 /boot and a btrfs root (mkfs.btrfs needs 109 MiB) with Fedora's subvolumes
 * `root` and `home` and its zstd:1 compression. mkimage prefills and mkfs.btrfs -K keeps the
 * random bytes, so free space holds stale data.
 */
export const FEDORA_DISK = `disk 320M gpt
  partition 32M fat type=efi
    file /EFI/fedora/shimx64.efi 300K random seed=60
  partition 64M ext4 name=boot
    prefill random seed=61
    file /vmlinuz 6M random seed=62
    file /stale 4M random seed=63
    delete /stale
  partition rest btrfs label=fedora compress=zstd:1 subvol=root,home
    prefill random seed=64
    file /root/etc/fedora-release "Fedora release 41"
    file /root/usr/lib/big 12M random seed=65
    files /root/etc/conf.d 200 small
    file /root/var/log/messages 2M text
    file /home/user/notes.txt 1M text`;
