/* sweep: at start-up, find every process a previous server of this data dir left running
 * (by cgroup, and by the BERTH_OWNER=<tag> mark in each instance's environment, which also
 * catches hosts without usable cgroups), stop it (SIGTERM to its group, 3 s, SIGKILL) and
 * remove the stale cgroups. Runs before the loop starts; returns the number of processes found.
 * This is what makes "never running twice" hold after kill -9 of the server: the
 * reconciler then starts fresh instances from the store's desired state. After an in-place
 * upgrade the instances the predecessor handed over are spared (struct sweep_keep), and
 * everything else of the data dir is stopped as after a crash. */
#ifndef BERTH_SWEEP_H
#define BERTH_SWEEP_H
#include <stddef.h>
#include <sys/types.h>

/* What the sweep must leave alone: instances handed over by an in-place upgrade (their
 * process groups, and their cgroups with every process in them). */
struct sweep_keep {
	const pid_t *pgids;
	size_t npgids;
	const char *const *groups;
	size_t ngroups;
};
/* keep may be NULL. */
int sweep_orphans(const char *owner_tag, const struct sweep_keep *keep);
#endif
