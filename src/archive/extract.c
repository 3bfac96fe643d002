/* archive/extract: the per-entry rules of the safe unpacker (see extract.h).
 * Every path is walked one component at a time with openat(O_NOFOLLOW) from the destination's
 * fd, so a symlink created by an earlier entry (or any other) is never traversed while writing;
 * files are created O_EXCL|O_NOFOLLOW. Names and link targets are checked before anything is
 * touched: no absolute paths, no "..", no empty names, no hard links or special files, and a
 * symlink may only climb with leading ".." components that stay inside the destination. */
#include "archive/extract.h"
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "util/buf.h"

#define QUOTE_MAX 320
/* Bounds that keep the per-entry path walk cheap; real trees stay far below both. */
#define NAME_MAX_BYTES 4095
#define DEPTH_MAX 256

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if s does not start one. */
static size_t utf8_seq(const unsigned char *s)
{
	size_t n;
	unsigned min;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, min = 0x80;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, min = 0x800;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, min = 0x10000;
	else
		return 0;
	unsigned cp = s[0] & (0x7f >> n);
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

void extract_quote(const char *s, char *out, size_t cap)
{
	size_t o = 0;
	const unsigned char *p = (const unsigned char *)s;
	if (!cap)
		return;
	while (*p) {
		char tmp[8];
		size_t n, seq = 0;
		if (*p >= 0x80)
			seq = utf8_seq(p);
		if (seq) {
			memcpy(tmp, p, seq);
			n = seq;
		} else if (*p < 0x20 || *p == 0x7f || *p >= 0x80 || *p == '"' || *p == '\\') {
			n = (size_t)snprintf(tmp, sizeof tmp, "\\x%02x", *p);
			seq = 1;
		} else {
			tmp[0] = (char)*p;
			n = seq = 1;
		}
		if (o + n + 4 > cap || o + n > QUOTE_MAX) {
			if (o + 4 <= cap) {
				memcpy(out + o, "...", 3);
				o += 3;
			}
			break;
		}
		memcpy(out + o, tmp, n);
		o += n;
		p += seq;
	}
	out[o] = 0;
}

/* A path split into components, "" and "." dropped. One allocation holds the strings. */
struct split {
	char *store;
	char **comp;
	size_t n;
};

static void split_free(struct split *s)
{
	free(s->store);
	free(s->comp);
}

/* Split an entry name; returns NULL, or why the name is refused. */
static const char *split_name(const char *name, struct split *s)
{
	s->store = NULL;
	s->comp = NULL;
	s->n = 0;
	if (!name || !*name)
		return "empty file name";
	if (name[0] == '/')
		return "absolute path";
	size_t len = strlen(name);
	if (len > NAME_MAX_BYTES)
		return "name longer than 4095 bytes";
	s->store = xstrdup(name);
	s->comp = xmalloc((len / 2 + 1) * sizeof *s->comp);
	for (char *c = s->store, *next; c; c = next) {
		char *slash = strchr(c, '/');
		next = slash ? slash + 1 : NULL;
		if (slash)
			*slash = 0;
		if (!*c || !strcmp(c, "."))
			continue;
		if (!strcmp(c, ".."))
			return "path contains a \"..\" component";
		if (s->n == DEPTH_MAX)
			return "path nested more than 256 directories deep";
		s->comp[s->n++] = c;
	}
	return NULL;
}

/* Check a symlink target for a link whose parent is depth directories below the root. */
static const char *check_target(const char *target, size_t depth)
{
	if (!target || !*target)
		return "symlink with an empty target";
	if (target[0] == '/')
		return "symlink to an absolute path";
	size_t up = 0, names = 0;
	for (const char *c = target; *c; ) {
		size_t n = strcspn(c, "/");
		if (n == 2 && c[0] == '.' && c[1] == '.') {
			/* ".." after a name would resolve through whatever that name is, perhaps another
			 * symlink, so the lexical answer could be wrong: only leading ".." is allowed. */
			if (names)
				return "symlink target has \"..\" after a directory name";
			if (++up > depth)
				return "symlink target points outside the destination";
		} else if (n && !(n == 1 && c[0] == '.')) {
			names++;
		}
		c += n;
		if (*c == '/')
			c++;
	}
	return NULL;
}

static int refuse(struct extract *x, const char *q, const char *why)
{
	return err_set(x->e, ERR_INVALID, "archive entry \"%s\": %s", q, why);
}

/* err for a failed system call on an entry: name problems are the archive's fault. */
static int fail_errno(struct extract *x, int er, const char *q, const char *what)
{
	int code = (er == ENAMETOOLONG || er == ELOOP || er == ENOTDIR || er == EEXIST ||
		    er == EISDIR) ? ERR_INVALID : ERR_INTERNAL;
	err_set(x->e, code, "archive entry \"%s\": %s: %s", q, what, strerror(er));
	return -1;
}

/* Open (creating if missing, 0755) the directories comp[0..n) below the root; never follows a
 * symlink. Returns an fd the caller closes, or -1. */
static int walk_parent(struct extract *x, char **comp, size_t n, const char *q)
{
	int fd = fcntl(x->rootfd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return fail_errno(x, errno, q, "open destination");
	for (size_t i = 0; i < n; i++) {
		int made = 0;
		int next = openat(fd, comp[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0 && errno == ENOENT) {
			if (mkdirat(fd, comp[i], 0755) < 0) {
				int er = errno;
				close(fd);
				return fail_errno(x, er, q, "create directory");
			}
			made = 1;
			next = openat(fd, comp[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		}
		int er = errno;
		close(fd);
		if (next < 0) {
			if (er == ELOOP || er == ENOTDIR) {
				char cq[QUOTE_MAX + 8];
				extract_quote(comp[i], cq, sizeof cq);
				char *why = xasprintf("\"%s\" is a symlink or a file, refusing to write "
						      "through it", cq);
				refuse(x, q, why);
				free(why);
				return -1;
			}
			return fail_errno(x, er, q, "open directory");
		}
		if (made && fchmod(next, 0755) < 0) {
			er = errno;
			close(next);
			return fail_errno(x, er, q, "set directory mode");
		}
		fd = next;
	}
	return fd;
}

static char *join(char **comp, size_t n)
{
	struct buf b = BUF_INIT;
	for (size_t i = 0; i < n; i++) {
		if (i)
			buf_addc(&b, '/');
		buf_adds(&b, comp[i]);
	}
	return buf_detach(&b);
}

/* walk_parent, through the one-entry cache. Returns a borrowed fd (do not close) or -1. */
static int open_parent(struct extract *x, char **comp, size_t n, const char *q)
{
	char *key = join(comp, n);
	if (x->parent_key && !strcmp(key, x->parent_key)) {
		free(key);
		return x->parent_fd;
	}
	int fd = walk_parent(x, comp, n, q);
	if (fd < 0) {
		free(key);
		return -1;
	}
	extract_finish(x);
	x->parent_fd = fd;
	x->parent_key = key;
	return fd;
}

void extract_finish(struct extract *x)
{
	if (x->parent_fd >= 0)
		close(x->parent_fd);
	free(x->parent_key);
	x->parent_fd = -1;
	x->parent_key = NULL;
}

/* What is at name in dirfd: 0 nothing, else the S_IFMT bits; -1 on error. */
static int existing_type(int dirfd, const char *name, struct extract *x, const char *q)
{
	struct stat st;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return (int)(st.st_mode & S_IFMT);
	if (errno == ENOENT)
		return 0;
	return fail_errno(x, errno, q, "stat");
}

static int conflict(struct extract *x, const char *q, int have)
{
	const char *what = have == S_IFDIR ? "directory" : have == S_IFLNK ? "symlink" :
			   have == S_IFREG ? "file" : "special file";
	char *why = xasprintf("conflicts with an earlier %s of the same name", what);
	refuse(x, q, why);
	free(why);
	return -1;
}

static int extract_dir(struct extract *x, int pfd, const char *name, mode_t mode, const char *q)
{
	if (mkdirat(pfd, name, 0700) < 0) {
		if (errno != EEXIST)
			return fail_errno(x, errno, q, "create directory");
		int have = existing_type(pfd, name, x, q);
		if (have < 0)
			return -1;
		if (have != S_IFDIR)
			return conflict(x, q, have);
		/* A directory named twice (or made implicitly by an earlier file) just merges. */
	}
	int fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return fail_errno(x, errno, q, "open directory");
	/* The owner always keeps rwx so the tree can be written into and removed again. */
	int r = fchmod(fd, (mode & 0755) | 0700);
	int er = errno;
	close(fd);
	return r < 0 ? fail_errno(x, er, q, "set directory mode") : 0;
}

static int toobig(struct extract *x, const char *q)
{
	return err_set(x->e, ERR_TOOBIG, "archive entry \"%s\": unpacked size passes the limit of %"
		       PRId64 " bytes", q, x->max_bytes);
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int extract_file(struct extract *x, struct archive_entry *ent, int pfd, const char *name,
			const char *q)
{
	int64_t claim = archive_entry_size_is_set(ent) ? archive_entry_size(ent) : 0;
	if (claim < 0 || claim > x->max_bytes - x->written)
		return toobig(x, q);
	int have = existing_type(pfd, name, x, q);
	if (have < 0)
		return -1;
	if (have == S_IFREG) {
		if (unlinkat(pfd, name, 0) < 0)
			return fail_errno(x, errno, q, "replace earlier file");
	} else if (have) {
		return conflict(x, q, have);
	}
	int fd = openat(pfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return fail_errno(x, errno, q, "create file");
	for (;;) {
		la_ssize_t r = archive_read_data(x->a, x->chunk, x->chunk_len);
		if (r == 0)
			break;
		if (r < 0) {
			const char *why = archive_error_string(x->a);
			err_set(x->e, ERR_INVALID, "archive entry \"%s\": corrupt data: %s", q,
				why ? why : "read failed");
			close(fd);
			return -1;
		}
		/* The header's size is only a claim; what counts is what actually gets written. */
		if (r > x->max_bytes - x->written) {
			close(fd);
			return toobig(x, q);
		}
		if (write_all(fd, x->chunk, (size_t)r) < 0) {
			int er = errno;
			close(fd);
			return fail_errno(x, er, q, "write");
		}
		x->written += r;
	}
	mode_t mode = archive_entry_perm(ent);
	if (fchmod(fd, (mode & 0755) | 0600) < 0) {
		int er = errno;
		close(fd);
		return fail_errno(x, er, q, "set file mode");
	}
	/* Keep the packed mtime (static files' Last-Modified, build caches); best effort. */
	if (archive_entry_mtime_is_set(ent)) {
		struct timespec ts[2] = {
			{ .tv_nsec = UTIME_OMIT },
			{ .tv_sec = archive_entry_mtime(ent), .tv_nsec = archive_entry_mtime_nsec(ent) },
		};
		if (ts[1].tv_nsec < 0 || ts[1].tv_nsec > 999999999)
			ts[1].tv_nsec = 0;
		futimens(fd, ts);
	}
	if (close(fd) < 0)
		return fail_errno(x, errno, q, "close");
	return 0;
}

static int extract_symlink(struct extract *x, struct archive_entry *ent, int pfd,
			   const struct split *s, const char *q)
{
	const char *target = archive_entry_symlink(ent);
	if (!target)
		target = archive_entry_symlink_utf8(ent);
	const char *why = check_target(target, s->n - 1);
	if (why) {
		char tq[QUOTE_MAX + 8];
		extract_quote(target ? target : "", tq, sizeof tq);
		char *msg = xasprintf("%s (\"%s\")", why, tq);
		refuse(x, q, msg);
		free(msg);
		return -1;
	}
	const char *name = s->comp[s->n - 1];
	if (symlinkat(target, pfd, name) < 0) {
		if (errno != EEXIST)
			return fail_errno(x, errno, q, "create symlink");
		int have = existing_type(pfd, name, x, q);
		return have < 0 ? -1 : conflict(x, q, have);
	}
	return 0;
}

static const char *type_name(mode_t t)
{
	switch (t) {
	case AE_IFCHR: return "character device";
	case AE_IFBLK: return "block device";
	case AE_IFIFO: return "FIFO";
	case AE_IFSOCK: return "socket";
	default: return "entry of unknown type";
	}
}

int extract_entry(struct extract *x, struct archive_entry *ent)
{
	const char *name = archive_entry_pathname(ent);
	if (!name)
		name = archive_entry_pathname_utf8(ent);
	char q[QUOTE_MAX + 8];
	extract_quote(name ? name : "", q, sizeof q);

	if (archive_entry_hardlink(ent) || archive_entry_hardlink_utf8(ent))
		return refuse(x, q, "hard links are not allowed");
	mode_t type = archive_entry_filetype(ent);
	if (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK) {
		char *why = xasprintf("%s not allowed", type_name(type));
		refuse(x, q, why);
		free(why);
		return -1;
	}
	struct split s;
	const char *why = split_name(name, &s);
	if (why) {
		split_free(&s);
		return refuse(x, q, why);
	}
	if (s.n == 0) {
		split_free(&s);
		/* "./" names the destination itself, which already exists. */
		return type == AE_IFDIR ? 0 : refuse(x, q, "names the destination directory itself");
	}
	int pfd = open_parent(x, s.comp, s.n - 1, q);
	if (pfd < 0) {
		split_free(&s);
		return -1;
	}
	const char *last = s.comp[s.n - 1];
	int rc;
	if (type == AE_IFDIR)
		rc = extract_dir(x, pfd, last, archive_entry_perm(ent), q);
	else if (type == AE_IFREG)
		rc = extract_file(x, ent, pfd, last, q);
	else
		rc = extract_symlink(x, ent, pfd, &s, q);
	split_free(&s);
	return rc;
}
