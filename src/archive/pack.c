/* archive/pack: turn an app directory into a gzip'd pax tar in memory (archive_pack_dir).
 * Walks the tree without following symlinks, in sorted order so the same tree gives the same
 * bytes; stores relative paths, permission bits and symlinks as symlinks; leaves out what the
 * ignore rules say (which rules: archive.h; matching: ignore.c), never descending into a
 * left-out directory; refuses devices, FIFOs and sockets that are not left out rather than
 * silently dropping them. Owns nothing after it returns; the caller's buf receives the
 * archive. */
#include "archive/archive.h"
#include "archive/ignore.h"
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct packer {
	struct archive *a;
	struct buf *out;
	size_t start;        /* out->len when packing began, to roll back on failure */
	int64_t max_bytes;   /* 0 = no bound */
	int toobig;          /* set by the write callback when max_bytes was passed */
	struct archive_entry *ent;
	struct err *e;
	struct ignore *rules;  /* the defaults then .berthignore, or the .gitignore files */
	struct ignore *fixed;  /* the defaults when no .berthignore may negate them, else NULL */
	bool gitignore;        /* read each directory's .gitignore on the way down */
	bool berthignore, saw_gitignore, node, python;   /* for st->source */
	struct pack_stats *st;
};

static la_ssize_t pack_write(struct archive *a, void *ud, const void *data, size_t n)
{
	struct packer *p = ud;
	size_t used = p->out->len - p->start;
	if (p->max_bytes > 0 && (uint64_t)used + n > (uint64_t)p->max_bytes) {
		p->toobig = 1;
		archive_set_error(a, EFBIG, "archive larger than the limit");
		return -1;
	}
	buf_add(p->out, data, n);
	return (la_ssize_t)n;
}

/* archive_write_header, where ARCHIVE_WARN is success: in the C locale (the daemon's and the
 * CLI's) libarchive cannot translate a non-ASCII name to UTF-8, warns, and writes that entry's
 * names as raw bytes marked hdrcharset=BINARY, which is what we want. */
static int put_header(struct packer *p, struct archive_entry *ent)
{
	int r = archive_write_header(p->a, ent);
	return r == ARCHIVE_OK || r == ARCHIVE_WARN ? 0 : -1;
}

/* Fill e from the archive writer's state; the size limit wins over libarchive's own text. */
static int pack_fail(struct packer *p, const char *rel)
{
	if (p->toobig)
		return err_set(p->e, ERR_TOOBIG, "packed app is larger than the limit of %" PRId64 " bytes",
			       p->max_bytes);
	return err_set(p->e, ERR_INTERNAL, "pack %s: %s", rel, archive_error_string(p->a));
}

static const char *special_kind(mode_t m)
{
	if (S_ISFIFO(m))
		return "FIFO";
	if (S_ISSOCK(m))
		return "socket";
	if (S_ISCHR(m))
		return "character device";
	if (S_ISBLK(m))
		return "block device";
	return "special file";
}

static int cmp_names(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

/* Sorted names in path (without . and ..); caller frees each and the array. */
static int list_dir(const char *path, char ***names, size_t *n, struct err *e)
{
	DIR *d = opendir(path);
	if (!d)
		return err_errno(e, errno, "open directory %s", path);
	size_t cap = 16, len = 0;
	char **v = xmalloc(cap * sizeof *v);
	struct dirent *de;
	errno = 0;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (len == cap) {
			cap *= 2;
			v = xrealloc(v, cap * sizeof *v);
		}
		v[len++] = xstrdup(de->d_name);
		errno = 0;
	}
	int er = errno;
	closedir(d);
	if (er) {
		for (size_t i = 0; i < len; i++)
			free(v[i]);
		free(v);
		return err_errno(e, er, "read directory %s", path);
	}
	if (len)
		qsort(v, len, sizeof *v, cmp_names);
	*names = v;
	*n = len;
	return 0;
}

static int write_header(struct packer *p, const char *rel, const struct stat *st)
{
	struct archive_entry *ent = p->ent;
	archive_entry_clear(ent);
	archive_entry_copy_pathname(ent, rel);
	/* Permission bits only: setuid/setgid/sticky mean nothing in a release and are stripped
	 * on unpack anyway. Ownership is the server's business, so it is not recorded. */
	archive_entry_set_mode(ent, (st->st_mode & S_IFMT) | (st->st_mode & 0777));
	archive_entry_set_uid(ent, 0);
	archive_entry_set_gid(ent, 0);
	archive_entry_set_mtime(ent, st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
	archive_entry_set_size(ent, S_ISREG(st->st_mode) ? st->st_size : 0);
	if (put_header(p, ent) < 0)
		return pack_fail(p, rel);
	return 0;
}

static int pack_file(struct packer *p, const char *full, const char *rel)
{
	int fd = open(full, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return err_errno(p->e, errno, "open %s", full);
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return err_set(p->e, ERR_CONFLICT, "%s changed while it was being packed", full);
	}
	if (write_header(p, rel, &st) < 0) {
		close(fd);
		return -1;
	}
	p->st->files_packed++;
	p->st->bytes += st.st_size;
	char chunk[65536];
	int64_t left = st.st_size;
	while (left > 0) {
		ssize_t r = read(fd, chunk, sizeof chunk);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int er = errno;
			close(fd);
			return err_errno(p->e, er, "read %s", full);
		}
		if (r == 0 || r > left) {
			close(fd);
			return err_set(p->e, ERR_CONFLICT, "%s changed size while it was being packed", full);
		}
		if (archive_write_data(p->a, chunk, (size_t)r) != r) {
			close(fd);
			return pack_fail(p, rel);
		}
		left -= r;
	}
	close(fd);
	return 0;
}

