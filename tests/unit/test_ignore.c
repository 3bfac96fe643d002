/* test_ignore: the gitignore matcher (src/archive/ignore.c), with no filesystem.
 * The table is the contract: every row was checked against `git check-ignore` (git 2.39) when
 * it was written, git's quirks included. The other tests pin what the table cannot: the limits
 * (errors naming file:line), the walk helpers, and that '*' / '**' cannot blow up. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "archive/ignore.h"
#include "util/buf.h"

enum { KEEP = 0, IGN = 1 };

/* root: the app's root ignore file (NULL: none); sub: the one in directory "sub". A path
 * ending in '/' is a directory. */
static const struct row {
	const char *root, *sub, *path;
	int want;
	const char *why;
} table[] = {
	{ "", NULL, "a", KEEP, "no rules" },
	{ "\n\n# c\n", NULL, "# c", KEEP, "a comment is not a pattern" },
	{ "#c\n", NULL, "#c", KEEP, "'#' starts a comment" },
	{ "\\#c\n", NULL, "#c", IGN, "'\\#' is a literal '#'" },
	{ "\\!imp\n", NULL, "!imp", IGN, "'\\!' is a literal '!'" },
	{ "!imp\n", NULL, "imp", KEEP, "negating nothing" },
	{ "foo   \n", NULL, "foo", IGN, "trailing spaces dropped" },
	{ "foo\\ \n", NULL, "foo ", IGN, "escaped trailing space kept" },
	{ "foo\\ \n", NULL, "foo", KEEP, "escaped trailing space is part of the name" },
	{ "foo\r\nbar\r\n", NULL, "bar", IGN, "CRLF line ends" },
	{ "\xef\xbb\xbf" "foo\n", NULL, "foo", IGN, "UTF-8 BOM dropped" },
	{ " foo\n", NULL, "foo", KEEP, "leading spaces are significant" },
	{ " foo\n", NULL, " foo", IGN, "leading spaces are significant" },
	{ "foo", NULL, "foo", IGN, "no final newline" },
	{ "*.log\n!keep.log\n", NULL, "keep.log", KEEP, "negation re-includes" },
	{ "*.log\n!keep.log\n", NULL, "d/a.log", IGN, "*.log at any depth" },
	{ "!keep.log\n*.log\n", NULL, "keep.log", IGN, "the last match wins" },
	{ "build/\n!build/keep.txt\n", NULL, "build/keep.txt", IGN,
	  "no re-include under an excluded directory" },
	{ "build/*\n!build/keep.txt\n", NULL, "build/keep.txt", KEEP,
	  "re-include when only the contents are excluded" },
	{ "/*\n!/src/\n", NULL, "src/main.c", KEEP, "whitelist: /* then !/src/" },
	{ "/*\n!/src/\n", NULL, "lib/x.c", IGN, "whitelist: everything else" },
	{ "a/**\n!a/k\n", NULL, "a/k", KEEP, "a/** then !a/k" },
	{ "a/**\n!a/k\n", NULL, "a/d/k", IGN, "a/** then !a/k: a/d is excluded" },
	{ "build/\n", NULL, "build", KEEP, "trailing '/': not a file" },
	{ "build/\n", NULL, "build/", IGN, "trailing '/': a directory" },
	{ "build/\n", NULL, "x/build/", IGN, "trailing '/': at any depth" },
	{ "build/\n", NULL, "build/x", IGN, "inside an excluded directory" },
	{ "/dist\n", NULL, "dist", IGN, "leading '/' anchors" },
	{ "/dist\n", NULL, "sub/dist", KEEP, "leading '/' anchors" },
	{ "doc/frotz\n", NULL, "doc/frotz", IGN, "middle '/' anchors" },
	{ "doc/frotz\n", NULL, "a/doc/frotz", KEEP, "middle '/' anchors" },
	{ "frotz\n", NULL, "a/b/frotz", IGN, "no '/': any depth" },
	{ "*.c\n", NULL, "a/b/x.c", IGN, "*.c at any depth" },
	{ "a/*.c\n", NULL, "a/x.c", IGN, "a/*.c" },
	{ "a/*.c\n", NULL, "a/b/x.c", KEEP, "'*' does not match '/'" },
	{ "x/a?c\n", NULL, "x/a/c", KEEP, "'?' does not match '/'" },
	{ "x/a?c\n", NULL, "x/abc", IGN, "'?' matches one byte" },
	{ "x/*z\n", NULL, "x/y/z", KEEP, "'*' stays in one component" },
	{ "[a-c]x\n", NULL, "bx", IGN, "range" },
	{ "[a-c]x\n", NULL, "dx", KEEP, "range" },
	{ "[!a-c]x\n", NULL, "dx", IGN, "'!' negates a class" },
	{ "[!a-c]x\n", NULL, "bx", KEEP, "'!' negates a class" },
	{ "[^a-c]x\n", NULL, "dx", IGN, "'^' negates a class" },
	{ "[]]x\n", NULL, "]x", IGN, "']' first is a member" },
	{ "[a-]x\n", NULL, "-x", IGN, "'-' last is a member" },
	{ "[a-c-e]\n", NULL, "-", IGN, "'-' after a range is a member" },
	{ "[a-c-e]\n", NULL, "d", KEEP, "'-' after a range is a member" },
	{ "x[/]y\n", NULL, "x/y", KEEP, "a class never matches '/'" },
	{ "x[!a]y\n", NULL, "x/y", KEEP, "a negated class never matches '/'" },
	{ "[[:digit:]]*\n", NULL, "1a", IGN, "[:digit:]" },
	{ "[[:digit:]]*\n", NULL, "a1", KEEP, "[:digit:]" },
	{ "[[:bogus:]]\n", NULL, "b", KEEP, "unknown class: never matches" },
	{ "[abc\n", NULL, "[abc", KEEP, "unterminated '[': never matches" },
	{ "foo\\\n", NULL, "foo", KEEP, "trailing '\\': never matches" },
	{ "\\*\n", NULL, "*", IGN, "'\\*' is a literal '*'" },
	{ "\\*\n", NULL, "a", KEEP, "'\\*' is a literal '*'" },
	{ "\\[a]\n", NULL, "[a]", IGN, "'\\[' is a literal '['" },
	{ "**/foo\n", NULL, "foo", IGN, "leading **/: zero directories" },
	{ "**/foo\n", NULL, "a/b/foo", IGN, "leading **/: any directories" },
	{ "**/foo/bar\n", NULL, "x/foo/bar", IGN, "leading **/ then a path" },
	{ "**/foo/bar\n", NULL, "x/foo/y/bar", KEEP, "leading **/ then a path" },
	{ "abc/**\n", NULL, "abc/x/y", IGN, "trailing /**" },
	{ "abc/**\n", NULL, "abc/", KEEP, "trailing /** is not the directory itself" },
	{ "a/**/b\n", NULL, "a/b", IGN, "middle /**/: zero directories" },
	{ "a/**/b\n", NULL, "a/x/y/b", IGN, "middle /**/: several" },
	{ "a/**/b\n", NULL, "ab", KEEP, "middle /**/ keeps its slashes" },
	{ "a/**/**/b\n", NULL, "a/b", IGN, "two **/ in a row" },
	{ "a**b\n", NULL, "axyb", IGN, "** glued to a name is '*'" },
	{ "x/a**b\n", NULL, "x/ax/yb", KEEP, "** glued to a name is '*'" },
	{ "foo**/bar\n", NULL, "foox/y/bar", IGN, "git quirk: ** right after the literal head" },
	{ "foo**/bar\n", NULL, "foobar", IGN, "git quirk: ** right after the literal head" },
	{ "**\n", NULL, "a/b/c", IGN, "** alone" },
	{ "a/**\\/b\n", NULL, "a/b", KEEP, "escaped '/' after **: no zero-directory shortcut" },
	{ "a/**\\/b\n", NULL, "a/x/y/b", IGN, "escaped '/' after **" },
	{ "*.log\n", "!keep.log\n", "sub/keep.log", KEEP, "a deeper file wins" },
	{ "*.log\n", "!keep.log\n", "keep.log", IGN, "a deeper file applies only below it" },
	{ "*.log\n", "!keep.log\n", "other/keep.log", IGN, "a deeper file applies only below it" },
	{ "!x\n", "x\n", "sub/x", IGN, "a deeper file wins" },
	{ NULL, "/only\n", "sub/only", IGN, "'/' anchors to the file's directory" },
	{ NULL, "/only\n", "sub/d/only", KEEP, "'/' anchors to the file's directory" },
	{ NULL, "/only\n", "only", KEEP, "'/' anchors to the file's directory" },
	{ NULL, "d/e\n", "sub/d/e", IGN, "middle '/' anchors to the file's directory" },
	{ NULL, "d/\n", "sub/a/d/", IGN, "nested: no '/' in the middle: any depth below" },
	{ "sub/\n", "!keep\n", "sub/keep", IGN, "nested negation under an excluded directory" },
	{ NULL, "*\n", "sub/", KEEP, "a directory's own file cannot exclude it" },
};

