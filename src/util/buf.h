/* buf: the one growable byte buffer used everywhere in berth.
 * A buf always keeps a NUL after its last byte, so p can be read as a C string
 * when the content is text. Lengths travel with the data; no strcpy/sprintf. */
#ifndef BERTH_BUF_H
#define BERTH_BUF_H
#include <stddef.h>
#include <stdarg.h>

struct buf {
	char *p;      /* content, NUL-terminated; NULL until the first add */
	size_t len;   /* bytes used, not counting the NUL */
	size_t cap;   /* bytes allocated */
};

#define BUF_INIT {NULL, 0, 0}

void buf_grow(struct buf *b, size_t extra);              /* aborts on OOM */
void buf_add(struct buf *b, const void *data, size_t n);
void buf_adds(struct buf *b, const char *s);
void buf_addc(struct buf *b, char c);
void buf_addf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vaddf(struct buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
void buf_reset(struct buf *b);                            /* len = 0, keeps memory */
void buf_consume(struct buf *b, size_t n);                /* drop n bytes from the front */
char *buf_detach(struct buf *b);                          /* caller frees; buf becomes empty */
void buf_free(struct buf *b);                             /* accepts an empty buf */
const char *buf_str(const struct buf *b);                 /* "" when empty */

/* xmalloc family: abort with a message on OOM; berth does not limp on without memory. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
