/* fuzz_unpack: libFuzzer harness for the safe unpacker (archive_unpack_mem).
 * Each input is unpacked into a fresh temp dir under /tmp that also holds a canary file, then
 * the temp dir is removed with fs_rm_rf. Beyond "no crash", it checks the promises a user relies
 * on: nothing appears next to dest, the canary is untouched, a failed unpack leaves no dest, and
 * every symlink in a successful unpack that resolves at all resolves inside dest. */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "archive/archive.h"
#include "util/fsutil.h"

#define CANARY "canary: must survive every input\n"

static void die(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_unpack: %s: %s\n", what, detail);
	abort();
}

/* Only "canary" and (after success) "out" may exist in tmp, and the canary keeps its bytes. */
static void check_tmp(const char *tmp, const char *canary, int ok)
{
	DIR *d = opendir(tmp);
	if (!d)
		die("opendir", tmp);
	struct dirent *de;
	while ((de = readdir(d))) {
		const char *n = de->d_name;
		if (!strcmp(n, ".") || !strcmp(n, "..") || !strcmp(n, "canary"))
			continue;
		if (ok && !strcmp(n, "out"))
			continue;
		die(ok ? "unexpected file next to dest" : "left behind after a failed unpack", n);
	}
	closedir(d);
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	if (fs_read_file(canary, &b, 4096, &e) < 0 || strcmp(buf_str(&b), CANARY))
		die("canary changed", canary);
	buf_free(&b);
}

static char real_dest[PATH_MAX]; /* nftw has no user pointer; the harness is single-threaded */

static int check_link(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)ftw;
	if (flag != FTW_SL)
		return 0;
	char got[PATH_MAX];
	if (!realpath(path, got))
		return 0; /* dangling or a loop: nothing is reached through it */
	size_t n = strlen(real_dest);
	if (strncmp(got, real_dest, n) || (got[n] && got[n] != '/'))
		die("symlink resolves outside dest", path);
	return 0;
}

static void check_links(const char *dest)
{
	if (!realpath(dest, real_dest))
		die("realpath", dest);
	if (nftw(dest, check_link, 16, FTW_PHYS) < 0)
		die("walk dest", dest);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char tmp[] = "/tmp/berth-fuzz-unpack-XXXXXX";
	if (!mkdtemp(tmp))
		die("mkdtemp", tmp);
	char *dest = xasprintf("%s/out", tmp);
	char *canary = xasprintf("%s/canary", tmp);
	struct err e = ERR_INIT;
	if (fs_write_atomic(canary, CANARY, strlen(CANARY), 0644, &e) < 0)
		die("write canary", e.msg);

	struct unpack_limits lim = { .max_total_bytes = 1 << 20, .max_entries = 256 };
	int rc = archive_unpack_mem(data, size, dest, &lim, &e);
	if (rc < 0 && (!e.code || !e.msg[0]))
		die("failure without an error message", dest);
	check_tmp(tmp, canary, rc == 0);
	if (rc == 0)
		check_links(dest);

	if (fs_rm_rf(tmp, &e) < 0)
		die("remove temp dir", e.msg);
	free(canary);
	free(dest);
	return 0;
}
