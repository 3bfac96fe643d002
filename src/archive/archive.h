/* archive: moving an app directory to the server as a gzip'd tar, and unpacking it safely.
 * The unpacker is hostile-input code: it refuses absolute paths, "..", device files, FIFOs,
 * sockets, hard links, and symlinks whose target would resolve outside the release, and
 * enforces size and entry limits. It never writes outside dest. */
#ifndef BERTH_ARCHIVE_H
#define BERTH_ARCHIVE_H
#include <stddef.h>
#include <stdint.h>
#include "util/err.h"
#include "util/buf.h"

/* Pack the tree under dir into out (tar + gzip). Skips .git/ and .berth/ at the top level.
 * Fails with ERR_TOOBIG once the packed size passes max_bytes (0 = no bound). */
int archive_pack_dir(const char *dir, struct buf *out, int64_t max_bytes, struct err *e);

struct unpack_limits {
	int64_t max_total_bytes;   /* sum of file sizes (default 1 GiB when 0) */
	int64_t max_entries;       /* default 100000 when 0 */
};

/* Unpack the tar.gz file at tarball into dest, which must not exist yet (created 0755).
 * On any failure dest is removed again and e says which entry and why. */
int archive_unpack_safe(const char *tarball, const char *dest, const struct unpack_limits *lim,
			struct err *e);
/* Same, from memory (used by the fuzz harness and tests). */
int archive_unpack_mem(const void *data, size_t n, const char *dest, const struct unpack_limits *lim,
		       struct err *e);

#endif
