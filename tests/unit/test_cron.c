/* test_cron: cron schedules (src/cron/schedule.c, tzif.c). The parser against a table of good
 * schedules (with their canonical text) and bad ones (with the exact message and byte offset a
 * manifest error would show); next runs in UTC (steps, lists, month ends, leap days, the
 * day-of-month/day-of-week OR rule, names, Sunday as 0 and 7); Europe/Berlin across both DST
 * changes, from the system's zoneinfo and from a hand-built TZif that has only the POSIX
 * footer rule; hostile TZif bytes and zone names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include "cron/schedule.h"
#include "util/timeutil.h"

static int64_t at(const char *rfc3339)
{
	int64_t us;
	if (time_parse_rfc3339(rfc3339, &us) != 0)
		fail_msg("bad time in test: %s", rfc3339);
	return us / 1000000;
}

static char *fmt_time(int64_t t, char out[32])
{
	if (t <= 0) {
		snprintf(out, 32, "%lld", (long long)t);
		return out;
	}
	time_format_rfc3339(t * 1000000, out, 32);
	char *dot = strchr(out, '.');
	if (dot)
		memcpy(dot, "Z", 2);
	return out;
}

static void assert_sched_equal(const struct cron_sched *a, const struct cron_sched *b)
{
	assert_true(a->minute == b->minute);
	assert_int_equal(a->hour, b->hour);
	assert_int_equal(a->mday, b->mday);
	assert_int_equal(a->month, b->month);
	assert_int_equal(a->wday, b->wday);
	assert_int_equal(a->mday_star, b->mday_star);
	assert_int_equal(a->wday_star, b->wday_star);
}

static struct cron_sched parse_ok(const char *s)
{
	struct cron_sched c;
	char msg[256];
	size_t off;
	if (cron_parse(s, &c, msg, sizeof msg, &off) != 0)
		fail_msg("\"%s\" did not parse: %s (at %zu)", s, msg, off);
	return c;
}

/* ---------- parsing ---------- */

