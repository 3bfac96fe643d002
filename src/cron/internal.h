/* cron/internal.h: what the cron module's files share (private to src/cron; callers use
 * cron/schedule.h and cron/tzif.h).
 *
 *   schedule.c  the five-field grammar, canonical text, and the next-run search
 *   tzif.c      TZif (RFC 8536) time zones: loading, parsing, offsets, change instants
 *
 * Here: pure helpers both need (proleptic Gregorian calendar arithmetic, ASCII classes that
 * ignore the locale) and the two change-instant queries the next-run search walks by. Nothing
 * here allocates, reads a file or looks at the clock. */
#ifndef BERTH_CRON_INTERNAL_H
#define BERTH_CRON_INTERNAL_H
#include <stdbool.h>
#include <stdint.h>
#include "cron/tzif.h"

/* RFC 8536's bounds on a UTC offset: -24:59:59 .. +25:59:59. */
#define CRON_TZ_OFF_MIN (-89999)
#define CRON_TZ_OFF_MAX 93599

/* The first instant > t where tz's offset may change; INT64_MAX when never. tz not NULL. */
int64_t cron_tz_next_change(const struct cron_tz *tz, int64_t t);
/* The last instant <= t where tz's offset may have changed; INT64_MIN when none. tz not NULL. */
int64_t cron_tz_prev_change(const struct cron_tz *tz, int64_t t);

/* ASCII only, whatever setlocale() said. */
static inline bool is_digit(char c) { return c >= '0' && c <= '9'; }
static inline bool is_alpha(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }

/* Calendar arithmetic: proleptic Gregorian, days since 1970-01-01. */

static inline int64_t floordiv(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static inline bool is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static inline int mdays(int64_t y, int m)
{
	static const int n[13] = {0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	return m == 2 && is_leap(y) ? 29 : n[m];
}

/* Howard Hinnant's days_from_civil / civil_from_days. */
static inline int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = floordiv(y, 400);
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static inline void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
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

static inline int weekday(int64_t days)          /* 0 = Sunday; 1970-01-01 was a Thursday */
{
	return (int)(days - floordiv(days + 4, 7) * 7 + 4);
}

#endif
