/* tzif: time zones for cron, read from TZif files (RFC 8536) — the v2+ 64-bit data and its
 * POSIX-TZ footer rule for instants after the last transition (v1 32-bit data when that is all
 * there is) — answering the UTC offset at an instant and the instants where it changes.
 * Owns struct cron_tz (immutable once parsed). Must never trust a byte of the file (every
 * count is bounded before it is used), never touch TZ, tzset() or localtime(), and never know
 * about cron schedules; the only I/O is cron_tz_load reading one file. See tzif.h. */
#include "cron/tzif.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "cron/internal.h"
#include "util/buf.h"
#include "util/fsutil.h"

#define TZ_MAX_FILE 65536
#define TZ_MAX_TIMES 8192
#define TZ_TIME_LIMIT ((int64_t)1 << 60)    /* transitions beyond this are refused */

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
		if (o < CRON_TZ_OFF_MIN || o > CRON_TZ_OFF_MAX)
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

int64_t cron_tz_next_change(const struct cron_tz *tz, int64_t t)
{
	ptrdiff_t i = tz_find(tz, t);
	if ((size_t)(i + 1) < tz->n)
		return tz->at[i + 1];
	return tz->rule ? rule_next(tz, t) : INT64_MAX;
}

int64_t cron_tz_prev_change(const struct cron_tz *tz, int64_t t)
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
