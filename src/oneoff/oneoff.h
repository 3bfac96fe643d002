/* oneoff: commands that run once in an app's environment and are not supervised: the build
 * stage, the release phase, cron jobs, `berth run` and `berth exec`. Each runs through the
 * driver (so it gets a cgroup with its profile's limits, BERTH_OWNER for the start-up sweep,
 * and a pipe or a pseudo-terminal for stdin), is stopped at its deadline (SIGTERM, grace,
 * SIGKILL to the group and the cgroup), and reports its output and its end to one owner.
 * It never restarts anything and never decides what should run.
 * Ownership: the set owns every struct oneoff; an oneoff is freed after on_exit returns (or,
 * once detached, when it ends). */
#ifndef BERTH_ONEOFF_H
#define BERTH_ONEOFF_H
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>
#include <jansson.h>
#include "driver/driver.h"
#include "manifest/manifest.h"
#include "util/err.h"

struct logs;
struct oneoffs;
struct oneoff;

struct oneoff_spec {
	const char *env, *app;
	const char *kind;            /* "run", "exec", "build", "release", "cron.NAME" (its log process) */
	int release;                 /* release it belongs to (0: none yet, e.g. a build) */
	const char *command;         /* run as /bin/sh -c COMMAND */
	const char *cwd;
	char *const *env_vars;       /* "K=V" added to the clean base environment (or, with
	                              * full_env, the whole environment) */
	bool full_env;
	const struct profile *profile;   /* NULL: no limits */
	bool profile_optional;       /* on a host without cgroups run without the profile's limits
	                              * (a default profile) instead of refusing */
	const char *image;           /* run a container of this image (the docker driver) */
	const struct driver_volume *volumes;
	size_t nvolumes;
	struct driver *beside_driver;    /* exec: run inside this running instance */
	struct driver_proc *beside;
	int64_t timeout_ms;          /* 0: none */
	enum driver_stdin stdin_mode;
	int rows, cols;
	bool log;                    /* keep the output in the logs as process `kind` */
	int64_t output_limit;        /* bytes of output after which it is stopped (0: none) */
};

struct oneoff_result {
	int64_t status;              /* exit status, when signal == 0 */
	int signal;
	bool timed_out;              /* stopped at its deadline */
	bool oom;                    /* killed by the kernel at its memory limit */
	bool too_much_output;
	bool stopped;                /* oneoff_stop / a dropped client */
	int64_t duration_ms;
	json_t *output;              /* its output for a report (borrowed, during on_exit): all its
	                              * lines when short, else the first ones, "...", the last ones */
	char summary[200];           /* "exit status 3", "timed out after 600 s", "out of memory (limit 256 MiB, profile small)" */
};

struct oneoff_events {
	void (*on_output)(void *arg, int stream, const char *data, size_t n);
	/* The same output as whole lines (may be NULL): control bytes shown as '?', a line that is
	 * not UTF-8 replaced by a note, a line over 4 KiB cut in pieces; text valid during the call. */
	void (*on_line)(void *arg, int stream, const char *text);
	void (*on_exit)(void *arg, const struct oneoff_result *r);
	void *arg;
};

struct oneoffs *oneoffs_new(uv_loop_t *loop, struct drivers *drivers, struct logs *logs, const char *owner_tag);
/* Stop every one-off (SIGTERM, 5 s, SIGKILL; owners still get on_exit), then call done. */
void oneoffs_shutdown(struct oneoffs *s, void (*done)(void *), void *arg);
void oneoffs_free(struct oneoffs *s);

struct oneoff *oneoff_start(struct oneoffs *s, const struct oneoff_spec *spec, const struct oneoff_events *ev,
			    struct err *e);
/* stdin (PIPE/TTY one-offs): see driver.h. */
int oneoff_write(struct oneoff *o, const void *data, size_t n);
size_t oneoff_stdin_queued(const struct oneoff *o);
void oneoff_close_stdin(struct oneoff *o);
void oneoff_resize(struct oneoff *o, int rows, int cols);
void oneoff_signal(struct oneoff *o, int sig);
/* SIGTERM now, SIGKILL after grace_ms (<= 0: 5 s). on_exit still follows, with stopped set. */
void oneoff_stop(struct oneoff *o, int64_t grace_ms);
/* The owner goes away: no callback is made again. The one-off runs on (its output to the
 * logs only when spec.log) unless stop, which stops it. */
void oneoff_detach(struct oneoff *o, bool stop);
const char *oneoff_id(const struct oneoff *o);      /* "run.3", "build", "cron.report" */
int oneoff_pid(const struct oneoff *o);
/* Running one-offs of env/app (both NULL: all) as JSON: id, kind, command, pid, release,
 * started_at. */
json_t *oneoffs_list(struct oneoffs *s, const char *env, const char *app);
/* Is a one-off of this kind running for env/app? */
bool oneoffs_running(struct oneoffs *s, const char *env, const char *app, const char *kind);
/* Stop every one-off of env/app (apps destroy). */
void oneoffs_stop_app(struct oneoffs *s, const char *env, const char *app);
#endif
