/* driver: start, signal and watch one instance's processes. A driver does only what it is
 * told and reports what it sees (output, exit); deciding what runs is the reconciler's job,
 * restarting and health are the supervisor's. The process driver runs a shell command in its
 * own session/process group (and cgroup, joined before the command runs); a container driver
 * (Docker Engine API) will implement the same table. */
#ifndef BERTH_DRIVER_H
#define BERTH_DRIVER_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>
#include "util/err.h"

/* What an instance's stdin is. Instances get /dev/null; one-offs (`berth run`, `exec`) get a
 * pipe, or a pseudo-terminal that is also their stdout and stderr and their controlling
 * terminal (so Ctrl-C typed by a user reaches the foreground job as SIGINT). */
enum driver_stdin { DRIVER_STDIN_NULL = 0, DRIVER_STDIN_PIPE, DRIVER_STDIN_TTY };

struct driver_spec {
	const char *command;        /* shell command (/bin/sh -c) */
	const char *cwd;            /* release directory */
	char *const *env;           /* NULL-terminated "K=V" list, the whole environment */
	const char *cgroup;         /* instance cgroup name, or NULL when cgroups are unavailable */
	bool cgroup_shared;         /* joining another instance's cgroup (exec): never kill the group */
	enum driver_stdin stdin_mode;
	int rows, cols;             /* DRIVER_STDIN_TTY: the first window size (0: 24x80) */
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
	/* stdin of a PIPE/TTY instance: queue bytes (copied; -1 once closed or without one),
	 * how many are queued and not yet written, end it (EOF; on a terminal, ^D), and a
	 * terminal's window size. */
	int (*write_stdin)(struct driver_proc *p, const void *data, size_t n);
	size_t (*stdin_queued)(const struct driver_proc *p);
	void (*close_stdin)(struct driver_proc *p);
	void (*resize)(struct driver_proc *p, int rows, int cols);
	void *impl;
};

/* The process driver. */
struct driver *driver_process_new(uv_loop_t *loop);
void driver_process_free(struct driver *d);
#endif
