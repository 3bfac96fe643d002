/* fsutil: small filesystem helpers with error context. All paths are plain C strings. */
#ifndef BERTH_FSUTIL_H
#define BERTH_FSUTIL_H
#include <stddef.h>
#include <sys/types.h>
#include "util/err.h"
#include "util/buf.h"

int fs_mkdir_p(const char *path, mode_t mode, struct err *e);
/* Write data to path atomically: temp file in the same dir, fsync, rename, fsync dir. */
int fs_write_atomic(const char *path, const void *data, size_t n, mode_t mode, struct err *e);
/* Read the whole file into out (appends). max bounds the size (0 = no bound). */
int fs_read_file(const char *path, struct buf *out, size_t max, struct err *e);
/* Remove a tree (no symlink following). Missing path is success. */
int fs_rm_rf(const char *path, struct err *e);
int fs_exists(const char *path);
int fs_fsync_dir(const char *dir);
#endif
