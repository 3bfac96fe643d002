/* log: the daemon's own diagnostic log (stderr, one line per event, timestamped).
 * Never pass secrets (tokens, config values) to these functions. */
#ifndef BERTH_LOG_H
#define BERTH_LOG_H
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_set_quiet(int quiet);   /* 1: only warnings and errors */
#endif
