/* schedule: cron schedule parsing, canonical text, TZif time zones and next-run search.
 * Three parts, top to bottom: (1) the five-field parser with byte-offset errors, (2) a TZif
 * reader (RFC 8536) plus its POSIX-TZ footer rule, giving the UTC offset at any instant and
 * the instants where it changes, (3) cron_next: walk the zone's constant-offset segments and,
 * inside each, skip through local month/day/hour/minute. See schedule.h for the contract. */
#include "cron/schedule.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "util/fsutil.h"

/* ---------- calendar arithmetic (proleptic Gregorian, days since 1970-01-01) ---------- */

static int64_t floordiv(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static bool is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int mdays(int64_t y, int m)
{
	static const int n[13] = {0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	return m == 2 && is_leap(y) ? 29 : n[m];
}

/* Howard Hinnant's days_from_civil / civil_from_days. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = floordiv(y, 400);
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	z += 719468;
	int64_t era = floordiv(z, 146097);
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static int weekday(int64_t days)          /* 0 = Sunday; 1970-01-01 was a Thursday */
{
	return (int)(days - floordiv(days + 4, 7) * 7 + 4);
}

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
static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_alpha(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }
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

/* ---------- (2) time zones ---------- */

#define TZ_MAX_FILE 65536
#define TZ_MAX_TIMES 8192
#define TZ_TIME_LIMIT ((int64_t)1 << 60)    /* transitions beyond this are refused */
#define OFF_MIN (-89999)                    /* RFC 8536: -24:59:59 .. +25:59:59 */
#define OFF_MAX 93599

struct tzrule_date {
	char kind;            /* 'J': Jn, 1-365 without Feb 29; 'D': n, 0-365; 'M': Mm.w.d */
	int a, b, c;
	int32_t time;         /* seconds after local midnight, -167h..167h */
};

struct cron_tz {
	size_t n;             /* transitions */
	int64_t *at;          /* ascending instants where the offset changes */
	int32_t *off;         /* offset from at[i] on */
	int32_t off0;         /* before at[0]; or always when n == 0 and no rule */
	bool rule, rule_dst;  /* POSIX-TZ footer rule applies from at[n-1] on */
	int32_t std_off, dst_off;
	struct tzrule_date start, end;
};

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const uint8_t *p)
{
	return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

/* --- POSIX TZ strings, as in TZif footers: "CET-1CEST,M3.5.0,M10.5.0/3" --- */

static bool tzs_name(const char **p)
{
	const char *s = *p;
	size_t n = 0;
	if (*s == '<') {
		s++;
		while (is_alpha(s[n]) || is_digit(s[n]) || s[n] == '+' || s[n] == '-')
			n++;
		if (s[n] != '>' || n < 3)
			return false;
		*p = s + n + 1;
		return true;
	}
	while (is_alpha(s[n]))
		n++;
	if (n < 3)
		return false;
	*p = s + n;
	return true;
}

static bool tzs_num(const char **p, int max, int *v)
{
	int n = 0, digits = 0;
	while (is_digit(**p) && digits < 3) {
		n = n * 10 + (**p - '0');
		(*p)++;
		digits++;
	}
	if (!digits || n > max || is_digit(**p))
		return false;
	*v = n;
	return true;
}

/* [+-]hh[:mm[:ss]] in seconds; hours up to maxh. */
static bool tzs_hms(const char **p, int maxh, int32_t *out)
{
	int sign = 1, h, m = 0, s = 0;
	if (**p == '+' || **p == '-')
		sign = *(*p)++ == '-' ? -1 : 1;
	if (!tzs_num(p, maxh, &h))
		return false;
	if (**p == ':') {
		(*p)++;
		if (!tzs_num(p, 59, &m))
			return false;
		if (**p == ':') {
			(*p)++;
			if (!tzs_num(p, 59, &s))
				return false;
		}
	}
	*out = sign * (h * 3600 + m * 60 + s);
	return true;
}

static bool tzs_date(const char **p, struct tzrule_date *r)
{
	if (**p == 'J') {
		(*p)++;
		r->kind = 'J';
		if (!tzs_num(p, 365, &r->a) || r->a < 1)
			return false;
	} else if (**p == 'M') {
		(*p)++;
		r->kind = 'M';
		if (!tzs_num(p, 12, &r->a) || r->a < 1 || *(*p)++ != '.' ||
		    !tzs_num(p, 5, &r->b) || r->b < 1 || *(*p)++ != '.' || !tzs_num(p, 6, &r->c))
			return false;
	} else {
		r->kind = 'D';
		if (!tzs_num(p, 365, &r->a))
			return false;
	}
	r->time = 7200;
	if (**p == '/') {
		(*p)++;
		return tzs_hms(p, 167, &r->time);
	}
	return true;
}

static bool parse_tz_rule(const char *s, struct cron_tz *tz)
{
	const char *p = s;
	int32_t o;
	if (!tzs_name(&p) || !tzs_hms(&p, 24, &o))
		return false;
	tz->std_off = -o;                        /* POSIX counts west of Greenwich */
	tz->rule = true;
	tz->rule_dst = false;
	if (!*p)
		return true;
	if (!tzs_name(&p))
		return false;
	tz->dst_off = tz->std_off + 3600;
	if (*p && *p != ',') {
		if (!tzs_hms(&p, 24, &o))
			return false;
		tz->dst_off = -o;
	}
	if (*p++ != ',' || !tzs_date(&p, &tz->start) || *p++ != ',' || !tzs_date(&p, &tz->end) || *p)
		return false;
	tz->rule_dst = true;
	return true;
}

static int64_t rule_day(const struct tzrule_date *r, int64_t y)
{
	int64_t jan1 = days_from_civil(y, 1, 1);
	if (r->kind == 'J')
		return jan1 + r->a - 1 + (is_leap(y) && r->a >= 60);
	if (r->kind == 'D')
		return jan1 + r->a;
	int64_t first = days_from_civil(y, r->a, 1);
	int64_t day = first + (r->c - weekday(first) + 7) % 7 + (int64_t)(r->b - 1) * 7;
	while (day >= first + mdays(y, r->a))
		day -= 7;
	return day;
}

static void rule_year(const struct cron_tz *tz, int64_t y, int64_t *s, int64_t *e)
{
	*s = rule_day(&tz->start, y) * 86400 + tz->start.time - tz->std_off;
	*e = rule_day(&tz->end, y) * 86400 + tz->end.time - tz->dst_off;
}

static int64_t rule_year_of(const struct cron_tz *tz, int64_t t)
{
	int64_t y;
	int m, d;
	civil_from_days(floordiv(t + tz->std_off, 86400), &y, &m, &d);
	return y;
}

static int32_t rule_offset(const struct cron_tz *tz, int64_t t)
{
	if (!tz->rule_dst)
		return tz->std_off;
	if (t > TZ_TIME_LIMIT)                  /* keep the calendar arithmetic in range */
		t = TZ_TIME_LIMIT;
	if (t < -TZ_TIME_LIMIT)
		t = -TZ_TIME_LIMIT;
	int64_t s, e;
	rule_year(tz, rule_year_of(tz, t), &s, &e);
	bool dst = s < e ? (s <= t && t < e) : !(e <= t && t < s);
	return dst ? tz->dst_off : tz->std_off;
}

/* The rule's candidate change instants around t: DST starts and ends of the neighbouring
 * years, and the year boundaries (where rule_offset switches which year it consults). */
static int rule_candidates(const struct cron_tz *tz, int64_t t, int64_t c[9])
{
	int64_t y = rule_year_of(tz, t);
	int n = 0;
	for (int64_t k = y - 1; k <= y + 1; k++) {
		rule_year(tz, k, &c[n], &c[n + 1]);
		c[n + 2] = days_from_civil(k, 1, 1) * 86400 - tz->std_off;
		n += 3;
	}
	return n;
}

static int64_t rule_next(const struct cron_tz *tz, int64_t t)
{
	if (!tz->rule_dst)
		return INT64_MAX;
	int64_t c[9], best = INT64_MAX;
	int n = rule_candidates(tz, t, c);
	for (int i = 0; i < n; i++)
		if (c[i] > t && c[i] < best)
			best = c[i];
	return best;
}

static int64_t rule_prev(const struct cron_tz *tz, int64_t t)
{
	if (!tz->rule_dst)
		return INT64_MIN;
	int64_t c[9], best = INT64_MIN;
	int n = rule_candidates(tz, t, c);
	for (int i = 0; i < n; i++)
		if (c[i] <= t && c[i] > best)
			best = c[i];
	return best;
}

/* --- TZif --- */

struct tzif_counts {
	uint32_t isut, isstd, leap, time, type, chars;
};

/* Read a header at d[0..44) and the size of the data block after it. */
static int tzif_header(const uint8_t *d, size_t avail, int tsize, struct tzif_counts *h,
		       size_t *block, struct err *e)
{
	if (avail < 44 || memcmp(d, "TZif", 4))
		return err_set(e, ERR_INVALID, "not a TZif file");
	h->isut = be32(d + 20);
	h->isstd = be32(d + 24);
	h->leap = be32(d + 28);
	h->time = be32(d + 32);
	h->type = be32(d + 36);
	h->chars = be32(d + 40);
	if (h->type == 0 || h->type > 256 || h->time > TZ_MAX_TIMES || h->chars > 65536 ||
	    h->leap > 65536 || (h->isut && h->isut != h->type) || (h->isstd && h->isstd != h->type))
		return err_set(e, ERR_INVALID, "TZif header counts are out of bounds");
	uint64_t sz = (uint64_t)h->time * (uint64_t)(tsize + 1) + (uint64_t)h->type * 6 + h->chars +
		      (uint64_t)h->leap * (uint64_t)(tsize + 4) + h->isstd + h->isut;
	if (sz > avail - 44)
		return err_set(e, ERR_INVALID, "TZif file is truncated");
	*block = (size_t)sz;
	return 0;
}

static int tzif_data(const uint8_t *d, const struct tzif_counts *h, int tsize, struct cron_tz *tz,
		     struct err *e)
{
	if (h->leap)
		return err_set(e, ERR_INVALID, "leap-second time zones (right/...) are not supported");
	const uint8_t *times = d, *idx = d + (size_t)h->time * (size_t)tsize;
	const uint8_t *types = idx + h->time;
	int32_t offs[256];
	for (uint32_t i = 0; i < h->type; i++) {
		int32_t o = (int32_t)be32(types + 6 * i);
		if (o < OFF_MIN || o > OFF_MAX)
			return err_set(e, ERR_INVALID, "TZif UTC offset %d is out of range", o);
		offs[i] = o;
	}
	tz->n = h->time;
	tz->at = xcalloc(h->time ? h->time : 1, sizeof *tz->at);
	tz->off = xcalloc(h->time ? h->time : 1, sizeof *tz->off);
	tz->off0 = offs[0];                   /* RFC 8536: type 0 before the first transition */
	for (uint32_t i = 0; i < h->time; i++) {
		int64_t t = tsize == 8 ? be64(times + 8 * i) : (int32_t)be32(times + 4 * i);
		if (t < -TZ_TIME_LIMIT || t > TZ_TIME_LIMIT || (i && t <= tz->at[i - 1]))
			return err_set(e, ERR_INVALID, "TZif transition times are out of order or range");
		if (idx[i] >= h->type)
			return err_set(e, ERR_INVALID, "TZif transition names a type that does not exist");
		tz->at[i] = t;
		tz->off[i] = offs[idx[i]];
	}
	return 0;
}

void cron_tz_free(struct cron_tz *tz)
{
	if (!tz)
		return;
	free(tz->at);
	free(tz->off);
	free(tz);
}

struct cron_tz *cron_tz_parse(const void *data, size_t len, struct err *e)
{
	const uint8_t *d = data;
	struct tzif_counts h;
	size_t block;
	struct cron_tz *tz = xcalloc(1, sizeof *tz);
	if (tzif_header(d, len, 4, &h, &block, e) < 0)
		goto fail;
	if (d[4] == 0) {                              /* version 1: 32-bit data only */
		if (tzif_data(d + 44, &h, 4, tz, e) < 0)
			goto fail;
		return tz;
	}
	size_t off = 44 + block;                      /* skip the v1 block to the 64-bit one */
	if (tzif_header(d + off, len - off, 8, &h, &block, e) < 0 ||
	    tzif_data(d + off + 44, &h, 8, tz, e) < 0)
		goto fail;
	off += 44 + block;
	/* Footer: "\n" TZ-string "\n", for instants after the last transition (may be empty). */
	if (len - off < 2 || d[off] != '\n') {
		err_set(e, ERR_INVALID, "TZif footer is missing");
		goto fail;
	}
	const uint8_t *nl = memchr(d + off + 1, '\n', len - off - 1);
	size_t flen = nl ? (size_t)(nl - (d + off + 1)) : 0;
	char rule[128];
	if (!nl || flen >= sizeof rule || memchr(d + off + 1, 0, flen)) {
		err_set(e, ERR_INVALID, "TZif footer is malformed");
		goto fail;
	}
	memcpy(rule, d + off + 1, flen);
	rule[flen] = 0;
	if (flen && !parse_tz_rule(rule, tz)) {
		err_set(e, ERR_INVALID, "TZif footer rule \"%s\" is not understood", rule);
		goto fail;
	}
	return tz;
fail:
	cron_tz_free(tz);
	return NULL;
}

static bool tz_name_ok(const char *name)
{
	size_t n = strlen(name), comp = 0;
	if (n == 0 || n > 128)
		return false;
	for (size_t i = 0; i <= n; i++) {
		char c = name[i];
		if (c == '/' || c == 0) {
			if (comp == 0 || name[i - comp] == '.')
				return false;       /* empty, ".", ".." or hidden component */
			comp = 0;
			continue;
		}
		if (!is_alpha(c) && !is_digit(c) && c != '_' && c != '-' && c != '+' && c != '.')
			return false;
		comp++;
	}
	return true;
}

struct cron_tz *cron_tz_load(const char *name, struct err *e)
{
	if (!name || !strcmp(name, "UTC"))
		return xcalloc(1, sizeof(struct cron_tz));
	if (!tz_name_ok(name)) {
		err_set(e, ERR_INVALID, "time zone \"%.64s\" is not a valid name (expected an IANA name such as Europe/Berlin)",
			name);
		return NULL;
	}
	char *path = xasprintf("%s/%s", CRON_ZONEINFO_DIR, name);
	struct stat st;
	struct cron_tz *tz = NULL;
	struct buf b = BUF_INIT;
	if (stat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
		err_set(e, ERR_INVALID, "unknown time zone \"%s\" (no file %s)", name, path);
	} else if (fs_read_file(path, &b, TZ_MAX_FILE, e) == 0) {
		tz = cron_tz_parse(b.p, b.len, e);
	}
	if (!tz)
		err_prefix(e, "time zone %s", name);
	buf_free(&b);
	free(path);
	return tz;
}

bool cron_tz_valid(const char *name)
{
	struct err e = ERR_INIT;
	struct cron_tz *tz = cron_tz_load(name, &e);
	cron_tz_free(tz);
	return tz != NULL;
}

/* Index of the last transition <= t, or -1. */
static ptrdiff_t tz_find(const struct cron_tz *tz, int64_t t)
{
	size_t lo = 0, hi = tz->n;                    /* first index with at > t */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (tz->at[mid] <= t)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (ptrdiff_t)lo - 1;
}

int32_t cron_tz_offset(const struct cron_tz *tz, int64_t t)
{
	if (!tz)
		return 0;
	ptrdiff_t i = tz_find(tz, t);
	if (tz->rule && (size_t)(i + 1) == tz->n)
		return rule_offset(tz, t);
	return i < 0 ? tz->off0 : tz->off[i];
}

/* The first instant > t where the offset may change; INT64_MAX when never. */
static int64_t tz_next_change(const struct cron_tz *tz, int64_t t)
{
	ptrdiff_t i = tz_find(tz, t);
	if ((size_t)(i + 1) < tz->n)
		return tz->at[i + 1];
	return tz->rule ? rule_next(tz, t) : INT64_MAX;
}

/* The last instant <= t where the offset may have changed; INT64_MIN when none. */
static int64_t tz_prev_change(const struct cron_tz *tz, int64_t t)
{
	ptrdiff_t i = tz_find(tz, t);
	int64_t last = i < 0 ? INT64_MIN : tz->at[i];
	if (tz->rule && (size_t)(i + 1) == tz->n) {
		int64_t r = rule_prev(tz, t);
		if (r > last)
			last = r;
	}
	return last;
}

/* ---------- (3) matching and the next run ---------- */

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
	int64_t b = tz_prev_change(tz, u);
	for (int k = 0; k < 64 && b != INT64_MIN && b > l - OFF_MAX - 1; k++) {
		int32_t po = cron_tz_offset(tz, b - 1);
		int64_t pb = tz_prev_change(tz, b - 1);
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
		int64_t end = tz ? tz_next_change(tz, u) : INT64_MAX;
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
