/* Unit tests of src/build: which builder a directory gets, the dependency hash (same
 * lockfile -> same hash, any change -> another), what goes on PATH, lockfiles that do not
 * parse, and `build:` winning over detection. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "build/build.h"
#include "util/buf.h"
#include "util/fsutil.h"

static char root[256];

static void put(const char *name, const char *text)
{
	char *p = xasprintf("%s/%s", root, name);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	free(p);
}

static int setup(void **state)
{
	snprintf(root, sizeof root, "/tmp/berth-test-build-XXXXXX");
	assert_non_null(mkdtemp(root));
	return 0;
}

static int teardown(void **state)
{
	fs_rm_rf(root, NULL);
	return 0;
}

static void plan(struct build_plan *p, const struct manifest *m, int want_rc)
{
	struct err e = ERR_INIT;
	char *cache = xasprintf("%s/cache", root);
	int rc = build_plan_make(root, m, cache, false, p, &e);
	free(cache);
	if (rc != want_rc)
		fail_msg("build_plan_make: %d (%s), want %d", rc, e.msg, want_rc);
}

static void test_none(void **state)
{
	struct manifest m = {0};
	struct build_plan p;
	put("Procfile", "web: ./server\n");
	plan(&p, &m, 0);
	assert_string_equal(p.builder, "");
	assert_null(p.script);
	build_plan_free(&p);
}

static void test_python(void **state)
{
	struct manifest m = {0};
	struct build_plan p, q, r;
	put("requirements.txt", "flask==3.0\n");
	plan(&p, &m, 0);
	assert_string_equal(p.builder, "python");
	assert_string_equal(p.lockfile, "requirements.txt");
	assert_int_equal(strlen(p.deps_hash), 64);
	assert_non_null(strstr(p.script, "pip install"));
	assert_non_null(strstr(p.script, "-r requirements.txt"));
	assert_string_equal(json_string_value(json_array_get(p.path, 0)), ".berth/venv/bin");
	assert_false(p.deps_cached);
	plan(&q, &m, 0);
	assert_string_equal(p.deps_hash, q.deps_hash);          /* same lockfile, same hash */
	put("requirements.txt", "flask==3.1\n");
	plan(&r, &m, 0);
	assert_string_not_equal(p.deps_hash, r.deps_hash);      /* any change, another */
	build_plan_free(&p);
	build_plan_free(&q);
	build_plan_free(&r);
}

static void test_node(void **state)
{
	struct manifest m = {0};
	struct build_plan p;
	put("package.json", "{\"name\":\"x\",\"scripts\":{\"build\":\"tsc\"}}");
	put("package-lock.json", "{\"lockfileVersion\":3}");
	plan(&p, &m, 0);
	assert_string_equal(p.builder, "node");
	assert_string_equal(p.lockfile, "package-lock.json");
	assert_non_null(strstr(p.script, "npm ci"));
	assert_non_null(strstr(p.script, "npm run build"));
	assert_string_equal(json_string_value(json_array_get(p.path, 0)), "node_modules/.bin");
	assert_string_equal(json_string_value(json_object_get(p.env, "NODE_ENV")), "production");
	build_plan_free(&p);
	/* without a lockfile: npm install */
	char *lock = xasprintf("%s/package-lock.json", root);
	unlink(lock);
	free(lock);
	put("package.json", "{\"name\":\"x\"}");
	plan(&p, &m, 0);
	assert_non_null(strstr(p.script, "npm install"));
	assert_null(strstr(p.script, "npm run build"));
	build_plan_free(&p);
}

static void test_bad_lockfiles(void **state)
{
	struct manifest m = {0};
	struct build_plan p;
	struct err e = ERR_INIT;
	put("package.json", "{\"name\":\"x\"}");
	put("package-lock.json", "{\n  \"lockfileVersion\": 3,\n  oops\n}");
	char *cache = xasprintf("%s/cache", root);
	assert_int_equal(build_plan_make(root, &m, cache, false, &p, &e), -1);
	assert_non_null(strstr(e.msg, "package-lock.json:3:"));
	assert_non_null(strstr(e.msg, "not valid JSON"));
	e = (struct err)ERR_INIT;
	put("package-lock.json", "[1,2]");
	assert_int_equal(build_plan_make(root, &m, cache, false, &p, &e), -1);
	assert_non_null(strstr(e.msg, "package-lock.json:1:1: expected a JSON object"));
	free(cache);
}

static void test_build_command_wins(void **state)
{
	struct manifest m = {0};
	m.build = "make dist";
	struct build_plan p;
	put("requirements.txt", "flask\n");
	plan(&p, &m, 0);
	assert_string_equal(p.builder, "command");
	assert_string_equal(p.script, "make dist");
	assert_int_equal(json_array_size(p.path), 0);
	build_plan_free(&p);
}

static void test_quote(void **state)
{
	struct buf b = BUF_INIT;
	build_sh_quote(&b, "it's $HOME");
	assert_string_equal(buf_str(&b), "'it'\\''s $HOME'");
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_none, setup, teardown),
		cmocka_unit_test_setup_teardown(test_python, setup, teardown),
		cmocka_unit_test_setup_teardown(test_node, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_lockfiles, setup, teardown),
		cmocka_unit_test_setup_teardown(test_build_command_wins, setup, teardown),
		cmocka_unit_test(test_quote),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
