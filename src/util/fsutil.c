/* fsutil: mkdir -p, atomic writes, whole-file reads, rm -rf (see fsutil.h). */
#include "util/fsutil.h"
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int fs_mkdir_p(const char *path, mode_t mode, struct err *e)
{
	char *p = xstrdup(path);
	for (char *s = p + 1; ; s++) {
		if (*s == '/' || *s == 0) {
			char c = *s;
			*s = 0;
			if (mkdir(p, mode) < 0 && errno != EEXIST) {
				int er = errno;
				err_errno(e, er, "create directory %s", p);
				free(p);
				return -1;
			}
			*s = c;
			if (!c)
				break;
		}
	}
	free(p);
	return 0;
}

int fs_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int r = fsync(fd);
	close(fd);
	return r;
}

int fs_write_atomic(const char *path, const void *data, size_t n, mode_t mode, struct err *e)
{
	char *tmp = xasprintf("%s.tmp.%d", path, (int)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0) {
		err_errno(e, errno, "create %s", tmp);
		free(tmp);
		return -1;
	}
	const char *p = data;
	size_t left = n;
	while (left) {
		ssize_t w = write(fd, p, left);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			err_errno(e, errno, "write %s", tmp);
			goto fail;
		}
		p += w;
		left -= (size_t)w;
	}
	if (fchmod(fd, mode) < 0 || fsync(fd) < 0) {
		err_errno(e, errno, "sync %s", tmp);
		goto fail;
	}
	close(fd);
	if (rename(tmp, path) < 0) {
		err_errno(e, errno, "rename %s to %s", tmp, path);
		unlink(tmp);
		free(tmp);
		return -1;
	}
	char *d = xstrdup(path);
	fs_fsync_dir(dirname(d));
	free(d);
	free(tmp);
	return 0;
fail:
	close(fd);
	unlink(tmp);
	free(tmp);
	return -1;
}

int fs_read_file(const char *path, struct buf *out, size_t max, struct err *e)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_errno(e, errno, "open %s", path);
	char chunk[65536];
	size_t total = 0;
	for (;;) {
		ssize_t r = read(fd, chunk, sizeof chunk);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			int er = errno;
			close(fd);
			return err_errno(e, er, "read %s", path);
		}
		if (r == 0)
			break;
		total += (size_t)r;
		if (max && total > max) {
			close(fd);
			return err_set(e, ERR_TOOBIG, "%s is larger than %zu bytes", path, max);
		}
		buf_add(out, chunk, (size_t)r);
	}
	close(fd);
	return 0;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(p) < 0 && errno != ENOENT ? -1 : 0;
}

int fs_rm_rf(const char *path, struct err *e)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : err_errno(e, errno, "stat %s", path);
	if (nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS) < 0)
		return err_errno(e, errno, "remove %s", path);
	return 0;
}

int fs_exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}
