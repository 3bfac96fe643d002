/* build: how an uploaded app directory becomes runnable, decided before anything runs.
 * A `build:` command in berth.yaml is run as given. Without one, a builder is detected from
 * the files at the top of the directory, as Piku and buildpacks do:
 *   requirements.txt or pyproject.toml -> python: a virtualenv + pip install
 *   package.json                       -> node: npm ci with a lockfile, npm install without;
 *                                         then `npm run build` when scripts.build is set
 *   go.mod                             -> go: go build -o bin/ ./...
 *   Gemfile                            -> ruby: bundle install
 * Installed dependencies live in a cache per (env, app, builder), found by the hash of the
 * lockfile(s): a redeploy whose lockfile did not change installs nothing. <hash16> is a
 * symlink to the directory of the current install (<hash16>-<stamp>), which is complete once
 * it holds `.complete` (written last), so a build killed halfway is redone, never reused; a
 * new install (--no-cache) repoints the link atomically. The release directory links to the
 * install itself (.berth/venv, node_modules), so it keeps working while that exists; gc keeps
 * what kept releases use.
 * This file only decides; the script runs as a one-off (src/oneoff) under the build profile
 * and deadline. No network, no store. */
#ifndef BERTH_BUILD_H
#define BERTH_BUILD_H
#include <stdbool.h>
#include <jansson.h>
#include "manifest/manifest.h"
#include "util/err.h"

struct build_plan {
	char builder[16];      /* "python", "node", "go", "ruby", "command" (build:), "" = nothing to build */
	char lockfile[64];     /* what deps_hash covers ("requirements.txt") */
	char deps_hash[65];    /* sha256 hex of builder + lockfile contents ("" for command/none) */
	char *deps_dir;        /* DATA/cache/<env>/<app>/<builder>/<hash16>: the link to the current
	                        * install of this hash (owned; NULL: none) */
	bool deps_cached;      /* it is complete (and no --no-cache): nothing to install */
	bool no_cache;
	char *script;          /* shell script run in the release directory (owned) */
	json_t *path;          /* dirs relative to the release dir put first on every process's PATH */
	json_t *env;           /* extra variables every process gets (object) */
};

/* Decide how to build dir (an unpacked upload). cache_root = DATA/cache/<env>/<app>.
 * no_cache: install dependencies again into a fresh cache directory. Lockfiles that do not
 * parse are errors (ERR_INVALID, naming the file). p is zeroed first; free with
 * build_plan_free. */
int build_plan_make(const char *dir, const struct manifest *m, const char *cache_root, bool no_cache,
		    struct build_plan *p, struct err *e);
void build_plan_free(struct build_plan *p);
/* Append s to b quoted for /bin/sh ('...' with ' as '\''). */
struct buf;
void build_sh_quote(struct buf *b, const char *s);
#endif
