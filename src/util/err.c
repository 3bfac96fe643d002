/* err: error values with context (see err.h). */
#include "util/err.h"
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* A message may quote what a peer sent (an engine's answer, a file's line) and may have been
 * cut at the buffer's end: bytes that are not whole UTF-8 become '?', so the message can
 * always go into JSON and a terminal. */
void utf8_fix(char *s)
{
	unsigned char *p = (unsigned char *)s;
	while (*p) {
		int len = *p < 0x80 ? 1 : (*p & 0xe0) == 0xc0 ? 2 : (*p & 0xf0) == 0xe0 ? 3 : (*p & 0xf8) == 0xf0 ? 4 : 0;
		bool ok = len > 0 && !(len == 2 && *p < 0xc2) && !(len == 4 && *p > 0xf4);
		for (int k = 1; ok && k < len; k++)
			ok = (p[k] & 0xc0) == 0x80;
		if (ok && len == 3)
			ok = !(*p == 0xe0 && p[1] < 0xa0) && !(*p == 0xed && p[1] >= 0xa0);
		if (ok && len == 4)
			ok = !(*p == 0xf0 && p[1] < 0x90) && !(*p == 0xf4 && p[1] >= 0x90);
		if (!ok) {
			*p++ = '?';
			continue;
		}
		p += len;
	}
}

int err_set(struct err *e, int code, const char *fmt, ...)
{
	if (!e)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	va_end(ap);
	utf8_fix(e->msg);
	e->code = code ? code : ERR_INTERNAL;
	return -1;
}

int err_errno(struct err *e, int errnum, const char *fmt, ...)
{
	if (!e)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	va_end(ap);
	size_t n = strlen(e->msg);
	snprintf(e->msg + n, sizeof e->msg - n, ": %s", strerror(errnum));
	utf8_fix(e->msg);
	e->code = ERR_INTERNAL;
	return -1;
}

int err_prefix(struct err *e, const char *fmt, ...)
{
	if (!e)
		return -1;
	char pre[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(pre, sizeof pre, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	size_t pl = strlen(pre), ml = strlen(e->msg), cap = sizeof e->msg - 1;
	if (pl + 2 > cap)
		pl = cap - 2;
	if (pl + 2 + ml > cap)
		ml = cap - pl - 2;
	memmove(e->msg + pl + 2, e->msg, ml);
	memcpy(e->msg, pre, pl);
	e->msg[pl] = ':';
	e->msg[pl + 1] = ' ';
	e->msg[pl + 2 + ml] = 0;
	utf8_fix(e->msg);
	if (!e->code)
		e->code = ERR_INTERNAL;
	return -1;
}

void err_clear(struct err *e)
{
	e->code = 0;
	e->msg[0] = 0;
}
