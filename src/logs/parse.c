/* parse: reading back what sink.c writes: one stored line
 * "2026-11-24T20:19:13.123456Z v3 out text" and a file name "<process>.<slot>.log[.N]".
 * Files may have been edited, truncated or filled with junk: this is hostile-input code.
 * Bounded, never reads past n, rejects anything not in the written format. */
#include "logs/logs_int.h"
#include <limits.h>
#include <string.h>
#include "util/timeutil.h"

static int dig(char c)
{
	return c >= '0' && c <= '9';
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int y, int m, int d)
{
	y -= m <= 2;
	int era = (y >= 0 ? y : y - 399) / 400;
	int yoe = y - era * 400;
	int doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return (int64_t)era * 146097 + doe - 719468;
}

static int num(const char *p, int n)
{
	int v = 0;
	for (int i = 0; i < n; i++)
		v = v * 10 + (p[i] - '0');
	return v;
}

/* The exact form the sink writes: 27 bytes, UTC, microseconds. -1 otherwise. */
static int parse_ts_fixed(const char *p, int64_t *us)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd.ddddddZ";
	for (int i = 0; i < LOGS_TS_LEN; i++) {
		if (shape[i] == 'd' ? !dig(p[i]) : p[i] != shape[i])
			return -1;
	}
	int y = num(p, 4), mo = num(p + 5, 2), d = num(p + 8, 2);
	int h = num(p + 11, 2), mi = num(p + 14, 2), s = num(p + 17, 2);
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60)
		return -1;
	int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
	*us = secs * 1000000 + num(p + 20, 6);
	return 0;
}

int logs_parse_line(const char *p, size_t n, struct logs_parsed *out)
{
	size_t i;
	if (n > LOGS_TS_LEN && p[LOGS_TS_LEN] == ' ' && parse_ts_fixed(p, &out->ts_us) == 0) {
		i = LOGS_TS_LEN;
	} else {
		/* Another RFC 3339 spelling (a hand-edited line): hand a bounded copy to timeutil. */
		char ts[48];
		const char *sp = memchr(p, ' ', n < sizeof ts ? n : sizeof ts);
		if (!sp || sp == p)
			return -1;
		i = (size_t)(sp - p);
		if (memchr(p, 0, i))
			return -1;
		memcpy(ts, p, i);
		ts[i] = 0;
		if (time_parse_rfc3339(ts, &out->ts_us) < 0)
			return -1;
	}
	/* " v<release> " */
	i++;
	if (i >= n || p[i] != 'v')
		return -1;
	i++;
	size_t d0 = i;
	int64_t rel = 0;
	while (i < n && dig(p[i]) && i - d0 < 10) {
		rel = rel * 10 + (p[i] - '0');
		i++;
	}
	if (i == d0 || rel > INT_MAX || i >= n || p[i] != ' ')
		return -1;
	out->release = (int)rel;
	i++;
	/* "out" | "err" | "sys", then the end or ' ' + text */
	if (n - i < 3)
		return -1;
	if (!memcmp(p + i, "out", 3))
		out->stream = 1;
	else if (!memcmp(p + i, "err", 3))
		out->stream = 2;
	else if (!memcmp(p + i, "sys", 3))
		out->stream = LOGS_STREAM_BERTH;
	else
		return -1;
	i += 3;
	if (i < n && p[i] != ' ')
		return -1;
	if (i < n)
		i++;
	out->text = p + i;
	out->len = n - i;
	return 0;
}

/* Digits only, no leading zero (except "0" when zero_ok), at most maxd of them. */
static int parse_uint(const char *p, size_t n, size_t maxd, int zero_ok, int *v)
{
	if (n == 0 || n > maxd)
		return -1;
	if (p[0] == '0' && (n > 1 || !zero_ok))
		return -1;
	int x = 0;
	for (size_t i = 0; i < n; i++) {
		if (!dig(p[i]))
			return -1;
		x = x * 10 + (p[i] - '0');
	}
	*v = x;
	return 0;
}

int logs_parse_name(const char *name, size_t *plen, int *slot, int *rot)
{
	size_t n = strlen(name);
	size_t base;                         /* length of "<process>.<slot>" */
	if (n > 4 && !memcmp(name + n - 4, ".log", 4)) {
		*rot = 0;
		base = n - 4;
	} else {
		const char *dot = memrchr(name, '.', n);
		if (!dot)
			return -1;
		size_t at = (size_t)(dot - name);
		if (parse_uint(dot + 1, n - at - 1, 6, 0, rot) < 0)
			return -1;
		if (at <= 4 || memcmp(name + at - 4, ".log", 4))
			return -1;
		base = at - 4;
	}
	const char *dot = memrchr(name, '.', base);
	if (!dot || dot == name || name[0] == '.')
		return -1;
	size_t at = (size_t)(dot - name);
	if (parse_uint(dot + 1, base - at - 1, 9, 1, slot) < 0)
		return -1;
	*plen = at;
	return 0;
}
