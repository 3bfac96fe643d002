/* cgroup: per-instance control groups, for resource profiles and for finding every process
 * an instance left behind. Works on cgroup v2 (unified), v1, and hybrid hosts (v1 controllers
 * plus a cgroup2 mount, as on the build machines): limits go where the controller is, and
 * process tracking uses the v2 mount when there is one (cgroup.kill), else v1 "pids".
 * All groups live under one root named after the data dir ("berth-<tag>"), so a restarted
 * daemon can find instances its dead predecessor started. */
#ifndef BERTH_CGROUP_H
#define BERTH_CGROUP_H
#include <sys/types.h>
#include "util/err.h"
#include "manifest/manifest.h"

/* Detect the hierarchy and create the root groups. tag: short [a-z0-9] string.
 * Returns 0 if usable, -1 (with e) if cgroups cannot be used here: callers then run
 * instances without limits and track them by process group only. */
int cgroup_init(const char *tag, struct err *e);
int cgroup_available(void);
const char *cgroup_mode(void);            /* "v2", "v1", "hybrid", or "none" */

/* Create the group for an instance (name: [A-Za-z0-9._-]) and apply the profile (may be
 * NULL: no limits). A profile whose limit has no controller on this host is an error. */
int cgroup_create(const char *name, const struct profile *p, struct err *e);
/* Move pid into the instance's group in every hierarchy (called by the exec shim on itself). */
int cgroup_enter(const char *name, pid_t pid, struct err *e);
/* The cgroup.procs files of the instance's groups (NULL-terminated array of owned strings;
 * free each and the array). A process writing its pid to each joins the instance. Returns
 * the count, -1 when cgroups are unavailable. */
int cgroup_procs_files(const char *name, char ***out);
/* Pids currently in the instance's group; returns count (<= max), -1 on error. */
int cgroup_pids(const char *name, pid_t *pids, int max);
/* How many processes of the group the kernel killed at its memory limit (0 when unknown). */
int cgroup_oom_kills(const char *name);
/* SIGKILL everything in the group (cgroup.kill on v2, else signal each pid). */
int cgroup_kill(const char *name);
/* Remove the (empty) group from every hierarchy. */
int cgroup_destroy(const char *name);
/* At a clean shutdown, after every instance is gone: remove the berth-<tag> roots that are
 * empty (a root still holding a group stays, for the next start's sweep). Returns how many
 * hierarchies kept their root. cgroup_available() is 0 afterwards. */
int cgroup_release(void);
/* Call fn for each instance group that exists under the root (start-up sweep). */
int cgroup_each(void (*fn)(void *arg, const char *name), void *arg);
#endif
