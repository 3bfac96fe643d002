/* fuzz_ignore: libFuzzer harness for the gitignore matcher (src/archive/ignore.c).
 * Input: an ignore file, then a NUL, then paths to ask about, one a line ("d/" = a directory);
 * without a NUL, the whole input is the ignore file and a fixed list of paths is asked.
 * Beyond "no crash, no leak, no hang" (the matcher must stay fast whatever the '*'s), it checks:
 *  - every failure says why;
 *  - the same file added for directory "sub" says of "sub/P" what it says of P at the root;
 *  - ignore_match is the parent rule over ignore_match_entry;
 *  - the first short pattern lines agree with a reference wildmatch: a straight backtracking
 *    reimplementation of git's (rsync's) dowild(), independent of the NFA under test. */
#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "archive/ignore.h"
#include "util/buf.h"

static void die(const char *what, const char *a, const char *b)
{
	fprintf(stderr, "fuzz_ignore: %s: [%s] [%s]\n", what, a, b ? b : "");
	abort();
}

/* ---- reference: git's wildmatch with WM_PATHNAME, backtracking ---- */

enum { R_MATCH = 0, R_NOMATCH = 1, R_ABORT_ALL = -1, R_ABORT_TO_STARSTAR = -2, R_GAVE_UP = -3 };

/* Backtracking can take exponential time (that is why ignore.c does not): the reference gives
 * up after this many steps, and the comparison is skipped. */
static long budget;

static bool is_glob_special(unsigned char c)
{
	return c == '*' || c == '?' || c == '[' || c == '\\';
}

static int ref_class(const unsigned char *s, int len, unsigned char c)
{
#define CC(name, test) \
	if (len == (int)strlen(name) && !memcmp(s, name, (size_t)len)) \
		return (test) != 0
	CC("alnum", isalnum(c));
	CC("alpha", isalpha(c));
	CC("blank", c == ' ' || c == '\t');
	CC("cntrl", iscntrl(c));
	CC("digit", isdigit(c));
	CC("graph", isgraph(c));
	CC("lower", islower(c));
	CC("print", isprint(c));
	CC("punct", ispunct(c));
	CC("space", isspace(c));
	CC("upper", isupper(c));
	CC("xdigit", isxdigit(c));
#undef CC
	return -1;
}

static int dowild(const unsigned char *p, const unsigned char *text)
{
	const unsigned char *pattern = p;
	unsigned char p_ch;
	if (--budget < 0)
		return R_GAVE_UP;
	for (; (p_ch = *p) != 0; text++, p++) {
		int matched, match_slash, negated;
		unsigned char t_ch, prev_ch;
		if ((t_ch = *text) == 0 && p_ch != '*')
			return R_ABORT_ALL;
		switch (p_ch) {
		case '\\':
			p_ch = *++p;
			/* fall through */
		default:
			if (t_ch != p_ch)
				return R_NOMATCH;
			continue;
		case '?':
			if (t_ch == '/')
				return R_NOMATCH;
			continue;
		case '*':
			if (*++p == '*') {
				const unsigned char *prev_p = p - 2;
				while (*++p == '*') {
				}
				if ((prev_p < pattern || *prev_p == '/') &&
				    (*p == 0 || *p == '/' || (p[0] == '\\' && p[1] == '/'))) {
					if (p[0] == '/') {
						int r = dowild(p + 1, text);
						if (r == R_MATCH || r == R_GAVE_UP)
							return r;
					}
					match_slash = 1;
				} else {
					match_slash = 0;
				}
			} else {
				match_slash = 0;
			}
			if (*p == 0) {
				if (!match_slash && strchr((const char *)text, '/'))
					return R_NOMATCH;
				return R_MATCH;
			} else if (!match_slash && *p == '/') {
				const char *slash = strchr((const char *)text, '/');
				if (!slash)
					return R_NOMATCH;
				text = (const unsigned char *)slash;
				break;
			}
			for (;;) {
				if (t_ch == 0)
					break;
				if (--budget < 0)
					return R_GAVE_UP;
				if (!is_glob_special(*p)) {
					p_ch = *p;
					while ((t_ch = *text) != 0 && (match_slash || t_ch != '/')) {
						if (t_ch == p_ch)
							break;
						text++;
					}
					if (t_ch != p_ch)
						return R_NOMATCH;
				}
				if ((matched = dowild(p, text)) != R_NOMATCH) {
					if (!match_slash || matched != R_ABORT_TO_STARSTAR)
						return matched;
				} else if (!match_slash && t_ch == '/') {
					return R_ABORT_TO_STARSTAR;
				}
				t_ch = *++text;
			}
			return R_ABORT_ALL;
		case '[':
			p_ch = *++p;
			if (p_ch == '^')
				p_ch = '!';
			negated = p_ch == '!';
			if (negated)
				p_ch = *++p;
			prev_ch = 0;
			matched = 0;
			do {
				if (!p_ch)
					return R_ABORT_ALL;
				if (p_ch == '\\') {
					p_ch = *++p;
					if (!p_ch)
						return R_ABORT_ALL;
					if (t_ch == p_ch)
						matched = 1;
				} else if (p_ch == '-' && prev_ch && p[1] && p[1] != ']') {
					p_ch = *++p;
					if (p_ch == '\\') {
						p_ch = *++p;
						if (!p_ch)
							return R_ABORT_ALL;
					}
					if (t_ch <= p_ch && t_ch >= prev_ch)
						matched = 1;
					p_ch = 0;
				} else if (p_ch == '[' && p[1] == ':') {
					const unsigned char *s;
					for (s = p += 2; (p_ch = *p) && p_ch != ']'; p++) {
					}
					if (!p_ch)
						return R_ABORT_ALL;
					int i = (int)(p - s - 1);
					if (i < 0 || p[-1] != ':') {
						p = s - 2;
						p_ch = '[';
						if (t_ch == p_ch)
							matched = 1;
						continue;
					}
					int r = ref_class(s, i, t_ch);
					if (r < 0)
						return R_ABORT_ALL;
					if (r)
						matched = 1;
					p_ch = 0;
				} else if (t_ch == p_ch) {
					matched = 1;
				}
			} while (prev_ch = p_ch, (p_ch = *++p) != ']');
			if (matched == negated || t_ch == '/')
				return R_NOMATCH;
			continue;
		}
	}
	return *text ? R_NOMATCH : R_MATCH;
}