static int pack_symlink(struct packer *p, const char *full, const char *rel, const struct stat *st)
{
	size_t cap = st->st_size > 0 ? (size_t)st->st_size + 1 : 256;
	char *target = NULL;
	for (;;) {
		target = xrealloc(target, cap);
		ssize_t r = readlink(full, target, cap);
		if (r < 0) {
			int er = errno;
			free(target);
			return err_errno(p->e, er, "read symlink %s", full);
		}
		if ((size_t)r < cap) {
			target[r] = 0;
			break;
		}
		cap *= 2;
	}
	archive_entry_clear(p->ent);
	archive_entry_copy_pathname(p->ent, rel);
	archive_entry_set_mode(p->ent, AE_IFLNK | 0777);
	archive_entry_set_uid(p->ent, 0);
	archive_entry_set_gid(p->ent, 0);
	archive_entry_set_mtime(p->ent, st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
	archive_entry_copy_symlink(p->ent, target);
	free(target);
	if (put_header(p, p->ent) < 0)
		return pack_fail(p, rel);
	p->st->files_packed++;
	return 0;
}

/* Read the ignore file at full (rel names it in errors) into b. A file that is not there is
 * not an error: *found says whether it was. Bounded: a non-regular file (a FIFO would block)
 * is refused, and reading stops past IGNORE_MAX_FILE (ignore_add_file then refuses it). */
static int read_ignore(const char *full, const char *rel, struct buf *b, bool *found,
		       struct err *e)
{
	*found = false;
	int fd = open(full, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : err_errno(e, errno, "open %s", rel);
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return err_set(e, ERR_INVALID, "%s is not a regular file", rel);
	}
	char chunk[65536];
	while (b->len <= IGNORE_MAX_FILE) {
		ssize_t r = read(fd, chunk, sizeof chunk);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int er = errno;
			close(fd);
			return err_errno(e, er, "read %s", rel);
		}
		if (r == 0)
			break;
		buf_add(b, chunk, (size_t)r);
	}
	close(fd);
	*found = true;
	return 0;
}

/* Add the .gitignore of directory rel (full on disk), if it has one, to p->rules. */
static int load_gitignore(struct packer *p, const char *full, const char *rel)
{
	char *gfull = xasprintf("%s/.gitignore", full);
	char *grel = *rel ? xasprintf("%s/.gitignore", rel) : xstrdup(".gitignore");
	struct buf b = BUF_INIT;
	bool found;
	int rc = read_ignore(gfull, grel, &b, &found, p->e);
	if (rc == 0 && found) {
		rc = ignore_add_file(p->rules, rel, grel, buf_str(&b), b.len, p->e);
		p->saw_gitignore = true;
	}
	buf_free(&b);
	free(gfull);
	free(grel);
	return rc;
}

/* Whether the entry crel (named name, in directory rel) is left out. */
static bool left_out(const struct packer *p, const char *rel, const char *name, const char *crel,
		     bool is_dir)
{
	if (!strcmp(name, ".git") || (!*rel && !strcmp(name, ".berth")))
		return true;
	if (p->fixed && ignore_match_entry(p->fixed, crel, is_dir))
		return true;
	return ignore_match_entry(p->rules, crel, is_dir);
}

static bool has_name(char **names, size_t n, const char *name)
{
	return bsearch(&name, names, n, sizeof *names, cmp_names) != NULL;
}

