/* sweep: at start-up, find every process a previous server of this data dir left running
 * (by cgroup, and by the BERTH_OWNER=<tag> mark in each instance's environment, which also
 * catches hosts without usable cgroups), stop it (SIGTERM to its group, 3 s, SIGKILL) and
 * remove the stale cgroups. Runs before the loop starts; returns the number of processes found.
 * This is what makes "never running twice" hold after kill -9 of the server: the
 * reconciler then starts fresh instances from the store's desired state. */
#ifndef BERTH_SWEEP_H
#define BERTH_SWEEP_H
int sweep_orphans(const char *owner_tag);
#endif
