/* archive/unpack: archive_unpack_safe and archive_unpack_mem. Drives libarchive's reader (tar
 * formats only, gzip or no compression), creates the destination, counts entries, hands each
 * entry to extract.c, and on any failure removes the destination so nothing half-made is left.
 * The input is hostile: the reader is limited to the tar family so no other parser runs on it. */
#include "archive/archive.h"
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "archive/extract.h"
#include "util/fsutil.h"

#define DEFAULT_MAX_BYTES   ((int64_t)1 << 30)
#define DEFAULT_MAX_ENTRIES 100000
#define CHUNK               65536

static const char *reader_error(struct archive *a)
{
	const char *s = archive_error_string(a);
	return s ? s : "unreadable archive";
}

static struct archive *reader_new(struct err *e)
{
	struct archive *a = archive_read_new();
	if (!a) {
		err_set(e, ERR_INTERNAL, "unpack: out of memory");
		return NULL;
	}
	/* gzip or nothing (the "none" filter is always on); the tar family and nothing else:
	 * ustar, pax, GNU and v7 tar. No zip, cpio or external decompressor programs. */
	if (archive_read_support_filter_gzip(a) != ARCHIVE_OK ||
	    archive_read_support_format_tar(a) != ARCHIVE_OK) {
		err_set(e, ERR_INTERNAL, "unpack: %s", reader_error(a));
		archive_read_free(a);
		return NULL;
	}
	return a;
}

/* mkdir dest (its parent must exist) and open it. Returns the fd or -1. */
static int make_dest(const char *dest, struct err *e)
{
	if (mkdir(dest, 0755) < 0) {
		if (errno == EEXIST)
			return err_set(e, ERR_CONFLICT, "unpack: %s already exists", dest);
		return err_errno(e, errno, "unpack: create %s", dest);
	}
	int fd = open(dest, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fchmod(fd, 0755) < 0) {
		int er = errno;
		if (fd >= 0)
			close(fd);
		rmdir(dest);
		return err_errno(e, er, "unpack: open %s", dest);
	}
	return fd;
}

static int extract_all(struct archive *a, int rootfd, const struct unpack_limits *lim,
		       struct err *e)
{
	int64_t max_entries = lim && lim->max_entries > 0 ? lim->max_entries : DEFAULT_MAX_ENTRIES;
	struct extract x = {
		.rootfd = rootfd,
		.a = a,
		.max_bytes = lim && lim->max_total_bytes > 0 ? lim->max_total_bytes : DEFAULT_MAX_BYTES,
		.chunk = xmalloc(CHUNK),
		.chunk_len = CHUNK,
		.e = e,
		.parent_fd = -1,
	};
	int64_t entries = 0;
	int rc = 0;
	for (;;) {
		struct archive_entry *ent;
		int r = archive_read_next_header(a, &ent);
		if (r == ARCHIVE_EOF)
			break;
		/* ARCHIVE_WARN is things like a name libarchive could not convert to the locale:
		 * the entry is still complete. Anything worse ends the unpack. */
		if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
			rc = err_set(e, ERR_INVALID, "corrupt archive after %" PRId64 " entries: %s",
				     entries, reader_error(a));
			break;
		}
		if (++entries > max_entries) {
			rc = err_set(e, ERR_TOOBIG, "archive has more than %" PRId64 " entries (the limit)",
				     max_entries);
			break;
		}
		if (extract_entry(&x, ent) < 0) {
			rc = -1;
			break;
		}
	}
	extract_finish(&x);
	free(x.chunk);
	return rc;
}

/* Unpack from an opened reader (open_rc is what its open returned) into dest. */
static int unpack(struct archive *a, int open_rc, const char *dest, const struct unpack_limits *lim,
		  struct err *e)
{
	if (open_rc != ARCHIVE_OK)
		return err_set(e, ERR_INVALID, "not a tar or tar.gz archive: %s", reader_error(a));
	int rootfd = make_dest(dest, e);
	if (rootfd < 0)
		return -1;
	int rc = extract_all(a, rootfd, lim, e);
	close(rootfd);
	if (rc < 0) {
		struct err rm = ERR_INIT;
		if (fs_rm_rf(dest, &rm) < 0 && e) {
			char first[sizeof e->msg];
			memcpy(first, e->msg, sizeof first);
			err_set(e, e->code, "%s (and removing the partial %s failed: %s)", first, dest,
				rm.msg);
		}
	}
	return rc;
}

int archive_unpack_mem(const void *data, size_t n, const char *dest, const struct unpack_limits *lim,
		       struct err *e)
{
	static const char empty[1];
	struct archive *a = reader_new(e);
	if (!a)
		return -1;
	int r = archive_read_open_memory(a, n ? data : empty, n);
	int rc = unpack(a, r, dest, lim, e);
	archive_read_free(a);
	return rc;
}

int archive_unpack_safe(const char *tarball, const char *dest, const struct unpack_limits *lim,
			struct err *e)
{
	int fd = open(tarball, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int er = errno;
		err_errno(e, er, "open %s", tarball);
		if (er == ENOENT && e)
			e->code = ERR_NOTFOUND;
		return -1;
	}
	struct archive *a = reader_new(e);
	if (!a) {
		close(fd);
		return -1;
	}
	int r = archive_read_open_fd(a, fd, CHUNK);
	int rc = unpack(a, r, dest, lim, e);
	if (rc < 0 && e && e->code == ERR_INVALID)
		err_prefix(e, "%s", tarball);
	archive_read_free(a);
	close(fd);
	return rc;
}
