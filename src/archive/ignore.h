/* archive/ignore: gitignore-syntax rules, and whether a path inside an app directory matches
 * them. Pure: no filesystem access (the packer reads the files and feeds their bytes in), so
 * it can be unit-tested and fuzzed on its own.
 *
 * Syntax and meaning are git's (gitignore(5)): blank lines and lines starting with '#' are
 * skipped; "\#" and "\!" start a pattern with a literal '#' or '!'; trailing spaces are dropped
 * unless escaped ("foo\ "); a trailing CR and a UTF-8 BOM are dropped; '!' negates; a trailing
 * '/' matches directories only; a '/' at the start or in the middle anchors the pattern to the
 * directory of the file it came from, otherwise it matches the last component at any depth;
 * '*', '?' and [...] (ranges, '!' or '^' negation, [:alpha:]-style classes) never match '/';
 * "**" between slashes (leading "**" + "/", trailing "/" + "**", "/" + "**" + "/" in the middle)
 * matches any number of directories. The last matching pattern decides; patterns of a deeper
 * directory's file beat those of its parents. A pattern git would never match (an unterminated
 * '[', a trailing '\', an unknown [:class:]) is accepted and matches nothing, as in git.
 *
 * Matching is an NFA simulation over the compiled pattern: its cost is bounded by
 * pattern length x path length whatever the '*' and '**' (no backtracking).
 * Limits: an ignore file over IGNORE_MAX_FILE bytes, a pattern line over IGNORE_MAX_PATTERN
 * bytes or a NUL byte are errors naming file:line.
 *
 * Paths are relative to the app directory: components joined by single '/', no leading or
 * trailing '/' (other shapes are matched as given, never crash, but mean nothing). A symlink is
 * not a directory, whatever it points to (as in git). */
#ifndef BERTH_ARCHIVE_IGNORE_H
#define BERTH_ARCHIVE_IGNORE_H
#include <stdbool.h>
#include <stddef.h>
#include "util/err.h"

#define IGNORE_MAX_FILE    (1024 * 1024)  /* bytes in one ignore file */
#define IGNORE_MAX_PATTERN 4096           /* bytes in one pattern line (after trimming) */

struct ignore;

/* An empty rule set (matches nothing). Free with ignore_free (accepts NULL). */
struct ignore *ignore_new(void);
void ignore_free(struct ignore *ig);

/* Add the n bytes of an ignore file found in directory base ("" for the app's root, else
 * "a/b": relative, no trailing '/'); its patterns apply only below base. fname is used in
 * errors only ("a/b/.gitignore:12: ..."). A file's patterns take precedence over every file
 * added before it, so add a directory's file after its parents' (as a top-down walk finds
 * them). On error (ERR_TOOBIG, ERR_INVALID) nothing of this file is added. */
int ignore_add_file(struct ignore *ig, const char *base, const char *fname, const char *data,
		    size_t n, struct err *e);

/* Is path ignored, as git would decide for a file (is_dir false) or directory: true when the
 * last matching pattern is not negated, or when any parent directory of path is ignored (a
 * file cannot be re-included if a parent directory is excluded). */
bool ignore_match(const struct ignore *ig, const char *path, bool is_dir);

/* The same question about path alone, parents not looked at: for a walk that never descends
 * into an ignored directory, where the parents have already been asked. */
bool ignore_match_entry(const struct ignore *ig, const char *path, bool is_dir);

/* A stack discipline for walks: mark the rule set before descending into a directory (whose
 * ignore file may then be added) and rewind to the mark on the way out, dropping every file
 * added since, so sibling directories' rules do not pile up. */
size_t ignore_mark(const struct ignore *ig);
void ignore_rewind(struct ignore *ig, size_t mark);

/* One pattern (plen bytes, no gitignore line syntax: no '!', no trailing-'/' rule) against one
 * path of tlen bytes, with git's wildmatch(WM_PATHNAME) meaning. Exposed for tests and the
 * fuzzer, which compare it with a reference implementation. */
bool ignore_wildmatch(const char *pat, size_t plen, const char *text, size_t tlen);

#endif
