/* test_release_gc: which release code directories an app keeps (model_code_dirs_keep): the
 * newest release_keep releases by version whatever the list order, the live release and the
 * rollout target even when old, releases that still have instances, dirs shared by several
 * releases, and the refusals (a referenced release missing or without a valid "dir", keep < 1)
 * that mean "remove nothing". Also model_code_dir_name. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "model/model.h"
#include "util/buf.h"

/* Releases v1..vn; release v uses dirs[v-1] (NULL: no "dir" field). */
static json_t *releases(const char *const *dirs, int n)
{
	json_t *a = json_array();
	for (int v = 1; v <= n; v++) {
		json_t *r = json_pack("{s:i, s:s}", "version", v, "status", "superseded");
		if (dirs[v - 1])
			json_object_set_new(r, "dir", json_string(dirs[v - 1]));
		json_array_append_new(a, r);
	}
	return a;
}

static json_t *app(int live, int target)
{
	return json_pack("{s:s, s:i, s:i}", "name", "web", "release", live, "target", target);
}

/* The kept dirs, sorted and joined by ' ' ("NULL" when the function refused). */
static char *kept(json_t *appdoc, json_t *rels, const int *busy, size_t nbusy, int keep)
{
	json_t *k = model_code_dirs_keep(appdoc, rels, busy, nbusy, keep);
	if (!k)
		return xstrdup("NULL");
	size_t n = json_object_size(k), i = 0;
	const char **names = xcalloc(n + 1, sizeof *names);
	const char *key;
	json_t *v;
	json_object_foreach(k, key, v) {
		assert_true(json_is_true(v));
		names[i++] = key;
	}
	for (size_t a = 0; a < n; a++)             /* tiny insertion sort */
		for (size_t b2 = a + 1; b2 < n; b2++)
			if (strcmp(names[b2], names[a]) < 0) {
				const char *t = names[a];
				names[a] = names[b2];
				names[b2] = t;
			}
	struct buf b = BUF_INIT;
	for (size_t a = 0; a < n; a++)
		buf_addf(&b, "%s%s", a ? " " : "", names[a]);
	free(names);
	json_decref(k);
	char *out = xstrdup(buf_str(&b));
	buf_free(&b);
	return out;
}

#define ASSERT_KEPT(want, appdoc, rels, busy, nbusy, keep)                                   \
	do {                                                                                 \
		char *got_ = kept(appdoc, rels, busy, nbusy, keep);                          \
		if (strcmp(got_, want))                                                      \
			fail_msg("kept: got \"%s\", want \"%s\"", got_, want);               \
		free(got_);                                                                  \
	} while (0)

static const char *const six[] = {"code-1", "code-2", "code-3", "code-4", "code-5", "code-6"};

static void test_newest_keep(void **state)
{
	json_t *r = releases(six, 6), *a = app(6, 0);
	ASSERT_KEPT("code-4 code-5 code-6", a, r, NULL, 0, 3);
	ASSERT_KEPT("code-6", a, r, NULL, 0, 1);
	ASSERT_KEPT("code-1 code-2 code-3 code-4 code-5 code-6", a, r, NULL, 0, 6);
	ASSERT_KEPT("code-1 code-2 code-3 code-4 code-5 code-6", a, r, NULL, 0, 1000);
	json_decref(a);
	json_decref(r);

	/* the list order does not matter: newest is by version number */
	json_t *shuffled = json_array();
	int order[] = {3, 6, 1, 5, 2, 4};
	for (int k = 0; k < 6; k++)
		json_array_append_new(shuffled, json_pack("{s:i, s:s}", "version", order[k], "dir", six[order[k] - 1]));
	a = app(6, 0);
	ASSERT_KEPT("code-5 code-6", a, shuffled, NULL, 0, 2);
	json_decref(a);
	json_decref(shuffled);

	/* no release yet: nothing to keep, and that is not a refusal */
	json_t *none = json_array();
	a = app(0, 0);
	ASSERT_KEPT("", a, none, NULL, 0, 3);
	json_decref(a);
	json_decref(none);
}

static void test_live_target_busy(void **state)
{
	json_t *r = releases(six, 6);
	/* rolled back to v1 by hand: live v2 (old), rollout of v1's code as target */
	json_t *a = app(2, 1);
	ASSERT_KEPT("code-1 code-2 code-5 code-6", a, r, NULL, 0, 2);
	json_decref(a);
	/* instances of v3 still stopping */
	a = app(6, 0);
	int busy[] = {3, 6, 3};
	ASSERT_KEPT("code-3 code-5 code-6", a, r, busy, 3, 2);
	json_decref(a);
	json_decref(r);
}

static void test_shared_dirs(void **state)
{
	/* config changes and rollbacks reuse their base's dir */
	static const char *const dirs[] = {"code-a", "code-b", "code-b", "code-b", "code-a", "code-c"};
	json_t *r = releases(dirs, 6), *a = app(6, 0);
	ASSERT_KEPT("code-a code-b code-c", a, r, NULL, 0, 3);   /* v4 (b), v5 (a), v6 (c) */
	ASSERT_KEPT("code-a code-c", a, r, NULL, 0, 2);
	json_decref(a);
	json_decref(r);
}

static void test_refusals(void **state)
{
	json_t *r = releases(six, 6), *a = app(6, 0);
	ASSERT_KEPT("NULL", a, r, NULL, 0, 0);                   /* keep < 1 */
	json_decref(a);
	a = app(9, 0);                                            /* live release not on record */
	ASSERT_KEPT("NULL", a, r, NULL, 0, 3);
	json_decref(a);
	a = app(6, 0);
	int busy[] = {42};                                        /* instances of an unknown release */
	ASSERT_KEPT("NULL", a, r, busy, 1, 3);
	ASSERT_KEPT("NULL", a, NULL, NULL, 0, 3);                 /* no list */
	json_decref(a);
	json_decref(r);

	/* a kept release without a valid dir: nothing may be removed */
	static const char *const bad[] = {"code-1", "code-2", NULL, "code-4"};
	r = releases(bad, 4);
	a = app(4, 0);
	ASSERT_KEPT("NULL", a, r, NULL, 0, 2);        /* v3 is among the newest 2 */
	ASSERT_KEPT("code-4", a, r, NULL, 0, 1);      /* v3 is not needed: fine */
	json_decref(a);
	json_decref(r);
	static const char *const evil[] = {"code-1", "../../etc", "code-3"};
	r = releases(evil, 3);
	a = app(3, 0);
	ASSERT_KEPT("NULL", a, r, NULL, 0, 2);
	json_decref(a);
	json_decref(r);
}

static void test_dir_name(void **state)
{
	assert_true(model_code_dir_name("code-0123456789abcdef"));
	assert_true(model_code_dir_name("code-x"));
	assert_false(model_code_dir_name("code-"));
	assert_false(model_code_dir_name("code"));
	assert_false(model_code_dir_name(".gc-code-0123-ab12cd34"));
	assert_false(model_code_dir_name(".unpack-code-0123-77"));
	assert_false(model_code_dir_name("code-a/../../x"));
	assert_false(model_code_dir_name(""));
	assert_false(model_code_dir_name(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_newest_keep),
		cmocka_unit_test(test_live_target_busy),
		cmocka_unit_test(test_shared_dirs),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_dir_name),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
