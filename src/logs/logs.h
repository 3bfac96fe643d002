/* logs: instance console output kept on the host, and read back merged in time order.
 *
 * Layout (documented in docs/logs.md): DIR/logs/<env>/<app>/<process>.<slot>.log, rotated
 * by size to .log.1 (newest) .. .log.<keep>. One line per output line:
 *   2026-11-24T20:19:13.123456Z v3 out hello world
 * (timestamp UTC with microseconds, release, stream out|err|sys, then the text; "sys" lines
 * are berth's own about the instance: started, healthy, exited, restarting, stopped; a partial
 * line longer than 16 KiB is cut into several lines). Several instances of one slot (old and
 * new release during a rollout) share the slot's file; the daemon is its only writer and
 * writes whole lines only.
 *
 * Speed: the supervisor hands over whole pipe reads (64 KiB); a sink splits with memchr,
 * stamps every line of a read with the same timestamp and appends them with one write(2). */
#ifndef BERTH_LOGS_H
#define BERTH_LOGS_H
#include <stddef.h>
#include <stdint.h>
#include "util/err.h"

#define LOGS_STREAM_BERTH 3   /* berth's own lines about an instance ("sys") */
struct logs;
struct log_sink;
struct logs_sub;

struct log_line {
	int64_t ts_us;
	const char *env, *app, *process;
	int slot;
	int release;
	int stream;            /* 1 = stdout ("out"), 2 = stderr ("err"), 3 = berth's own ("sys") */
	const char *text;      /* not NUL-terminated */
	size_t len;
};

/* root = DIR/logs. rotate_bytes/keep from the server config. */
struct logs *logs_new(const char *root, int64_t rotate_bytes, int keep, struct err *e);
void logs_free(struct logs *l);                        /* closes every sink; accepts NULL */

/* A sink for one instance's output. NULL + e when the file cannot be opened. */
struct log_sink *logs_sink_open(struct logs *l, const char *env, const char *app,
				const char *process, int slot, int release, struct err *e);
/* Append raw output; complete lines are written now, a partial line waits for its end. */
void logs_sink_write(struct log_sink *s, int stream, const char *data, size_t n);
/* The same, stamped with ts (µs since the epoch; 0: now): a container's lines carry the
 * engine's time of writing, not the time berth read them. */
void logs_sink_write_at(struct log_sink *s, int stream, int64_t ts, const char *data, size_t n);
/* Flush any partial line (as a line) and close. Accepts NULL. */
void logs_sink_close(struct log_sink *s);

/* Lines captured since start (for metrics and the benchmark). */
uint64_t logs_lines_total(struct logs *l);

/* Live lines of (env, app), optionally of one process, as they are written. */
typedef void (*logs_line_fn)(void *arg, const struct log_line *line);
struct logs_sub *logs_subscribe(struct logs *l, const char *env, const char *app,
				const char *process, logs_line_fn fn, void *arg);
void logs_unsubscribe(struct logs_sub *s);             /* accepts NULL; safe inside fn */

/* Stored lines of (env, app[, process]) with ts >= since_us, merged across instances in time
 * order; only the last n when n > 0. Calls fn once per line, oldest first. */
int logs_read(struct logs *l, const char *env, const char *app, const char *process, int n,
	      int64_t since_us, logs_line_fn fn, void *arg, struct err *e);

/* The same, only the lines of some streams: a mask of LOGS_STREAM_BIT(1) (stdout), (2)
 * (stderr), (LOGS_STREAM_BERTH); n counts those lines only. */
#define LOGS_STREAM_BIT(s) (1u << (s))
#define LOGS_ALL_STREAMS (LOGS_STREAM_BIT(1) | LOGS_STREAM_BIT(2) | LOGS_STREAM_BIT(LOGS_STREAM_BERTH))
int logs_read_streams(struct logs *l, const char *env, const char *app, const char *process, unsigned streams,
		      int n, int64_t since_us, logs_line_fn fn, void *arg, struct err *e);
/* Remove all logs of an app (used when an app is deleted). */
int logs_remove_app(struct logs *l, const char *env, const char *app, struct err *e);
#endif
