/* log: timestamped daemon diagnostics on stderr (see log.h). */
#include "util/log.h"
#include "util/timeutil.h"
#include <stdarg.h>
#include <stdio.h>

static int quiet;

void log_set_quiet(int q) { quiet = q; }

__attribute__((format(printf, 2, 0)))
static void vlog(const char *level, const char *fmt, va_list ap)
{
	char ts[40];
	time_format_rfc3339(time_now_us(), ts, sizeof ts);
	char line[2048];
	vsnprintf(line, sizeof line, fmt, ap);
	fprintf(stderr, "%s %s %s\n", ts, level, line);
}

void log_info(const char *fmt, ...)
{
	if (quiet)
		return;
	va_list ap;
	va_start(ap, fmt);
	vlog("info", fmt, ap);
	va_end(ap);
}

void log_warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog("warn", fmt, ap);
	va_end(ap);
}

void log_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog("error", fmt, ap);
	va_end(ap);
}
