/* timeutil: clocks, RFC 3339 and durations (see timeutil.h). */
#include "util/timeutil.h"
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t time_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t time_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *time_format_rfc3339(int64_t us, char *out, size_t n)
{
	time_t s = (time_t)(us / 1000000);
	struct tm tm;
	gmtime_r(&s, &tm);
	snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(us % 1000000));
	return out;
}

static int digits(const char **p, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)**p))
			return -1;
		*v = *v * 10 + (**p - '0');
		(*p)++;
	}
	return 0;
}

int time_parse_rfc3339(const char *s, int64_t *us)
{
	struct tm tm = {0};
	int y, mo, d, h, mi, se;
	const char *p = s;
	if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' || digits(&p, 2, &d))
		return -1;
	if (*p != 'T' && *p != 't' && *p != ' ')
		return -1;
	p++;
	if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi) || *p++ != ':' || digits(&p, 2, &se))
		return -1;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
		return -1;
	int64_t frac = 0;
	if (*p == '.') {
		p++;
		int nd = 0;
		while (isdigit((unsigned char)*p)) {
			if (nd < 6) {
				frac = frac * 10 + (*p - '0');
				nd++;
			}
			p++;
		}
		if (nd == 0)
			return -1;
		while (nd++ < 6)
			frac *= 10;
	}
	int off = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p++ == '-' ? -1 : 1, oh, om;
		if (digits(&p, 2, &oh) || *p++ != ':' || digits(&p, 2, &om))
			return -1;
		off = sign * (oh * 3600 + om * 60);
	} else {
		return -1;
	}
	if (*p)
		return -1;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = se;
	time_t t = timegm(&tm);
	*us = ((int64_t)t - off) * 1000000 + frac;
	return 0;
}

int time_parse_duration_ms(const char *s, int64_t *ms)
{
	if (!s || !*s)
		return -1;
	char *end;
	double v = strtod(s, &end);
	if (end == s || v < 0 || v != v)
		return -1;
	double mul;
	if (!*end || !strcmp(end, "s"))
		mul = 1000;
	else if (!strcmp(end, "ms"))
		mul = 1;
	else if (!strcmp(end, "m"))
		mul = 60000;
	else if (!strcmp(end, "h"))
		mul = 3600000;
	else if (!strcmp(end, "d"))
		mul = 86400000;
	else
		return -1;
	double r = v * mul;
	if (r > 9e15)
		return -1;
	*ms = (int64_t)r;
	return 0;
}