/* ---- the checks ---- */

static const char *const default_paths[] = {
	"a", "a/", "a/b", "a/b/", "a/b/c", "foo", "foo/bar", "x/foo/bar", "build/", "build/keep.txt",
	"node_modules/", "src/main.c", ".env", "deep/er/path/file.log", "#x", "!x", "a b", "a\\b",
	"[a]", "*", "?", "sub/", "sub/x",
};

static bool normal_path(const char *p)
{
	return *p && *p != '/' && !strstr(p, "//") && p[strlen(p) - 1] != '/';
}

static void check_path(const struct ignore *ig, const struct ignore *sub, const char *line,
		       const char *file, size_t filelen)
{
	size_t n = strlen(line);
	bool dir = n && line[n - 1] == '/';
	char *path = strndup(line, dir ? n - 1 : n);
	if (!path)
		abort();
	bool hit = ignore_match(ig, path, dir);

	/* the parent rule, spelled out */
	bool want = false;
	for (char *s = strchr(path, '/'); s && !want; s = strchr(s + 1, '/')) {
		*s = 0;
		want = *path && ignore_match_entry(ig, path, true);
		*s = '/';
	}
	if (!want)
		want = ignore_match_entry(ig, path, dir);
	if (hit != want)
		die("ignore_match is not the parent rule over ignore_match_entry", path, NULL);

	/* relocation: the file under "sub" says of "sub/P" what it says of P */
	if (normal_path(path)) {
		char *moved = xasprintf("sub/%s", path);
		if (ignore_match(sub, moved, dir) != hit)
			die("a file in sub/ judges sub/P unlike P at the root", path, NULL);
		free(moved);
	}

	/* the first short pattern lines against the reference wildmatch */
	if (n > 64) {
		free(path);
		return;
	}
	for (size_t i = 0, lines = 0; i < filelen && lines < 16; lines++) {
		const char *l = file + i, *nl = memchr(l, '\n', filelen - i);
		size_t len = nl ? (size_t)(nl - l) : filelen - i;
		i += len + 1;
		if (len > 40 || memchr(l, 0, len))
			continue;
		char *pat = strndup(l, len);
		if (!pat)
			abort();
		budget = 20000;
		int r = dowild((const unsigned char *)pat, (const unsigned char *)path);
		bool ref = r == R_MATCH;
		if (r != R_GAVE_UP && ignore_wildmatch(pat, len, path, strlen(path)) != ref)
			die(ref ? "reference matches, ignore_wildmatch does not"
				: "ignore_wildmatch matches, reference does not", pat, path);
		free(pat);
	}
	free(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	const char *nul = memchr(in, 0, size);
	size_t filelen = nul ? (size_t)(nul - in) : size;

	struct err e = ERR_INIT;
	struct ignore *whole = ignore_new();   /* NUL bytes and all: must fail cleanly or not */
	if (ignore_add_file(whole, "", ".gitignore", in, size, &e) < 0 && (!e.code || !e.msg[0]))
		die("failure without an error message", "whole input", NULL);
	ignore_free(whole);

	struct ignore *ig = ignore_new(), *sub = ignore_new();
	e = (struct err)ERR_INIT;
	if (ignore_add_file(ig, "", ".gitignore", in, filelen, &e) < 0) {
		if (!e.code || !e.msg[0])
			die("failure without an error message", ".gitignore", NULL);
		goto out;
	}
	if (ignore_add_file(sub, "sub", "sub/.gitignore", in, filelen, &e) < 0)
		die("accepted at the root, refused in sub/", e.msg, NULL);

	if (nul) {
		const char *p = nul + 1, *end = in + size;
		for (int k = 0; p < end && k < 64; k++) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
			if (len <= 256 && !memchr(p, 0, len)) {
				char *line = strndup(p, len);
				if (!line)
					abort();
				check_path(ig, sub, line, in, filelen);
				free(line);
			}
			p += len + 1;
		}
	} else {
		for (size_t k = 0; k < sizeof default_paths / sizeof default_paths[0]; k++)
			check_path(ig, sub, default_paths[k], in, filelen);
	}
out:
	ignore_free(ig);
	ignore_free(sub);
	return 0;
}
