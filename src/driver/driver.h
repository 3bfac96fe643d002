/* driver: start, signal and watch one instance's processes. A driver does only what it is
 * told and reports what it sees (output, exit); deciding what runs is the reconciler's job,
 * restarting and health are the supervisor's. The process driver runs a shell command in its
 * own session/process group (and cgroup, joined before the command runs); a container driver
 * (Docker Engine API) will implement the same table. */
#ifndef BERTH_DRIVER_H
#define BERTH_DRIVER_H
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>
#include "util/err.h"

struct driver_spec {
	const char *command;        /* shell command (/bin/sh -c) */
	const char *cwd;            /* release directory */
	char *const *env;           /* NULL-terminated "K=V" list, the whole environment */
	const char *cgroup;         /* instance cgroup name, or NULL when cgroups are unavailable */
};

struct driver_proc;             /* one running instance, owned by the driver */

struct driver_events {
	/* Output read from stdout (stream 1) or stderr (stream 2); data valid during the call. */
	void (*on_output)(void *arg, int stream, const char *data, size_t n);
	/* The main process exited (status >= 0) or was killed (signal > 0). Output pipes are
	 * drained before this is called. The driver_proc is freed after the call returns. */
	void (*on_exit)(void *arg, int64_t status, int signal);
	void *arg;
};

struct driver {
	const char *name;
	int (*start)(struct driver *d, const struct driver_spec *spec, const struct driver_events *ev,
		     struct driver_proc **out, struct err *e);
	pid_t (*pid)(const struct driver_proc *p);
	/* Send sig to every process of the instance (its process group and its cgroup). */
	void (*signal)(struct driver_proc *p, int sig);
	void *impl;
};

/* The process driver. */
struct driver *driver_process_new(uv_loop_t *loop);
void driver_process_free(struct driver *d);
#endif
