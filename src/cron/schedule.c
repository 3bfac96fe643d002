/* schedule: cron schedules — the five-field parser with byte-offset errors, canonical text,
 * and cron_next: walk the zone's constant-offset stretches and, inside each, skip through local
 * month/day/hour/minute. Owns no memory and no state. Must never read the clock or a file
 * itself, nor touch TZ, tzset() or localtime(): everything it knows about a zone comes through
 * tzif.h and the change instants in internal.h. See schedule.h for the contract. */
#include "cron/schedule.h"
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "cron/internal.h"

/* ---------- (1) parsing ---------- */

enum { F_MIN, F_HOUR, F_MDAY, F_MON, F_WDAY, NFIELDS };

static const struct field_def {
	const char *name;
	int lo, hi;
} fields[NFIELDS] = {
	{"minute", 0, 59}, {"hour", 0, 23}, {"day-of-month", 1, 31}, {"month", 1, 12},
	{"day-of-week", 0, 7},
};

static const char *const month_names[12] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
					    "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
static const char *const wday_names[7] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

static const struct macro {
	const char *name, *expansion;
} macros[] = {
	{"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
	{"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},   {"@midnight", "0 0 * * *"},
	{"@hourly", "0 * * * *"},
};

#define FIELDS_HINT "expected 5 fields (minute hour day month weekday)"
#define ECHO_MAX 24   /* at most this many bytes of user text are quoted back in a message */

struct perr {
	char *msg;
	size_t msglen;
	size_t *off;
};

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}
static char upper(char c) { return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c; }

static bool ieq(const char *a, size_t n, const char *b)   /* a[0..n) equals b, ignoring case */
{
	size_t i = 0;
	for (; i < n && b[i]; i++)
		if (upper(a[i]) != upper(b[i]))
			return false;
	return i == n && !b[i];
}

static int fail(struct perr *pe, size_t off, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct perr *pe, size_t off, const char *fmt, ...)
{
	if (pe->msg && pe->msglen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(pe->msg, pe->msglen, fmt, ap);
		va_end(ap);
	}
	if (pe->off)
		*pe->off = off;
	return -1;
}

static int echo_len(size_t n) { return (int)(n > ECHO_MAX ? ECHO_MAX : n); }

static int fail_unexpected(struct perr *pe, const char *s, size_t p, const char *field)
{
	unsigned char c = (unsigned char)s[p];
	if (c == '?')
		return fail(pe, p, "'?' is not supported in the %s field (use '*')", field);
	if (c > 0x20 && c < 0x7f)
		return fail(pe, p, "unexpected character '%c' in the %s field", c, field);
	return fail(pe, p, "unexpected byte 0x%02x in the %s field", c, field);
}

/* A number or (month, day-of-week) a three-letter name at s[*p]; advances *p. */
static int parse_value(const char *s, size_t *p, size_t end, int f, int *v, bool *sun_name,
		       struct perr *pe)
{
	const struct field_def *d = &fields[f];
	size_t b = *p;
	if (sun_name)
		*sun_name = false;
	if (is_digit(s[b])) {
		long n = 0;
		while (*p < end && is_digit(s[*p])) {
			if (n < 100000)
				n = n * 10 + (s[*p] - '0');
			(*p)++;
		}
		if (n < d->lo || n > d->hi)
			return fail(pe, b, "%s %.*s is out of range %d-%d", d->name,
				    echo_len(*p - b), s + b, d->lo, d->hi);
		*v = (int)n;
		return 0;
	}
	if (!is_alpha(s[b]))
		return fail_unexpected(pe, s, b, d->name);
	while (*p < end && is_alpha(s[*p]))
		(*p)++;
	size_t n = *p - b;
	if (f == F_MON) {
		for (int i = 0; i < 12; i++)
			if (ieq(s + b, n, month_names[i])) {
				*v = i + 1;
				return 0;
			}
		return fail(pe, b, "unknown month name \"%.*s\" (expected JAN-DEC or 1-12)",
			    echo_len(n), s + b);
	}
	if (f == F_WDAY) {
		for (int i = 0; i < 7; i++)
			if (ieq(s + b, n, wday_names[i])) {
				*v = i;
				if (sun_name)
					*sun_name = i == 0;
				return 0;
			}
		return fail(pe, b, "unknown day-of-week name \"%.*s\" (expected SUN-SAT or 0-7)",
			    echo_len(n), s + b);
	}
	return fail(pe, b, "%s must be a number %d-%d, got \"%.*s\"", d->name, d->lo, d->hi,
		    echo_len(n), s + b);
}

/* One field s[start..end) into a bit mask. */
static int parse_field(const char *s, size_t start, size_t end, int f, uint64_t *mask,
		       struct perr *pe)
{
	const struct field_def *d = &fields[f];
	size_t p = start;
	*mask = 0;
	for (;;) {
		size_t item = p;
		int a, b;
		bool star = false, range = false;
		if (p == end || s[p] == ',')
			return fail(pe, p, "empty item in the %s list", d->name);
		if (s[p] == '*') {
			a = d->lo;
			b = d->hi;
			star = true;
			p++;
		} else {
			if (parse_value(s, &p, end, f, &a, NULL, pe) < 0)
				return -1;
			b = a;
			if (p < end && s[p] == '-') {
				p++;
				if (p == end || s[p] == ',' || s[p] == '/')
					return fail(pe, p, "%s range has no end after '-'", d->name);
				bool sun;
				if (parse_value(s, &p, end, f, &b, &sun, pe) < 0)
					return -1;
				if (f == F_WDAY && sun && a > 0)
					b = 7;          /* "FRI-SUN" */
				if (a > b)
					return fail(pe, item, "%s range %.*s is backwards (the start must not be after the end)",
						    d->name, echo_len(p - item), s + item);
				range = true;
			}
		}
		int step = 1;
		if (p < end && s[p] == '/') {
			size_t so = ++p;
			if (p == end || s[p] == ',')
				return fail(pe, so, "empty step after '/' in the %s field", d->name);
			if (!is_digit(s[p]))
				return fail_unexpected(pe, s, p, d->name);
			long n = 0;
			while (p < end && is_digit(s[p])) {
				if (n < 100000)
					n = n * 10 + (s[p] - '0');
				p++;
			}
			int max = d->hi - d->lo + 1;
			if (n < 1 || n > max)
				return fail(pe, so, "%s step %.*s is out of range 1-%d", d->name,
					    echo_len(p - so), s + so, max);
			step = (int)n;
			if (!star && !range)
				b = d->hi;          /* Vixie: "a/n" = "a-max/n" */
		}
		for (int v = a; v <= b; v += step)
			*mask |= (uint64_t)1 << v;
		if (p == end)
			break;
		if (s[p] != ',')
			return fail_unexpected(pe, s, p, d->name);
		p++;
	}
	if (f == F_WDAY && (*mask & 0x80))
		*mask = (*mask & 0x7f) | 1;         /* 7 is Sunday too */
	return 0;
}

static int parse_fields(const char *s, size_t n, size_t p, struct cron_sched *out, struct perr *pe)
{
	size_t fs[NFIELDS], fe[NFIELDS];
	int nf = 0;
	size_t sixth = 0;
	while (p < n) {
		size_t b = p;
		while (p < n && !is_blank(s[p]))
			p++;
		if (nf < NFIELDS) {
			fs[nf] = b;
			fe[nf] = p;
		} else if (nf == NFIELDS) {
			sixth = b;
		}
		nf++;
		while (p < n && is_blank(s[p]))
			p++;
	}
	if (nf > NFIELDS)
		return fail(pe, sixth, FIELDS_HINT ", got %d", nf);
	if (nf < NFIELDS)
		return fail(pe, n, FIELDS_HINT ", got %d", nf);

	uint64_t m[NFIELDS];
	for (int f = 0; f < NFIELDS; f++)
		if (parse_field(s, fs[f], fe[f], f, &m[f], pe) < 0)
			return -1;
	struct cron_sched c = {
		.minute = m[F_MIN], .hour = (uint32_t)m[F_HOUR], .mday = (uint32_t)m[F_MDAY],
		.month = (uint16_t)m[F_MON], .wday = (uint8_t)m[F_WDAY],
		.mday_star = s[fs[F_MDAY]] == '*', .wday_star = s[fs[F_WDAY]] == '*',
	};
	/* Only the day-of-month field restricts days (day-of-week is '*'-led, so ANDed): refuse
	 * a schedule whose days exist in none of its months, such as "0 0 30 2 *". */
	if (!c.mday_star && c.wday_star) {
		bool ok = false;
		for (int mo = 1; mo <= 12; mo++)
			if ((c.month >> mo & 1) && (c.mday & (((uint64_t)2 << mdays(2000, mo)) - 2)))
				ok = true;
		if (!ok)
			return fail(pe, fs[F_MDAY], "day-of-month %.*s never occurs in month %.*s, so this schedule would never run",
				    echo_len(fe[F_MDAY] - fs[F_MDAY]), s + fs[F_MDAY],
				    echo_len(fe[F_MON] - fs[F_MON]), s + fs[F_MON]);
	}
	*out = c;
	return 0;
}

int cron_parse(const char *s, struct cron_sched *out, char *msg, size_t msglen, size_t *err_off)
{
	struct perr pe = {msg, msglen, err_off};
	if (msg && msglen)
		msg[0] = 0;
	if (err_off)
		*err_off = 0;
	if (!s)
		return fail(&pe, 0, "no schedule");
	size_t n = strnlen(s, CRON_MAX_LEN + 1);
	if (n > CRON_MAX_LEN)
		return fail(&pe, CRON_MAX_LEN, "schedule is longer than %d bytes", CRON_MAX_LEN);
	size_t p = 0;
	while (p < n && is_blank(s[p]))
		p++;
	if (p == n)
		return fail(&pe, p, "empty schedule: " FIELDS_HINT " or a macro such as @daily");
	if (s[p] != '@')
		return parse_fields(s, n, p, out, &pe);

	size_t b = p;
	while (p < n && !is_blank(s[p]))
		p++;
	size_t len = p - b;
	while (p < n && is_blank(s[p]))
		p++;
	for (size_t i = b; i < b + len; i++)          /* never echo control bytes back */
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return fail(&pe, i, "unexpected byte 0x%02x in the macro", (unsigned char)s[i]);
	if (ieq(s + b, len, "@reboot"))
		return fail(&pe, b, "@reboot is not supported: a cron job needs a time to run at (run start-up work in a process instead)");
	for (size_t i = 0; i < sizeof macros / sizeof macros[0]; i++) {
		if (!ieq(s + b, len, macros[i].name))
			continue;
		if (p < n)
			return fail(&pe, p, "unexpected text after %s (a macro is the whole schedule)",
				    macros[i].name);
		return parse_fields(macros[i].expansion, strlen(macros[i].expansion), 0, out, &pe);
	}
	return fail(&pe, b, "unknown macro \"%.*s\" (expected @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly)",
		    echo_len(len), s + b);
}

/* ---------- canonical text ---------- */

static bool bit(uint64_t m, int v) { return (m >> v) & 1; }

static void add_runs(struct buf *out, uint64_t m, int lo, int hi, bool comma)
{
	for (int v = lo; v <= hi; v++) {
		if (!bit(m, v))
			continue;
		int e = v;
		while (e + 1 <= hi && bit(m, e + 1))
			e++;
		if (comma)
			buf_addc(out, ',');
		comma = true;
		if (e - v >= 2)
			buf_addf(out, "%d-%d", v, e);
		else if (e == v + 1)
			buf_addf(out, "%d,%d", v, e);
		else
			buf_addf(out, "%d", v);
		v = e;
	}
}

/* One field. `star` says the text must start with '*' (day fields, for the day rule); for
 * the others (star_ok) '*' and a step are used whenever they say the same thing. */
static void fmt_field(struct buf *out, uint64_t m, int lo, int hi, bool star, bool star_ok)
{
	uint64_t full = (((uint64_t)2 << hi) - 1) & ~(((uint64_t)1 << lo) - 1);
	m &= full;
	if (m == full) {
		if (star || star_ok)
			buf_addc(out, '*');
		else
			buf_addf(out, "%d-%d", lo, hi);
		return;
	}
	if (star || star_ok) {
		for (int n = 2; n <= hi - lo + 1; n++) {
			uint64_t prog = 0;
			for (int v = lo; v <= hi; v += n)
				prog |= (uint64_t)1 << v;
			/* a day field keeps its '*'; elsewhere a step only when it is shorter
			 * than the list, i.e. names three values or more */
			if (star ? (m & prog) == prog : (m == prog && 2 * n <= hi - lo)) {
				buf_addf(out, "*/%d", n);
				add_runs(out, m & ~prog, lo, hi, true);
				return;
			}
		}
	}
	add_runs(out, m, lo, hi, false);
}

void cron_format(const struct cron_sched *c, struct buf *out)
{
	fmt_field(out, c->minute, 0, 59, false, true);
	buf_addc(out, ' ');
	fmt_field(out, c->hour, 0, 23, false, true);
	buf_addc(out, ' ');
	fmt_field(out, c->mday, 1, 31, c->mday_star, false);
	buf_addc(out, ' ');
	fmt_field(out, c->month, 1, 12, false, true);
	buf_addc(out, ' ');
	fmt_field(out, c->wday, 0, 6, c->wday_star, false);
}

/* ---------- (2) matching and the next run ---------- */

#define T_MAX ((int64_t)253402300799 - CRON_HORIZON_S - 10 * 86400)   /* stay within year 9999 */

static int next_bit(uint64_t m, int from, int to)
{
	for (int v = from; v <= to; v++)
		if (bit(m, v))
			return v;
	return -1;
}

static bool day_ok(const struct cron_sched *c, int64_t days, int d)
{
	bool md = bit(c->mday, d), wd = bit(c->wday, weekday(days));
	return (c->mday_star || c->wday_star) ? (md && wd) : (md || wd);
}

bool cron_matches(const struct cron_sched *c, int64_t t, const struct cron_tz *tz)
{
	if (t < 0 || t > T_MAX + CRON_HORIZON_S)       /* any time cron_next_tz can return */
		return false;
	int64_t l = t + cron_tz_offset(tz, t);
	if (l - floordiv(l, 60) * 60)
		return false;
	int64_t days = floordiv(l, 86400), y;
	int secs = (int)(l - days * 86400), m, d;
	civil_from_days(days, &y, &m, &d);
	return bit(c->month, m) && day_ok(c, days, d) && bit(c->hour, secs / 3600) &&
	       bit(c->minute, secs % 3600 / 60);
}

/* The first local minute >= *l (local seconds, a multiple of 60) that c names and that is
 * < lim; skipping whole months, days and hours where a field rules them out. */
static bool civil_next(const struct cron_sched *c, int64_t *l, int64_t lim)
{
	int64_t days = floordiv(*l, 86400), y;
	int secs = (int)(*l - days * 86400), mo, d;
	int h = secs / 3600, mi = secs % 3600 / 60;
	civil_from_days(days, &y, &mo, &d);
	for (int guard = 0; guard < 200000; guard++) {
		days = days_from_civil(y, mo, d);
		int64_t t = days * 86400 + h * 3600 + mi * 60;
		if (t >= lim)
			return false;
		if (!bit(c->month, mo)) {
			int nm = next_bit(c->month, mo + 1, 12);
			if (nm < 0) {
				y++;
				nm = next_bit(c->month, 1, 12);
				if (nm < 0)
					return false;
			}
			mo = nm;
			d = 1, h = 0, mi = 0;
		} else if (d > mdays(y, mo)) {
			if (++mo > 12)
				mo = 1, y++;
			d = 1, h = 0, mi = 0;
		} else if (!day_ok(c, days, d)) {
			d++, h = 0, mi = 0;
		} else if (!bit(c->hour, h)) {
			int nh = next_bit(c->hour, h + 1, 23);
			if (nh < 0)
				d++, h = 0;
			else
				h = nh;
			mi = 0;
		} else if (!bit(c->minute, mi)) {
			int nmi = next_bit(c->minute, mi + 1, 59);
			if (nmi >= 0)
				mi = nmi;
			else if (++h > 23)
				d++, h = 0, mi = 0;
			else
				mi = 0;
		} else {
			*l = t;
			return true;
		}
	}
	return false;
}

/* Did local time l already happen before u, in an earlier constant-offset stretch (fall
 * back)? Then *until is the local time (exclusive) up to which that earlier stretch reaches,
 * so the caller skips the whole repeat at once. Only stretches ending within the largest
 * offset (26 h) before l can hold it. */
static bool seen_earlier(const struct cron_tz *tz, int64_t l, int64_t u, int64_t *until)
{
	int64_t b = cron_tz_prev_change(tz, u);
	for (int k = 0; k < 64 && b != INT64_MIN && b > l - CRON_TZ_OFF_MAX - 1; k++) {
		int32_t po = cron_tz_offset(tz, b - 1);
		int64_t pb = cron_tz_prev_change(tz, b - 1);
		int64_t cand = l - po;
		if (cand < b && (pb == INT64_MIN || cand >= pb)) {
			*until = b + po;
			return true;
		}
		b = pb;
	}
	return false;
}

int64_t cron_next_tz(const struct cron_sched *c0, int64_t after, const struct cron_tz *tz)
{
	if (!c0 || after < 0 || after > T_MAX)
		return 0;
	struct cron_sched c = *c0;
	bool hour_all = (c.hour & 0xffffff) == 0xffffff;
	int64_t limit = after + CRON_HORIZON_S;
	int64_t u = after + 1;
	/* Each pass covers one stretch [u, end) of constant UTC offset o, where local time runs
	 * from u+o to end+o without gaps or repeats; a local time skipped by spring-forward lies
	 * in no stretch, one repeated by fall-back lies in two. */
	for (int seg = 0; seg < 100000 && u < limit; seg++) {
		int32_t o = cron_tz_offset(tz, u);
		int64_t end = tz ? cron_tz_next_change(tz, u) : INT64_MAX;
		if (end > limit)
			end = limit;
		int64_t l = floordiv(u + o + 59, 60) * 60;
		while (civil_next(&c, &l, end + o)) {
			int64_t until;
			if (tz && !hour_all && seen_earlier(tz, l, l - o, &until)) {
				l = floordiv(until + 59, 60) * 60;   /* ran at its first occurrence */
				continue;
			}
			return l - o;
		}
		u = end;
	}
	return 0;
}

int64_t cron_next(const struct cron_sched *c, int64_t after, const char *tz)
{
	if (!tz || !strcmp(tz, "UTC"))
		return cron_next_tz(c, after, NULL);
	struct err e = ERR_INIT;
	struct cron_tz *z = cron_tz_load(tz, &e);
	if (!z)
		return -1;
	int64_t r = cron_next_tz(c, after, z);
	cron_tz_free(z);
	return r;
}
