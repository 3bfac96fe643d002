/* cgroup: per-instance control groups on v2, v1 and hybrid hosts (see cgroup.h).
 * cgroup_init reads /proc/self/mountinfo for the cgroup2 mount and the v1 mounts holding the
 * memory, cpu and pids controllers, and makes "berth-<tag>" in each: at the hierarchy's root
 * when that is writable, else inside the cgroup this process is in (a delegated subtree).
 * Limits go to whichever hierarchy holds the controller; processes are tracked (listed,
 * killed) in the cgroup2 mount when there is one, else in v1 pids, memory or cpu.
 * State: one process-wide table, filled by cgroup_init; the exec shim calls cgroup_init
 * itself before cgroup_enter. Not thread-safe; only the daemon's loop thread calls it.
 * These are small synchronous writes to cgroupfs, which does not block on disk. */
#include "driver/cgroup.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "util/buf.h"
#include "util/fsutil.h"

enum { CG_MEMORY = 1, CG_CPU = 2, CG_PIDS = 4 };
#define CG_MAX_HIER 8
#define CG_CPU_PERIOD 100000          /* µs; cpus 0.5 = "50000 100000" */
#define CG_PROCFILE_MAX (4u << 20)    /* bound on mountinfo, cgroup.procs reads */

static const struct {
	unsigned bit;
	const char *name;
} cg_ctrls[] = {{CG_MEMORY, "memory"}, {CG_CPU, "cpu"}, {CG_PIDS, "pids"}};

struct cg_hier {
	int v2;
	unsigned ctrls;        /* controllers usable in instance groups */
	char *mount;           /* mount point */
	char *mroot;           /* cgroup path mounted there ("/" normally) */
	char *own;             /* this process's cgroup in this hierarchy, or NULL */
	char *root;            /* <base>/berth-<tag>; NULL when the hierarchy is unusable */
};

static struct {
	int available;
	const char *mode;
	char *tag;
	struct cg_hier h[CG_MAX_HIER];
	int nh;
	int track;             /* index of the hierarchy used to list and kill processes */
	struct buf notes;      /* why hierarchies or controllers are missing, for errors */
} cg = {.mode = "none", .track = -1};

static void cg_reset(void)
{
	for (int i = 0; i < cg.nh; i++) {
		free(cg.h[i].mount);
		free(cg.h[i].mroot);
		free(cg.h[i].own);
		free(cg.h[i].root);
	}
	memset(cg.h, 0, sizeof cg.h);
	cg.nh = 0;
	cg.track = -1;
	cg.available = 0;
	cg.mode = "none";
	free(cg.tag);
	cg.tag = NULL;
	buf_free(&cg.notes);
}

static void cg_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void cg_note(const char *fmt, ...)
{
	va_list ap;
	if (cg.notes.len)
		buf_adds(&cg.notes, "; ");
	va_start(ap, fmt);
	buf_vaddf(&cg.notes, fmt, ap);
	va_end(ap);
}

/* Is word one of the sep-separated items of list[0..n)? */
static int has_item(const char *list, size_t n, char sep, const char *word)
{
	size_t wl = strlen(word), i = 0;
	while (i <= n) {
		size_t j = i;
		while (j < n && list[j] != sep)
			j++;
		if (j - i == wl && memcmp(list + i, word, wl) == 0)
			return 1;
		i = j + 1;
	}
	return 0;
}

static unsigned ctrl_bits(const char *list, size_t n, char sep)
{
	unsigned bits = 0;
	for (size_t i = 0; i < sizeof cg_ctrls / sizeof cg_ctrls[0]; i++)
		if (has_item(list, n, sep, cg_ctrls[i].name))
			bits |= cg_ctrls[i].bit;
	return bits;
}

static void add_ctrl_names(struct buf *b, unsigned bits)
{
	const char *sep = "";
	for (size_t i = 0; i < sizeof cg_ctrls / sizeof cg_ctrls[0]; i++)
		if (bits & cg_ctrls[i].bit) {
			buf_addf(b, "%s%s", sep, cg_ctrls[i].name);
			sep = ",";
		}
}

/* ---- small file helpers ---- */

