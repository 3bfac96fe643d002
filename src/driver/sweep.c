/* sweep: stop what a dead server left behind (see sweep.h). */
#include "driver/sweep.h"
#include "driver/cgroup.h"
#include "util/buf.h"
#include "util/log.h"
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_FOUND 65536

struct found {
	pid_t pids[MAX_FOUND];
	int n;
	char **groups;
	int ngroups;
	const struct sweep_keep *keep;
	pid_t *kept;                /* processes in kept cgroups */
	int nkept;
};

static bool kept_pid(const struct found *f, pid_t p)
{
	for (int k = 0; k < f->nkept; k++)
		if (f->kept[k] == p)
			return true;
	if (!f->keep || !f->keep->npgids)
		return false;
	pid_t pg = getpgid(p);
	for (size_t k = 0; k < f->keep->npgids; k++)
		if (f->keep->pgids[k] == pg)
			return true;
	return false;
}

static void add_pid(struct found *f, pid_t p)
{
	if (p <= 1 || p == getpid() || kept_pid(f, p))
		return;
	for (int k = 0; k < f->n; k++)
		if (f->pids[k] == p)
			return;
	if (f->n < MAX_FOUND)
		f->pids[f->n++] = p;
}

static bool kept_group(const struct found *f, const char *name)
{
	for (size_t k = 0; f->keep && k < f->keep->ngroups; k++)
		if (!strcmp(f->keep->groups[k], name))
			return true;
	return false;
}

/* The processes of the kept groups, first: they must be spared wherever they are found. */
static void on_kept_group(void *arg, const char *name)
{
	struct found *f = arg;
	if (!kept_group(f, name))
		return;
	pid_t pids[4096];
	int n = cgroup_pids(name, pids, 4096);
	if (n <= 0)
		return;
	f->kept = xrealloc(f->kept, (size_t)(f->nkept + n) * sizeof *f->kept);
	memcpy(f->kept + f->nkept, pids, (size_t)n * sizeof *pids);
	f->nkept += n;
}

static void on_group(void *arg, const char *name)
{
	struct found *f = arg;
	if (kept_group(f, name))
		return;
	pid_t pids[4096];
	int n = cgroup_pids(name, pids, 4096);
	for (int k = 0; k < n; k++)
		add_pid(f, pids[k]);
	f->groups = xrealloc(f->groups, (size_t)(f->ngroups + 1) * sizeof *f->groups);
	f->groups[f->ngroups++] = xstrdup(name);
}

/* Does /proc/PID/environ hold BERTH_OWNER=<tag>? */
static bool owned(pid_t pid, const char *mark, size_t marklen)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	static char env[131072];
	ssize_t n = read(fd, env, sizeof env - 1);
	close(fd);
	if (n <= 0)
		return false;
	for (ssize_t i = 0; i + (ssize_t)marklen <= n;) {
		if (!memcmp(env + i, mark, marklen) && (i + (ssize_t)marklen == n || env[i + marklen] == 0))
			return true;
		const char *z = memchr(env + i, 0, (size_t)(n - i));
		if (!z)
			break;
		i = z - env + 1;
	}
	return false;
}

static bool alive(pid_t pid)
{
	char path[64], buf[256];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	const char *rp = strrchr(buf, ')');
	return rp && rp[1] == ' ' && rp[2] != 'Z' && rp[2] != 'X';
}

static void signal_all(struct found *f, int sig)
{
	for (int k = 0; k < f->n; k++) {
		pid_t pg = getpgid(f->pids[k]);
		if (pg > 1 && pg != getpgid(0))
			kill(-pg, sig);
		kill(f->pids[k], sig);
	}
}

int sweep_orphans(const char *owner_tag, const struct sweep_keep *keep)
{
	struct found *f = xcalloc(1, sizeof *f);
	f->keep = keep;
	if (cgroup_available() && keep && keep->ngroups)
		cgroup_each(on_kept_group, f);
	if (cgroup_available())
		cgroup_each(on_group, f);
	char mark[64];
	int marklen = snprintf(mark, sizeof mark, "BERTH_OWNER=%s", owner_tag);
	DIR *d = opendir("/proc");
	struct dirent *de;
	while (d && (de = readdir(d))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		if (*end || pid <= 1)
			continue;
		if (owned((pid_t)pid, mark, (size_t)marklen))
			add_pid(f, (pid_t)pid);
	}
	if (d)
		closedir(d);
	int found = 0;
	for (int k = 0; k < f->n; k++)
		if (alive(f->pids[k]))
			found++;
	if (found) {
		signal_all(f, SIGTERM);
		for (int waited = 0; waited < 3000; waited += 20) {
			bool any = false;
			for (int k = 0; k < f->n && !any; k++)
				any = alive(f->pids[k]);
			if (!any)
				break;
			struct timespec ts = {0, 20 * 1000000};
			nanosleep(&ts, NULL);
		}
		signal_all(f, SIGKILL);
	}
	for (int g = 0; g < f->ngroups; g++) {
		cgroup_kill(f->groups[g]);
		for (int tries = 0; tries < 50 && cgroup_destroy(f->groups[g]) < 0; tries++) {
			struct timespec ts = {0, 10 * 1000000};
			nanosleep(&ts, NULL);
		}
		free(f->groups[g]);
	}
	free(f->groups);
	free(f->kept);
	free(f);
	return found;
}
