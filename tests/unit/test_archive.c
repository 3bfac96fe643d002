/* test_archive: packing an app directory and unpacking it safely (src/archive).
 * Hostile archives are built here with libarchive's own writer (which writes whatever name it
 * is given), so each nasty case is spelled out next to the refusal it must produce: the error
 * names the entry, and the destination does not exist afterwards. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "archive/archive.h"
#include "util/fsutil.h"

/* ---- fixture: a fresh temp dir per test, dest = tmp/out ---- */

struct fx {
	char tmp[64];
	char *dest;
};

static int setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof *f);
	snprintf(f->tmp, sizeof f->tmp, "/tmp/berth-test-archive-XXXXXX");
	if (!mkdtemp(f->tmp))
		return -1;
	f->dest = xasprintf("%s/out", f->tmp);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	struct err e = ERR_INIT;
	fs_rm_rf(f->tmp, &e);
	free(f->dest);
	free(f);
	return 0;
}

static char *path_in(struct fx *f, const char *rel)
{
	return xasprintf("%s/%s", f->tmp, rel);
}

static void write_file(const char *path, const char *data, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	assert_true(fd >= 0);
	size_t n = strlen(data);
	assert_int_equal(write(fd, data, n), (ssize_t)n);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static char *read_text(const char *path)
{
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	if (fs_read_file(path, &b, 0, &e) < 0)
		return NULL;
	buf_addc(&b, 0); /* make sure p is non-NULL for empty files */
	return buf_detach(&b);
}

static size_t count_dir(const char *path)
{
	DIR *d = opendir(path);
	assert_non_null(d);
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

/* ---- building archives with libarchive's writer ---- */

struct tent {
	const char *name;
	mode_t type;          /* AE_IFREG (0 means the same), AE_IFDIR, AE_IFLNK, AE_IFCHR, ... */
	mode_t perm;          /* 0 means 0644 / 0755 by type; NOPERM means 0 */
	const char *data;     /* regular files */
	const char *link;     /* symlink target */
	const char *hardlink; /* makes a hard link entry */
};

static la_ssize_t to_buf(struct archive *a, void *ud, const void *p, size_t n)
{
	buf_add(ud, p, n);
	return (la_ssize_t)n;
}

enum { GZ = 1, PLAIN = 0 };
#define NOPERM 010000

static void build_tar(struct buf *out, const struct tent *t, size_t n, int gzip)
{
	struct archive *a = archive_write_new();
	assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
	if (gzip)
		assert_int_equal(archive_write_add_filter_gzip(a), ARCHIVE_OK);
	archive_write_set_bytes_in_last_block(a, 1);
	assert_int_equal(archive_write_open2(a, out, NULL, to_buf, NULL, NULL), ARCHIVE_OK);
	struct archive_entry *ent = archive_entry_new();
	for (size_t i = 0; i < n; i++) {
		mode_t type = t[i].type ? t[i].type : AE_IFREG;
		archive_entry_clear(ent);
		archive_entry_copy_pathname(ent, t[i].name);
		archive_entry_set_filetype(ent, type);
		archive_entry_set_perm(ent, t[i].perm ? t[i].perm & 07777 : type == AE_IFDIR ? 0755 : 0644);
		if (t[i].link)
			archive_entry_copy_symlink(ent, t[i].link);
		if (t[i].hardlink)
			archive_entry_copy_hardlink(ent, t[i].hardlink);
		if (type == AE_IFCHR || type == AE_IFBLK)
			archive_entry_set_rdev(ent, makedev(1, 3));
		size_t len = t[i].data ? strlen(t[i].data) : 0;
		archive_entry_set_size(ent, (la_int64_t)len);
		assert_int_equal(archive_write_header(a, ent), ARCHIVE_OK);
		if (len)
			assert_int_equal(archive_write_data(a, t[i].data, len), (la_ssize_t)len);
	}
	archive_entry_free(ent);
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
}

static int unpack_entries(struct fx *f, const struct tent *t, size_t n,
			  const struct unpack_limits *lim, struct err *e)
{
	struct buf b = BUF_INIT;
	build_tar(&b, t, n, GZ);
	int rc = archive_unpack_mem(b.p, b.len, f->dest, lim, e);
	buf_free(&b);
	return rc;
}

/* The archive must be refused as invalid, the message must name `entry`, and nothing may be
 * left: no dest, nothing else in the temp dir either. */
static void expect_refused(struct fx *f, const struct tent *t, size_t n, const char *entry)
{
	struct err e = ERR_INIT;
	assert_int_equal(unpack_entries(f, t, n, NULL, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	char *quoted = xasprintf("\"%s\"", entry);
	if (!strstr(e.msg, quoted))
		fail_msg("message does not name %s: %s", quoted, e.msg);
	free(quoted);
	assert_false(fs_exists(f->dest));
	assert_int_equal(count_dir(f->tmp), 0);
}

#define REFUSED(f, entry, ...) do { \
	const struct tent t_[] = { __VA_ARGS__ }; \
	expect_refused(f, t_, sizeof t_ / sizeof t_[0], entry); \
} while (0)

/* ---- pack ---- */

static void make_app(struct fx *f, char **src_out)
{
	char *src = path_in(f, "src");
	char *p;
	assert_int_equal(mkdir(src, 0755), 0);
#define P(rel) (free(p), p = xasprintf("%s/%s", src, rel))
	p = NULL;
	assert_int_equal(mkdir(P("a"), 0755), 0);
	assert_int_equal(mkdir(P("a/b"), 0750), 0);
	write_file(P("a/b/c.txt"), "nested contents\n", 0644);
	write_file(P("run.sh"), "#!/bin/sh\necho hi\n", 0755);
	write_file(P("secret.txt"), "only me\n", 0600);
	assert_int_equal(symlink("a/b/c.txt", P("link")), 0);
	assert_int_equal(mkdir(P("empty"), 0755), 0);
	assert_int_equal(mkdir(P(".git"), 0755), 0);
	write_file(P(".git/config"), "[core]\n", 0644);
	assert_int_equal(mkdir(P(".berth"), 0755), 0);
	write_file(P(".berth/state"), "x\n", 0644);
	assert_int_equal(mkdir(P("a/.git"), 0755), 0);
	write_file(P("a/.git/HEAD"), "a nested repository is not app content\n", 0644);
#undef P
	free(p);
	*src_out = src;
}

static void test_pack_roundtrip(void **state)
{
	struct fx *f = *state;
	char *src;
	make_app(f, &src);
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	assert_int_equal(archive_pack_dir(src, &b, 0, NULL, &e), 0);
	assert_true(b.len > 2 && (unsigned char)b.p[0] == 0x1f && (unsigned char)b.p[1] == 0x8b);
	assert_int_equal(archive_unpack_mem(b.p, b.len, f->dest, NULL, &e), 0);

	char *p = xasprintf("%s/a/b/c.txt", f->dest);
	char *s = read_text(p);
	assert_string_equal(s, "nested contents\n");
	free(s);
	free(p);

	struct stat st;
	p = xasprintf("%s/run.sh", f->dest);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0755);
	struct stat sst;
	char *sp = xasprintf("%s/run.sh", src);
	assert_int_equal(stat(sp, &sst), 0);
	assert_int_equal(st.st_mtim.tv_sec, sst.st_mtim.tv_sec); /* mtime travels too */
	free(sp);
	s = read_text(p);
	assert_string_equal(s, "#!/bin/sh\necho hi\n");
	free(s);
	free(p);

	p = xasprintf("%s/secret.txt", f->dest);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	free(p);

	p = xasprintf("%s/a/b", f->dest);
	assert_int_equal(stat(p, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0750);
	free(p);

	p = xasprintf("%s/link", f->dest);
	assert_int_equal(lstat(p, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	char target[64];
	ssize_t n = readlink(p, target, sizeof target - 1);
	assert_true(n > 0);
	target[n] = 0;
	assert_string_equal(target, "a/b/c.txt");
	s = read_text(p); /* resolves inside the release */
	assert_string_equal(s, "nested contents\n");
	free(s);
	free(p);

	p = xasprintf("%s/empty", f->dest);
	assert_int_equal(stat(p, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	free(p);

	p = xasprintf("%s/.git", f->dest);
	assert_false(fs_exists(p));
	free(p);
	p = xasprintf("%s/.berth", f->dest);
	assert_false(fs_exists(p));
	free(p);
	p = xasprintf("%s/a/.git", f->dest);
	assert_false(fs_exists(p));
	free(p);

	assert_int_equal(stat(f->dest, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0755);
	buf_free(&b);
	free(src);
}

static void test_pack_sorted_relative_deterministic(void **state)
{
	struct fx *f = *state;
	char *src;
	make_app(f, &src);
	struct buf b1 = BUF_INIT, b2 = BUF_INIT;
	struct err e = ERR_INIT;
	assert_int_equal(archive_pack_dir(src, &b1, 0, NULL, &e), 0);
	assert_int_equal(archive_pack_dir(src, &b2, 0, NULL, &e), 0);
	assert_int_equal(b1.len, b2.len);
	assert_memory_equal(b1.p, b2.p, b1.len);

	const char *want[] = { "a", "a/b", "a/b/c.txt", "empty", "link", "run.sh", "secret.txt" };
	struct archive *a = archive_read_new();
	archive_read_support_filter_gzip(a);
	archive_read_support_format_tar(a);
	assert_int_equal(archive_read_open_memory(a, b1.p, b1.len), ARCHIVE_OK);
	struct archive_entry *ent;
	size_t i = 0;
	while (archive_read_next_header(a, &ent) == ARCHIVE_OK) {
		assert_true(i < sizeof want / sizeof want[0]);
		char *name = xstrdup(archive_entry_pathname(ent));
		size_t len = strlen(name);
		if (len > 1 && name[len - 1] == '/')
			name[len - 1] = 0;
		assert_string_equal(name, want[i]);
		free(name);
		assert_int_equal(archive_entry_uid(ent), 0);
		i++;
	}
	assert_int_equal(i, sizeof want / sizeof want[0]);
	archive_read_free(a);
	buf_free(&b1);
	buf_free(&b2);
	free(src);
}

static void test_pack_refuses_fifo(void **state)
{
	struct fx *f = *state;
	char *src = path_in(f, "src");
	assert_int_equal(mkdir(src, 0755), 0);
	char *sub = xasprintf("%s/sub", src);
	assert_int_equal(mkdir(sub, 0755), 0);
	char *fifo = xasprintf("%s/sub/pipe", src);
	assert_int_equal(mkfifo(fifo, 0644), 0);
	struct buf b = BUF_INIT;
	buf_adds(&b, "keep");
	struct err e = ERR_INIT;
	assert_int_equal(archive_pack_dir(src, &b, 0, NULL, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	assert_non_null(strstr(e.msg, fifo));
	assert_non_null(strstr(e.msg, "FIFO"));
	assert_int_equal(b.len, 4); /* the caller's buffer is left as it was */
	assert_string_equal(b.p, "keep");
	buf_free(&b);
	free(fifo);
	free(sub);
	free(src);
}

static void test_pack_too_big(void **state)
{
	struct fx *f = *state;
	char *src = path_in(f, "src");
	assert_int_equal(mkdir(src, 0755), 0);
	char *p = xasprintf("%s/noise.bin", src);
	int fd = open(p, O_WRONLY | O_CREAT, 0644);
	assert_true(fd >= 0);
	uint32_t x = 2463534242u; /* xorshift: incompressible enough to defeat gzip */
	for (int i = 0; i < 300000 / 4; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		assert_int_equal(write(fd, &x, 4), 4);
	}
	close(fd);
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	assert_int_equal(archive_pack_dir(src, &b, 10000, NULL, &e), -1);
	assert_int_equal(e.code, ERR_TOOBIG);
	assert_non_null(strstr(e.msg, "10000"));
	assert_int_equal(b.len, 0);
	assert_int_equal(archive_pack_dir(src, &b, 400000, NULL, &e), 0);
	assert_true(b.len > 300000 && b.len <= 400000);
	buf_free(&b);
	free(p);
	free(src);
}

static void test_pack_utf8_names(void **state)
{
	/* berth runs in the C locale; non-ASCII names must still travel byte for byte. */
	struct fx *f = *state;
	char *src = path_in(f, "src");
	assert_int_equal(mkdir(src, 0755), 0);
	char *p = xasprintf("%s/caf\xc3\xa9-\xe2\x82\xac.txt", src);
	write_file(p, "utf8\n", 0644);
	char *l = xasprintf("%s/lien-\xc3\xa9", src);
	assert_int_equal(symlink("caf\xc3\xa9-\xe2\x82\xac.txt", l), 0);
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	assert_int_equal(archive_pack_dir(src, &b, 0, NULL, &e), 0);
	assert_int_equal(archive_unpack_mem(b.p, b.len, f->dest, NULL, &e), 0);
	char *q = xasprintf("%s/lien-\xc3\xa9", f->dest);
	char *s = read_text(q);
	assert_non_null(s);
	assert_string_equal(s, "utf8\n");
	free(s);
	free(q);
	free(l);
	free(p);
	free(src);
	buf_free(&b);
}

static void test_pack_missing_dir(void **state)
{
	struct fx *f = *state;
	char *src = path_in(f, "nope");
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	assert_int_equal(archive_pack_dir(src, &b, 0, NULL, &e), -1);
	assert_non_null(strstr(e.msg, src));
	free(src);
}

/* ---- pack: what is left out ---- */

/* Make the tree spec under src, in order: "d/" a directory, "f=text" a file, "l -> target" a
 * symlink, "p|" a FIFO. */
static void build_tree(const char *src, const char *const *spec, size_t n)
{
	assert_int_equal(mkdir(src, 0755), 0);
	for (size_t i = 0; i < n; i++) {
		const char *s = spec[i], *arrow = strstr(s, " -> "), *eq = strchr(s, '=');
		size_t len = strlen(s);
		char kind = arrow ? 'l' : eq ? 'f' : s[len - 1];
		size_t namelen = arrow ? (size_t)(arrow - s) : eq ? (size_t)(eq - s) : len - 1;
		char *path = xasprintf("%s/%.*s", src, (int)namelen, s);
		if (kind == 'l')
			assert_int_equal(symlink(arrow + 4, path), 0);
		else if (kind == 'f')
			write_file(path, eq + 1, 0644);
		else if (kind == '/')
			assert_int_equal(mkdir(path, 0755), 0);
		else if (kind == '|')
			assert_int_equal(mkfifo(path, 0644), 0);
		else
			fail_msg("bad spec %s", s);
		free(path);
	}
}

/* The entries of a packed tar.gz in archive order, one a line: directories with a trailing
 * '/', symlinks as "name -> target". *bytes: the sum of the regular files' sizes. */
static char *entries_of(const struct buf *b, int64_t *bytes)
{
	struct archive *a = archive_read_new();
	archive_read_support_filter_gzip(a);
	archive_read_support_format_tar(a);
	assert_int_equal(archive_read_open_memory(a, b->p, b->len), ARCHIVE_OK);
	struct buf out = BUF_INIT;
	struct archive_entry *ent;
	*bytes = 0;
	while (archive_read_next_header(a, &ent) == ARCHIVE_OK) {
		const char *name = archive_entry_pathname(ent);
		size_t len = strlen(name);
		if (len > 1 && name[len - 1] == '/')
			len--;
		buf_add(&out, name, len);
		if (archive_entry_filetype(ent) == AE_IFDIR)
			buf_addc(&out, '/');
		if (archive_entry_filetype(ent) == AE_IFLNK)
			buf_addf(&out, " -> %s", archive_entry_symlink(ent));
		if (archive_entry_filetype(ent) == AE_IFREG)
			*bytes += archive_entry_size(ent);
		buf_addc(&out, '\n');
	}
	archive_read_free(a);
	buf_addc(&out, 0);
	return buf_detach(&out);
}

#define TREE(src, ...) do { \
	const char *const spec_[] = { __VA_ARGS__ }; \
	build_tree(src, spec_, sizeof spec_ / sizeof spec_[0]); \
} while (0)

static void test_pack_gitignore(void **state)
{
	struct fx *f = *state;
	char *src = path_in(f, "src");
	TREE(src,
	     "package.json={}\n", "app.js=console.log(1)\n", ".env=SECRET=1\n",
	     ".gitignore=# build output\n/dist/\n*.log\n!keep.log\n.env\nsecrets/\n!secrets/public\n"
	     "*.sock\ntmp/\n!node_modules/\n",
	     "debug.log=x\n", "keep.log=kept\n", "dist/", "dist/bundle.js=b\n",
	     "node_modules/", "node_modules/x/", "node_modules/x/index.js=x\n",
	     "lib/", "lib/a.js=a\n", "lib/node_modules/", "lib/node_modules/y.js=y\n",
	     "sub/", "sub/.gitignore=local.txt\n/only-here\n!important.log\n",
	     "sub/local.txt=l\n", "sub/only-here=o\n", "sub/deeper/", "sub/deeper/only-here=d\n",
	     "sub/important.log=i\n", "sub/x.log=x\n", "sub/.git/", "sub/.git/HEAD=ref\n",
	     "vendor/", "vendor/lib/", "vendor/lib/.git=gitdir: ../../.git/modules/lib\n",
	     "vendor/lib/v.js=v\n", "secrets/", "secrets/key=k\n", "secrets/public=p\n",
	     "app.sock|", "tmp/", "tmp/fifo|", ".git/", ".git/config=[core]\n",
	     ".berth/", ".berth/state=s\n");
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	struct pack_stats st;
	assert_int_equal(archive_pack_dir(src, &b, 0, &st, &e), 0);
	int64_t bytes;
	char *got = entries_of(&b, &bytes);
	/* Left out: root .gitignore (/dist/, *.log but keep.log, .env, secrets/ with no way back
	 * for secrets/public, the FIFOs via *.sock and tmp/); sub/.gitignore's rules below sub
	 * only, "/only-here" anchored there, its !important.log beating the root's *.log; every
	 * .git; .berth; node_modules at any depth, which "!node_modules/" cannot undo. */
	assert_string_equal(got,
			    ".gitignore\n"
			    "app.js\n"
			    "keep.log\n"
			    "lib/\n"
			    "lib/a.js\n"
			    "package.json\n"
			    "sub/\n"
			    "sub/.gitignore\n"
			    "sub/deeper/\n"
			    "sub/deeper/only-here\n"
			    "sub/important.log\n"
			    "vendor/\n"
			    "vendor/lib/\n"
			    "vendor/lib/v.js\n");
	assert_int_equal(st.files_packed, 9);
	assert_int_equal(st.dirs_packed, 5);
	assert_int_equal(st.bytes, bytes);
	/* .env app.sock debug.log, sub/{local.txt,only-here,x.log}, vendor/lib/.git */
	assert_int_equal(st.files_ignored, 7);
	/* .berth .git dist node_modules secrets tmp, lib/node_modules, sub/.git */
	assert_int_equal(st.dirs_ignored, 8);
	assert_string_equal(st.source, ".gitignore, node_modules");
	free(got);
	buf_free(&b);
	free(src);
}

static void test_pack_berthignore_python(void **state)
{
	struct fx *f = *state;
	char *src = path_in(f, "src");
	TREE(src,
	     "requirements.txt=flask\n", "app.py=print(1)\n",
	     ".gitignore=*.py\n",  /* not read: .berthignore wins */
	     ".berthignore=.env\n!__pycache__/\n/notes/\n", ".env=SECRET=1\n",
	     "notes/", "notes/n.txt=n\n",
	     /* a local venv: its python is a symlink that would point outside the release (here
	      * dangling); the server refuses such links, so .venv must never be packed */
	     ".venv/", ".venv/bin/", ".venv/bin/python -> /nonexistent/bin/python3.11",
	     ".venv/pyvenv.cfg=home = /nonexistent\n",
	     "tools/", "tools/.venv -> /nonexistent/venv",
	     "__pycache__/", "__pycache__/app.cpython-311.pyc=c",
	     "pkg/", "pkg/m.py=m\n", "pkg/__pycache__/", "pkg/__pycache__/m.pyc=c",
	     "node_modules/", "node_modules/n.js=n\n",   /* no package.json: app content */
	     "sub/", "sub/.git/", "sub/.git/HEAD=ref\n");
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	struct pack_stats st;
	assert_int_equal(archive_pack_dir(src, &b, 0, &st, &e), 0);
	int64_t bytes;
	char *got = entries_of(&b, &bytes);
	assert_string_equal(got,
			    ".berthignore\n"
			    ".gitignore\n"
			    "__pycache__/\n"
			    "__pycache__/app.cpython-311.pyc\n"
			    "app.py\n"
			    "node_modules/\n"
			    "node_modules/n.js\n"
			    "pkg/\n"
			    "pkg/__pycache__/\n"
			    "pkg/__pycache__/m.pyc\n"
			    "pkg/m.py\n"
			    "requirements.txt\n"
			    "sub/\n"
			    "tools/\n");
	assert_string_equal(st.source, ".berthignore, .venv, __pycache__");
	assert_int_equal(st.files_ignored, 2);   /* .env, tools/.venv (a symlink) */
	assert_int_equal(st.dirs_ignored, 3);    /* .venv, notes, sub/.git */
	/* and the server side takes it */
	assert_int_equal(archive_unpack_mem(b.p, b.len, f->dest, NULL, &e), 0);
	free(got);
	buf_free(&b);
	free(src);
}

static void test_pack_berthignore_brings_back_defaults(void **state)
{
	struct fx *f = *state;
	char *src = path_in(f, "src");
	TREE(src, "package.json={}\n", ".berthignore=!node_modules/\n", "node_modules/",
	     "node_modules/x.js=x\n", "a/", "a/node_modules -> ../node_modules", ".git/",
	     ".git/HEAD=ref\n");
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	struct pack_stats st;
	assert_int_equal(archive_pack_dir(src, &b, 0, &st, &e), 0);
	int64_t bytes;
	char *got = entries_of(&b, &bytes);
	/* the directory comes back; the symlink of the same name does not ("/" = directories) */
	assert_string_equal(got, ".berthignore\na/\nnode_modules/\nnode_modules/x.js\npackage.json\n");
	assert_int_equal(st.files_ignored, 1);
	assert_int_equal(st.dirs_ignored, 1);
	assert_string_equal(st.source, ".berthignore, node_modules");
	free(got);
	buf_free(&b);

	/* no ignore file and nothing to leave out but .git */
	char *plain = path_in(f, "plain");
	TREE(plain, "index.html=<p>hi</p>\n", ".git/", "a/", "a/.git=gitdir: x\n");
	assert_int_equal(archive_pack_dir(plain, &b, 0, &st, &e), 0);
	assert_int_equal(st.files_packed, 1);
	assert_int_equal(st.dirs_packed, 1);
	assert_int_equal(st.bytes, 10);
	assert_int_equal(st.files_ignored, 1);
	assert_int_equal(st.dirs_ignored, 1);
	assert_string_equal(st.source, "no ignore file");
	buf_free(&b);
	free(plain);
	free(src);
}

static void expect_pack_error(const char *src, int code, const char *what)
{
	struct buf b = BUF_INIT;
	buf_adds(&b, "keep");
	struct err e = ERR_INIT;
	assert_int_equal(archive_pack_dir(src, &b, 0, NULL, &e), -1);
	assert_int_equal(e.code, code);
	if (!strstr(e.msg, what))
		fail_msg("\"%s\" does not say %s", e.msg, what);
	assert_string_equal(b.p, "keep");
	buf_free(&b);
}

static void test_pack_bad_ignore_files(void **state)
{
	struct fx *f = *state;
	struct buf big = BUF_INIT;
	buf_adds(&big, ".berthignore=# one\n*.log\n");
	for (int i = 0; i < 5000; i++)
		buf_addc(&big, 'x');
	char *a = path_in(f, "a");
	TREE(a, "x=1", big.p);
	expect_pack_error(a, ERR_INVALID, ".berthignore:3: pattern longer than 4096 bytes");

	buf_reset(&big);
	buf_adds(&big, "sub/.gitignore=");
	while (big.len < 1024 * 1024 + 100)
		buf_adds(&big, "# a comment line that is repeated until the file is too big\n");
	char *b = path_in(f, "b");
	TREE(b, "sub/", big.p);
	expect_pack_error(b, ERR_TOOBIG, "sub/.gitignore: ignore file is larger than");

	char *c = path_in(f, "c");   /* a FIFO must be refused, not read (which would block) */
	TREE(c, ".berthignore|");
	expect_pack_error(c, ERR_INVALID, ".berthignore is not a regular file");

	/* a dangling .gitignore symlink is no ignore file (and is packed as the symlink it is) */
	char *d = path_in(f, "d");
	TREE(d, ".gitignore -> nowhere", "x=1");
	struct buf out = BUF_INIT;
	struct err e = ERR_INIT;
	struct pack_stats st;
	assert_int_equal(archive_pack_dir(d, &out, 0, &st, &e), 0);
	assert_int_equal(st.files_packed, 2);
	assert_string_equal(st.source, "no ignore file");
	buf_free(&out);
	buf_free(&big);
	free(a);
	free(b);
	free(c);
	free(d);
}

/* ---- unpack: hostile archives ---- */

static void test_refuse_absolute(void **state)
{
	REFUSED(*state, "/tmp/berth-evil", { .name = "/tmp/berth-evil", .data = "x" });
	assert_false(fs_exists("/tmp/berth-evil"));
}

static void test_refuse_dotdot(void **state)
{
	struct fx *f = *state;
	REFUSED(f, "../evil", { .name = "ok.txt", .data = "fine" }, { .name = "../evil", .data = "x" });
	REFUSED(f, "a/../../evil", { .name = "a/../../evil", .data = "x" });
	REFUSED(f, "a/../b", { .name = "a/../b", .data = "x" });
	/* (the writer gives directory names a trailing slash) */
	REFUSED(f, "../", { .name = "..", .type = AE_IFDIR });
	REFUSED(f, "sub/../", { .name = "sub/..", .type = AE_IFDIR });
}

static void test_refuse_empty_name(void **state)
{
	/* The pax writer refuses an empty name, so write one ustar header by hand. */
	struct fx *f = *state;
	unsigned char blk[512 * 3];
	memset(blk, 0, sizeof blk);
	memcpy(blk + 100, "0000644", 7);          /* mode */
	memcpy(blk + 108, "0000000", 7);          /* uid */
	memcpy(blk + 116, "0000000", 7);          /* gid */
	memcpy(blk + 124, "00000000000", 11);     /* size */
	memcpy(blk + 136, "00000000000", 11);     /* mtime */
	blk[156] = '0';
	memcpy(blk + 257, "ustar", 6);
	memcpy(blk + 263, "00", 2);
	memset(blk + 148, ' ', 8);
	unsigned sum = 0;
	for (int i = 0; i < 512; i++)
		sum += blk[i];
	snprintf((char *)blk + 148, 8, "%06o", sum);
	struct err e = ERR_INIT;
	assert_int_equal(archive_unpack_mem(blk, sizeof blk, f->dest, NULL, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	assert_false(fs_exists(f->dest));
}

static void test_refuse_special_files(void **state)
{
	struct fx *f = *state;
	REFUSED(f, "dev/null2", { .name = "dev", .type = AE_IFDIR },
		{ .name = "dev/null2", .type = AE_IFCHR });
	REFUSED(f, "disk", { .name = "disk", .type = AE_IFBLK });
	REFUSED(f, "pipe", { .name = "pipe", .type = AE_IFIFO });
}

static void test_refuse_hardlink(void **state)
{
	struct fx *f = *state;
	REFUSED(f, "b", { .name = "a", .data = "data" }, { .name = "b", .hardlink = "a" });
	REFUSED(f, "pw", { .name = "pw", .hardlink = "/etc/passwd" });
}

static void test_refuse_symlink_escape(void **state)
{
	struct fx *f = *state;
	REFUSED(f, "etc", { .name = "etc", .type = AE_IFLNK, .link = "/etc" });
	REFUSED(f, "up", { .name = "up", .type = AE_IFLNK, .link = ".." });
	REFUSED(f, "up", { .name = "up", .type = AE_IFLNK, .link = "../out/x" });
	REFUSED(f, "a/b/l", { .name = "a/b/l", .type = AE_IFLNK, .link = "../../../x" });
	REFUSED(f, "l", { .name = "l", .type = AE_IFLNK, .link = "a/../../x" });
	REFUSED(f, "l", { .name = "l", .type = AE_IFLNK, .link = "" });
	/* s resolves to the root; t looks like it climbs three of its four levels lexically, but
	 * through s it would climb out, so ".." after a name is refused outright. */
	REFUSED(f, "a/b/t", { .name = "a/b/s", .type = AE_IFLNK, .link = "../.." },
		{ .name = "a/b/t", .type = AE_IFLNK, .link = "s/../../.." });
}

static void test_refuse_write_through_symlink(void **state)
{
	struct fx *f = *state;
	REFUSED(f, "a/x", { .name = "a", .type = AE_IFLNK, .link = "." },
		{ .name = "a/x", .data = "x" });
	REFUSED(f, "a/x", { .name = "sub", .type = AE_IFDIR },
		{ .name = "a", .type = AE_IFLNK, .link = "sub" },
		{ .name = "a/x", .data = "x" });
	REFUSED(f, "a/d/", { .name = "sub", .type = AE_IFDIR },
		{ .name = "a", .type = AE_IFLNK, .link = "sub" },
		{ .name = "a/d/", .type = AE_IFDIR });
	/* a file entry must not write through an earlier symlink of the same name */
	REFUSED(f, "l", { .name = "target", .data = "keep" },
		{ .name = "l", .type = AE_IFLNK, .link = "target" },
		{ .name = "l", .data = "overwrite" });
	REFUSED(f, "f/x", { .name = "f", .data = "x" }, { .name = "f/x", .data = "x" });
}

static void test_refuse_conflicting_duplicates(void **state)
{
	struct fx *f = *state;
	REFUSED(f, "f/", { .name = "f", .data = "x" }, { .name = "f", .type = AE_IFDIR });
	REFUSED(f, "d", { .name = "d", .type = AE_IFDIR }, { .name = "d", .data = "x" });
	REFUSED(f, "f", { .name = "f", .data = "x" }, { .name = "f", .type = AE_IFLNK, .link = "g" });
	REFUSED(f, "l", { .name = "l", .type = AE_IFLNK, .link = "x" },
		{ .name = "l", .type = AE_IFLNK, .link = "y" });
}

static void test_refuse_unreasonable_names(void **state)
{
	struct fx *f = *state;
	/* 257 directories deep: each entry's walk must stay cheap */
	struct buf deep = BUF_INIT;
	for (int i = 0; i < 257; i++)
		buf_adds(&deep, "d/");
	buf_adds(&deep, "f");
	struct err e = ERR_INIT;
	const struct tent td[] = { { .name = deep.p, .data = "x" } };
	assert_int_equal(unpack_entries(f, td, 1, NULL, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	assert_non_null(strstr(e.msg, "\"d/d/d/d/"));
	assert_non_null(strstr(e.msg, "256 directories"));
	assert_false(fs_exists(f->dest));
	buf_free(&deep);

	char *huge = xmalloc(5001);
	memset(huge, 'n', 5000);
	huge[5000] = 0;
	const struct tent t[] = { { .name = huge, .data = "x" } };
	assert_int_equal(unpack_entries(f, t, 1, NULL, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	assert_non_null(strstr(e.msg, "nnnn..."));  /* shown, but shortened */
	assert_true(strlen(e.msg) < 600);
	assert_false(fs_exists(f->dest));
	free(huge);

	/* control characters are escaped in the message, never printed raw */
	const struct tent ctl[] = { { .name = "/evil\n\x1b[2J", .data = "x" } };
	assert_int_equal(unpack_entries(f, ctl, 1, NULL, &e), -1);
	assert_non_null(strstr(e.msg, "/evil\\x0a\\x1b[2J"));
	assert_null(strchr(e.msg, '\n'));
	assert_false(fs_exists(f->dest));
}

/* ---- unpack: what is allowed ---- */

static void test_unpack_allowed_shapes(void **state)
{
	struct fx *f = *state;
	const struct tent t[] = {
		{ .name = "./", .type = AE_IFDIR },
		{ .name = "./f", .data = "one" },
		{ .name = "f", .data = "two" },               /* a later file replaces an earlier */
		{ .name = "implicit/deep/file", .data = "d" }, /* parents made on the way */
		{ .name = "implicit/", .type = AE_IFDIR, .perm = 0700 },
		{ .name = "a//b/./c", .data = "c" },
		{ .name = "a/l", .type = AE_IFLNK, .link = "../f" },
		{ .name = "a/b/root", .type = AE_IFLNK, .link = "../.." },
		{ .name = "l2", .type = AE_IFLNK, .link = "./a/b/c" },
		{ .name = "suid", .data = "s", .perm = 06755 },
		{ .name = "noperm", .data = "n", .perm = NOPERM },
		{ .name = "closed", .type = AE_IFDIR, .perm = NOPERM },
		{ .name = "closed/inside", .data = "i" },
	};
	struct err e = ERR_INIT;
	assert_int_equal(unpack_entries(f, t, sizeof t / sizeof t[0], NULL, &e), 0);
	struct { const char *rel, *want; } files[] = {
		{ "f", "two" }, { "implicit/deep/file", "d" }, { "a/b/c", "c" }, { "a/l", "two" },
		{ "a/b/root/f", "two" }, { "l2", "c" }, { "closed/inside", "i" },
	};
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		char *p = xasprintf("%s/%s", f->dest, files[i].rel);
		char *s = read_text(p);
		assert_non_null(s);
		assert_string_equal(s, files[i].want);
		free(s);
		free(p);
	}
	struct { const char *rel; mode_t mode; } modes[] = {
		{ "suid", 0755 }, { "noperm", 0600 }, { "closed", 0700 }, { "implicit", 0700 },
		{ "implicit/deep", 0755 },
	};
	for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
		char *p = xasprintf("%s/%s", f->dest, modes[i].rel);
		struct stat st;
		assert_int_equal(stat(p, &st), 0);
		assert_int_equal(st.st_mode & 07777, modes[i].mode);
		free(p);
	}
}

static void test_unpack_plain_tar_and_file(void **state)
{
	struct fx *f = *state;
	const struct tent t[] = { { .name = "hello.txt", .data = "hello" } };
	struct buf b = BUF_INIT;
	build_tar(&b, t, 1, PLAIN);
	char *tarball = path_in(f, "app.tar");
	assert_int_equal(fs_write_atomic(tarball, b.p, b.len, 0644, &(struct err)ERR_INIT), 0);
	struct err e = ERR_INIT;
	assert_int_equal(archive_unpack_safe(tarball, f->dest, NULL, &e), 0);
	char *p = xasprintf("%s/hello.txt", f->dest);
	char *s = read_text(p);
	assert_string_equal(s, "hello");
	free(s);
	free(p);

	char *missing = path_in(f, "missing.tar.gz");
	char *dest2 = path_in(f, "out2");
	assert_int_equal(archive_unpack_safe(missing, dest2, NULL, &e), -1);
	assert_int_equal(e.code, ERR_NOTFOUND);
	assert_false(fs_exists(dest2));
	free(missing);
	free(dest2);
	free(tarball);
	buf_free(&b);
}

static void test_unpack_dest_rules(void **state)
{
	struct fx *f = *state;
	const struct tent t[] = { { .name = "x", .data = "new" } };
	struct buf b = BUF_INIT;
	build_tar(&b, t, 1, GZ);
	/* dest exists: refused, and the existing directory is left alone */
	assert_int_equal(mkdir(f->dest, 0700), 0);
	char *keep = xasprintf("%s/keep", f->dest);
	write_file(keep, "mine", 0644);
	struct err e = ERR_INIT;
	assert_int_equal(archive_unpack_mem(b.p, b.len, f->dest, NULL, &e), -1);
	assert_int_equal(e.code, ERR_CONFLICT);
	assert_true(fs_exists(keep));
	/* garbage into an existing dest must not remove it either */
	assert_int_equal(archive_unpack_mem("garbage", 7, f->dest, NULL, &e), -1);
	assert_true(fs_exists(keep));
	/* missing parent: refused, nothing created */
	char *orphan = path_in(f, "no/such/parent");
	assert_int_equal(archive_unpack_mem(b.p, b.len, orphan, NULL, &e), -1);
	char *no = path_in(f, "no");
	assert_false(fs_exists(no));
	free(no);
	free(orphan);
	free(keep);
	buf_free(&b);
}

/* ---- unpack: limits and garbage ---- */

static void test_unpack_byte_limit(void **state)
{
	struct fx *f = *state;
	char big[601];
	memset(big, 'z', 600);
	big[600] = 0;
	const struct tent t[] = { { .name = "one", .data = big }, { .name = "two", .data = big } };
	struct unpack_limits lim = { .max_total_bytes = 1000 };
	struct err e = ERR_INIT;
	assert_int_equal(unpack_entries(f, t, 2, &lim, &e), -1);
	assert_int_equal(e.code, ERR_TOOBIG);
	assert_non_null(strstr(e.msg, "1000"));
	assert_non_null(strstr(e.msg, "\"two\""));
	assert_false(fs_exists(f->dest));

	lim.max_total_bytes = 1200;
	assert_int_equal(unpack_entries(f, t, 2, &lim, &e), 0);
}

static void test_unpack_entry_limit(void **state)
{
	struct fx *f = *state;
	const struct tent t[] = {
		{ .name = "d", .type = AE_IFDIR }, { .name = "d/1", .data = "1" },
		{ .name = "d/2", .data = "2" }, { .name = "d/3", .data = "3" },
		{ .name = "l", .type = AE_IFLNK, .link = "d" },
	};
	struct unpack_limits lim = { .max_entries = 4 };
	struct err e = ERR_INIT;
	assert_int_equal(unpack_entries(f, t, 5, &lim, &e), -1);
	assert_int_equal(e.code, ERR_TOOBIG);
	assert_non_null(strstr(e.msg, "4"));
	assert_false(fs_exists(f->dest));

	lim.max_entries = 5;
	assert_int_equal(unpack_entries(f, t, 5, &lim, &e), 0);
}

static void expect_garbage(struct fx *f, const void *data, size_t n)
{
	struct err e = ERR_INIT;
	assert_int_equal(archive_unpack_mem(data, n, f->dest, NULL, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	assert_false(fs_exists(f->dest));
	assert_int_equal(count_dir(f->tmp), 0);
}

static void write_other_format(struct buf *out, int zip)
{
	struct archive *a = archive_write_new();
	if (zip)
		archive_write_set_format_zip(a);
	else
		archive_write_set_format_cpio(a);
	assert_int_equal(archive_write_open2(a, out, NULL, to_buf, NULL, NULL), ARCHIVE_OK);
	struct archive_entry *ent = archive_entry_new();
	archive_entry_copy_pathname(ent, "x");
	archive_entry_set_filetype(ent, AE_IFREG);
	archive_entry_set_perm(ent, 0644);
	archive_entry_set_size(ent, 1);
	assert_int_equal(archive_write_header(a, ent), ARCHIVE_OK);
	assert_int_equal(archive_write_data(a, "x", 1), 1);
	archive_entry_free(ent);
	archive_write_close(a);
	archive_write_free(a);
}

static void test_unpack_garbage(void **state)
{
	struct fx *f = *state;
	unsigned char noise[4096];
	uint32_t x = 88172645u;
	for (size_t i = 0; i < sizeof noise; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		noise[i] = (unsigned char)x;
	}
	expect_garbage(f, noise, sizeof noise);
	static const char fake_gz[] = "\x1f\x8b\x08\x00garbage after a gzip magic";
	expect_garbage(f, fake_gz, sizeof fake_gz - 1);

	struct buf b = BUF_INIT;
	write_other_format(&b, 1);
	expect_garbage(f, b.p, b.len);
	buf_reset(&b);
	write_other_format(&b, 0);
	expect_garbage(f, b.p, b.len);
	buf_reset(&b);

	/* A tar.gz cut short after its first file: dest was created, and must be gone again. */
	char big[3000];
	memset(big, 'q', sizeof big - 1);
	big[sizeof big - 1] = 0;
	const struct tent t[] = { { .name = "first", .data = "1" }, { .name = "second", .data = big } };
	build_tar(&b, t, 2, PLAIN);
	expect_garbage(f, b.p, 512 * 3 + 100);
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pack_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pack_sorted_relative_deterministic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pack_refuses_fifo, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pack_too_big, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pack_missing_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pack_gitignore, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pack_berthignore_python, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pack_berthignore_brings_back_defaults, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_pack_bad_ignore_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refuse_absolute, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refuse_dotdot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refuse_empty_name, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refuse_special_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refuse_hardlink, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refuse_symlink_escape, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refuse_write_through_symlink, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refuse_conflicting_duplicates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refuse_unreasonable_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unpack_allowed_shapes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pack_utf8_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unpack_plain_tar_and_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unpack_dest_rules, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unpack_byte_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unpack_entry_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unpack_garbage, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