/* One write(2): cgroupfs takes a value in one piece and reports a rejected one right there. */
static int write_str(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t n = strlen(val);
	ssize_t w;
	do
		w = write(fd, val, n);
	while (w < 0 && errno == EINTR);
	int er = errno;
	close(fd);
	if (w == (ssize_t)n)
		return 0;
	errno = w < 0 ? er : EIO;
	return -1;
}

static int read_str(const char *path, struct buf *out)
{
	struct err e = ERR_INIT;
	buf_reset(out);
	return fs_read_file(path, out, CG_PROCFILE_MAX, &e);
}

/* Read a one-line cgroup file ("memory pids\n") without its line end. */
static int read_line(const char *path, struct buf *out)
{
	if (read_str(path, out) < 0)
		return -1;
	while (out->len && (out->p[out->len - 1] == '\n' || out->p[out->len - 1] == ' '))
		out->p[--out->len] = 0;
	return 0;
}

static int is_dir(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static void sleep_ms(int ms)
{
	struct timespec ts = {0, (long)ms * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Instance names: [A-Za-z0-9._-], 1..255 bytes, not starting with '.' (no "." or ".."). */
static int name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > 255 || s[0] == '.')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

/* ---- detection ---- */

/* Undo mountinfo's octal escapes ("\040" for a space) in place. */
static void unescape_octal(char *s)
{
	char *o = s;
	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 4;
		} else {
			*o++ = *s++;
		}
	}
	*o = 0;
}

/* One mountinfo line (modified in place): "id parent maj:min root mountpoint opts
 * [optional fields...] - fstype source superopts". Returns 0 and the fields, or -1. */
static int mountinfo_fields(char *line, char **root, char **mnt, char **fstype, char **super)
{
	char *f[64];
	int n = 0, dash = -1;
	char *save = NULL;
	for (char *t = strtok_r(line, " ", &save); t && n < 64; t = strtok_r(NULL, " ", &save))
		f[n++] = t;
	for (int i = 6; i < n; i++)
		if (strcmp(f[i], "-") == 0) {
			dash = i;
			break;
		}
	if (dash < 0 || dash + 3 >= n)
		return -1;
	*root = f[3];
	*mnt = f[4];
	*fstype = f[dash + 1];
	*super = f[dash + 3];
	unescape_octal(*root);
	unescape_octal(*mnt);
	return 0;
}

