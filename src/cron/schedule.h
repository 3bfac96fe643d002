/* schedule: the cron schedules of berth.yaml `cron:` jobs — parse the five-field text, compute
 * the next run, in UTC or an IANA time zone. Pure and bounded: no globals, no clock, no threads;
 * the only I/O is cron_next loading its zone (cron/tzif.h). Never touches TZ, tzset() or
 * localtime().
 *
 * Syntax (Vixie cron): "minute hour day-of-month month day-of-week", fields separated by blanks.
 *   field   := item (',' item)*          item := ('*' | value | value '-' value) ['/' step]
 *   minute 0-59, hour 0-23, day-of-month 1-31, month 1-12 or JAN-DEC, day-of-week 0-7 or SUN-SAT
 *   (0 and 7 are Sunday; names are case-insensitive; "FRI-SUN" means 5-7).
 *   '*' is the whole range; "a/n" means "a-max/n"; step n is 1..size of the range.
 *   Day rule: when both day fields are restricted (neither starts with '*') a day matches if
 *   EITHER matches ("0 0 1 * MON" = the 1st and every Monday); otherwise both must match.
 *   Macros: @yearly = @annually = "0 0 1 1 *", @monthly = "0 0 1 * *", @weekly = "0 0 * * 0",
 *   @daily = @midnight = "0 0 * * *", @hourly = "0 * * * *". @reboot is refused: a cron job
 *   needs a time; start-up work belongs in a process.
 *   A schedule that can never run (day-of-month 30 in February only) is refused at parse time.
 *
 * Time zones come from cron/tzif.h (included here, so this header is still all a caller needs):
 * our own TZif reader, because TZ/tzset() are process-global and would race in the daemon.
 *
 * Daylight saving, decided per local wall-clock minute:
 *   - a local time that does not exist (spring forward) is skipped: "30 2 * * *" in
 *     Europe/Berlin does not run on the last Sunday of March; the next run is the next day's;
 *   - a local time that happens twice (fall back) runs once, at its first occurrence — unless
 *     the hour field is '*' (every hour), then the job follows the clock through both passes,
 *     so "every 5 minutes" keeps running every 5 real minutes (Vixie cron does the same for
 *     wildcard jobs). */
#ifndef BERTH_CRON_SCHEDULE_H
#define BERTH_CRON_SCHEDULE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util/buf.h"
#include "util/err.h"
#include "cron/tzif.h"

#define CRON_MAX_LEN 256                        /* bytes of schedule text */
/* How far cron_next looks: 8 years covers Feb 29 even across 2100 (not a leap year). */
#define CRON_HORIZON_S ((int64_t)8 * 366 * 86400)

struct cron_sched {
	uint64_t minute;          /* bit n = minute n (0-59) */
	uint32_t hour;            /* bits 0-23 */
	uint32_t mday;            /* bits 1-31 */
	uint16_t month;           /* bits 1-12 */
	uint8_t wday;             /* bits 0-6, Sunday = 0 (7 is folded into 0) */
	bool mday_star, wday_star;  /* the field's text started with '*' (see the day rule) */
};

/* Parse schedule text s (NUL-terminated, at most CRON_MAX_LEN bytes) into *out.
 * Returns 0, or -1 with a message in msg (e.g. "minute 61 is out of range 0-59"; msg may be
 * NULL) and *err_off (may be NULL) set to the 0-based byte offset in s of the offending text,
 * for a manifest's file:line:col. */
int cron_parse(const char *s, struct cron_sched *out, char *msg, size_t msglen, size_t *err_off);

/* Append the schedule as canonical five-field text ("@daily" -> "0 0 * * *"); parsing the
 * result gives back the same struct. */
void cron_format(const struct cron_sched *c, struct buf *out);

/* The first time strictly after `after` (Unix seconds, >= 0) that matches c in tz (NULL = UTC),
 * following the DST rules above. Skips by month, day, hour and minute, segment by segment
 * between the zone's offset changes (a few dozen steps for years). Returns 0 when nothing
 * matches within CRON_HORIZON_S or after is out of range (negative or past year 9990). */
int64_t cron_next_tz(const struct cron_sched *c, int64_t after, const struct cron_tz *tz);
/* cron_next_tz with the zone named (NULL or "UTC" = UTC), loaded and freed on each call;
 * -1 when the zone cannot be loaded. A scheduler should load once with cron_tz_load. */
int64_t cron_next(const struct cron_sched *c, int64_t after, const char *tz);
/* Does the local time at t (in tz, NULL = UTC) fall on a minute that c names? Ignores the
 * run-once rule for repeated times; meant for listings and tests. False for t < 0. */
bool cron_matches(const struct cron_sched *c, int64_t t, const struct cron_tz *tz);

#endif