static struct ignore *load(const char *root, const char *sub)
{
	struct ignore *ig = ignore_new();
	struct err e = ERR_INIT;
	if (root)
		assert_int_equal(ignore_add_file(ig, "", ".gitignore", root, strlen(root), &e), 0);
	if (sub)
		assert_int_equal(ignore_add_file(ig, "sub", "sub/.gitignore", sub, strlen(sub), &e),
				 0);
	return ig;
}

/* ignore_match on path, where a trailing '/' means a directory */
static bool matches(const struct ignore *ig, const char *path)
{
	size_t n = strlen(path);
	bool dir = n && path[n - 1] == '/';
	char *p = xstrndup(path, dir ? n - 1 : n);
	bool hit = ignore_match(ig, p, dir);
	free(p);
	return hit;
}

static void test_table(void **state)
{
	int bad = 0;
	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
		const struct row *r = &table[i];
		struct ignore *ig = load(r->root, r->sub);
		if (matches(ig, r->path) != (r->want == IGN)) {
			print_error("row %zu (%s): \"%s\" should be %s\n", i, r->why, r->path,
				    r->want == IGN ? "ignored" : "kept");
			bad++;
		}
		ignore_free(ig);
	}
	assert_int_equal(bad, 0);
}

/* ignore_match_entry answers for the path alone; ignore_match adds git's parent rule. */
static void test_entry_versus_parents(void **state)
{
	struct ignore *ig = load("build/\n!build/keep.txt\n", NULL);
	assert_false(ignore_match_entry(ig, "build/keep.txt", false));
	assert_true(ignore_match(ig, "build/keep.txt", false));
	assert_true(ignore_match_entry(ig, "build", true));
	assert_false(ignore_match_entry(ig, "build", false));
	ignore_free(ig);

	ig = ignore_new();  /* no files at all */
	assert_false(ignore_match(ig, "a/b", false));
	ignore_free(ig);
}

