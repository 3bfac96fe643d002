/* The endpoints table: snapshots, route lookup (host, longest prefix on segment boundaries),
 * default routes, and the drain rule (removed + adopted by every reader + nothing in flight). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include "endpoints/endpoints.h"

static struct ep_snapshot *seen;
static int calls;

static void reader(void *arg, struct ep_snapshot *s)
{
	seen = s;
	calls++;
}

static void test_routes_and_defaults(void **st)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct endpoints *t = endpoints_new(&loop);
	endpoints_put(t, "production", "old", "web", "web.1", 1, 1, 4001);
	endpoints_put(t, "production", "new", "web", "web.1", 1, 3, 4002);
	endpoints_put(t, "staging", "new", "web", "web.1", 1, 1, 4003);
	endpoints_put(t, "production", "new", "worker", "worker.1", 1, 3, 0);
	struct route rs[] = {
		{.host = "Site.Test", .path = "/careers/", .env = "production", .app = "old"},
		{.host = "site.test", .path = "/", .env = "production", .app = "new"},
	};
	endpoints_set_routes(t, rs, 2);
	struct ep_snapshot *s = endpoints_current(t);
	const struct route *r = ep_snapshot_route(s, "site.test", 9, "/careers/jobs", 13);
	assert_non_null(r);
	assert_string_equal(r->app, "old");
	assert_int_equal(r->group->eps[0]->port, 4001);
	r = ep_snapshot_route(s, "SITE.TEST:8080", 14, "/careers", 8);
	assert_string_equal(r->app, "old");
	r = ep_snapshot_route(s, "site.test", 9, "/careersx", 9);
	assert_string_equal(r->app, "new");   /* segment boundary */
	r = ep_snapshot_route(s, "site.test", 9, "/", 1);
	assert_string_equal(r->app, "new");
	assert_null(ep_snapshot_route(s, "other.test", 10, "/", 1));
	/* Default routes: APP.ENV.localhost, and APP.localhost for production only. */
	r = ep_snapshot_route(s, "new.staging.localhost", 21, "/x", 2);
	assert_non_null(r);
	assert_true(r->is_default);
	assert_string_equal(r->env, "staging");
	r = ep_snapshot_route(s, "new.localhost", 13, "/", 1);
	assert_string_equal(r->env, "production");
	assert_int_equal(r->group->eps[0]->port, 4002);
	assert_null(ep_snapshot_route(s, "worker.localhost", 16, "/", 1));
	/* Groups. */
	const struct ep_group *g = ep_snapshot_group(s, "production", "new", "worker");
	assert_non_null(g);
	assert_int_equal(g->n, 1);
	assert_null(ep_snapshot_group(s, "production", "nope", "web"));
	endpoints_free(t);
	uv_loop_close(&loop);
}

static void test_snapshots_are_immutable(void **st)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct endpoints *t = endpoints_new(&loop);
	calls = 0;
	int rd = endpoints_add_reader(t, reader, NULL);
	assert_int_equal(calls, 1);
	endpoints_put(t, "production", "a", "web", "web.1", 1, 1, 5000);
	struct ep_snapshot *old = seen;
	ep_snapshot_ref(old);
	endpoints_put(t, "production", "a", "web", "web.2", 2, 1, 5001);
	assert_int_equal(calls, 3);
	assert_int_equal(ep_snapshot_group(old, "production", "a", "web")->n, 1);
	assert_int_equal(ep_snapshot_group(seen, "production", "a", "web")->n, 2);
	assert_true(seen->version > old->version);
	ep_snapshot_unref(old);
	(void)rd;
	endpoints_free(t);
	uv_loop_close(&loop);
}

static void test_drain_rule(void **st)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct endpoints *t = endpoints_new(&loop);
	int rd = endpoints_add_reader(t, reader, NULL);
	endpoints_adopted(t, rd, seen->version);
	struct endpoint *e = endpoints_put(t, "production", "a", "web", "web.1", 1, 1, 5000);
	endpoints_adopted(t, rd, seen->version);
	atomic_fetch_add(&e->inflight, 1);
	struct endpoint *gone = endpoints_remove(t, "production", "a", "web.1", 1);
	assert_ptr_equal(gone, e);
	assert_false(endpoints_drained(t, gone));   /* reader still on the old snapshot */
	endpoints_adopted(t, rd, seen->version);
	assert_false(endpoints_drained(t, gone));   /* a request still in flight */
	atomic_fetch_sub(&e->inflight, 1);
	assert_true(endpoints_drained(t, gone));
	assert_null(endpoints_remove(t, "production", "a", "web.1", 1));
	endpoint_unref(gone);
	endpoints_free(t);
	uv_loop_close(&loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_routes_and_defaults),
		cmocka_unit_test(test_snapshots_are_immutable),
		cmocka_unit_test(test_drain_rule),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
