/* manifest/cron: how the manifest checks a cron job's schedule and time zone. The grammar
 * lives in src/cron/schedule.c (pure, fuzzed); this file only adapts its answers to the
 * manifest's messages. */
#include "manifest/internal.h"
#include "cron/schedule.h"

int mf_cron_check(const char *schedule, char *msg, size_t msglen, size_t *off)
{
	struct cron_sched cs;
	*off = 0;
	return cron_parse(schedule, &cs, msg, msglen, off);
}

bool mf_cron_tz_ok(const char *tz)
{
	return cron_tz_valid(tz);
}
