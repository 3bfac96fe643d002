/* reconcile/cron: the scheduler of berth.yaml `cron:` jobs. The reconciler tells it, on each
 * pass, which jobs the live release of each app has (and whether the app is stopped); the
 * scheduler keeps one timer, starts each job as a one-off of the live release when its time
 * comes (through the reconciler's start callback), applies `concurrency: forbid` (a run still
 * going skips the next), and records every run's outcome in the store
 * (/envs/E/apps/A/cron/JOB, model.h). After the server was down, a job whose schedule passed
 * meanwhile runs once at start-up (at most once, however many runs were missed): the store
 * remembers the last schedule slot that was handled.
 * Time comes from time_now_us() plus a test offset (cron_sched_advance, reachable only with
 * BERTH_TEST_HOOKS=1 in the server's environment; with BERTH_TEST_CRON_FROZEN=1 too, the
 * clock starts frozen and moves only by cron_sched_advance), so tests need not wait. */
#ifndef BERTH_RECONCILE_CRON_H
#define BERTH_RECONCILE_CRON_H
#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>
#include <uv.h>
#include "manifest/manifest.h"
#include "store/store.h"
#include "util/err.h"

struct cron_sched_set;
struct oneoff;

/* Start one run of job for env/app now; returns the one-off or NULL with e. The scheduler
 * registers itself for the run's end through cron_sched_run_ended. */
typedef struct oneoff *(*cron_start_fn)(void *arg, const char *env, const char *app, const struct cron_job *job,
					 void *run_ctx, struct err *e);

struct cron_sched_set *cron_sched_new(uv_loop_t *loop, struct store *st, cron_start_fn start, void *arg);
void cron_sched_free(struct cron_sched_set *s);
/* The jobs of env/app's live release (m NULL or stopped: none run). Cheap when nothing changed. */
void cron_sched_sync(struct cron_sched_set *s, const char *env, const char *app, int release,
		     const struct manifest *m, bool stopped);
/* The app is gone: forget its jobs (running ones are stopped by whoever removed the app). */
void cron_sched_forget(struct cron_sched_set *s, const char *env, const char *app);
/* A run that cron_start_fn started has ended (run_ctx as given to it). */
void cron_sched_run_ended(void *run_ctx, bool ok, const char *summary, int64_t duration_ms);
/* Listing for `berth cron` (array of jobs with schedule, timezone, next run, last run, running). */
json_t *cron_sched_list(struct cron_sched_set *s, const char *env, const char *app);
/* `berth cron run NAME`: start the job now. -1 with e (ERR_NOTFOUND: no such job; ERR_CONFLICT:
 * forbid and a run is going). *id gets the run's one-off id. */
int cron_sched_run_now(struct cron_sched_set *s, const char *env, const char *app, const char *job, char *id,
		       size_t idlen, struct err *e);
/* Test hook: move the scheduler's clock forward by seconds (freeze: from now on it moves only
 * so, not with real time) and look at the jobs again. */
void cron_sched_advance(struct cron_sched_set *s, int64_t seconds, bool freeze);
#endif
