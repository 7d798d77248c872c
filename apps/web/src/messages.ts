// Refusals and warnings in plain words, for people who have not read the format docs.
import { DiskubeError, type Warning } from 'diskube';

export interface Refusal {
  /** `DIRTY`, `CORRUPT`, `UNSUPPORTED`, `IO`, `INVALID_ARGUMENT`, or `INTERNAL` for a bug. */
  code: string;
  title: string;
  advice: string;
  /** The library's own message, with the structure and byte offset it names. */
  detail: string;
}

const HIBERNATED =
  'Windows is hibernated on this volume (or Fast Startup left it suspended): what is on disk is not what Windows will see when it resumes. Boot Windows and shut it down fully (shutdown /s /t 0), or back it up with --full-copy-on-doubt, which keeps the whole volume.';

const ADVICE: Record<string, string> = {
  DIRTY:
    'This filesystem was not cleanly unmounted (or its journal still needs recovery); its allocation maps cannot be trusted, so diskube cannot tell which blocks are free. Check it first (e2fsck, chkdsk), or back it up with --full-copy-on-doubt, which keeps all of it. Tick "keep all of a filesystem in doubt" above to see that backup.',
  CORRUPT:
    'The image contradicts its own format (a bad checksum, a pointer out of range), so its maps cannot be trusted. Repair it first (e2fsck, chkdsk, qemu-img check), or back it up with --full-copy-on-doubt, which keeps all of a filesystem in doubt.',
  UNSUPPORTED:
    'The image uses something diskube does not read yet. Nothing was guessed: a backup of it is refused rather than made wrong.',
  IO: 'The browser could not read the file (it may have changed or moved since you picked it). Pick it again.',
  INVALID_ARGUMENT: 'diskube was called with something it cannot use; this is a bug.',
};

const TITLES: Record<string, string> = {
  DIRTY: 'Refused: the filesystem is not clean',
  CORRUPT: 'Refused: the image is damaged',
  UNSUPPORTED: 'Refused: not supported',
  IO: 'The file could not be read',
  INVALID_ARGUMENT: 'Invalid input',
};

/** Turns anything `inspectImage` throws into a refusal to show. */
export function describeRefusal(error: unknown): Refusal {
  if (!DiskubeError.isInstance(error)) {
    const detail = error instanceof Error ? error.message : String(error);
    return { code: 'INTERNAL', title: 'Something went wrong', advice: 'This is a bug.', detail };
  }
  const hibernated = error.code === 'DIRTY' && error.reason === 'hibernated';
  return {
    code: error.code,
    title: TITLES[error.code] ?? 'Refused',
    advice: hibernated ? HIBERNATED : (ADVICE[error.code] ?? ''),
    detail: error.message,
  };
}

/** Plain words for the warning codes the layers report; the library's message follows them. */
const WARNINGS: Record<string, string> = {
  'assumed-used':
    'Its allocation maps cannot be trusted, so all of it is kept (full copy on doubt).',
  'filesystem-unsupported': 'diskube cannot read this filesystem, so all of it is kept.',
  'unknown-partition': 'Nothing recognisable is in this partition, so all of it is kept.',
  'unrecognised-disk': 'No partition table or filesystem was recognised: the whole disk is kept.',
  'swap-hibernation':
    'This swap area holds a hibernation image, so all of it is kept (a resume would need it).',
  'tail-after-filesystem': 'There are bytes after the end of the filesystem.',
  'gpt-primary-damaged': 'The primary GPT is damaged; the backup GPT at the end was used.',
  'gpt-backup-missing': 'The backup GPT at the end of the disk is missing or damaged.',
  'partition-overlap':
    'Partitions overlap, so none of them is trusted to say what is free: each is kept whole.',
  'ebr-entry-ignored':
    'An extended boot record holds an entry Linux ignores; its sectors are kept.',
  'bad-clusters':
    'The filesystem lists bad clusters; they are kept (copied), and reading them may fail on failing media.',
  'bitmap-checksum': 'A block bitmap failed its checksum; its group is kept whole.',
  'free-count': "A group's free count disagrees with its bitmap; the group is kept whole.",
  'referenced-free':
    'Files use blocks the allocation map calls free (found by the cross-check); they are kept.',
  'fat-copies-differ': 'The FAT copies disagree; every cluster either copy marks used is kept.',
  'bad-fsinfo':
    'The FAT32 FSInfo sector is not valid (it only holds hints; nothing depends on it).',
  'hard-errors': 'The FAT volume records hard errors from a past run; its maps are still read.',
  'external-log': 'The XFS log is on another device, which is not part of this image.',
  'agfl-needs-reset':
    'An XFS free list needs the reset the kernel does at mount; its blocks are kept.',
  'backup-boot-sector-missing': 'The NTFS backup boot sector is missing.',
  'backup-boot-sector-invalid': 'The NTFS backup boot sector is not valid.',
};

/** Plain words for a warning (null for a code without them) and the library's own message. */
export function describeWarning(warning: Warning): { plain: string | null; detail: string } {
  return { plain: WARNINGS[warning.code] ?? null, detail: warning.message };
}