static void test_mark_rewind(void **state)
{
	struct ignore *ig = load("*.log\n", NULL);
	struct err e = ERR_INIT;
	size_t mark = ignore_mark(ig);
	const char *sub = "!keep.log\n";
	/* a base given with a trailing '/' means the same directory */
	assert_int_equal(ignore_add_file(ig, "sub/", "sub/.gitignore", sub, strlen(sub), &e), 0);
	assert_false(ignore_match(ig, "sub/keep.log", false));
	assert_true(ignore_match(ig, "subx/keep.log", false));
	ignore_rewind(ig, mark);
	assert_int_equal(ignore_mark(ig), mark);
	assert_true(ignore_match(ig, "sub/keep.log", false));
	ignore_free(ig);
	ignore_free(NULL);
}

static void expect_error(const char *data, size_t n, int code, const char *where)
{
	struct ignore *ig = ignore_new();
	struct err e = ERR_INIT;
	assert_int_equal(ignore_add_file(ig, "a/b", "a/b/.gitignore", data, n, &e), -1);
	assert_int_equal(e.code, code);
	if (!strstr(e.msg, where))
		fail_msg("\"%s\" does not name %s", e.msg, where);
	assert_int_equal(ignore_mark(ig), 0);   /* nothing of the file was added */
	ignore_free(ig);
}

