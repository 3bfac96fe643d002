/* archive: moving an app directory to the server as a gzip'd tar (leaving out what its ignore
 * files and berth's defaults say: archive_pack_dir), and unpacking it safely.
 * The unpacker is hostile-input code: it refuses absolute paths, "..", device files, FIFOs,
 * sockets, hard links, and symlinks whose target would resolve outside the release, and
 * enforces size and entry limits. It never writes outside dest. */
#ifndef BERTH_ARCHIVE_H
#define BERTH_ARCHIVE_H
#include <stddef.h>
#include <stdint.h>
#include "util/err.h"
#include "util/buf.h"

/* What archive_pack_dir put in and left out. A left-out directory counts once in
 * dirs_ignored and is not walked: what is under it is neither read nor counted, so a huge
 * node_modules costs nothing and an unreadable ignored directory cannot fail the deploy. */
struct pack_stats {
	size_t files_packed;   /* regular files and symlinks in the archive */
	size_t dirs_packed;
	int64_t bytes;         /* sum of the packed regular files' sizes, before compression */
	size_t files_ignored;  /* files, symlinks and special files left out */
	size_t dirs_ignored;   /* directories left out (each once, contents not counted) */
	char source[64];       /* the rules used, for people: ".berthignore", ".gitignore" or
				* "no ignore file", then ", node_modules" and/or
				* ", .venv, __pycache__" when those defaults were on */
};

/* Pack the tree under dir into out (tar + gzip), leaving out:
 *  - always, and no ignore file can bring them back: every ".git" (a nested repository's or
 *    submodule's too, directory or file) and ".berth" at the top;
 *  - by default, whether or not an ignore file mentions them: "node_modules" when dir has
 *    package.json, ".venv" and "__pycache__" when it has requirements.txt or pyproject.toml,
 *    at any depth and whatever their type (a symlinked node_modules or .venv, or a venv's
 *    symlinks to a local python, would point outside the release, which the server refuses;
 *    and the server installs dependencies itself);
 *  - what dir/.berthignore says, if it exists. Then no .gitignore is read: .berthignore is the
 *    whole statement of what to deploy (what git should not track and what the server should
 *    not get differ: a .env or a build output can be either), and the defaults above come
 *    first in it, so a "!node_modules/" line there brings node_modules back;
 *  - otherwise what the .gitignore files say, read as git reads them: dir's own and every
 *    nested one for its directory, deeper ones winning. There the defaults cannot be undone.
 * Syntax and matching of ignore files: archive/ignore.h. An ignored FIFO or socket is left out
 * rather than refused. Fails with ERR_TOOBIG once the packed size passes max_bytes (0 = no
 * bound), with ERR_INVALID/ERR_TOOBIG naming file:line for a bad ignore file. stats may be
 * NULL; it is filled on success. */
int archive_pack_dir(const char *dir, struct buf *out, int64_t max_bytes,
		     struct pack_stats *stats, struct err *e);

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
