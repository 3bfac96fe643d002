/* timeutil: wall-clock microseconds, RFC 3339 formatting/parsing, and duration strings
 * ("250ms", "5s", "2m", "1h") as used in berth.yaml and on the command line. */
#ifndef BERTH_TIMEUTIL_H
#define BERTH_TIMEUTIL_H
#include <stdint.h>
#include <stddef.h>

int64_t time_now_us(void);        /* CLOCK_REALTIME in microseconds */
int64_t time_mono_ms(void);       /* CLOCK_MONOTONIC in milliseconds */
/* "2026-11-24T20:19:13.123456Z" into out (>= 28 bytes). Returns out. */
char *time_format_rfc3339(int64_t us, char *out, size_t n);
/* Parse RFC 3339 (UTC "Z" or +hh:mm offset, optional fraction). 0 on success. */
int time_parse_rfc3339(const char *s, int64_t *us);
/* Parse a duration "150ms", "2s", "1.5s", "3m", "1h", "2d"; a bare number means seconds.
 * Returns 0 and sets *ms, or -1 when malformed or negative. */
int time_parse_duration_ms(const char *s, int64_t *ms);
#endif
