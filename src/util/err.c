/* err: error values with context (see err.h). */
#include "util/err.h"
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int err_set(struct err *e, int code, const char *fmt, ...)
{
	if (!e)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	va_end(ap);
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
	if (!e->code)
		e->code = ERR_INTERNAL;
	return -1;
}

void err_clear(struct err *e)
{
	e->code = 0;
	e->msg[0] = 0;
}
