/* scan: line readers over one log file, forwards (oldest first) and backwards (newest first),
 * in LOGS_BLOCK reads. The backward reader lets "the last n lines" cost a few blocks at the
 * end of a file however big it is. Memory per reader stays under one block plus one line:
 * a "line" longer than LOGS_SCAN_MAX (junk, or a file that is not ours) is skipped whole. */
#include "logs/logs_int.h"
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void logs_fwd_init(struct logs_fwd *r, int fd)
{
	memset(r, 0, sizeof *r);
	r->fd = fd;
}

int logs_fwd_next(struct logs_fwd *r, const char **line, size_t *len)
{
	for (;;) {
		char *start = r->b.p ? r->b.p + r->pos : NULL;
		size_t avail = r->b.len - r->pos;
		if (avail) {
			char *nl = memchr(start, '\n', avail);
			if (nl || r->eof) {
				size_t n = nl ? (size_t)(nl - start) : avail;
				r->pos += nl ? n + 1 : n;
				if (r->skipping) {
					r->skipping = 0;
					continue;
				}
				*line = start;
				*len = n;
				return 1;
			}
		} else if (r->eof) {
			return 0;
		}
		/* Keep the unfinished line, drop what was handed out, read the next block. */
		if (r->pos) {
			memmove(r->b.p, start, avail);
			r->b.len = avail;
			r->pos = 0;
		}
		if (avail > LOGS_SCAN_MAX) {
			r->skipping = 1;
			r->b.len = 0;
		}
		buf_grow(&r->b, LOGS_BLOCK);
		ssize_t got = read(r->fd, r->b.p + r->b.len, LOGS_BLOCK);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (got == 0)
			r->eof = 1;
		r->b.len += (size_t)got;
	}
}

void logs_fwd_close(struct logs_fwd *r)
{
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
	buf_free(&r->b);
}

int logs_bwd_init(struct logs_bwd *r, int fd)
{
	memset(r, 0, sizeof *r);
	r->fd = fd;
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -1;
	r->lo = st.st_size;
	return 0;
}

/* Read the want bytes before r->lo into dst. 0, or -1 (error, or the file shrank). */
static int read_before(struct logs_bwd *r, char *dst, size_t want)
{
	off_t at = r->lo - (off_t)want;
	size_t got = 0;
	while (got < want) {
		ssize_t k = pread(r->fd, dst + got, want - got, at + (off_t)got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		got += (size_t)k;
	}
	r->lo = at;
	return 0;
}

int logs_bwd_prev(struct logs_bwd *r, const char **line, size_t *len)
{
	for (;;) {
		size_t e = r->end;
		if (e) {
			/* b[0..e) ends with the '\n' of its last line (or the file's unended tail). */
			size_t le = r->b.p[e - 1] == '\n' ? e - 1 : e;
			char *nl = le ? memrchr(r->b.p, '\n', le) : NULL;
			if (nl || r->lo == 0) {
				size_t s = nl ? (size_t)(nl - r->b.p) + 1 : 0;
				r->end = s;
				*line = r->b.p + s;
				*len = le - s;
				return 1;
			}
			if (le > LOGS_SCAN_MAX) {   /* junk: skip back to the line before it */
				r->skipping = 1;
				r->end = e = 0;
			}
		} else if (r->lo == 0) {
			return 0;
		}
		size_t want = r->lo < LOGS_BLOCK ? (size_t)r->lo : LOGS_BLOCK;
		if (r->skipping) {
			r->b.len = 0;
			buf_grow(&r->b, want);
			if (read_before(r, r->b.p, want) < 0)
				return -1;
			char *nl = memrchr(r->b.p, '\n', want);
			if (nl) {
				r->end = (size_t)(nl - r->b.p) + 1;
				r->skipping = 0;
			} else if (r->lo == 0) {
				r->skipping = 0;    /* the junk started the file: nothing left */
			}
			continue;
		}
		/* Prepend the previous block to the unfinished line. */
		r->b.len = 0;          /* realloc keeps b[0..e) whatever len says */
		buf_grow(&r->b, e + want);
		memmove(r->b.p + want, r->b.p, e);
		if (read_before(r, r->b.p, want) < 0)
			return -1;
		r->end = e + want;
		r->b.len = r->end;
	}
}

void logs_bwd_close(struct logs_bwd *r)
{
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
	buf_free(&r->b);
}