static void find_mounts(void)
{
	struct buf mi = BUF_INIT;
	unsigned have = 0;
	int have_v2 = 0;

	if (read_str("/proc/self/mountinfo", &mi) < 0 || !mi.p) {
		cg_note("cannot read /proc/self/mountinfo: %s", strerror(errno));
		buf_free(&mi);
		return;
	}
	char *save = NULL;
	for (char *line = strtok_r(mi.p, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *root, *mnt, *fstype, *super;
		if (mountinfo_fields(line, &root, &mnt, &fstype, &super) < 0 || mnt[0] != '/')
			continue;
		int v2 = strcmp(fstype, "cgroup2") == 0;
		unsigned bits = 0;
		if (v2) {
			if (have_v2)
				continue;
			have_v2 = 1;
		} else if (strcmp(fstype, "cgroup") == 0) {
			/* A hierarchy mounted twice shows the same controllers: keep the first. */
			bits = ctrl_bits(super, strlen(super), ',');
			if (!bits || (bits & have))
				continue;
			have |= bits;
		} else {
			continue;
		}
		if (cg.nh == CG_MAX_HIER)
			break;
		struct cg_hier *h = &cg.h[cg.nh++];
		h->v2 = v2;
		h->ctrls = bits;
		h->mount = xstrdup(mnt);
		h->mroot = xstrdup(root);
	}
	buf_free(&mi);
}

/* Fill h->own from /proc/self/cgroup: "0::/path" for v2, "N:cpu,cpuacct:/path" for v1. */
static void find_own_cgroups(void)
{
	struct buf pc = BUF_INIT;
	if (read_str("/proc/self/cgroup", &pc) < 0 || !pc.p) {
		buf_free(&pc);
		return;
	}
	char *save = NULL;
	for (char *line = strtok_r(pc.p, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *c1 = strchr(line, ':');
		char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2 || c2[1] != '/')
			continue;
		const char *ctrls = c1 + 1;
		size_t clen = (size_t)(c2 - ctrls);
		int v2 = clen == 0 && c1 - line == 1 && line[0] == '0';
		unsigned bits = ctrl_bits(ctrls, clen, ',');
		for (int i = 0; i < cg.nh; i++) {
			struct cg_hier *h = &cg.h[i];
			if (h->own || (h->v2 ? !v2 : !(bits & h->ctrls)))
				continue;
			h->own = xstrdup(c2 + 1);
		}
	}
	buf_free(&pc);
}

/* The directory of this process's own cgroup under the mount, or NULL when it is the mount
 * root itself or not visible there. Never inside our own berth-<tag> tree (a process that
 * berth started calling cgroup_init must find the same root). */
static char *own_base(const struct cg_hier *h)
{
	const char *rel;
	size_t rl = strlen(h->mroot);
	if (!h->own)
		return NULL;
	if (strcmp(h->mroot, "/") == 0)
		rel = h->own;
	else if (strncmp(h->own, h->mroot, rl) == 0 && (h->own[rl] == '/' || h->own[rl] == 0))
		rel = h->own + rl;
	else
		return NULL;
	/* Outside our cgroup namespace the kernel shows "/../x": never walk out of the mount. */
	for (const char *s = strstr(rel, "/.."); s; s = strstr(s + 1, "/.."))
		if (s[3] == '/' || s[3] == 0)
			return NULL;
	struct buf b = BUF_INIT;
	buf_adds(&b, rel);
	struct buf pat = BUF_INIT;
	buf_addf(&pat, "/berth-%s", cg.tag);
	for (char *s = b.p; s && (s = strstr(s, pat.p)); s++)
		if (s[pat.len] == '/' || s[pat.len] == 0) {
			b.len = (size_t)(s - b.p);
			b.p[b.len] = 0;
			break;
		}
	while (b.len && b.p[b.len - 1] == '/')
		b.p[--b.len] = 0;
	buf_free(&pat);
	if (b.len == 0) {
		buf_free(&b);
		return NULL;
	}
	char *base = xasprintf("%s%s", h->mount, b.p);
	buf_free(&b);
	return base;
}

/* mkdir base/berth-<tag>, or accept it when it exists and is writable. */
static char *make_root(const char *base, int *er)
{
	char *root = xasprintf("%s/berth-%s", base, cg.tag);
	if (mkdir(root, 0755) == 0)
		return root;
	*er = errno;
	if (*er == EEXIST) {
		if (!is_dir(root))
			*er = ENOTDIR;
		else if (access(root, W_OK) == 0)
			return root;
		else
			*er = errno;
	}
	free(root);
	return NULL;
}

/* Turn on memory, cpu, pids for the children of dir where the kernel offers them. One write
 * per controller: a combined write fails as a whole when one of them is refused. */
static void v2_enable(const char *dir)
{
	struct buf have = BUF_INIT, on = BUF_INIT;
	char *f = xasprintf("%s/cgroup.controllers", dir);
	char *sc = xasprintf("%s/cgroup.subtree_control", dir);
	if (read_line(f, &have) == 0 && read_line(sc, &on) == 0) {
		for (size_t i = 0; i < sizeof cg_ctrls / sizeof cg_ctrls[0]; i++) {
			const char *c = cg_ctrls[i].name;
			if (!has_item(have.p, have.len, ' ', c))
				continue;
			if (ctrl_bits(on.p, on.len, ' ') & cg_ctrls[i].bit)
				continue;
			char *plus = xasprintf("+%s", c);
			if (write_str(sc, plus) < 0)
				cg_note("cgroup2: cannot enable %s in %s: %s", c, sc, strerror(errno));
			free(plus);
		}
	}
	free(f);
	free(sc);
	buf_free(&have);
	buf_free(&on);
}

/* What instance groups under root get: the root's subtree_control (one line, ' '-separated). */
static unsigned v2_ctrls(const char *root)
{
	struct buf b = BUF_INIT;
	char *sc = xasprintf("%s/cgroup.subtree_control", root);
	unsigned bits = 0;
	if (read_line(sc, &b) == 0)
		bits = ctrl_bits(b.p, b.len, ' ');
	free(sc);
	buf_free(&b);
	return bits;
}

static void setup_hier(struct cg_hier *h)
{
	char *base = NULL;
	int er = 0;
	h->root = make_root(h->mount, &er);
	if (h->root) {
		base = xstrdup(h->mount);
	} else {
		base = own_base(h);
		int er2 = 0;
		if (base)
			h->root = make_root(base, &er2);
		if (!h->root) {
			if (base)
				cg_note("%s: cannot create berth-%s in %s (%s) nor in %s (%s)",
					h->mount, cg.tag, h->mount, strerror(er), base, strerror(er2));
			else
				cg_note("%s: cannot create berth-%s: %s", h->mount, cg.tag,
					strerror(er));
			free(base);
			h->ctrls = 0;
			return;
		}
	}
	if (h->v2) {
		/* Every level from the mount down to our root must pass the controllers on. */
		struct buf dir = BUF_INIT;
		buf_adds(&dir, h->mount);
		v2_enable(dir.p);
		const char *rest = base + strlen(h->mount);
		while (*rest == '/') {
			const char *next = strchr(rest + 1, '/');
			size_t n = next ? (size_t)(next - rest) : strlen(rest);
			buf_add(&dir, rest, n);
			v2_enable(dir.p);
			rest += n;
		}
		v2_enable(h->root);
		buf_free(&dir);
		h->ctrls = v2_ctrls(h->root);
		unsigned lack = (CG_MEMORY | CG_CPU | CG_PIDS) & ~h->ctrls;
		if (lack) {
			struct buf m = BUF_INIT;
			add_ctrl_names(&m, lack);
			cg_note("cgroup2 %s: no %s for its children", h->root, m.p);
			buf_free(&m);
		}
	}
	free(base);
}

/* Which usable hierarchy holds a controller (v1 first: on hybrid hosts that is where it is). */
static struct cg_hier *ctrl_hier(unsigned bit)
{
	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < cg.nh; i++)
			if (cg.h[i].root && cg.h[i].v2 == pass && (cg.h[i].ctrls & bit))
				return &cg.h[i];
	return NULL;
}

