/* reconcile/cron: the cron scheduler (see cron.h). One 1-second timer looks at every job; a
 * job's next slot comes from src/cron/schedule.c in its time zone. */
#include "reconcile/cron.h"
#include "cron/schedule.h"
#include "model/model.h"
#include "oneoff/oneoff.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/timeutil.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct job;

/* One run in flight; outlives its job when the job is removed meanwhile (job = NULL). */
struct run {
	struct run *next;
	struct job *job;
	int64_t started_s;
};

struct job {
	struct job *next;
	struct app_jobs *aj;
	struct cron_job spec;          /* deep copy */
	struct cron_sched cs;
	struct cron_tz *tz;
	int64_t next_s;                /* next slot (unix s), 0 = never */
	int64_t last_scheduled;        /* last slot handled */
	struct run *runs;
	json_t *state;                 /* the stored document */
};

struct app_jobs {
	struct app_jobs *next;
	struct cron_sched_set *set;
	char env[64], app[64];
	int release;
	bool stopped;
	struct job *jobs;
};

struct cron_sched_set {
	uv_loop_t *loop;
	struct store *st;
	cron_start_fn start;
	void *arg;
	struct app_jobs *apps;
	uv_timer_t timer;
	bool timer_on;
	int64_t offset_s;              /* test hook */
	int64_t frozen_s;              /* test hook: the clock stands at this time (0: it runs) */
};

static int64_t now_s(struct cron_sched_set *s)
{
	return (s->frozen_s ? s->frozen_s : time_now_us() / 1000000) + s->offset_s;
}

static void job_persist(struct cron_sched_set *s, struct job *j)
{
	char *key = model_cron_key(j->aj->env, j->aj->app, j->spec.name);
	json_object_set_new(j->state, "last_scheduled", json_integer(j->last_scheduled));
	json_object_set_new(j->state, "schedule", json_string(j->spec.schedule));
	char *v = model_dump(j->state);
	struct store_txn *t = store_txn_new();
	store_txn_put(t, key, v);
	struct err e = ERR_INIT;
	if (store_txn_commit(s->st, t, NULL, &e) < 0)
		log_warn("%s/%s cron.%s: could not record its state: %s", j->aj->env, j->aj->app, j->spec.name, e.msg);
	store_txn_free(t);
	free(v);
	free(key);
}

static void job_free(struct job *j)
{
	for (struct run *r = j->runs; r; r = r->next)
		r->job = NULL;        /* the run lives on; its end is then only logged */
	free(j->spec.name);
	free(j->spec.schedule);
	free(j->spec.command);
	free(j->spec.timezone);
	free(j->spec.process);
	cron_tz_free(j->tz);
	json_decref(j->state);
	free(j);
}

static int job_fire(struct cron_sched_set *s, struct job *j, const char *why, char *id, size_t idlen, struct err *e)
{
	if (j->runs && !j->spec.allow_overlap) {
		log_warn("%s/%s cron.%s: %s run skipped: the previous run (started %lld s ago) is still going "
			 "(concurrency: forbid)", j->aj->env, j->aj->app, j->spec.name, why,
			 (long long)(now_s(s) - j->runs->started_s));
		return err_set(e, ERR_CONFLICT, "cron.%s is still running (concurrency: forbid)", j->spec.name);
	}
	struct run *r = xcalloc(1, sizeof *r);
	r->job = j;
	r->started_s = now_s(s);
	struct oneoff *o = s->start(s->arg, j->aj->env, j->aj->app, &j->spec, r, e);
	if (!o) {
		log_warn("%s/%s cron.%s: could not start: %s", j->aj->env, j->aj->app, j->spec.name, e->msg);
		json_object_set_new(j->state, "last_result", json_string(e->msg));
		json_object_set_new(j->state, "last_ok", json_false());
		free(r);
		return -1;
	}
	r->next = j->runs;
	j->runs = r;
	char ts[40];
	time_format_rfc3339(now_s(s) * 1000000, ts, sizeof ts);
	json_object_set_new(j->state, "last_start", json_string(ts));
	json_object_del(j->state, "last_result");
	json_object_del(j->state, "last_duration_ms");
	json_object_del(j->state, "last_ok");
	log_info("%s/%s cron.%s: %s run started as %s", j->aj->env, j->aj->app, j->spec.name, why, oneoff_id(o));
	if (id)
		snprintf(id, idlen, "%s", oneoff_id(o));
	return 0;
}

void cron_sched_run_ended(void *run_ctx, bool ok, const char *summary, int64_t duration_ms)
{
	struct run *r = run_ctx;
	struct job *j = r->job;
	if (j) {
		for (struct run **pp = &j->runs; *pp; pp = &(*pp)->next)
			if (*pp == r) {
				*pp = r->next;
				break;
			}
		json_object_set_new(j->state, "last_result", json_string(summary));
		json_object_set_new(j->state, "last_ok", json_boolean(ok));
		json_object_set_new(j->state, "last_duration_ms", json_integer(duration_ms));
		job_persist(j->aj->set, j);
	}
	free(r);
}

