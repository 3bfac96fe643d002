/* supervise: keeps instances alive. One struct instance per incarnation of a process slot:
 * it starts it through a driver, feeds its output to the logs, probes its health (fast at
 * first, then on the spec's interval), restarts it with capped exponential backoff when it
 * crashes, and stops it (SIGTERM to the group, grace, SIGKILL, cgroup kill) when told.
 * It reports every state change to the one callback its owner (the reconciler) registered;
 * it never decides by itself what should run. */
#ifndef BERTH_SUPERVISE_H
#define BERTH_SUPERVISE_H
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>
#include <jansson.h>
#include "manifest/manifest.h"
#include "util/err.h"

struct logs;
struct driver;
struct drivers;
struct driver_proc;
struct driver_found;
struct driver_volume;
struct endpoints;
struct supervisor;
struct instance;

enum inst_state {
	INST_STARTING,   /* process up, not yet healthy */
	INST_RUNNING,    /* healthy */
	INST_UNHEALTHY,  /* was healthy, checks now failing */
	INST_BACKOFF,    /* exited; waiting to restart */
	INST_STOPPING,   /* told to stop; waiting for the group to exit */
	INST_STOPPED,    /* gone; the struct is freed after the event callback returns */
};

enum inst_event {
	IEV_STARTED,     /* process spawned (also after each restart) */
	IEV_HEALTHY,     /* became healthy (detail "recovered" after unhealthy or a crash loop) */
	IEV_UNHEALTHY,   /* health checks failing (detail says why) */
	IEV_EXITED,      /* process exited or was killed unexpectedly (detail: "exit status 1") */
	IEV_STOPPED,     /* stopped for good, on request (last event of an instance) */
	IEV_FAILED,      /* could not start at all (detail says why); then IEV_STOPPED follows */
};

/* Everything the supervisor needs to run one instance. Strings are copied. */
struct instance_spec {
	const char *env, *app, *process;
	int slot;
	int release;
	int gen;                          /* restart generation the instance was started for */
	const char *driver;               /* "process" (NULL) or "docker" */
	const char *image;                /* docker: the image, pinned by digest */
	const char *pull;                 /* docker: "missing", "always", "never" */
	const char *command;              /* NULL beside an image: the image's own */
	const char *cwd;
	const struct driver_volume *volumes;  /* docker: bind mounts of berth's volume directories */
	size_t nvolumes;
	char *const *env_vars;            /* NULL-terminated "K=V" list added to the environment */
	bool port;                        /* allocate $PORT */
	struct health_spec health;
	const struct profile *profile;    /* NULL: no limits */
	bool restart;                     /* restart on exit (false: report and stop) */
	int64_t stop_grace_ms;            /* SIGTERM -> SIGKILL (<= 0: 10 s) */
};

/* Read-only view of an instance for listings and decisions. */
struct instance_status {
	char id[80];          /* "web.1" */
	char key[160];        /* unique: "production.one.web.1.42" (also its cgroup name) */
	const char *env, *app, *process;
	int slot, release, gen;
	enum inst_state state;
	bool healthy;
	bool ever_healthy;
	int pid, port;        /* pid: 0 when the driver has none (a container) */
	char ident[80];       /* the driver's name for it: "pid 4242", "container 3f2a9c1b0d4e" */
	int restarts;
	int crashes;          /* consecutive crashes (reset after 10 s up) */
	char last_exit[64];   /* "" or "exit status 1" / "killed by signal 9" */
	char last_error[256]; /* last health or start failure */
	int64_t started_us, healthy_us, next_restart_us;
	const char *profile;
};

typedef void (*supervise_event_fn)(void *arg, struct instance *inst, enum inst_event ev,
				   const char *detail);

/* eps (may be NULL): the table healthy instances with a port are published in. */
struct supervisor *supervisor_new(uv_loop_t *loop, struct drivers *drivers, struct logs *logs,
				  struct endpoints *eps, const char *owner_tag, supervise_event_fn fn,
				  void *arg);
/* Stop every instance (grace per instance), then call done. Running instances of a driver
 * that can leave them to the next server (containers) are left running instead. */
void supervisor_shutdown(struct supervisor *s, void (*done)(void *), void *arg);
/* In-place upgrade (docs/upgrade.md): the same, but every running instance whose driver can
 * detach (processes too) is left running for the successor; what the successor needs to
 * know of each beyond its driver's record (health, restarts) is appended to notes, one
 * object per instance, keyed by its driver key. */
void supervisor_handover(struct supervisor *s, json_t *notes, void (*done)(void *), void *arg);
/* The successor's side: the predecessor's notes (referenced), read by supervisor_adopt: an
 * instance that was healthy is served at once, without waiting for a first health check. */
void supervisor_predecessor(struct supervisor *s, json_t *notes);
void supervisor_free(struct supervisor *s);

struct instance *supervisor_start(struct supervisor *s, const struct instance_spec *spec,
				  struct err *e);
/* Take over an instance an earlier server left running (driver.adopt found it): watched as
 * if started from spec, health checks from the start, logs resuming where they stopped. */
struct instance *supervisor_adopt(struct supervisor *s, const struct instance_spec *spec,
				  const struct driver_found *f, struct err *e);
/* Ask an instance to stop for good (idempotent). IEV_STOPPED follows. grace_ms < 0: spec's.
 * A serving instance is first taken out of the endpoints table and drained: SIGTERM waits
 * until no router can pick it and its in-flight requests are done (at most the grace). */
void instance_stop(struct instance *i, int64_t grace_ms);
const struct instance_status *instance_status(const struct instance *i);
json_t *instance_to_json(const struct instance *i);
const char *inst_state_name(enum inst_state st);
/* Last n lines this instance wrote (kept in a small ring for failure reports). */
json_t *instance_recent_output(const struct instance *i, int n);
/* The first n lines of its current run. */
json_t *instance_first_output(const struct instance *i, int n);
/* For a failure report: the whole output of the run when short, else its first lines, "...",
 * and its last lines (the cause is often at the top, the symptom at the bottom). */
json_t *instance_failure_output(const struct instance *i);

/* What `berth exec` needs to run a command beside the instance: its driver and running
 * driver_proc (NULL while it is not running), its directory, its whole environment and its
 * image (NULL for a process). Borrowed; valid until it stops. */
void instance_exec_info(const struct instance *i, struct driver **drv, struct driver_proc **proc, const char **cwd,
			char *const **envp, const char **image);

/* Iterate live instances (any state but STOPPED). Returns the count; *out is an array the
 * caller frees (the instances themselves stay owned by the supervisor). */
size_t supervisor_list(struct supervisor *s, const char *env, const char *app,
		       struct instance ***out);

/* This many consecutive crashes make a crash loop (alerts, `ps`). */
#define SUPERVISE_CRASH_LOOP 3

/* Backoff before restart number n (1-based): 100 ms doubling, capped at 30 s. */
int64_t supervise_backoff_ms(int n);
#endif