static void test_limits(void **state)
{
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	struct ignore *ig = ignore_new();

	/* a pattern of exactly IGNORE_MAX_PATTERN bytes is fine, one more is not */
	buf_adds(&b, "# fine\n");
	for (int i = 0; i < IGNORE_MAX_PATTERN; i++)
		buf_addc(&b, 'x');
	buf_addc(&b, '\n');
	assert_int_equal(ignore_add_file(ig, "", ".gitignore", b.p, b.len, &e), 0);
	for (int i = 0; i <= IGNORE_MAX_PATTERN; i++)
		buf_addc(&b, 'y');
	buf_addc(&b, '\n');
	expect_error(b.p, b.len, ERR_INVALID, "a/b/.gitignore:3: pattern longer than 4096 bytes");

	/* the limit is on patterns: a long comment, or trailing spaces that are dropped, pass */
	buf_reset(&b);
	buf_addc(&b, '#');
	for (int i = 0; i < 2 * IGNORE_MAX_PATTERN; i++)
		buf_addc(&b, 'c');
	buf_adds(&b, "\nfoo");
	for (int i = 0; i < 2 * IGNORE_MAX_PATTERN; i++)
		buf_addc(&b, ' ');
	assert_int_equal(ignore_add_file(ig, "", ".gitignore", b.p, b.len, &e), 0);
	assert_true(ignore_match(ig, "foo", false));

	/* IGNORE_MAX_FILE bytes is fine, one more is refused before any parsing */
	buf_reset(&b);
	while (b.len < IGNORE_MAX_FILE)
		buf_adds(&b, "# padding padding padding padding padding padding padding padding\n");
	b.len = IGNORE_MAX_FILE;
	assert_int_equal(ignore_add_file(ig, "", ".gitignore", b.p, b.len, &e), 0);
	buf_addc(&b, '\n');
	expect_error(b.p, b.len, ERR_TOOBIG,
		     "a/b/.gitignore: ignore file is larger than 1048576 bytes");

	/* a NUL byte is not text: refused, naming its line */
	expect_error("a\nb\n c\0d\n", 9, ERR_INVALID, "a/b/.gitignore:3: NUL byte");
	ignore_free(ig);
	buf_free(&b);
}

/* Patterns that make a backtracking matcher take exponential or high-polynomial time. The
 * NFA answers each in (pattern x path) steps; a regression would hang here, not fail. */
static void test_bounded_cost(void **state)
{
	struct buf pat = BUF_INIT, path = BUF_INIT;
	struct err e = ERR_INIT;
	for (int i = 0; i < 200; i++)
		buf_adds(&pat, "*a");
	buf_adds(&pat, "*b\n");
	for (int i = 0; i < 1000; i++)
		buf_addc(&path, 'a');
	struct ignore *ig = ignore_new();
	assert_int_equal(ignore_add_file(ig, "", ".gitignore", pat.p, pat.len, &e), 0);
	assert_false(ignore_match(ig, path.p, false));
	buf_addc(&path, 'b');
	assert_true(ignore_match(ig, path.p, false));
	ignore_free(ig);

	buf_reset(&pat);
	buf_reset(&path);
	for (int i = 0; i < 200; i++)
		buf_adds(&pat, "**/a*/");
	buf_adds(&pat, "x\n");
	for (int i = 0; i < 300; i++)
		buf_adds(&path, "a/");
	buf_addc(&path, 'y');
	ig = ignore_new();
	assert_int_equal(ignore_add_file(ig, "", ".gitignore", pat.p, pat.len, &e), 0);
	assert_false(ignore_match(ig, path.p, false));   /* 300 parents asked too */
	path.p[path.len - 1] = 'x';
	assert_true(ignore_match(ig, path.p, false));
	ignore_free(ig);
	buf_free(&pat);
	buf_free(&path);
}

/* The bare wildmatch, as the fuzzer uses it. */
static void test_wildmatch(void **state)
{
	static const struct { const char *pat, *text; bool want; } w[] = {
		{ "a/**/b", "a/b", true },
		{ "a/**/b", "a/x/y/b", true },
		{ "a/**/b", "a/xb", false },
		{ "**/b", "b", true },
		{ "**/b", "xb", false },
		{ "**/b", "x/y/b", true },
		{ "a/**", "a/", true },
		{ "a**b", "a/b", false },
		{ "*", "", true },
		{ "?", "", false },
		{ "[a-c]", "/", false },
		{ "[!a-c]", "/", false },
		{ "\\", "\\", false },
		{ "[", "[", false },
		{ "", "", true },
	};
	for (size_t i = 0; i < sizeof w / sizeof w[0]; i++)
		if (ignore_wildmatch(w[i].pat, strlen(w[i].pat), w[i].text, strlen(w[i].text)) !=
		    w[i].want)
			fail_msg("wildmatch(\"%s\", \"%s\") should be %d", w[i].pat, w[i].text,
				 w[i].want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_entry_versus_parents),
		cmocka_unit_test(test_mark_rewind),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_bounded_cost),
		cmocka_unit_test(test_wildmatch),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