static int tag_ok(const char *t)
{
	size_t n = t ? strlen(t) : 0;
	if (n == 0 || n > 32)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((t[i] >= 'a' && t[i] <= 'z') || (t[i] >= '0' && t[i] <= '9')))
			return 0;
	return 1;
}

int cgroup_init(const char *tag, struct err *e)
{
	int v1 = 0, v2 = -1;

	cg_reset();
	if (!tag_ok(tag))
		return err_set(e, ERR_INVALID, "cgroup: tag \"%s\" must be 1-32 characters [a-z0-9]",
			       tag ? tag : "");
	cg.tag = xstrdup(tag);
	find_mounts();
	find_own_cgroups();
	for (int i = 0; i < cg.nh; i++) {
		setup_hier(&cg.h[i]);
		if (!cg.h[i].root)
			continue;
		if (cg.h[i].v2)
			v2 = i;
		else
			v1 = 1;
	}
	if (v2 >= 0) {
		cg.track = v2;
	} else {
		static const unsigned order[] = {CG_PIDS, CG_MEMORY, CG_CPU};
		for (size_t k = 0; k < 3 && cg.track < 0; k++) {
			struct cg_hier *h = ctrl_hier(order[k]);
			if (h)
				cg.track = (int)(h - cg.h);
		}
	}
	if (cg.track < 0) {
		if (cg.nh == 0)
			return err_set(e, ERR_UNAVAILABLE, "cgroups: no cgroup or cgroup2 mount with "
				       "memory, cpu or pids in /proc/self/mountinfo");
		return err_set(e, ERR_UNAVAILABLE, "cgroups: none usable: %s", buf_str(&cg.notes));
	}
	cg.available = 1;
	cg.mode = v2 >= 0 ? (v1 ? "hybrid" : "v2") : "v1";
	return 0;
}

int cgroup_available(void)
{
	return cg.available;
}

const char *cgroup_mode(void)
{
	return cg.mode;
}

/* ---- instance groups ---- */

static char *group_path(const struct cg_hier *h, const char *name, const char *file)
{
	return file ? xasprintf("%s/%s/%s", h->root, name, file) : xasprintf("%s/%s", h->root, name);
}

static int set_value(const struct cg_hier *h, const char *name, const char *file,
		     const char *val, struct err *e)
{
	char *path = group_path(h, name, file);
	int r = write_str(path, val);
	if (r < 0)
		err_errno(e, errno, "cgroup: set %s to \"%s\"", path, val);
	free(path);
	return r;
}

