/* Tests for supervise/cgroup against the real cgroup filesystem of this machine: init,
 * a group with the "small" profile (limit files checked where the kernel put them, read
 * back through the child's own /proc/PID/cgroup), a child that joins its group, pids,
 * kill, destroy, and the start-up sweep. Skipped, with the reason printed, where cgroups
 * cannot be written (not root, read-only cgroupfs). Groups live under berth-ut<pid>. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "driver/cgroup.h"
#include "util/buf.h"
#include "util/fsutil.h"

static char tag[32];
static char skip_reason[1024];

static struct profile small = {
	.name = "small", .cpus = 0.5, .cpu_weight = 100, .memory_bytes = 256LL << 20, .pids = 256,
};

/* ---- reading the cgroup filesystem independently of the module ---- */

struct tmount {
	char mount[512];
	char root[512];
	char opts[512];     /* super options; "" for cgroup2 */
	int v2;
};

static int read_text(const char *path, struct buf *b)
{
	struct err e = ERR_INIT;
	buf_reset(b);
	return fs_read_file(path, b, 1 << 20, &e);
}

static int mounts(struct tmount *m, int max)
{
	struct buf b = BUF_INIT;
	int n = 0;
	assert_int_equal(read_text("/proc/self/mountinfo", &b), 0);
	char *save = NULL;
	for (char *l = strtok_r(b.p, "\n", &save); l && n < max; l = strtok_r(NULL, "\n", &save)) {
		char root[512], mnt[512], fstype[64], opts[512];
		char *dash = strstr(l, " - ");
		if (!dash || sscanf(l, "%*s %*s %*s %511s %511s", root, mnt) != 2 ||
		    sscanf(dash + 3, "%63s %*s %511s", fstype, opts) != 2)
			continue;
		if (strcmp(fstype, "cgroup2") && strcmp(fstype, "cgroup"))
			continue;
		m[n].v2 = strcmp(fstype, "cgroup2") == 0;
		snprintf(m[n].mount, sizeof m[n].mount, "%s", mnt);
		snprintf(m[n].root, sizeof m[n].root, "%s", root);
		snprintf(m[n].opts, sizeof m[n].opts, "%s", m[n].v2 ? "" : opts);
		n++;
	}
	buf_free(&b);
	return n;
}

static int has_word(const char *list, const char *w)
{
	size_t n = strlen(w);
	for (const char *s = list; (s = strstr(s, w)); s++)
		if ((s == list || s[-1] == ',' || s[-1] == ':' || s[-1] == ' ') &&
		    (s[n] == 0 || s[n] == ',' || s[n] == ':' || s[n] == ' ' || s[n] == '\n'))
			return 1;
	return 0;
}

/* The directory of pid's cgroup in the v1 hierarchy holding ctrl, or (ctrl NULL) in the v2
 * one. Caller frees; NULL when there is no such hierarchy. */