/* The slot after t (0: never). */
static int64_t slot_after(const struct job *j, int64_t t)
{
	int64_t n = cron_next_tz(&j->cs, t < 0 ? 0 : t, j->tz);
	return n > 0 ? n : 0;
}

static void check_all(struct cron_sched_set *s)
{
	int64_t now = now_s(s);
	for (struct app_jobs *aj = s->apps; aj; aj = aj->next) {
		for (struct job *j = aj->jobs; j; j = j->next) {
			if (!j->next_s || now < j->next_s)
				continue;
			/* Only the latest slot that passed runs (a clock that jumped runs it once). */
			int64_t slot = j->next_s, n;
			while ((n = slot_after(j, slot)) && n <= now)
				slot = n;
			j->last_scheduled = slot;
			j->next_s = slot_after(j, now);
			if (!aj->stopped) {
				struct err e = ERR_INIT;
				job_fire(s, j, "scheduled", NULL, 0, &e);
			}
			job_persist(s, j);
		}
	}
}

static void on_tick(uv_timer_t *t)
{
	check_all(t->data);
}

struct cron_sched_set *cron_sched_new(uv_loop_t *loop, struct store *st, cron_start_fn start, void *arg)
{
	struct cron_sched_set *s = xcalloc(1, sizeof *s);
	s->loop = loop;
	s->st = st;
	s->start = start;
	s->arg = arg;
	uv_timer_init(loop, &s->timer);
	s->timer.data = s;
	const char *hooks = getenv("BERTH_TEST_HOOKS"), *frozen = getenv("BERTH_TEST_CRON_FROZEN");
	if (hooks && !strcmp(hooks, "1") && frozen && !strcmp(frozen, "1"))
		s->frozen_s = time_now_us() / 1000000;   /* test hook: the clock moves only when told */
	return s;
}

static void forget_app(struct cron_sched_set *s, struct app_jobs *aj)
{
	for (struct app_jobs **pp = &s->apps; *pp; pp = &(*pp)->next)
		if (*pp == aj) {
			*pp = aj->next;
			break;
		}
	for (struct job *j = aj->jobs, *n; j; j = n) {
		n = j->next;
		job_free(j);
	}
	free(aj);
}

static void timer_closed(uv_handle_t *h)
{
	free(h->data);
}

void cron_sched_free(struct cron_sched_set *s)
{
	if (!s)
		return;
	while (s->apps)
		forget_app(s, s->apps);
	uv_close((uv_handle_t *)&s->timer, timer_closed);
}

static struct app_jobs *find_app(struct cron_sched_set *s, const char *env, const char *app)
{
	for (struct app_jobs *aj = s->apps; aj; aj = aj->next)
		if (!strcmp(aj->env, env) && !strcmp(aj->app, app))
			return aj;
	return NULL;
}

static bool same_spec(const struct cron_job *a, const struct cron_job *b)
{
	return !strcmp(a->schedule, b->schedule) && !strcmp(a->command, b->command) &&
	       !strcmp(a->timezone ? a->timezone : "", b->timezone ? b->timezone : "") &&
	       !strcmp(a->process ? a->process : "", b->process ? b->process : "") && a->timeout_ms == b->timeout_ms &&
	       a->allow_overlap == b->allow_overlap;
}

static struct job *job_new(struct cron_sched_set *s, struct app_jobs *aj, const struct cron_job *spec)
{
	struct err e = ERR_INIT;
	struct job *j = xcalloc(1, sizeof *j);
	j->aj = aj;
	j->spec.name = xstrdup(spec->name);
	j->spec.schedule = xstrdup(spec->schedule);
	j->spec.command = xstrdup(spec->command);
	j->spec.timezone = spec->timezone ? xstrdup(spec->timezone) : NULL;
	j->spec.process = spec->process ? xstrdup(spec->process) : NULL;
	j->spec.timeout_ms = spec->timeout_ms;
	j->spec.allow_overlap = spec->allow_overlap;
	char msg[200];
	if (cron_parse(spec->schedule, &j->cs, msg, sizeof msg, NULL) < 0) {
		log_warn("%s/%s cron.%s: %s; the job does not run", aj->env, aj->app, spec->name, msg);
		j->next_s = 0;
		j->state = json_object();
		return j;
	}
	if (spec->timezone && strcmp(spec->timezone, "UTC")) {
		j->tz = cron_tz_load(spec->timezone, &e);
		if (!j->tz)
			log_warn("%s/%s cron.%s: time zone %s: %s; using UTC", aj->env, aj->app, spec->name, spec->timezone,
				 e.msg);
	}
	/* Its state from an earlier server run: a slot that passed while the server was down
	 * runs once now. */
	char *key = model_cron_key(aj->env, aj->app, spec->name);
	j->state = model_get(s->st, key, NULL, &e);
	free(key);
	if (!json_is_object(j->state)) {
		json_decref(j->state);
		j->state = json_object();
	}
	int64_t now = now_s(s);
	json_t *ls = json_object_get(j->state, "last_scheduled");
	const char *was = json_string_value(json_object_get(j->state, "schedule"));
	/* A slot missed while the server was down runs once; a job whose schedule changed starts
	 * afresh (the old schedule's last slot says nothing about the new one's). */
	if (json_is_integer(ls) && json_integer_value(ls) > 0 && json_integer_value(ls) <= now &&
	    (!was || !strcmp(was, spec->schedule))) {
		j->last_scheduled = json_integer_value(ls);
		j->next_s = slot_after(j, j->last_scheduled);
	} else {
		j->last_scheduled = now;
		j->next_s = slot_after(j, now);
	}
	return j;
}