static int apply_limits(const struct cg_hier *h, const char *name, const struct profile *p,
			struct err *e)
{
	char v[64];
	int64_t mem = p ? p->memory_bytes : 0, pids = p ? p->pids : 0;
	int64_t quota = p && p->cpus > 0 ? (int64_t)llround(p->cpus * CG_CPU_PERIOD) : 0;
	int weight = p && p->cpu_weight > 0 ? p->cpu_weight : 100;

	if (quota > 0 && quota < 1000)
		quota = 1000;   /* the kernel's minimum quota is 1 ms */
	if (weight > 10000)
		weight = 10000;
	if (h->ctrls & CG_MEMORY) {
		if (mem > 0)
			snprintf(v, sizeof v, "%lld", (long long)mem);
		else
			snprintf(v, sizeof v, "%s", h->v2 ? "max" : "-1");
		if (set_value(h, name, h->v2 ? "memory.max" : "memory.limit_in_bytes", v, e) < 0)
			return -1;
	}
	if (h->ctrls & CG_CPU) {
		if (h->v2) {
			if (quota > 0)
				snprintf(v, sizeof v, "%lld %d", (long long)quota, CG_CPU_PERIOD);
			else
				snprintf(v, sizeof v, "max %d", CG_CPU_PERIOD);
			if (set_value(h, name, "cpu.max", v, e) < 0)
				return -1;
			snprintf(v, sizeof v, "%d", weight);
			if (set_value(h, name, "cpu.weight", v, e) < 0)
				return -1;
		} else {
			snprintf(v, sizeof v, "%d", CG_CPU_PERIOD);
			if (set_value(h, name, "cpu.cfs_period_us", v, e) < 0)
				return -1;
			snprintf(v, sizeof v, "%lld", quota > 0 ? (long long)quota : -1LL);
			if (set_value(h, name, "cpu.cfs_quota_us", v, e) < 0)
				return -1;
			int shares = weight * 1024 / 100;
			snprintf(v, sizeof v, "%d", shares < 2 ? 2 : shares);
			if (set_value(h, name, "cpu.shares", v, e) < 0)
				return -1;
		}
	}
	if (h->ctrls & CG_PIDS) {
		if (pids > 0)
			snprintf(v, sizeof v, "%lld", (long long)pids);
		else
			snprintf(v, sizeof v, "max");
		if (set_value(h, name, "pids.max", v, e) < 0)
			return -1;
	}
	return 0;
}

/* Controllers a profile needs. A cpu weight of 0 or 100 is the kernel default: no need. */
static unsigned profile_needs(const struct profile *p)
{
	unsigned need = 0;
	if (!p)
		return 0;
	if (p->memory_bytes > 0)
		need |= CG_MEMORY;
	if (p->cpus > 0 || (p->cpu_weight > 0 && p->cpu_weight != 100))
		need |= CG_CPU;
	if (p->pids > 0)
		need |= CG_PIDS;
	return need;
}

int cgroup_create(const char *name, const struct profile *p, struct err *e)
{
	int made[CG_MAX_HIER] = {0};
	unsigned missing = 0, need = profile_needs(p);

	if (!cg.available)
		return err_set(e, ERR_UNAVAILABLE, "cgroups are not available on this host");
	if (!name_ok(name))
		return err_set(e, ERR_INVALID, "cgroup: invalid instance name \"%s\"", name ? name : "");
	for (size_t i = 0; i < sizeof cg_ctrls / sizeof cg_ctrls[0]; i++)
		if ((need & cg_ctrls[i].bit) && !ctrl_hier(cg_ctrls[i].bit))
			missing |= cg_ctrls[i].bit;
	if (missing) {
		struct buf m = BUF_INIT;
		add_ctrl_names(&m, missing);
		err_set(e, ERR_UNAVAILABLE, "profile %s: needs the cgroup controller(s) %s, which "
			"this host does not provide to berth (cgroup mode %s%s%s)", p->name ? p->name : "",
			m.p, cg.mode, cg.notes.len ? "; " : "", buf_str(&cg.notes));
		buf_free(&m);
		return -1;
	}
	for (int i = 0; i < cg.nh; i++) {
		struct cg_hier *h = &cg.h[i];
		/* Only the tracking hierarchy and those holding a controller the profile limits:
		 * every extra group is a mkdir and a write on the start path. */
		if (!h->root)
			continue;
		char *dir = group_path(h, name, NULL);
		if (i != cg.track && !(h->ctrls & need) && !is_dir(dir)) {
			free(dir);
			continue;   /* (an existing group is still reset below) */
		}
		if (mkdir(dir, 0755) == 0) {
			made[i] = 1;
		} else if (errno != EEXIST || !is_dir(dir)) {
			err_errno(e, errno == EEXIST ? ENOTDIR : errno, "cgroup: create %s", dir);
			free(dir);
			goto undo;
		}
		free(dir);
		if (apply_limits(h, name, p, e) < 0)
			goto undo;
	}
	return 0;
undo:
	for (int i = 0; i < cg.nh; i++)
		if (made[i]) {
			char *dir = group_path(&cg.h[i], name, NULL);
			rmdir(dir);
			free(dir);
		}
	return -1;
}

