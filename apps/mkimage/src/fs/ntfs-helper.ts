// C source of the NTFS populate helper, compiled on first use (see ntfs.ts). Kept in a
// TypeScript string so it ships inside dist/.
export const NTFS_HELPER_C = String.raw`/*
 * mkimage-ntfs: populates an unmounted NTFS image through libntfs-3g, the library behind
 * ntfs-3g. The ntfs-3g package ships no userspace tool that creates directories or deletes
 * files (ntfscp only writes files into existing directories), and tests may not FUSE-mount.
 *
 * Debian ships libntfs-3g without headers, so the few entry points used are declared here
 * with opaque pointers; the signatures are those of libntfs-3g 2022.10.3
 * (include/ntfs-3g/{volume,inode,dir,attrib,unistr}.h).
 *
 * Commands on stdin, one per line, fields separated by TAB:
 *   mkdir PATH | write PATH HOSTFILE | pwrite PATH OFFSET HOSTFILE | truncate PATH SIZE | rm PATH
 *   dirty (sets VOLUME_IS_DIRTY in $Volume, as Windows does while mounted)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>

typedef struct ntfs_volume ntfs_volume;
typedef struct ntfs_inode ntfs_inode;
typedef struct ntfs_attr ntfs_attr;
typedef uint16_t ntfschar;

extern ntfs_volume *ntfs_mount(const char *name, unsigned long flags);
extern int ntfs_umount(ntfs_volume *vol, int force);
extern ntfs_inode *ntfs_pathname_to_inode(ntfs_volume *vol, ntfs_inode *parent, const char *path);
extern int ntfs_mbstoucs(const char *ins, ntfschar **outs);
extern ntfs_inode *ntfs_create(ntfs_inode *dir_ni, uint32_t securid, const ntfschar *name,
                               uint8_t name_len, mode_t type);
extern int ntfs_delete(ntfs_volume *vol, const char *path, ntfs_inode *ni, ntfs_inode *dir_ni,
                       const ntfschar *name, uint8_t name_len);
extern int ntfs_inode_close(ntfs_inode *ni);
extern ntfs_attr *ntfs_attr_open(ntfs_inode *ni, uint32_t type, ntfschar *name, uint32_t name_len);
extern int64_t ntfs_attr_pwrite(ntfs_attr *na, int64_t pos, int64_t count, const void *b);
extern int ntfs_attr_truncate(ntfs_attr *na, int64_t newsize);
extern void ntfs_attr_close(ntfs_attr *na);
extern int ntfs_volume_write_flags(ntfs_volume *vol, const uint16_t flags);
extern ntfschar AT_UNNAMED[];

#define AT_DATA 0x80

/* Frozen clock: libntfs-3g stamps new and changed files with the current time. These
 * definitions in the executable take precedence over libc's for the library too. */
static const time_t fixed_time = 1000000000;
int clock_gettime(clockid_t clk, struct timespec *ts) {
  (void)clk;
  ts->tv_sec = fixed_time;
  ts->tv_nsec = 0;
  return 0;
}
int gettimeofday(struct timeval *tv, void *tz) {
  (void)tz;
  tv->tv_sec = fixed_time;
  tv->tv_usec = 0;
  return 0;
}
time_t time(time_t *t) {
  if (t) *t = fixed_time;
  return fixed_time;
}

static ntfs_volume *vol;

static int fail(int line, const char *what, const char *path) {
  fprintf(stderr, "mkimage-ntfs: command %d: %s %s: %s\n", line, what, path, strerror(errno));
  return 1;
}

/* Opens the parent directory of "/a/b/c" and converts the last name to UTF-16. */
static ntfs_inode *open_parent(const char *path, ntfschar **uname, int *ulen) {
  const char *slash = strrchr(path, '/');
  if (!slash) { errno = EINVAL; return NULL; }
  char *parent = strndup(path, (size_t)(slash - path));
  ntfs_inode *dir = ntfs_pathname_to_inode(vol, NULL, parent[0] ? parent : "/");
  free(parent);
  if (!dir) return NULL;
  *uname = NULL;
  *ulen = ntfs_mbstoucs(slash + 1, uname);
  if (*ulen <= 0 || *ulen > 255) { free(*uname); ntfs_inode_close(dir); errno = EINVAL; return NULL; }
  return dir;
}

static ntfs_inode *create(const char *path, mode_t type) {
  ntfschar *uname; int ulen;
  ntfs_inode *dir = open_parent(path, &uname, &ulen);
  if (!dir) return NULL;
  ntfs_inode *ni = ntfs_create(dir, 0, uname, (uint8_t)ulen, type);
  free(uname);
  ntfs_inode_close(dir);
  return ni;
}

static int copy_in(ntfs_attr *na, int64_t pos, const char *host) {
  static char buf[1 << 20];
  FILE *f = fopen(host, "rb");
  if (!f) return -1;
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
    if (ntfs_attr_pwrite(na, pos, (int64_t)n, buf) != (int64_t)n) { fclose(f); return -1; }
    pos += (int64_t)n;
  }
  fclose(f);
  return 0;
}

static int run(int line, char **f, int nf) {
  const char *cmd = f[0], *path = nf > 1 ? f[1] : "";
  if (!strcmp(cmd, "mkdir") && nf == 2) {
    ntfs_inode *ni = create(path, S_IFDIR);
    if (!ni) return fail(line, cmd, path);
    return ntfs_inode_close(ni) ? fail(line, cmd, path) : 0;
  }
  if (!strcmp(cmd, "rm") && nf == 2) {
    ntfschar *uname; int ulen;
    ntfs_inode *ni = ntfs_pathname_to_inode(vol, NULL, path);
    if (!ni) return fail(line, cmd, path);
    ntfs_inode *dir = open_parent(path, &uname, &ulen);
    if (!dir) { ntfs_inode_close(ni); return fail(line, cmd, path); }
    /* ntfs_delete closes both inodes, on success and on failure. */
    int r = ntfs_delete(vol, path, ni, dir, uname, (uint8_t)ulen);
    free(uname);
    return r ? fail(line, cmd, path) : 0;
  }
  if ((!strcmp(cmd, "write") && nf == 3) || (!strcmp(cmd, "pwrite") && nf == 4) ||
      (!strcmp(cmd, "truncate") && nf == 3)) {
    ntfs_inode *ni = ntfs_pathname_to_inode(vol, NULL, path);
    if (!ni && !strcmp(cmd, "write")) ni = create(path, S_IFREG);
    if (!ni) return fail(line, cmd, path);
    ntfs_attr *na = ntfs_attr_open(ni, AT_DATA, AT_UNNAMED, 0);
    if (!na) { ntfs_inode_close(ni); return fail(line, cmd, path); }
    int r;
    if (!strcmp(cmd, "write")) r = ntfs_attr_truncate(na, 0) || copy_in(na, 0, f[2]);
    else if (!strcmp(cmd, "pwrite")) r = copy_in(na, strtoll(f[2], NULL, 10), f[3]);
    else r = ntfs_attr_truncate(na, strtoll(f[2], NULL, 10));
    ntfs_attr_close(na);
    if (ntfs_inode_close(ni)) r = -1;
    return r ? fail(line, cmd, path) : 0;
  }
  if (!strcmp(cmd, "dirty") && nf == 1) {
    return ntfs_volume_write_flags(vol, 0x0001) ? fail(line, cmd, "") : 0;
  }
  fprintf(stderr, "mkimage-ntfs: command %d: bad command %s\n", line, cmd);
  return 1;
}

int main(int argc, char **argv) {
  if (argc != 2) { fprintf(stderr, "usage: mkimage-ntfs IMAGE < commands\n"); return 2; }
  vol = ntfs_mount(argv[1], 0);
  if (!vol) { fprintf(stderr, "mkimage-ntfs: cannot open %s: %s\n", argv[1], strerror(errno)); return 1; }
  char *lineb = NULL;
  size_t cap = 0;
  ssize_t len;
  int line = 0, rc = 0;
  while (!rc && (len = getline(&lineb, &cap, stdin)) > 0) {
    line++;
    if (lineb[len - 1] == '\n') lineb[--len] = 0;
    if (!len) continue;
    char *f[5], *s = lineb, *tok;
    int nf = 0;
    while (nf < 5 && (tok = strsep(&s, "\t"))) f[nf++] = tok;
    rc = run(line, f, nf);
  }
  free(lineb);
  if (ntfs_umount(vol, 0)) { fprintf(stderr, "mkimage-ntfs: unmount failed: %s\n", strerror(errno)); rc = 1; }
  return rc;
}
`;