static char *group_dir(pid_t pid, const char *ctrl)
{
	struct tmount m[32];
	int nm = mounts(m, 32);
	struct buf b = BUF_INIT;
	char path[64], *out = NULL;
	snprintf(path, sizeof path, "/proc/%d/cgroup", (int)pid);
	if (read_text(path, &b) < 0)
		return NULL;
	char *save = NULL;
	for (char *l = strtok_r(b.p, "\n", &save); l && !out; l = strtok_r(NULL, "\n", &save)) {
		char *c1 = strchr(l, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		*c2 = 0;
		int v2line = c1 == l + 1 && l[0] == '0' && c1[1] == 0;
		if (ctrl ? !has_word(c1 + 1, ctrl) : !v2line)
			continue;
		for (int i = 0; i < nm && !out; i++) {
			if (ctrl ? (m[i].v2 || !has_word(m[i].opts, ctrl)) : !m[i].v2)
				continue;
			const char *rel = c2 + 1;
			size_t rl = strlen(m[i].root);
			if (strcmp(m[i].root, "/") != 0 && strncmp(rel, m[i].root, rl) == 0)
				rel += rl;
			out = xasprintf("%s%s", m[i].mount, rel);
		}
	}
	buf_free(&b);
	return out;
}

static char *file_value(const char *dir, const char *file)
{
	struct buf b = BUF_INIT;
	char *p = xasprintf("%s/%s", dir, file);
	int r = read_text(p, &b);
	free(p);
	if (r < 0) {
		buf_free(&b);
		return NULL;
	}
	while (b.len && b.p[b.len - 1] == '\n')
		b.p[--b.len] = 0;
	return buf_detach(&b);
}

static void check_file(const char *dir, const char *file, const char *want)
{
	char *v = file_value(dir, file);
	printf("    %s/%s = %s\n", dir, file, v ? v : "(missing)");
	assert_non_null(v);
	assert_string_equal(v, want);
	free(v);
}

/* Does the v2 group offer this controller (its own interface files exist)? */
static int v2_has(const char *dir, const char *file)
{
	char *p = xasprintf("%s/%s", dir, file);
	int r = fs_exists(p);
	free(p);
	return r;
}

/* ---- children that join a group ---- */

struct child {
	pid_t pid;
	int ok;
};

/* Fork a child that joins group `name` and then forks `extra` more processes (reporting how
 * many forks succeeded), then everything pauses until killed. */
static struct child spawn_in_group(const char *name, int extra)
{
	int fds[2];
	struct child c = {0, 0};
	assert_int_equal(pipe(fds), 0);
	c.pid = fork();
	assert_true(c.pid >= 0);
	if (c.pid == 0) {
		struct err e = ERR_INIT;
		char made = 0;
		close(fds[0]);
		/* A failed assertion in the parent must not leave children behind. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (cgroup_enter(name, getpid(), &e) < 0) {
			fprintf(stderr, "child: %s\n", e.msg);
			_exit(1);
		}
		for (int i = 0; i < extra; i++) {
			pid_t g = fork();
			if (g == 0) {
				prctl(PR_SET_PDEATHSIG, SIGKILL);
				for (;;)
					pause();
			}
			if (g > 0)
				made++;
		}
		if (write(fds[1], &made, 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(fds[1]);
	char made;
	c.ok = read(fds[0], &made, 1) == 1 ? 1 + made : 0;
	close(fds[0]);
	return c;
}

static int gone(const char *path)
{
	struct stat st;
	return stat(path, &st) < 0 && errno == ENOENT;
}

/* ---- fixture ---- */

static int group_setup(void **state)
{
	struct err e = ERR_INIT;
	snprintf(tag, sizeof tag, "ut%d", (int)getpid());
	if (cgroup_init(tag, &e) < 0) {
		snprintf(skip_reason, sizeof skip_reason, "%s", e.msg);
		printf("cgroup tests skipped: cgroups not usable here: %s\n", skip_reason);
		assert_string_equal(cgroup_mode(), "none");
		assert_int_equal(cgroup_available(), 0);
	}
	return 0;
}

/* Remove berth-<tag> wherever it may have been put: mount roots and our own cgroups. */
static int group_teardown(void **state)
{
	struct tmount m[32];
	int nm = mounts(m, 32);
	for (int i = 0; i < nm; i++) {
		char *p = xasprintf("%s/berth-%s", m[i].mount, tag);
		rmdir(p);
		free(p);
	}
	static const char *ctrls[] = {"memory", "cpu", "pids", NULL};
	for (int i = 0; i < 4; i++) {
		char *d = group_dir(getpid(), ctrls[i]);
		if (d) {
			char *p = xasprintf("%s/berth-%s", d, tag);
			rmdir(p);
			free(p);
			free(d);
		}
	}
	return 0;
}

#define NEED_CGROUPS()                                                           \
	do {                                                                     \
		if (!cgroup_available()) {                                       \
			printf("    skipped: cgroups not usable here\n");  \
			skip();                                                  \
		}                                                                \
	} while (0)

/* ---- tests ---- */

static void test_init_reports_mode(void **state)
{
	NEED_CGROUPS();
	const char *mode = cgroup_mode();
	printf("    cgroup mode: %s\n", mode);
	assert_true(strcmp(mode, "v2") == 0 || strcmp(mode, "v1") == 0 ||
		    strcmp(mode, "hybrid") == 0);
	/* A second init (the exec shim does one) finds the same roots. */
	struct err e = ERR_INIT;
	assert_int_equal(cgroup_init(tag, &e), 0);
	assert_string_equal(cgroup_mode(), mode);
}

static void test_bad_names(void **state)
{
	struct err e = ERR_INIT;
	NEED_CGROUPS();
	assert_int_equal(cgroup_create("../escape", NULL, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	assert_int_equal(cgroup_create("", NULL, &e), -1);
	assert_int_equal(cgroup_create(".hidden", NULL, &e), -1);
	assert_int_equal(cgroup_create("a/b", NULL, &e), -1);
	assert_int_equal(cgroup_enter("..", getpid(), &e), -1);
	assert_int_equal(cgroup_destroy("../.."), -1);
	/* A name that is an interface file of the root is not a group. */
	assert_int_equal(cgroup_create("cgroup.procs", NULL, &e), -1);
	assert_non_null(strstr(e.msg, "cgroup.procs"));

	assert_int_equal(cgroup_init("Bad/Tag", &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	assert_int_equal(cgroup_available(), 0);
	assert_string_equal(cgroup_mode(), "none");
	assert_int_equal(cgroup_create("web.1", NULL, &e), -1);
	assert_int_equal(e.code, ERR_UNAVAILABLE);
	assert_int_equal(cgroup_init(tag, &e), 0);
}

static void test_enter_missing_group(void **state)
{
	struct err e = ERR_INIT;
	NEED_CGROUPS();
	assert_int_equal(cgroup_enter("never-created", getpid(), &e), -1);
	printf("    %s\n", e.msg);
	assert_non_null(strstr(e.msg, "never-created/cgroup.procs"));
	pid_t got[4];
	assert_int_equal(cgroup_pids("never-created", got, 4), -1);
	assert_int_equal(cgroup_kill("never-created"), -1);
}

static void check_small_limits(pid_t pid, int *checked)
{
	char *mem = group_dir(pid, "memory"), *cpu = group_dir(pid, "cpu");
	char *pids = group_dir(pid, "pids"), *v2 = group_dir(pid, NULL);

	if (mem) {
		check_file(mem, "memory.limit_in_bytes", "268435456");
		(*checked)++;
	} else if (v2 && v2_has(v2, "memory.max")) {
		check_file(v2, "memory.max", "268435456");
		(*checked)++;
	}
	if (cpu) {
		check_file(cpu, "cpu.cfs_quota_us", "50000");
		check_file(cpu, "cpu.cfs_period_us", "100000");
		check_file(cpu, "cpu.shares", "1024");
		(*checked)++;
	} else if (v2 && v2_has(v2, "cpu.max")) {
		check_file(v2, "cpu.max", "50000 100000");
		check_file(v2, "cpu.weight", "100");
		(*checked)++;
	}
	if (pids) {
		check_file(pids, "pids.max", "256");
		(*checked)++;
	} else if (v2 && v2_has(v2, "pids.max")) {
		check_file(v2, "pids.max", "256");
		(*checked)++;
	}
	free(mem);
	free(cpu);
	free(pids);
	free(v2);
}

static void test_small_profile_lifecycle(void **state)
{
	struct err e = ERR_INIT;
	pid_t got[8];
	int status, checked = 0, with_profile = 1;
	char suffix[128];
	NEED_CGROUPS();

	if (cgroup_create("web.1", &small, &e) < 0) {
		/* Only acceptable when this host lacks a controller the profile needs. */
		printf("    small profile not applicable here: %s\n", e.msg);
		assert_int_equal(e.code, ERR_UNAVAILABLE);
		assert_non_null(strstr(e.msg, "profile small: needs the cgroup controller"));
		with_profile = 0;
		assert_int_equal(cgroup_create("web.1", NULL, &e), 0);
	}
	struct child c = spawn_in_group("web.1", 0);
	assert_int_equal(c.ok, 1);

	/* The child sits in berth-<tag>/web.1 in every hierarchy berth uses (v1 mode leaves
	 * the cgroup2 one alone). */
	snprintf(suffix, sizeof suffix, "/berth-%s/web.1", tag);
	char *dirs[4] = {group_dir(c.pid, NULL), group_dir(c.pid, "memory"),
			 group_dir(c.pid, "cpu"), group_dir(c.pid, "pids")};
	int placed = 0;
	if (strcmp(cgroup_mode(), "v1") == 0) {
		free(dirs[0]);
		dirs[0] = NULL;
	}
	for (int i = 0; i < 4; i++) {
		if (!dirs[i])
			continue;
		size_t n = strlen(dirs[i]), sl = strlen(suffix);
		printf("    child %d in %s\n", (int)c.pid, dirs[i]);
		assert_true(n > sl && strcmp(dirs[i] + n - sl, suffix) == 0);
		placed++;
	}
	assert_true(placed > 0);
	if (with_profile) {
		check_small_limits(c.pid, &checked);
		assert_true(checked > 0);
	}

	assert_int_equal(cgroup_pids("web.1", got, 8), 1);
	assert_int_equal(got[0], c.pid);

	assert_int_equal(cgroup_kill("web.1"), 0);
	assert_int_equal(waitpid(c.pid, &status, 0), c.pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	assert_int_equal(cgroup_pids("web.1", got, 8), 0);

	assert_int_equal(cgroup_destroy("web.1"), 0);
	for (int i = 0; i < 4; i++) {
		if (dirs[i])
			assert_true(gone(dirs[i]));
		free(dirs[i]);
	}
	assert_int_equal(cgroup_pids("web.1", got, 8), -1);
	assert_int_equal(cgroup_destroy("web.1"), 0);   /* already gone: fine */
}

static void test_kill_takes_every_process(void **state)
{
	struct err e = ERR_INIT;
	pid_t got[16];
	int status;
	NEED_CGROUPS();
	assert_int_equal(cgroup_create("worker.1", NULL, &e), 0);
	struct child c = spawn_in_group("worker.1", 3);   /* and three children of its own */
	assert_int_equal(c.ok, 4);
	assert_int_equal(cgroup_pids("worker.1", got, 16), 4);
	assert_int_equal(cgroup_pids("worker.1", got, 2), 2);   /* bounded by max */

	/* Destroying a group with live processes fails, and leaves it in place. */
	assert_int_equal(cgroup_destroy("worker.1"), -1);
	assert_int_equal(errno, EBUSY);
	assert_int_equal(cgroup_pids("worker.1", got, 16), 4);

	assert_int_equal(cgroup_kill("worker.1"), 0);
	assert_int_equal(waitpid(c.pid, &status, 0), c.pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	/* The grandchildren are not ours to reap, but they leave the group as they die. */
	assert_int_equal(cgroup_destroy("worker.1"), 0);
	assert_int_equal(cgroup_pids("worker.1", got, 16), -1);
}

static void test_pids_limit_is_enforced(void **state)
{
	struct err e = ERR_INIT;
	struct profile tiny = {.name = "tiny", .pids = 3};
	int status;
	NEED_CGROUPS();
	if (cgroup_create("tiny.1", &tiny, &e) < 0) {
		printf("    skipped: %s\n", e.msg);
		skip();
	}
	/* The child counts as one of the three: two of its five forks succeed. */
	struct child c = spawn_in_group("tiny.1", 5);
	assert_int_equal(c.ok, 3);
	assert_int_equal(cgroup_kill("tiny.1"), 0);
	assert_int_equal(waitpid(c.pid, &status, 0), c.pid);
	assert_int_equal(cgroup_destroy("tiny.1"), 0);
}

static void test_recreate_resets_limits(void **state)
{
	struct err e = ERR_INIT;
	int status;
	NEED_CGROUPS();
	if (cgroup_create("again.1", &small, &e) < 0) {
		printf("    skipped: %s\n", e.msg);
		skip();
	}
	/* Created again without a profile (a restarted daemon reusing the name). */
	assert_int_equal(cgroup_create("again.1", NULL, &e), 0);
	struct child c = spawn_in_group("again.1", 0);
	char *mem = group_dir(c.pid, "memory"), *cpu = group_dir(c.pid, "cpu");
	char *pids = group_dir(c.pid, "pids"), *v2 = group_dir(c.pid, NULL);
	if (mem) {
		char *v = file_value(mem, "memory.limit_in_bytes");
		assert_non_null(v);
		assert_true(strtoll(v, NULL, 10) > (256LL << 20));
		free(v);
	} else if (v2 && v2_has(v2, "memory.max")) {
		check_file(v2, "memory.max", "max");
	}
	if (cpu)
		check_file(cpu, "cpu.cfs_quota_us", "-1");
	else if (v2 && v2_has(v2, "cpu.max"))
		check_file(v2, "cpu.max", "max 100000");
	if (pids)
		check_file(pids, "pids.max", "max");
	else if (v2 && v2_has(v2, "pids.max"))
		check_file(v2, "pids.max", "max");
	free(mem);
	free(cpu);
	free(pids);
	free(v2);
	assert_int_equal(cgroup_kill("again.1"), 0);
	assert_int_equal(waitpid(c.pid, &status, 0), c.pid);
	assert_int_equal(cgroup_destroy("again.1"), 0);
}

struct names {
	char list[256];
	int n;
};

static void collect(void *arg, const char *name)
{
	struct names *ns = arg;
	size_t l = strlen(ns->list);
	snprintf(ns->list + l, sizeof ns->list - l, "%s%s", ns->n++ ? " " : "", name);
}

static void destroy_each(void *arg, const char *name)
{
	assert_int_equal(cgroup_destroy(name), 0);
}

static void test_each_lists_live_groups(void **state)
{
	struct err e = ERR_INIT;
	struct names ns = {{0}, 0};
	NEED_CGROUPS();
	assert_int_equal(cgroup_each(collect, &ns), 0);
	assert_string_equal(ns.list, "");

	assert_int_equal(cgroup_create("api.2", NULL, &e), 0);
	assert_int_equal(cgroup_create("api.1", NULL, &e), 0);
	assert_int_equal(cgroup_create("web-x.1", NULL, &e), 0);
	assert_int_equal(cgroup_destroy("api.2"), 0);
	assert_int_equal(cgroup_each(collect, &ns), 2);
	assert_string_equal(ns.list, "api.1 web-x.1");

	/* The start-up sweep may destroy what it is shown. */
	assert_int_equal(cgroup_each(destroy_each, NULL), 2);
	memset(&ns, 0, sizeof ns);
	assert_int_equal(cgroup_each(collect, &ns), 0);
	assert_string_equal(ns.list, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_reports_mode),
		cmocka_unit_test(test_bad_names),
		cmocka_unit_test(test_enter_missing_group),
		cmocka_unit_test(test_small_profile_lifecycle),
		cmocka_unit_test(test_kill_takes_every_process),
		cmocka_unit_test(test_pids_limit_is_enforced),
		cmocka_unit_test(test_recreate_resets_limits),
		cmocka_unit_test(test_each_lists_live_groups),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