int cgroup_oom_kills(const char *name)
{
	struct cg_hier *h = ctrl_hier(CG_MEMORY);
	if (!cg.available || !h || !name_ok(name))
		return 0;
	/* v2: memory.events "oom_kill N"; v1: memory.oom_control "oom_kill N" (kernel >= 4.13),
	 * else memory.failcnt as a hint that the limit was hit. */
	char *path = group_path(h, name, h->v2 ? "memory.events" : "memory.oom_control");
	struct buf b = BUF_INIT;
	int n = 0;
	if (read_str(path, &b) == 0) {
		const char *k = strstr(buf_str(&b), "oom_kill ");
		if (k)
			n = atoi(k + 9);
	}
	buf_free(&b);
	free(path);
	return n;
}

int cgroup_enter(const char *name, pid_t pid, struct err *e)
{
	char v[32];
	if (!cg.available)
		return err_set(e, ERR_UNAVAILABLE, "cgroups are not available on this host");
	if (!name_ok(name))
		return err_set(e, ERR_INVALID, "cgroup: invalid instance name \"%s\"", name ? name : "");
	snprintf(v, sizeof v, "%d", (int)pid);
	for (int i = 0; i < cg.nh; i++) {
		struct cg_hier *h = &cg.h[i];
		if (!h->root)
			continue;
		char *path = group_path(h, name, "cgroup.procs");
		int r = write_str(path, v);
		if (r < 0 && errno == ENOENT && i != cg.track)
			r = 0;   /* no group in this hierarchy: the profile sets no limit there */
		else if (r < 0)
			err_errno(e, errno, "cgroup: move pid %d into %s", (int)pid, path);
		free(path);
		if (r < 0)
			return -1;
	}
	return 0;
}

/* Read a cgroup.procs into pids (duplicates dropped: v1 may list a pid twice). Returns the
 * number stored, or -1 with errno. */
static int read_procs(const char *path, pid_t *pids, int max)
{
	struct buf b = BUF_INIT;
	int n = 0;
	if (read_str(path, &b) < 0) {
		int er = errno;
		buf_free(&b);
		errno = er;
		return -1;
	}
	const char *s = buf_str(&b);
	while (*s && n < max) {
		char *end;
		long v = strtol(s, &end, 10);
		if (end == s)
			break;
		s = end;
		while (*s == '\n' || *s == ' ')
			s++;
		if (v <= 0 || v > 0x3fffffff)
			continue;
		int dup = 0;
		for (int i = 0; i < n && !dup; i++)
			dup = pids[i] == (pid_t)v;
		if (!dup)
			pids[n++] = (pid_t)v;
	}
	buf_free(&b);
	return n;
}

int cgroup_pids(const char *name, pid_t *pids, int max)
{
	if (!cg.available || !name_ok(name) || max < 0) {
		errno = EINVAL;
		return -1;
	}
	char *path = group_path(&cg.h[cg.track], name, "cgroup.procs");
	int n = read_procs(path, pids, max);
	free(path);
	return n;
}

/* Without cgroup.kill: signal what is listed until the list is empty. A process can fork
 * between the read and the kill, hence the loop; its child shows up in the next read.
 * Killed processes leave the list as they exit, which is quick. Bounded to ~100 ms. */
