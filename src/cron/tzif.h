/* tzif: IANA time zones for cron schedules, read from TZif files (RFC 8536) — the UTC offset
 * at any instant, without TZ, tzset(), mktime() or localtime(). Pure apart from cron_tz_load
 * reading one file; no globals, no clock, no threads, and nothing about cron schedules.
 *
 * Why our own reader: TZ is process-global, so setenv("TZ")/tzset() in the threaded daemon
 * would race with every other localtime() caller (logs, alerts), and a mutex only protects
 * callers that know about it. A loaded struct cron_tz is immutable and can be shared between
 * threads. We read the v2+ 64-bit data and its POSIX-TZ footer rule (for instants after the
 * last transition), or the v1 32-bit data when that is all there is. */
#ifndef BERTH_CRON_TZIF_H
#define BERTH_CRON_TZIF_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util/err.h"

#define CRON_ZONEINFO_DIR "/usr/share/zoneinfo"

/* A loaded time zone: immutable, thread-safe to share, freed with cron_tz_free. */
struct cron_tz;

/* Load an IANA zone (e.g. "Europe/Berlin") from CRON_ZONEINFO_DIR; "UTC" or NULL need no file.
 * The name must be relative, made of [A-Za-z0-9._+-/], with no empty, "." or ".." component
 * (and no component starting with '.'). Returns NULL and fills e when unknown or malformed.
 * Caller frees with cron_tz_free. */
struct cron_tz *cron_tz_load(const char *name, struct err *e);
/* Parse TZif bytes (RFC 8536, hostile-input safe, leap-second "right/" zones refused). */
struct cron_tz *cron_tz_parse(const void *data, size_t n, struct err *e);
void cron_tz_free(struct cron_tz *tz);            /* accepts NULL */
/* UTC offset in seconds (local = utc + offset) at Unix time t. tz NULL = UTC. */
int32_t cron_tz_offset(const struct cron_tz *tz, int64_t t);
/* Is name NULL, "UTC", or a zone cron_tz_load can load? (Reads the file.) */
bool cron_tz_valid(const char *name);

#endif