/* Pack the directory full (whose archive name is rel, "" for the root) and everything below. */
static int pack_tree(struct packer *p, const char *full, const char *rel)
{
	char **names = NULL;
	size_t n = 0;
	if (list_dir(full, &names, &n, p->e) < 0)
		return -1;
	int rc = 0;
	size_t mark = ignore_mark(p->rules);
	if (p->gitignore && has_name(names, n, ".gitignore"))
		rc = load_gitignore(p, full, rel);
	for (size_t i = 0; i < n && rc == 0; i++) {
		const char *name = names[i];
		char *cfull = xasprintf("%s/%s", full, name);
		char *crel = *rel ? xasprintf("%s/%s", rel, name) : xstrdup(name);
		struct stat st;
		if (lstat(cfull, &st) < 0) {
			rc = err_errno(p->e, errno, "stat %s", cfull);
		} else if (left_out(p, rel, name, crel, S_ISDIR(st.st_mode))) {
			if (S_ISDIR(st.st_mode))
				p->st->dirs_ignored++;
			else
				p->st->files_ignored++;
		} else if (S_ISDIR(st.st_mode)) {
			p->st->dirs_packed++;
			rc = write_header(p, crel, &st);
			if (rc == 0)
				rc = pack_tree(p, cfull, crel);
		} else if (S_ISREG(st.st_mode)) {
			rc = pack_file(p, cfull, crel);
		} else if (S_ISLNK(st.st_mode)) {
			rc = pack_symlink(p, cfull, crel, &st);
		} else {
			rc = err_set(p->e, ERR_INVALID, "%s is a %s; only files, directories and symlinks "
				     "can be deployed", cfull, special_kind(st.st_mode));
		}
		free(cfull);
		free(crel);
	}
	ignore_rewind(p->rules, mark);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

static bool exists_in(const char *dir, const char *name)
{
	char *path = xasprintf("%s/%s", dir, name);
	struct stat st;
	bool yes = lstat(path, &st) == 0;
	free(path);
	return yes;
}

/* Choose the rules for dir (archive.h says which and why). */
static int setup_rules(struct packer *p, const char *dir)
{
	struct buf defaults = BUF_INIT, bi = BUF_INIT;
	if (exists_in(dir, "package.json")) {
		buf_adds(&defaults, "node_modules\n");
		p->node = true;
	}
	if (exists_in(dir, "requirements.txt") || exists_in(dir, "pyproject.toml")) {
		buf_adds(&defaults, ".venv\n__pycache__\n");
		p->python = true;
	}
	char *full = xasprintf("%s/.berthignore", dir);
	int rc = read_ignore(full, ".berthignore", &bi, &p->berthignore, p->e);
	free(full);
	p->rules = ignore_new();
	const char *dflt = buf_str(&defaults);
	if (rc == 0 && p->berthignore) {
		/* the defaults first, so that a "!node_modules/" in .berthignore wins over them */
		rc = ignore_add_file(p->rules, "", "(defaults)", dflt, defaults.len, p->e);
		if (rc == 0)
			rc = ignore_add_file(p->rules, "", ".berthignore", buf_str(&bi), bi.len, p->e);
	} else if (rc == 0) {
		p->fixed = ignore_new();
		rc = ignore_add_file(p->fixed, "", "(defaults)", dflt, defaults.len, p->e);
		p->gitignore = true;
	}
	buf_free(&defaults);
	buf_free(&bi);
	return rc;
}

int archive_pack_dir(const char *dir, struct buf *out, int64_t max_bytes,
		     struct pack_stats *stats, struct err *e)
{
	struct stat st;
	if (stat(dir, &st) < 0)
		return err_errno(e, errno, "pack %s", dir);
	if (!S_ISDIR(st.st_mode))
		return err_set(e, ERR_INVALID, "pack %s: not a directory", dir);

	struct pack_stats unused;
	if (!stats)
		stats = &unused;
	memset(stats, 0, sizeof *stats);
	struct packer p = { .out = out, .start = out->len, .max_bytes = max_bytes, .e = e,
			    .st = stats };
	p.a = archive_write_new();
	p.ent = archive_entry_new();
	if (!p.a || !p.ent) {
		archive_write_free(p.a);
		archive_entry_free(p.ent);
		return err_set(e, ERR_INTERNAL, "pack %s: out of memory", dir);
	}
	int rc = -1;
	if (setup_rules(&p, dir) < 0)
		goto done;
	if (archive_write_set_format_pax_restricted(p.a) != ARCHIVE_OK ||
	    archive_write_add_filter_gzip(p.a) != ARCHIVE_OK) {
		err_set(e, ERR_INTERNAL, "pack %s: %s", dir, archive_error_string(p.a));
		goto done;
	}
	/* No wall-clock time in the gzip header, and no padding of the last block: the same tree
	 * packs to the same bytes. Both are best effort (older libarchive lacks the option). */
	archive_write_set_filter_option(p.a, "gzip", "timestamp", NULL);
	archive_write_set_bytes_in_last_block(p.a, 1);
	if (archive_write_open2(p.a, &p, NULL, pack_write, NULL, NULL) != ARCHIVE_OK) {
		pack_fail(&p, dir);
		goto done;
	}
	if (pack_tree(&p, dir, "") < 0)
		goto done;
	if (archive_write_close(p.a) != ARCHIVE_OK) {
		pack_fail(&p, dir);
		goto done;
	}
	rc = 0;
	snprintf(stats->source, sizeof stats->source, "%s%s%s",
		 p.berthignore ? ".berthignore" : p.saw_gitignore ? ".gitignore" : "no ignore file",
		 p.node ? ", node_modules" : "", p.python ? ", .venv, __pycache__" : "");
done:
	archive_write_free(p.a); /* after a failure this may try to flush; the callback refuses */
	archive_entry_free(p.ent);
	ignore_free(p.rules);
	ignore_free(p.fixed);
	if (rc < 0) {
		out->len = p.start;
		if (out->p)
			out->p[out->len] = 0;
	}
	return rc;
}