static int kill_by_list(const char *procs)
{
	pid_t pids[512];
	for (int round = 0; round < 100; round++) {
		int n = read_procs(procs, pids, (int)(sizeof pids / sizeof pids[0]));
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
		for (int i = 0; i < n; i++)
			kill(pids[i], SIGKILL);
		sleep_ms(1);
	}
	errno = EBUSY;
	return -1;
}

int cgroup_kill(const char *name)
{
	if (!cg.available || !name_ok(name)) {
		errno = EINVAL;
		return -1;
	}
	const struct cg_hier *h = &cg.h[cg.track];
	int r = -1;
	if (h->v2) {
		char *kf = group_path(h, name, "cgroup.kill");
		r = write_str(kf, "1");   /* kernel >= 5.14 */
		free(kf);
	}
	if (r < 0) {
		char *procs = group_path(h, name, "cgroup.procs");
		r = kill_by_list(procs);
		free(procs);
	}
	return r;
}

int cgroup_destroy(const char *name)
{
	int left[CG_MAX_HIER], n = 0, er = 0;
	if (!cg.available || !name_ok(name)) {
		errno = EINVAL;
		return -1;
	}
	for (int i = 0; i < cg.nh; i++)
		if (cg.h[i].root)
			left[n++] = i;
	/* rmdir fails with EBUSY while a killed process is still exiting: retry for up to
	 * 100 ms in all. */
	for (int round = 0; n > 0 && round < 20; round++) {
		if (round)
			sleep_ms(5);
		int keep = 0;
		for (int k = 0; k < n; k++) {
			char *dir = group_path(&cg.h[left[k]], name, NULL);
			if (rmdir(dir) == 0 || errno == ENOENT) {
				free(dir);
				continue;
			}
			er = errno;
			free(dir);
			left[keep++] = left[k];
			if (er != EBUSY)
				round = 20;   /* not going to change by waiting */
		}
		n = keep;
	}
	if (n > 0) {
		errno = er;
		return -1;
	}
	return 0;
}

int cgroup_release(void)
{
	int kept = 0;
	if (!cg.available)
		return 0;
	for (int i = 0; i < cg.nh; i++)
		if (cg.h[i].root && rmdir(cg.h[i].root) < 0 && errno != ENOENT)
			kept++;
	cg_reset();
	return kept;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every hierarchy's root is listed, not only the tracking one: a group left behind in one
 * hierarchy by a half-finished create is found too, and destroy removes it everywhere. */
int cgroup_each(void (*fn)(void *arg, const char *name), void *arg)
{
	char **names = NULL;
	size_t n = 0, cap = 0;
	if (!cg.available) {
		errno = EINVAL;
		return -1;
	}
	for (int i = 0; i < cg.nh; i++) {
		if (!cg.h[i].root)
			continue;
		DIR *d = opendir(cg.h[i].root);
		if (!d)
			continue;
		struct dirent *de;
		while ((de = readdir(d))) {
			if (!name_ok(de->d_name))
				continue;
			if (de->d_type != DT_DIR) {
				char *p = xasprintf("%s/%s", cg.h[i].root, de->d_name);
				int dir = is_dir(p);
				free(p);
				if (!dir)
					continue;
			}
			if (n == cap) {
				cap = cap ? cap * 2 : 16;
				names = xrealloc(names, cap * sizeof *names);
			}
			names[n++] = xstrdup(de->d_name);
		}
		closedir(d);
	}
	/* Names are collected first so that fn may destroy the group it is given. */
	if (n)
		qsort(names, n, sizeof *names, cmp_str);
	int count = 0;
	for (size_t i = 0; i < n; i++) {
		if (i == 0 || strcmp(names[i], names[i - 1]) != 0) {
			fn(arg, names[i]);
			count++;
		}
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return count;
}

int cgroup_procs_files(const char *name, char ***out)
{
	*out = NULL;
	if (!cg.available || !name_ok(name))
		return -1;
	char **v = xcalloc((size_t)cg.nh + 1, sizeof *v);
	int n = 0;
	for (int i = 0; i < cg.nh; i++) {
		if (!cg.h[i].root)
			continue;
		char *dir = group_path(&cg.h[i], name, NULL);
		bool there = is_dir(dir);
		free(dir);
		if (there)
			v[n++] = group_path(&cg.h[i], name, "cgroup.procs");
	}
	*out = v;
	return n;
}
