/* archive/extract: internal to archive/. Checks one tar entry read by libarchive and writes it
 * below an open directory fd, never following a symlink and never leaving that directory.
 * unpack.c drives the reader and owns cleanup; this file owns the per-entry rules. */
#ifndef BERTH_ARCHIVE_EXTRACT_H
#define BERTH_ARCHIVE_EXTRACT_H
#include <stddef.h>
#include <stdint.h>
#include <archive.h>
#include <archive_entry.h>
#include "util/err.h"

struct extract {
	int rootfd;          /* the destination directory, O_DIRECTORY; borrowed */
	struct archive *a;   /* reader positioned just after the entry's header; borrowed */
	int64_t max_bytes;   /* bound on the sum of file bytes written */
	int64_t written;     /* file bytes written so far, all entries */
	char *chunk;         /* copy buffer of chunk_len bytes; owned by the caller */
	size_t chunk_len;
	struct err *e;
	/* The last parent directory opened, so entries in one directory walk the path once.
	 * Safe to reuse: an unpack never removes or replaces a directory. Set parent_fd to -1
	 * and parent_key to NULL before the first entry; extract_finish releases them. */
	int parent_fd;
	char *parent_key;
};

/* Check ent against the rules in archive.h and create it below x->rootfd, reading its data
 * from x->a. Returns 0, or -1 with x->e naming the entry (ERR_INVALID for a refused entry,
 * ERR_TOOBIG for a passed limit). Leaves partial output behind: the caller removes dest. */
int extract_entry(struct extract *x, struct archive_entry *ent);

/* Release what extract_entry cached in x (not x itself). */
void extract_finish(struct extract *x);

/* Write a printable, bounded, valid UTF-8 rendering of an untrusted name into out. */
void extract_quote(const char *s, char *out, size_t cap);

#endif
