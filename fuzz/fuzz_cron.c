/* fuzz_cron: libFuzzer harness for src/cron/schedule.c and src/cron/tzif.c, without I/O after
 * the first call.
 *
 * An input that starts with "TZif" is a time zone file: it is parsed with cron_tz_parse and,
 * when accepted, a few fixed schedules are walked through it. Any other input is a schedule.
 * Invariants checked:
 *  - a refused schedule says why, at an offset inside the text (or just past its end);
 *  - an accepted schedule prints (cron_format) to text that parses back to the same struct;
 *  - cron_next_tz is strictly increasing along a chain of runs, each run falls on a minute
 *    the schedule names (cron_matches), and lies within the search horizon;
 *  - in UTC, and in a zone for a schedule of every hour (no run-once rule), no minute the
 *    schedule names is skipped between `after` and the run (checked over a bounded window);
 *  - UTC offsets of an accepted zone stay within RFC 8536's bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "cron/schedule.h"

#define WINDOW_MIN (3 * 1440)     /* brute-force check of up to three days of minutes */

static const int64_t afters[] = {
	0,                         /* the epoch */
	951782340,                 /* 2000-02-28T23:59:00Z */
	1711760000,                /* 2024-03-30, the night before Europe's spring forward */
	1761440000,                /* 2025-10-26T00:53:20Z, inside Berlin's repeated hour */
	4102444799,                /* 2099-12-31T23:59:59Z */
	253402300799 - CRON_HORIZON_S - 20 * 86400,   /* near the end of the range */
};

static void walk(const struct cron_sched *c, const struct cron_tz *tz, int64_t after, bool brute)
{
	for (int k = 0; k < 3; k++) {
		int64_t r = cron_next_tz(c, after, tz);
		if (r == 0)
			return;
		if (r <= after || r > after + CRON_HORIZON_S || !cron_matches(c, r, tz))
			abort();
		if (brute && r - after <= WINDOW_MIN * 60)
			for (int64_t m = (after / 60 + 1) * 60; m < r; m += 60)
				if (cron_matches(c, m, tz))
					abort();        /* a named minute was skipped */
		after = r;
	}
}

static void fuzz_zone(const uint8_t *data, size_t size)
{
	struct err e = ERR_INIT;
	struct cron_tz *tz = cron_tz_parse(data, size, &e);
	if (!tz) {
		if (!e.msg[0])
			abort();
		return;
	}
	static const char *const scheds[] = {"*/7 * * * *", "30 2 * * *", "0 0 29 2 *",
					     "15 1-3 1,15 * SUN"};
	for (size_t i = 0; i < sizeof scheds / sizeof scheds[0]; i++) {
		struct cron_sched c;
		if (cron_parse(scheds[i], &c, NULL, 0, NULL) != 0)
			abort();
		for (size_t a = 0; a < sizeof afters / sizeof afters[0]; a++)
			walk(&c, tz, afters[a], i == 0);
	}
	for (size_t a = 0; a < sizeof afters / sizeof afters[0]; a++) {
		int32_t o = cron_tz_offset(tz, afters[a]);
		if (o < -89999 || o > 93599)
			abort();
	}
	cron_tz_free(tz);
}

static bool same(const struct cron_sched *a, const struct cron_sched *b)
{
	return a->minute == b->minute && a->hour == b->hour && a->mday == b->mday &&
	       a->month == b->month && a->wday == b->wday && a->mday_star == b->mday_star &&
	       a->wday_star == b->wday_star;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size >= 4 && !memcmp(data, "TZif", 4)) {
		fuzz_zone(data, size);
		return 0;
	}
	static struct cron_tz *zones[2];
	static bool loaded;
	if (!loaded) {
		struct err e = ERR_INIT;
		zones[0] = cron_tz_load("Europe/Berlin", &e);
		zones[1] = cron_tz_load("Australia/Lord_Howe", &e);
		loaded = true;
	}
	char *s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = 0;
	struct cron_sched c, back;
	char msg[256];
	size_t off = (size_t)-1;
	if (cron_parse(s, &c, msg, sizeof msg, &off) != 0) {
		if (!msg[0] || off > strlen(s))
			abort();
		free(s);
		return 0;
	}
	struct buf b = BUF_INIT;
	cron_format(&c, &b);
	if (cron_parse(buf_str(&b), &back, msg, sizeof msg, &off) != 0 || !same(&c, &back))
		abort();
	buf_free(&b);

	bool hour_all = (c.hour & 0xffffff) == 0xffffff;
	uint64_t h = 1469598103934665603ull;            /* FNV-1a: one more `after` per input */
	for (size_t i = 0; i < size; i++)
		h = (h ^ data[i]) * 1099511628211ull;
	int64_t extra = (int64_t)(h % 4102444800ull);
	for (size_t a = 0; a <= sizeof afters / sizeof afters[0]; a++) {
		int64_t after = a < sizeof afters / sizeof afters[0] ? afters[a] : extra;
		walk(&c, NULL, after, true);
		for (int z = 0; z < 2; z++)
			if (zones[z])
				walk(&c, zones[z], after, hour_all);
	}
	free(s);
	return 0;
}