void cron_sched_sync(struct cron_sched_set *s, const char *env, const char *app, int release,
		     const struct manifest *m, bool stopped)
{
	struct app_jobs *aj = find_app(s, env, app);
	size_t n = m ? m->ncron : 0;
	if (!aj && !n)
		return;
	if (!aj) {
		aj = xcalloc(1, sizeof *aj);
		aj->set = s;
		snprintf(aj->env, sizeof aj->env, "%s", env);
		snprintf(aj->app, sizeof aj->app, "%s", app);
		aj->next = s->apps;
		s->apps = aj;
	}
	aj->stopped = stopped;
	bool changed = aj->release != release;
	if (changed) {
		aj->release = release;
		/* Keep jobs whose definition did not change (and their schedule); add new ones. */
		struct job *keep = NULL;
		for (size_t k = 0; k < n; k++) {
			struct job *j = NULL;
			for (struct job **pp = &aj->jobs; *pp; pp = &(*pp)->next)
				if (!strcmp((*pp)->spec.name, m->cron[k].name) && same_spec(&(*pp)->spec, &m->cron[k])) {
					j = *pp;
					*pp = j->next;
					break;
				}
			if (!j)
				j = job_new(s, aj, &m->cron[k]);
			j->next = keep;
			keep = j;
		}
		for (struct job *j = aj->jobs, *nx; j; j = nx) {
			nx = j->next;
			job_free(j);
		}
		aj->jobs = keep;
	}
	if (!aj->jobs) {
		forget_app(s, aj);
		return;
	}
	if (!s->timer_on) {
		s->timer_on = true;
		uv_timer_start(&s->timer, on_tick, 1000, 1000);
	}
	/* New jobs: slots that passed while the server was down run now, not at the next tick
	 * (every other pass leaves the jobs to the timer). */
	if (changed)
		check_all(s);
}

void cron_sched_forget(struct cron_sched_set *s, const char *env, const char *app)
{
	struct app_jobs *aj = find_app(s, env, app);
	if (aj)
		forget_app(s, aj);
}

json_t *cron_sched_list(struct cron_sched_set *s, const char *env, const char *app)
{
	json_t *a = json_array();
	struct app_jobs *aj = find_app(s, env, app);
	for (struct job *j = aj ? aj->jobs : NULL; j; j = j->next) {
		char next[40] = "";
		if (j->next_s && !aj->stopped)
			time_format_rfc3339((j->next_s - s->offset_s) * 1000000, next, sizeof next);
		int running = 0;
		for (struct run *r = j->runs; r; r = r->next)
			running++;
		json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:i, s:s?}", "name", j->spec.name, "schedule",
				      j->spec.schedule, "command", j->spec.command, "timezone",
				      j->spec.timezone ? j->spec.timezone : "UTC", "concurrency",
				      j->spec.allow_overlap ? "allow" : "forbid", "timeout_ms", (json_int_t)j->spec.timeout_ms,
				      "running", running, "next_run", next[0] ? next : NULL);
		const char *keys[] = {"last_start", "last_duration_ms", "last_result", "last_ok"};
		for (size_t k = 0; k < 4; k++) {
			json_t *v = json_object_get(j->state, keys[k]);
			if (v)
				json_object_set(o, keys[k], v);
		}
		json_array_append_new(a, o);
	}
	return a;
}

int cron_sched_run_now(struct cron_sched_set *s, const char *env, const char *app, const char *job, char *id,
		       size_t idlen, struct err *e)
{
	struct app_jobs *aj = find_app(s, env, app);
	for (struct job *j = aj ? aj->jobs : NULL; j; j = j->next) {
		if (strcmp(j->spec.name, job))
			continue;
		int r = job_fire(s, j, "manual", id, idlen, e);
		job_persist(s, j);
		return r;
	}
	return err_set(e, ERR_NOTFOUND, "%s/%s has no cron job \"%.64s\" in its live release (see berth cron)", env, app,
		       job);
}

void cron_sched_advance(struct cron_sched_set *s, int64_t seconds, bool freeze)
{
	if (freeze && !s->frozen_s)
		s->frozen_s = time_now_us() / 1000000;
	s->offset_s += seconds;
	check_all(s);
}