static void test_valid_schedules(void **st)
{
	static const struct {
		const char *in, *canon;
	} cases[] = {
		{"*/5 * * * *", "*/5 * * * *"},
		{"0 0 * * *", "0 0 * * *"},
		{"@daily", "0 0 * * *"},
		{"@midnight", "0 0 * * *"},
		{"@Yearly", "0 0 1 1 *"},
		{"@annually", "0 0 1 1 *"},
		{"@monthly", "0 0 1 * *"},
		{"@weekly", "0 0 * * 0"},
		{"@hourly", "0 * * * *"},
		{"  @hourly \n", "0 * * * *"},
		{"0 9-17 * * MON-FRI", "0 9-17 * * 1-5"},
		{"0,15,30,45 * * * *", "*/15 * * * *"},
		{"10/20 * * * *", "10,30,50 * * * *"},         /* a/n = a-max/n */
		{"0 0 * jan,Jul *", "0 0 * 1,7 *"},
		{"0 0 * * 7", "0 0 * * 0"},                     /* 7 is Sunday */
		{"0 0 * * FRI-SUN", "0 0 * * 0,5,6"},
		{"0 0 * * 5-7", "0 0 * * 0,5,6"},
		{"0 0 * * sun,SAT", "0 0 * * 0,6"},
		{"0 0 1-31 * *", "0 0 1-31 * *"},               /* restricted, though every day */
		{"0 0 * * 0-7", "0 0 * * 0-6"},
		{"0 0 */2 * *", "0 0 */2 * *"},
		{"0 0 */7 * *", "0 0 */7 * *"},
		{"0 0 1-10/3 * *", "0 0 1,4,7,10 * *"},
		{" \t*/5  *\t* * *  \n", "*/5 * * * *"},
		{"0 0 29 2 *", "0 0 29 2 *"},
		{"0 0 30 2 1", "0 0 30 2 1"},                   /* Feb 30 OR Monday: runs Mondays */
		{"59 23 31 DEC *", "59 23 31 12 *"},
		{"0-59/1 0-23 * * *", "* * * * *"},
		{"*/60 */24 * * *", "0 0 * * *"},
		{"5,6,7,8 * * * *", "5-8 * * * *"},
		{"1,2,4 * * * *", "1,2,4 * * * *"},
		{"*/30,7 * * * *", "0,7,30 * * * *"},
		{"*/30 * * * *", "0,30 * * * *"},              /* a step only when it saves text */
		{"*/20 * * * *", "*/20 * * * *"},
		{"0 0 */10,5 * */3", "0 0 */10,5 * */3"},
		{"0 0 * * */8", "0 0 * * */7"},                 /* both are Sunday only */
		{"007 08 * * *", "7 8 * * *"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct cron_sched c = parse_ok(cases[i].in);
		struct buf b = BUF_INIT;
		cron_format(&c, &b);
		if (strcmp(buf_str(&b), cases[i].canon))
			fail_msg("\"%s\": canonical \"%s\", want \"%s\"", cases[i].in, buf_str(&b), cases[i].canon);
		struct cron_sched back = parse_ok(buf_str(&b));
		assert_sched_equal(&back, &c);
		buf_free(&b);
	}
}

static void test_masks_and_day_rule_flags(void **st)
{
	struct cron_sched c = parse_ok("10/20 1-3 1,15 FEB-APR mon-wed");
	assert_true(c.minute == ((1ull << 10) | (1ull << 30) | (1ull << 50)));
	assert_int_equal(c.hour, 0xe);
	assert_int_equal(c.mday, (1u << 1) | (1u << 15));
	assert_int_equal(c.month, 0x1c);
	assert_int_equal(c.wday, 0xe);
	assert_false(c.mday_star);
	assert_false(c.wday_star);

	c = parse_ok("0 0 */2 * 1");
	assert_true(c.mday_star);          /* '*'-led: ANDed with day-of-week */
	assert_false(c.wday_star);
	c = parse_ok("0 0 * * *");
	assert_true(c.mday_star && c.wday_star);
	assert_int_equal(c.wday, 0x7f);
	assert_int_equal(c.mday, 0xfffffffe);
	assert_int_equal(c.month, 0x1ffe);
}

static void test_invalid_schedules(void **st)
{
	char long_in[300];
	memset(long_in, ' ', sizeof long_in);
	memcpy(long_in, "* * * * *", 9);
	long_in[257] = 0;
	static const char six[] = "expected 5 fields (minute hour day month weekday), got 6";
	const struct {
		const char *in;
		size_t off;
		const char *msg;
	} cases[] = {
		{"61 * * * *", 0, "minute 61 is out of range 0-59"},
		{"  61 * * * *", 2, "minute 61 is out of range 0-59"},
		{"* 24 * * *", 2, "hour 24 is out of range 0-23"},
		{"* * 0 * *", 4, "day-of-month 0 is out of range 1-31"},
		{"* * 32 * *", 4, "day-of-month 32 is out of range 1-31"},
		{"* * * 13 *", 6, "month 13 is out of range 1-12"},
		{"* * * 0 *", 6, "month 0 is out of range 1-12"},
		{"* * * * 8", 8, "day-of-week 8 is out of range 0-7"},
		{"0 0 1,5-70 * *", 8, "day-of-month 70 is out of range 1-31"},
		{"99999999999999999999 * * * *", 0, "minute 99999999999999999999 is out of range 0-59"},
		{"*/5 * * * * /bin/backup", 12, six},
		{"0 0 * * * *", 10, six},
		{"* * * *", 7, "expected 5 fields (minute hour day month weekday), got 4"},
		{"*/5", 3, "expected 5 fields (minute hour day month weekday), got 1"},
		{"", 0, "empty schedule: expected 5 fields (minute hour day month weekday) or a macro such as @daily"},
		{"   ", 3, "empty schedule: expected 5 fields (minute hour day month weekday) or a macro such as @daily"},
		{"*/ * * * *", 2, "empty step after '/' in the minute field"},
		{"1-5/,7 * * * *", 4, "empty step after '/' in the minute field"},
		{"*/0 * * * *", 2, "minute step 0 is out of range 1-60"},
		{"*/61 * * * *", 2, "minute step 61 is out of range 1-60"},
		{"* */25 * * *", 4, "hour step 25 is out of range 1-24"},
		{"*/x * * * *", 2, "unexpected character 'x' in the minute field"},
		{"5-1 * * * *", 0, "minute range 5-1 is backwards (the start must not be after the end)"},
		{"* 1,22-3 * * *", 4, "hour range 22-3 is backwards (the start must not be after the end)"},
		{"* * * DEC-JAN *", 6, "month range DEC-JAN is backwards (the start must not be after the end)"},
		{"* * * * SAT-MON", 8, "day-of-week range SAT-MON is backwards (the start must not be after the end)"},
		{"1- * * * *", 2, "minute range has no end after '-'"},
		{"1-2-3 * * * *", 3, "unexpected character '-' in the minute field"},
		{"*-5 * * * *", 1, "unexpected character '-' in the minute field"},
		{"1,,2 * * * *", 2, "empty item in the minute list"},
		{"1, * * * *", 2, "empty item in the minute list"},
		{",1 * * * *", 0, "empty item in the minute list"},
		{"1x * * * *", 1, "unexpected character 'x' in the minute field"},
		{"**/2 * * * *", 1, "unexpected character '*' in the minute field"},
		{"? * * * *", 0, "'?' is not supported in the minute field (use '*')"},
		{"0 0 ? * MON", 4, "'?' is not supported in the day-of-month field (use '*')"},
		{"\x01 * * * *", 0, "unexpected byte 0x01 in the minute field"},
		{"* * * * \xc3\xa9", 8, "unexpected byte 0xc3 in the day-of-week field"},
		{"* * * * MONDAY", 8, "unknown day-of-week name \"MONDAY\" (expected SUN-SAT or 0-7)"},
		{"* * * * 1L", 9, "unexpected character 'L' in the day-of-week field"},
		{"* * * FOO *", 6, "unknown month name \"FOO\" (expected JAN-DEC or 1-12)"},
		{"* * * * MON#2", 11, "unexpected character '#' in the day-of-week field"},
		{"JAN * * * *", 0, "minute must be a number 0-59, got \"JAN\""},
		{"* * L * *", 4, "day-of-month must be a number 1-31, got \"L\""},
		{"@reboot", 0, "@reboot is not supported: a cron job needs a time to run at (run start-up work in a process instead)"},
		{"@daily x", 7, "unexpected text after @daily (a macro is the whole schedule)"},
		{"@weekyl", 0, "unknown macro \"@weekyl\" (expected @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly)"},
		{"@da\x1b[31m", 3, "unexpected byte 0x1b in the macro"},
		{"0 0 30 2 *", 4, "day-of-month 30 never occurs in month 2, so this schedule would never run"},
		{"0 0 31 APR,jun,9,11 *", 4, "day-of-month 31 never occurs in month APR,jun,9,11, so this schedule would never run"},
		{"0 0 30,31 2 */2", 4, "day-of-month 30,31 never occurs in month 2, so this schedule would never run"},
		{long_in, 256, "schedule is longer than 256 bytes"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct cron_sched c;
		char msg[256] = "untouched";
		size_t off = 999;
		if (cron_parse(cases[i].in, &c, msg, sizeof msg, &off) != -1)
			fail_msg("\"%s\" parsed but should fail with \"%s\"", cases[i].in, cases[i].msg);
		if (strcmp(msg, cases[i].msg) || off != cases[i].off)
			fail_msg("\"%s\": got \"%s\" at %zu, want \"%s\" at %zu", cases[i].in, msg, off,
				 cases[i].msg, cases[i].off);
	}
}

static void test_parse_error_buffers(void **st)
{
	struct cron_sched c;
	char small[8];
	size_t off;
	assert_int_equal(cron_parse("61 * * * *", &c, small, sizeof small, &off), -1);
	assert_string_equal(small, "minute ");      /* truncated, still NUL-terminated */
	assert_int_equal(cron_parse("61 * * * *", &c, NULL, 0, NULL), -1);
	assert_int_equal(cron_parse(NULL, &c, small, sizeof small, &off), -1);
	/* exactly 256 bytes is fine */
	char in[257];
	memset(in, ' ', 256);
	memcpy(in, "1 2 3 4 5", 9);
	in[256] = 0;
	assert_int_equal(cron_parse(in, &c, small, sizeof small, &off), 0);
}

/* ---------- next run, UTC ---------- */

struct next_case {
	const char *sched, *after, *want;
};

static void check_next(const struct next_case *cases, size_t n, const char *tzname)
{
	struct err e = ERR_INIT;
	struct cron_tz *tz = cron_tz_load(tzname, &e);
	if (!tz)
		fail_msg("%s", e.msg);
	for (size_t i = 0; i < n; i++) {
		struct cron_sched c = parse_ok(cases[i].sched);
		int64_t want = cases[i].want ? at(cases[i].want) : 0;
		int64_t got = cron_next_tz(&c, at(cases[i].after), tz);
		char g[32], w[32];
		if (got != want)
			fail_msg("%s \"%s\" after %s: got %s, want %s", tzname ? tzname : "UTC",
				 cases[i].sched, cases[i].after, fmt_time(got, g), fmt_time(want, w));
		if (want && !cron_matches(&c, got, tz))
			fail_msg("cron_matches disagrees for \"%s\" at %s", cases[i].sched, cases[i].want);
		/* the by-name wrapper gives the same answer */
		assert_true(cron_next(&c, at(cases[i].after), tzname) == want);
	}
	cron_tz_free(tz);
}

static void test_next_utc(void **st)
{
	static const struct next_case cases[] = {
		{"*/5 * * * *", "2025-01-01T00:00:00Z", "2025-01-01T00:05:00Z"},      /* strictly after */
		{"*/5 * * * *", "2025-01-01T00:04:59Z", "2025-01-01T00:05:00Z"},
		{"*/5 * * * *", "2025-12-31T23:58:00Z", "2026-01-01T00:00:00Z"},
		{"* * * * *", "2025-01-01T00:00:30Z", "2025-01-01T00:01:00Z"},
		{"10/20 * * * *", "2025-01-01T00:31:00Z", "2025-01-01T00:50:00Z"},
		{"15,45 9-17/4 * * *", "2025-01-01T09:45:00Z", "2025-01-01T13:15:00Z"},
		{"15,45 9-17/4 * * *", "2025-01-01T17:45:00Z", "2025-01-02T09:15:00Z"},
		{"@hourly", "2025-03-04T05:00:00Z", "2025-03-04T06:00:00Z"},
		{"@daily", "2025-03-04T05:00:00Z", "2025-03-05T00:00:00Z"},
		{"@weekly", "2025-06-02T00:00:00Z", "2025-06-08T00:00:00Z"},
		{"@monthly", "2025-01-31T12:00:00Z", "2025-02-01T00:00:00Z"},
		{"@yearly", "2025-01-01T00:00:00Z", "2026-01-01T00:00:00Z"},
		/* month ends: the 31st skips short months */
		{"0 12 31 * *", "2025-04-01T00:00:00Z", "2025-05-31T12:00:00Z"},
		{"0 12 31 * *", "2025-05-31T12:00:00Z", "2025-07-31T12:00:00Z"},
		{"0 0 30 * *", "2025-01-30T00:00:00Z", "2025-03-30T00:00:00Z"},
		{"59 23 31 12 *", "2025-06-01T00:00:00Z", "2025-12-31T23:59:00Z"},
		/* leap days */
		{"0 0 29 2 *", "2025-01-01T00:00:00Z", "2028-02-29T00:00:00Z"},
		{"0 0 29 2 *", "2024-02-29T00:00:00Z", "2028-02-29T00:00:00Z"},
		{"0 0 29 2 *", "2097-01-01T00:00:00Z", "2104-02-29T00:00:00Z"},  /* 2100 is no leap year */
		{"0 0 29 2 *", "2399-06-01T00:00:00Z", "2400-02-29T00:00:00Z"},  /* 2400 is */
		/* day rule: both restricted = OR; a '*'-led field = AND */
		{"0 0 1 * MON", "2025-06-02T00:00:00Z", "2025-06-09T00:00:00Z"},
		{"0 0 1 * MON", "2025-06-30T00:00:00Z", "2025-07-01T00:00:00Z"},
		{"0 0 30 2 1", "2025-06-03T00:00:00Z", "2026-02-02T00:00:00Z"},   /* Mondays of Feb */
		{"0 0 */10 * 0", "2025-01-01T00:00:00Z", "2025-05-11T00:00:00Z"}, /* 1,11,21,31 AND Sunday */
		{"0 0 13 * 5", "2025-06-01T00:00:00Z", "2025-06-06T00:00:00Z"},
		/* names and Sunday as 0 and 7 */
		{"0 0 1 JAN,jul *", "2025-02-01T00:00:00Z", "2025-07-01T00:00:00Z"},
		{"0 0 * * 7", "2025-06-02T00:00:00Z", "2025-06-08T00:00:00Z"},
		{"0 0 * * 0", "2025-06-02T00:00:00Z", "2025-06-08T00:00:00Z"},
		{"0 0 * * sun", "2025-06-02T00:00:00Z", "2025-06-08T00:00:00Z"},
		{"30 8 * * FRI-SUN", "2025-06-02T00:00:00Z", "2025-06-06T08:30:00Z"},
		{"30 8 * * FRI-SUN", "2025-06-07T08:30:00Z", "2025-06-08T08:30:00Z"},
		{"0 0 * * MON-FRI", "2025-06-06T00:00:00Z", "2025-06-09T00:00:00Z"},
		{"0 6 * NOV,DEC,JAN,FEB *", "2025-03-01T00:00:00Z", "2025-11-01T06:00:00Z"},
	};
	check_next(cases, sizeof cases / sizeof cases[0], NULL);
	check_next(cases, sizeof cases / sizeof cases[0], "UTC");
}

static void test_next_never_and_bounds(void **st)
{
	/* Feb 30 cannot be written (the parser refuses it), but a struct can say it. */
	struct cron_sched c = parse_ok("0 0 1 2 *");
	c.mday = 1u << 30;
	assert_true(cron_next_tz(&c, at("2025-01-01T00:00:00Z"), NULL) == 0);
	struct cron_sched zero = {0};
	assert_true(cron_next_tz(&zero, at("2025-01-01T00:00:00Z"), NULL) == 0);
	c = parse_ok("* * * * *");
	assert_true(cron_next_tz(&c, -1, NULL) == 0);
	assert_true(cron_next_tz(&c, INT64_MAX, NULL) == 0);
	assert_true(cron_next_tz(&c, 0, NULL) == 60);
	assert_true(cron_next(&c, 0, "Mars/Olympus") == -1);
	assert_true(cron_next(&c, 0, "../../etc/passwd") == -1);
}

/* Walking a year of a frequent schedule lands on every match, in order: a check that skipping
 * by field never jumps over one. */
static void test_next_walk_agrees_with_matches(void **st)
{
	struct err e = ERR_INIT;
	struct cron_tz *tz = cron_tz_load("Europe/Berlin", &e);
	if (!tz)
		fail_msg("%s", e.msg);
	struct cron_sched c = parse_ok("*/7 1-3,22 1,15 * SAT");    /* OR rule, DST hours */
	int64_t t = at("2025-01-01T00:00:00Z"), end = at("2026-01-01T00:00:00Z");
	int64_t m = (t / 60 + 1) * 60;
	int runs = 0;
	while (t < end) {
		int64_t n = cron_next_tz(&c, t, tz);
		assert_true(n > t);
		for (; m < n; m += 60)
			assert_false(cron_matches(&c, m, tz) && m < end);
		assert_true(cron_matches(&c, n, tz));
		m = n + 60;
		t = n;
		runs++;
	}
	assert_true(runs > 2000);
	cron_tz_free(tz);
}

/* ---------- Europe/Berlin ---------- */

/* 2025: CET -> CEST at 01:00Z on 30 March (02:00 -> 03:00 local); back at 01:00Z on 26 October
 * (03:00 -> 02:00 local). */
static const struct next_case berlin[] = {
	{"0 9 * * *", "2025-01-15T00:00:00Z", "2025-01-15T08:00:00Z"},           /* CET, +1 */
	{"0 9 * * *", "2025-06-01T00:00:00Z", "2025-06-01T07:00:00Z"},           /* CEST, +2 */
	{"0 0 * * *", "2025-12-31T22:59:59Z", "2025-12-31T23:00:00Z"},           /* local new year */
	/* spring forward: 02:30 does not exist on 30 March; the next 02:30 is the day after */
	{"30 2 * * *", "2025-03-29T12:00:00Z", "2025-03-31T00:30:00Z"},
	{"30 2 30 3 *", "2025-03-01T00:00:00Z", "2026-03-30T00:30:00Z"},
	{"*/15 * * * *", "2025-03-30T00:50:00Z", "2025-03-30T01:00:00Z"},        /* 01:45 CET -> 03:00 CEST */
	{"0 3 * * *", "2025-03-30T00:00:00Z", "2025-03-30T01:00:00Z"},           /* 03:00 CEST exists */
	{"59 1 * * *", "2025-03-30T00:00:00Z", "2025-03-30T00:59:00Z"},
	/* fall back: 02:30 happens twice on 26 October and runs once, at the first (CEST) */
	{"30 2 * * *", "2025-10-25T12:00:00Z", "2025-10-26T00:30:00Z"},
	{"30 2 * * *", "2025-10-26T00:30:00Z", "2025-10-27T01:30:00Z"},
	{"30 2 * * *", "2025-10-26T01:10:00Z", "2025-10-27T01:30:00Z"},          /* in the repeat */
	{"*/20 2 * * *", "2025-10-26T00:00:00Z", "2025-10-26T00:20:00Z"},
	{"*/20 2 * * *", "2025-10-26T00:40:00Z", "2025-10-27T01:00:00Z"},
	/* ... but a job of every hour follows the clock through both passes */
	{"*/30 * * * *", "2025-10-26T00:15:00Z", "2025-10-26T00:30:00Z"},        /* 02:30 CEST */
	{"*/30 * * * *", "2025-10-26T00:30:00Z", "2025-10-26T01:00:00Z"},        /* 02:00 CET */
	{"*/30 * * * *", "2025-10-26T01:00:00Z", "2025-10-26T01:30:00Z"},        /* 02:30 CET */
	{"*/30 * * * *", "2025-10-26T01:30:00Z", "2025-10-26T02:00:00Z"},        /* 03:00 CET */
	{"0 3 * * *", "2025-10-26T00:00:00Z", "2025-10-26T02:00:00Z"},
	/* past the last transition in a fat file (2037): the footer rule takes over */
	{"30 2 * * *", "2040-03-24T12:00:00Z", "2040-03-26T00:30:00Z"},          /* DST from 25 March */
	{"0 12 1 7 *", "2050-01-01T00:00:00Z", "2050-07-01T10:00:00Z"},
	{"0 12 1 12 *", "2050-01-01T00:00:00Z", "2050-12-01T11:00:00Z"},
	{"0 0 29 2 *", "2097-01-01T00:00:00Z", "2104-02-28T23:00:00Z"},
};

static void test_next_berlin(void **st)
{
	check_next(berlin, sizeof berlin / sizeof berlin[0], "Europe/Berlin");
}

/* A version-2 TZif with no transitions at all, only the footer "CET-1CEST,M3.5.0,M10.5.0/3":
 * what zic -b slim writes for zones whose rules have not changed lately. */
static size_t slim_berlin(uint8_t *out)
{
	static const char rule[] = "\nCET-1CEST,M3.5.0,M10.5.0/3\n";
	size_t n = 0;
	for (int part = 0; part < 2; part++) {
		uint8_t h[44] = {'T', 'Z', 'i', 'f', '2'};
		h[39] = 1;                             /* typecnt */
		h[43] = 4;                             /* charcnt */
		memcpy(out + n, h, 44);
		n += 44;
		const uint8_t ttinfo[6] = {0, 0, 0x0e, 0x10, 0, 0};   /* +3600, std, "CET" */
		memcpy(out + n, ttinfo, 6);
		memcpy(out + n + 6, "CET", 4);
		n += 10;
	}
	memcpy(out + n, rule, sizeof rule - 1);
	return n + sizeof rule - 1;
}

static void test_footer_only_zone(void **st)
{
	uint8_t data[256];
	size_t n = slim_berlin(data);
	struct err e = ERR_INIT;
	struct cron_tz *slim = cron_tz_parse(data, n, &e);
	if (!slim)
		fail_msg("%s", e.msg);
	struct cron_tz *sys = cron_tz_load("Europe/Berlin", &e);
	assert_non_null(sys);
	for (int64_t t = at("2000-01-01T00:00:00Z"); t < at("2060-01-01T00:00:00Z"); t += 3571 * 7)
		if (cron_tz_offset(slim, t) != cron_tz_offset(sys, t))
			fail_msg("offset at %lld: slim %d, system %d", (long long)t,
				 cron_tz_offset(slim, t), cron_tz_offset(sys, t));
	assert_int_equal(cron_tz_offset(slim, at("2025-03-30T00:59:59Z")), 3600);
	assert_int_equal(cron_tz_offset(slim, at("2025-03-30T01:00:00Z")), 7200);
	assert_int_equal(cron_tz_offset(slim, at("2025-10-26T00:59:59Z")), 7200);
	assert_int_equal(cron_tz_offset(slim, at("2025-10-26T01:00:00Z")), 3600);
	for (size_t i = 0; i < sizeof berlin / sizeof berlin[0]; i++) {
		struct cron_sched c = parse_ok(berlin[i].sched);
		int64_t got = cron_next_tz(&c, at(berlin[i].after), slim);
		char g[32];
		if (got != at(berlin[i].want))
			fail_msg("slim \"%s\" after %s: got %s, want %s", berlin[i].sched,
				 berlin[i].after, fmt_time(got, g), berlin[i].want);
	}
	cron_tz_free(slim);
	cron_tz_free(sys);
}

/* Southern hemisphere and a half-hour shift: Australia/Lord_Howe is +10:30 in winter and
 * +11 in summer, changing at 02:00 local on the first Sundays of October and April. */
static void test_next_lord_howe(void **st)
{
	static const struct next_case cases[] = {
		/* 5 Oct 2025: 02:00 -> 02:30, so 02:15 does not exist */
		{"15 2 * * *", "2025-10-04T12:00:00Z", "2025-10-05T15:15:00Z"},
		{"*/15 * * * *", "2025-10-04T15:15:00Z", "2025-10-04T15:30:00Z"},  /* 01:45 -> 02:30 */
		/* 6 Apr 2025: 02:00 -> 01:30, 01:45 happens twice and runs once */
		{"45 1 * * *", "2025-04-05T12:00:00Z", "2025-04-05T14:45:00Z"},
		{"45 1 * * *", "2025-04-05T14:45:00Z", "2025-04-06T15:15:00Z"},
	};
	check_next(cases, sizeof cases / sizeof cases[0], "Australia/Lord_Howe");
}

/* ---------- zones: names and hostile bytes ---------- */

static void test_tz_names(void **st)
{
	assert_true(cron_tz_valid(NULL));
	assert_true(cron_tz_valid("UTC"));
	assert_true(cron_tz_valid("Europe/Berlin"));
	assert_true(cron_tz_valid("America/Argentina/Buenos_Aires"));
	assert_true(cron_tz_valid("Etc/GMT+5"));
	static const char *bad[] = {
		"", "Mars/Olympus", "../../../etc/passwd", "/etc/localtime", "Europe/../Europe/Berlin",
		"Europe//Berlin", "Europe/", "./UTC", ".hidden", "Europe/Berlin\n", "Europe/Ber lin",
		"zone.tab", "Europe", "right/UTC",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (cron_tz_valid(bad[i]))
			fail_msg("\"%s\" should not be a valid time zone", bad[i]);
	struct err e = ERR_INIT;
	assert_null(cron_tz_load("../etc/passwd", &e));
	assert_string_equal(e.msg, "time zone \"../etc/passwd\" is not a valid name (expected an IANA name such as Europe/Berlin)");
	e = (struct err)ERR_INIT;
	assert_null(cron_tz_load("Mars/Olympus", &e));
	assert_string_equal(e.msg, "time zone Mars/Olympus: unknown time zone \"Mars/Olympus\" (no file " CRON_ZONEINFO_DIR "/Mars/Olympus)");
	e = (struct err)ERR_INIT;
	assert_null(cron_tz_load("zone.tab", &e));
	assert_string_equal(e.msg, "time zone zone.tab: not a TZif file");
}

static void expect_bad_tzif(const uint8_t *d, size_t n, const char *msg)
{
	struct err e = ERR_INIT;
	struct cron_tz *tz = cron_tz_parse(d, n, &e);
	if (tz)
		fail_msg("accepted a TZif that should fail with \"%s\"", msg);
	assert_string_equal(e.msg, msg);
}

static void test_hostile_tzif(void **st)
{
	uint8_t good[256], d[256];
	size_t n = slim_berlin(good);
	/* every truncation fails cleanly */
	for (size_t k = 0; k < n; k++) {
		struct err e = ERR_INIT;
		struct cron_tz *tz = cron_tz_parse(good, k, &e);
		assert_null(tz);
		assert_true(e.msg[0] != 0);
	}
	expect_bad_tzif((const uint8_t *)"TZxf", 4, "not a TZif file");
	memcpy(d, good, n);
	d[39] = 0;                                              /* no types */
	expect_bad_tzif(d, n, "TZif header counts are out of bounds");
	memcpy(d, good, n);
	d[32] = 0xff;                                           /* 4 billion transitions */
	expect_bad_tzif(d, n, "TZif header counts are out of bounds");
	memcpy(d, good, 108);                                   /* a leap second, v2 part */
	d[54 + 31] = 1;
	memset(d + 108, 0, 12);
	memcpy(d + 120, good + 108, n - 108);
	expect_bad_tzif(d, n + 12, "leap-second time zones (right/...) are not supported");
	memcpy(d, good, n);
	d[54 + 44] = 0x7f;                                      /* UTC offset of +593 days */
	expect_bad_tzif(d, n, "TZif UTC offset 2130710032 is out of range");
	memcpy(d, good, n);
	memcpy(d + n - 8, "X", 1);                              /* footer rule garbled */
	expect_bad_tzif(d, n, "TZif footer rule \"CET-1CEST,M3.5.0,M1X.5.0/3\" is not understood");
	memcpy(d, good, n);
	d[n - 1] = 'x';                                         /* footer never ends */
	expect_bad_tzif(d, n, "TZif footer is malformed");

	/* two transitions out of order, in the 64-bit part */
	uint8_t o[512];
	size_t m = 0;
	for (int part = 0; part < 2; part++) {
		int ts = part ? 8 : 4;
		uint8_t h[44] = {'T', 'Z', 'i', 'f', '2'};
		h[35] = part ? 2 : 0;                           /* timecnt */
		h[39] = 1;
		h[43] = 4;
		memcpy(o + m, h, 44);
		m += 44;
		if (part) {
			memset(o + m, 0, 2 * ts);
			o[m + 7] = 9;                           /* t0 = 9 */
			o[m + 15] = 3;                          /* t1 = 3 < t0 */
			m += 2 * (size_t)ts;
			o[m++] = 0;
			o[m++] = 0;
		}
		const uint8_t ttinfo[10] = {0, 0, 0, 0, 0, 0, 'U', 'T', 'C', 0};
		memcpy(o + m, ttinfo, 10);
		m += 10;
	}
	memcpy(o + m, "\n\n", 2);
	m += 2;
	expect_bad_tzif(o, m, "TZif transition times are out of order or range");
	o[44 + 10 + 44 + 15] = 10;                              /* t1 = 10: now fine */
	struct err e = ERR_INIT;
	struct cron_tz *tz = cron_tz_parse(o, m, &e);
	if (!tz)
		fail_msg("%s", e.msg);
	assert_int_equal(cron_tz_offset(tz, 1000), 0);
	cron_tz_free(tz);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_schedules),
		cmocka_unit_test(test_masks_and_day_rule_flags),
		cmocka_unit_test(test_invalid_schedules),
		cmocka_unit_test(test_parse_error_buffers),
		cmocka_unit_test(test_next_utc),
		cmocka_unit_test(test_next_never_and_bounds),
		cmocka_unit_test(test_next_walk_agrees_with_matches),
		cmocka_unit_test(test_next_berlin),
		cmocka_unit_test(test_footer_only_zone),
		cmocka_unit_test(test_next_lord_howe),
		cmocka_unit_test(test_tz_names),
		cmocka_unit_test(test_hostile_tzif),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
