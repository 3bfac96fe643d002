/* build: how an uploaded app directory becomes runnable, decided before anything runs.
 * A `build:` command in berth.yaml is run as given. Without one, a builder is detected from
 * the files at the top of the directory, as Piku and buildpacks do:
 *   requirements.txt or pyproject.toml -> python: a virtualenv + pip install
 *   package.json                       -> node: npm ci with a lockfile, npm install without;
 *                                         then `npm run build --if-present`
 *   go.mod                             -> go: go build -o bin/ ./...
 *   Gemfile                            -> ruby: bundle install
 * Installed dependencies live in a cache per (env, app, builder), in a directory named by
 * the hash of the lockfile(s): a redeploy whose lockfile did not change installs nothing.
 * A cache directory is complete once it holds `.complete` (written last), so a build killed
 * halfway is redone, never reused. The release directory links to it (.berth/venv,
 * node_modules), so the release keeps working while it exists; gc keeps what releases use.
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
	char *deps_dir;        /* DATA/cache/<env>/<app>/<builder>/<hash16> (owned; NULL: none) */
	bool deps_cached;      /* deps_dir is complete: nothing to install */
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
