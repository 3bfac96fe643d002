/* driver: start, signal and watch one instance. A driver does only what it is told and
 * reports what it sees (started, output, exit); deciding what runs is the reconciler's job,
 * restarting and health are the supervisor's. Drivers are registered by name and chosen per
 * process: "process" runs a shell command in its own session and cgroup (driver/process.c);
 * "docker" runs a container through the Docker Engine API (driver/docker.c).
 * The supervisor hands a driver the whole spec, limits included, and knows an instance only
 * through this table: its identity is opaque (a pid, a container id), starting is
 * asynchronous (a pull, a create and a start take time), and the driver says where the
 * instance listens. See docs/drivers.md. */
#ifndef BERTH_DRIVER_H
#define BERTH_DRIVER_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>
#include <jansson.h>
#include "manifest/manifest.h"
#include "util/err.h"

/* What an instance's stdin is. Instances get /dev/null; one-offs (`berth run`, `exec`) get a
 * pipe, or a pseudo-terminal that is also their stdout and stderr and their controlling
 * terminal (so Ctrl-C typed by a user reaches the foreground job as SIGINT). */
enum driver_stdin { DRIVER_STDIN_NULL = 0, DRIVER_STDIN_PIPE, DRIVER_STDIN_TTY };

struct driver_volume {
	const char *source;         /* a directory on the host */
	const char *target;         /* where the instance sees it (containers); processes get
	                             * the source path in their environment instead */
};

struct driver_proc;             /* one running instance, owned by the driver */

struct driver_spec {
	/* who: a cgroup's name, a container's name and labels */
	const char *env, *app, *process;
	const char *name;           /* "web.1", "run.2", "build" */
	const char *key;            /* unique per incarnation, [A-Za-z0-9._-] */
	const char *owner;          /* the server's owner tag (labels, the start-up sweep) */
	int release, slot, gen;
	/* what */
	const char *image;          /* container drivers: the image, pinned by digest or id */
	const char *command;        /* shell command (/bin/sh -c); beside an image it replaces
	                             * the image's CMD; NULL: the image's own */
	const char *cwd;            /* process: the release directory; container: NULL (image's) */
	char *const *vars;          /* NULL-terminated "K=V": the process's whole environment;
	                             * a container's variables on top of its image's */
	const struct profile *profile;  /* limits (memory, CPU, pids); NULL: none */
	bool limits_optional;       /* where limits cannot be enforced, run without (not refuse) */
	const struct driver_volume *volumes;
	size_t nvolumes;
	int port;                   /* the port the instance is told to listen on ($PORT), 0: none */
	const char *pull;           /* containers: "missing" (default), "always", "never" */
	/* exec: run inside this running instance (its cgroup, its container), not as a new one */
	struct driver_proc *beside;
	enum driver_stdin stdin_mode;
	int rows, cols;             /* DRIVER_STDIN_TTY: the first window size (0: 24x80) */
};

/* How an instance ended (or why it never started). */
struct driver_exit {
	int64_t status;             /* exit status, when signal == 0 and started */
	int signal;                 /* killed by this signal */
	bool started;               /* false: it never ran (detail says why) */
	bool oom;                   /* killed by the kernel at its memory limit */
	char detail[256];           /* "could not pull x: ...", "out of memory", "" */
};

struct driver_events {
	/* The instance runs (start returned 0, the asynchronous start finished). */
	void (*on_started)(void *arg);
	/* Progress of a start that takes time ("pulling x: 3 of 5 layers"); may be NULL. */
	void (*on_progress)(void *arg, const char *text);
	/* Output from stdout (stream 1) or stderr (stream 2); data valid during the call. ts_us:
	 * when the instance wrote it, as the driver knows it (0: now). */
	void (*on_output)(void *arg, int stream, int64_t ts_us, const char *data, size_t n);
	/* The instance ended, or could not be started (x->started false). Output is drained
	 * before this is called. The driver_proc is freed after the call returns. */
	void (*on_exit)(void *arg, const struct driver_exit *x);
	void *arg;
};

/* An instance a dead predecessor of this server left running (driver.adopt). */
struct driver_found {
	const char *env, *app, *process, *key;
	int slot, release, gen;
	int port;
	int64_t started_us;
	const char *id;             /* the driver's own id (a container id, "pid 4242") */
	const char *driver;         /* the name of the driver that found it */
	void *handover;             /* the driver's own data for attach (may be NULL) */
};
/* Adoption: return true to keep it (then call driver.attach), false to have it removed. */
typedef bool (*driver_found_fn)(void *arg, const struct driver_found *f);

