/* build: detection of builders and the build script (see build.h). */
#include "build/build.h"
#include "util/buf.h"
#include "util/fsutil.h"
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOCK_MAX (32 * 1024 * 1024)   /* a lockfile bigger than this is refused */

void build_sh_quote(struct buf *b, const char *s)
{
	buf_addc(b, '\'');
	for (; *s; s++) {
		if (*s == '\'')
			buf_adds(b, "'\\''");
		else
			buf_addc(b, *s);
	}
	buf_addc(b, '\'');
}

/* Is DIR/name a regular file (not a symlink)? */
static bool has_file(const char *dir, const char *name)
{
	char *p = xasprintf("%s/%s", dir, name);
	struct stat st;
	bool ok = lstat(p, &st) == 0 && S_ISREG(st.st_mode);
	free(p);
	return ok;
}

/* Read DIR/name whole (bounded); 0, or -1 with e. */
static int read_lock(const char *dir, const char *name, struct buf *out, struct err *e)
{
	char *p = xasprintf("%s/%s", dir, name);
	int fd = open(p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	free(p);
	if (fd < 0)
		return err_errno(e, errno, "%s", name);
	char chunk[65536];
	ssize_t n;
	while ((n = read(fd, chunk, sizeof chunk)) > 0) {
		if (out->len + (size_t)n > LOCK_MAX) {
			close(fd);
			return err_set(e, ERR_INVALID, "%s: larger than %d MiB", name, LOCK_MAX >> 20);
		}
		buf_add(out, chunk, (size_t)n);
	}
	close(fd);
	if (n < 0)
		return err_errno(e, errno, "read %s", name);
	return 0;
}

/* A JSON lockfile must parse: an error names file:line:col. */
static int check_json(const char *name, const struct buf *b, json_t **keep, struct err *e)
{
	json_error_t je;
	json_t *j = json_loadb(b->p ? b->p : "", b->len, 0, &je);
	if (!j)
		return err_set(e, ERR_INVALID, "%s:%d:%d: not valid JSON: %s", name, je.line > 0 ? je.line : 1,
			       je.column > 0 ? je.column : 1, je.text);
	if (!json_is_object(j)) {
		json_decref(j);
		return err_set(e, ERR_INVALID, "%s:1:1: expected a JSON object", name);
	}
	if (keep)
		*keep = j;
	else
		json_decref(j);
	return 0;
}

/* Text lockfiles (requirements.txt, go.sum, Gemfile.lock) must be text: no NUL byte. */
static int check_text(const char *name, const struct buf *b, struct err *e)
{
	const char *nul = b->len ? memchr(b->p, 0, b->len) : NULL;
	if (!nul)
		return 0;
	int line = 1;
	for (const char *q = b->p; q < nul; q++)
		line += *q == '\n';
	return err_set(e, ERR_INVALID, "%s:%d: a NUL byte: this is not a text file", name, line);
}

static void hash_add(crypto_hash_sha256_state *st, const char *name, const struct buf *b)
{
	crypto_hash_sha256_update(st, (const unsigned char *)name, strlen(name) + 1);
	if (b->len)
		crypto_hash_sha256_update(st, (const unsigned char *)b->p, b->len);
}

/* The cache entry of a lockfile hash is DATA/cache/<env>/<app>/<builder>/<hash16>: a symlink to
 * the directory the dependencies were installed in (<hash16>-<stamp>), complete once it holds
 * .complete. An install goes into a new directory and then repoints the link (rename: atomic),
 * so a release keeps the directory it linked to even when --no-cache installs again. */
static void plan_deps_dir(struct build_plan *p, const char *cache_root, bool no_cache)
{
	p->deps_dir = xasprintf("%s/%s/%.16s", cache_root, p->builder, p->deps_hash);
	p->no_cache = no_cache;
	char *marker = xasprintf("%s/.complete", p->deps_dir);
	p->deps_cached = !no_cache && fs_exists(marker);
	free(marker);
}

static void script_head(struct buf *s, const struct build_plan *p)
{
	buf_adds(s, "set -e\nlink=");
	build_sh_quote(s, p->deps_dir);
	buf_addf(s, "\nnocache=%s\n"
		    "if [ -z \"$nocache\" ] && [ -e \"$link/.complete\" ]; then\n"
		    "  deps=$(readlink -f \"$link\")\n"
		    "  echo \"-----> %s: dependencies unchanged (%s %.12s): reusing them, nothing to install\"\n"
		    "else\n"
		    "  deps=\"$link-$(date +%%s%%N)\"\n"
		    "  echo \"-----> %s: installing dependencies from %s (%.12s)%s\"\n"
		    "  rm -rf \"$deps\"; mkdir -p \"$deps\"\n",
		 p->no_cache ? "1" : "", p->builder, p->lockfile, p->deps_hash, p->builder, p->lockfile, p->deps_hash,
		 p->no_cache ? ", --no-cache" : "");
}

static void script_tail(struct buf *s)
{
	buf_adds(s, "  touch \"$deps/.complete\"\n"
		    "  if [ -d \"$link\" ] && [ ! -L \"$link\" ]; then rm -rf \"$link\"; fi\n"
		    "  ln -sfn \"$(basename \"$deps\")\" \"$link.new.$$\" && mv -Tf \"$link.new.$$\" \"$link\"\n"
		    "fi\n");
}

static int plan_python(const char *dir, struct build_plan *p, const char *cache_root, bool no_cache, struct err *e)
{
	bool req = has_file(dir, "requirements.txt");
	const char *lock = req ? "requirements.txt" : "pyproject.toml";
	struct buf b = BUF_INIT;
	if (read_lock(dir, lock, &b, e) < 0 || check_text(lock, &b, e) < 0) {
		buf_free(&b);
		return -1;
	}
	crypto_hash_sha256_state st;
	crypto_hash_sha256_init(&st);
	hash_add(&st, "python", &b);
	buf_free(&b);
	unsigned char d[32];
	crypto_hash_sha256_final(&st, d);
	sodium_bin2hex(p->deps_hash, sizeof p->deps_hash, d, sizeof d);
	snprintf(p->builder, sizeof p->builder, "python");
	snprintf(p->lockfile, sizeof p->lockfile, "%s", lock);
	plan_deps_dir(p, cache_root, no_cache);
	struct buf s = BUF_INIT;
	script_head(&s, p);
	buf_adds(&s, "  python3 -m venv \"$deps/venv\"\n");
	if (req) {
		buf_adds(&s, "  \"$deps/venv/bin/python\" -m pip install --no-input --disable-pip-version-check "
			     "-r requirements.txt\n");
	} else {
		/* Only the project's dependencies go into the cache (keyed by pyproject.toml): the
		 * app's own code runs from the release, so a code change is never shadowed by a
		 * cached copy of it. Without tomllib (Python < 3.11): the project itself, as pip does. */
		buf_adds(&s, "  if \"$deps/venv/bin/python\" -c 'import tomllib' 2>/dev/null; then\n"
			     "    \"$deps/venv/bin/python\" -c 'import tomllib; d = tomllib.load(open(\"pyproject.toml\", \"rb\")); "
			     "print(\"\\n\".join(d.get(\"project\", {}).get(\"dependencies\", [])))' >\"$deps/requirements.txt\"\n"
			     "    \"$deps/venv/bin/python\" -m pip install --no-input --disable-pip-version-check "
			     "-r \"$deps/requirements.txt\"\n"
			     "  else\n"
			     "    \"$deps/venv/bin/python\" -m pip install --no-input --disable-pip-version-check .\n"
			     "  fi\n");
	}
	script_tail(&s);
	buf_adds(&s, "mkdir -p .berth\nln -sfn \"$deps/venv\" .berth/venv\n");
	p->script = buf_detach(&s);
	json_array_append_new(p->path, json_string(".berth/venv/bin"));
	return 0;
}

static int plan_node(const char *dir, struct build_plan *p, const char *cache_root, bool no_cache, struct err *e)
{
	struct buf pkg = BUF_INIT, lock = BUF_INIT;
	json_t *pj = NULL;
	const char *lockname = has_file(dir, "package-lock.json")     ? "package-lock.json"
			       : has_file(dir, "npm-shrinkwrap.json") ? "npm-shrinkwrap.json"
								      : NULL;
	int rc = -1;
	if (read_lock(dir, "package.json", &pkg, e) < 0 || check_json("package.json", &pkg, &pj, e) < 0)
		goto out;
	if (lockname && (read_lock(dir, lockname, &lock, e) < 0 || check_json(lockname, &lock, NULL, e) < 0))
		goto out;
	crypto_hash_sha256_state st;
	crypto_hash_sha256_init(&st);
	hash_add(&st, "node", &pkg);
	if (lockname)
		hash_add(&st, lockname, &lock);
	unsigned char d[32];
	crypto_hash_sha256_final(&st, d);
	sodium_bin2hex(p->deps_hash, sizeof p->deps_hash, d, sizeof d);
	snprintf(p->builder, sizeof p->builder, "node");
	snprintf(p->lockfile, sizeof p->lockfile, "%s%s", lockname ? lockname : "package.json",
		 lockname ? "" : " (no lockfile)");
	plan_deps_dir(p, cache_root, no_cache);
	struct buf s = BUF_INIT;
	script_head(&s, p);
	buf_adds(&s, "  cp package.json \"$deps/\"\n");
	if (lockname)
		buf_addf(&s, "  cp %s \"$deps/\"\n  (cd \"$deps\" && npm ci --no-audit --no-fund)\n", lockname);
	else
		buf_adds(&s, "  (cd \"$deps\" && npm install --no-audit --no-fund --no-package-lock)\n");
	buf_adds(&s, "  mkdir -p \"$deps/node_modules\"\n");
	script_tail(&s);
	buf_adds(&s, "rm -rf node_modules\nln -sfn \"$deps/node_modules\" node_modules\n");
	json_t *scripts = json_object_get(pj, "scripts");
	if (json_is_string(json_object_get(scripts, "build")))
		buf_adds(&s, "echo '-----> node: npm run build'\nnpm run build\n");
	p->script = buf_detach(&s);
	json_array_append_new(p->path, json_string("node_modules/.bin"));
	json_object_set_new(p->env, "NODE_ENV", json_string("production"));
	rc = 0;
out:
	json_decref(pj);
	buf_free(&pkg);
	buf_free(&lock);
	return rc;
}

static int plan_go(const char *dir, struct build_plan *p, const char *cache_root, struct err *e)
{
	struct buf mod = BUF_INIT, sum = BUF_INIT;
	if (read_lock(dir, "go.mod", &mod, e) < 0 || check_text("go.mod", &mod, e) < 0 ||
	    (has_file(dir, "go.sum") && (read_lock(dir, "go.sum", &sum, e) < 0 || check_text("go.sum", &sum, e) < 0))) {
		buf_free(&mod);
		buf_free(&sum);
		return -1;
	}
	crypto_hash_sha256_state st;
	crypto_hash_sha256_init(&st);
	hash_add(&st, "go", &mod);
	hash_add(&st, "go.sum", &sum);
	buf_free(&mod);
	buf_free(&sum);
	unsigned char d[32];
	crypto_hash_sha256_final(&st, d);
	sodium_bin2hex(p->deps_hash, sizeof p->deps_hash, d, sizeof d);
	snprintf(p->builder, sizeof p->builder, "go");
	snprintf(p->lockfile, sizeof p->lockfile, "%s", has_file(dir, "go.sum") ? "go.sum" : "go.mod");
	/* Go has its own content-addressed caches: keep them per app and let go decide. */
	p->deps_dir = xasprintf("%s/go", cache_root);
	struct buf s = BUF_INIT;
	buf_adds(&s, "set -e\ncommand -v go >/dev/null || { echo 'berth: go.mod found but no go on the server "
		     "(apt-get install golang-go, or give build: in berth.yaml)' >&2; exit 127; }\ncache=");
	build_sh_quote(&s, p->deps_dir);
	buf_adds(&s, "\nexport GOCACHE=\"$cache/build\" GOMODCACHE=\"$cache/mod\" GOPATH=\"$cache/path\"\n"
		     "echo '-----> go: go build -o bin/ ./...'\nmkdir -p bin\ngo build -o bin/ ./...\n");
	p->script = buf_detach(&s);
	json_array_append_new(p->path, json_string("bin"));
	return 0;
}

static int plan_ruby(const char *dir, struct build_plan *p, const char *cache_root, bool no_cache, struct err *e)
{
	struct buf g = BUF_INIT, lock = BUF_INIT;
	if (read_lock(dir, "Gemfile", &g, e) < 0 || check_text("Gemfile", &g, e) < 0 ||
	    (has_file(dir, "Gemfile.lock") &&
	     (read_lock(dir, "Gemfile.lock", &lock, e) < 0 || check_text("Gemfile.lock", &lock, e) < 0))) {
		buf_free(&g);
		buf_free(&lock);
		return -1;
	}
	crypto_hash_sha256_state st;
	crypto_hash_sha256_init(&st);
	hash_add(&st, "ruby", &g);
	hash_add(&st, "Gemfile.lock", &lock);
	buf_free(&g);
	buf_free(&lock);
	unsigned char d[32];
	crypto_hash_sha256_final(&st, d);
	sodium_bin2hex(p->deps_hash, sizeof p->deps_hash, d, sizeof d);
	snprintf(p->builder, sizeof p->builder, "ruby");
	snprintf(p->lockfile, sizeof p->lockfile, "Gemfile.lock");
	plan_deps_dir(p, cache_root, no_cache);
	struct buf s = BUF_INIT;
	script_head(&s, p);
	buf_adds(&s, "  command -v bundle >/dev/null || { echo 'berth: Gemfile found but no bundle on the server' >&2; "
		     "exit 127; }\n  BUNDLE_PATH=\"$deps/bundle\" bundle install\n");
	script_tail(&s);
	buf_adds(&s, "mkdir -p .berth\nln -sfn \"$deps/bundle\" .berth/bundle\n");
	p->script = buf_detach(&s);
	/* "$RELEASE/" is the release directory, filled in when a process starts. */
	json_object_set_new(p->env, "BUNDLE_PATH", json_string("$RELEASE/.berth/bundle"));
	return 0;
}

int build_plan_make(const char *dir, const struct manifest *m, const char *cache_root, bool no_cache,
		    struct build_plan *p, struct err *e)
{
	memset(p, 0, sizeof *p);
	p->path = json_array();
	p->env = json_object();
	int rc = 0;
	if (m->build) {
		snprintf(p->builder, sizeof p->builder, "command");
		p->script = xstrdup(m->build);
	} else if (has_file(dir, "requirements.txt") || has_file(dir, "pyproject.toml")) {
		rc = plan_python(dir, p, cache_root, no_cache, e);
	} else if (has_file(dir, "package.json")) {
		rc = plan_node(dir, p, cache_root, no_cache, e);
	} else if (has_file(dir, "go.mod")) {
		rc = plan_go(dir, p, cache_root, e);
	} else if (has_file(dir, "Gemfile")) {
		rc = plan_ruby(dir, p, cache_root, no_cache, e);
	}
	if (rc < 0)
		build_plan_free(p);
	return rc;
}

void build_plan_free(struct build_plan *p)
{
	if (!p)
		return;
	free(p->deps_dir);
	free(p->script);
	json_decref(p->path);
	json_decref(p->env);
	memset(p, 0, sizeof *p);
}