struct driver {
	const char *name;
	/* Start an instance. Returns 1 when it already runs (on_started is not called), 0 when the
	 * start goes on asynchronously (on_started or on_exit follows, never inside this call),
	 * -1 with e when nothing was started. */
	int (*start)(struct driver *d, const struct driver_spec *spec, const struct driver_events *ev,
		     struct driver_proc **out, struct err *e);
	/* The instance's identity for people ("pid 4242", "container 3f2a9c1b0d4e"). */
	const char *(*ident)(const struct driver_proc *p);
	/* Add what the driver knows to an instance's JSON ("pid", "container", "image"). */
	void (*describe)(const struct driver_proc *p, json_t *into);
	/* Where the instance listens: host and port; -1 when it does not (yet). */
	int (*address)(const struct driver_proc *p, char *host, size_t hostlen, int *port);
	/* Send sig to every process of the instance. */
	void (*signal)(struct driver_proc *p, int sig);
	/* stdin of a PIPE/TTY instance: queue bytes (copied; -1 once closed or without one),
	 * how many are queued and not yet written, end it (EOF; on a terminal, ^D), and a
	 * terminal's window size. */
	int (*write_stdin)(struct driver_proc *p, const void *data, size_t n);
	size_t (*stdin_queued)(const struct driver_proc *p);
	void (*close_stdin)(struct driver_proc *p);
	void (*resize)(struct driver_proc *p, int rows, int cols);
	/* Find what an earlier run of this server (owner) left and ask fn about each; what fn
	 * does not keep is stopped and removed. Blocking: called at start-up, before anything is
	 * served. NULL: the driver cannot adopt (its leftovers are swept elsewhere). */
	int (*adopt)(struct driver *d, const char *owner, driver_found_fn fn, void *arg, struct err *e);
	/* Watch an adopted instance as if it had been started with spec (logs resume after
	 * spec's log position). Returns 1 (running) or -1 with e. */
	int (*attach)(struct driver *d, const struct driver_found *f, const struct driver_spec *spec,
		      const struct driver_events *ev, struct driver_proc **out, struct err *e);
	/* Stop watching a running instance and leave it running, for the next server to adopt
	 * (a server that stops or upgrades). No event follows; p is freed. NULL: instances of
	 * this driver stop with the server. */
	void (*detach)(struct driver_proc *p);
	/* Detach only for an in-place upgrade of the server (the process driver: a process can
	 * only be handed to a successor that keeps the pid; docs/upgrade.md); a server that
	 * stops stops them. */
	bool detach_upgrade_only;
	void (*free)(struct driver *d);
	void *impl;
};

/* The drivers of this server, by name. */
struct drivers;
struct drivers *drivers_new(void);
void drivers_add(struct drivers *ds, struct driver *d);   /* takes ownership */
struct driver *drivers_get(const struct drivers *ds, const char *name);   /* NULL: none */
size_t drivers_count(const struct drivers *ds);
struct driver *drivers_at(const struct drivers *ds, size_t i);
void drivers_free(struct drivers *ds);

/* An exec health check through any driver: run command beside the instance (driver.start
 * with spec.beside), healthy when it exits 0 within timeout_ms. fn runs once, never inside
 * this call, unless cancelled. */
struct driver_check;
typedef void (*driver_check_fn)(void *arg, int ok, const char *detail);
struct driver_check *driver_check_exec(uv_loop_t *loop, struct driver *d, struct driver_proc *target,
				       const struct driver_spec *base, const char *command,
				       int64_t timeout_ms, driver_check_fn fn, void *arg);
void driver_check_cancel(struct driver_check *c);

/* The process driver (driver/process.c); cgroup tag: the data dir's owner tag. */
struct driver *driver_process_new(uv_loop_t *loop, const char *cgroup_tag);
/* In-place upgrade (docs/upgrade.md), process driver only. handover: what detach recorded
 * for the successor, one JSON object per instance (caller owns the array); the file
 * descriptors it carries (close-on-exec until the exec) are appended to fds. inherit: the
 * predecessor's record (stolen), given before the first adopt and before this image starts
 * any child: adopt offers each of its instances (driver_found.handover), leaves them out of
 * the sweep, and stops the ones not kept; children of the predecessor that are not in it are
 * killed and waited for. */
json_t *driver_process_handover(struct driver *d, json_t *fds);
void driver_process_inherit(struct driver *d, json_t *instances);
/* The docker driver (driver/docker.c); host "unix:///PATH". NULL with e when the engine does
 * not answer. */
struct driver *driver_docker_new(uv_loop_t *loop, const char *host, const char *data_dir,
				 struct err *e);
#endif
