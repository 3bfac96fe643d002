/* Reconciler decisions (plan_compute), restart backoff, and release diffs. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include "reconcile/plan.h"
#include "supervise/supervise.h"
#include "model/model.h"

/* A process of the plan's input: name, wanted instances, generation (no lone slot restarts). */
#define PROC(n, c, g) {.name = (n), .count = (c), .gen = (g)}

static int count_starts(const struct plan_output *o, const char *proc)
{
	int n = 0;
	for (size_t k = 0; k < o->nstarts; k++)
		if (!strcmp(o->starts[k].process, proc))
			n++;
	return n;
}

static bool stops(const struct plan_output *o, size_t idx)
{
	for (size_t k = 0; k < o->nstops; k++)
		if (o->stops[k] == idx)
			return true;
	return false;
}

static void test_first_deploy_starts_everything(void **st)
{
	struct plan_proc procs[] = {PROC("web", 3, 0), PROC("worker", 2, 0)};
	struct plan_input in = {1, false, procs, 2, NULL, 0, 1};
	struct plan_output o;
	plan_compute(&in, &o);
	assert_int_equal(count_starts(&o, "web"), 3);
	assert_int_equal(count_starts(&o, "worker"), 2);
	assert_int_equal(o.nstops, 0);
	assert_false(o.converged);
	plan_output_free(&o);
}

static void test_converged_when_all_healthy(void **st)
{
	struct plan_proc procs[] = {PROC("web", 2, 0)};
	struct plan_inst insts[] = {{"web", 1, 4, 0, true, true, false}, {"web", 2, 4, 0, true, true, false}};
	struct plan_input in = {4, false, procs, 1, insts, 2, 1};
	struct plan_output o;
	plan_compute(&in, &o);
	assert_int_equal(o.nstarts, 0);
	assert_int_equal(o.nstops, 0);
	assert_true(o.converged);
	plan_output_free(&o);
}

static void test_not_converged_while_stopping(void **st)
{
	struct plan_proc procs[] = {PROC("web", 1, 0)};
	struct plan_inst insts[] = {{"web", 1, 4, 0, true, true, false}, {"web", 2, 4, 0, false, true, true}};
	struct plan_input in = {4, false, procs, 1, insts, 2, 1};
	struct plan_output o;
	plan_compute(&in, &o);
	assert_int_equal(o.nstops, 0);
	assert_false(o.converged);
	plan_output_free(&o);
	in.ninsts = 1;
	plan_compute(&in, &o);
	assert_true(o.converged);
	plan_output_free(&o);
}

static void test_rolling_one_at_a_time(void **st)
{
	/* v1 runs in 3 slots; v2 is desired. Only one replacement may be in flight. */
	struct plan_proc procs[] = {PROC("web", 3, 0)};
	struct plan_inst insts[] = {{"web", 1, 1, 0, true, true, false},
				    {"web", 2, 1, 0, true, true, false},
				    {"web", 3, 1, 0, true, true, false}};
	struct plan_input in = {2, false, procs, 1, insts, 3, 1};
	struct plan_output o;
	plan_compute(&in, &o);
	assert_int_equal(o.nstarts, 1);
	assert_int_equal(o.starts[0].slot, 1);
	assert_int_equal(o.nstops, 0);   /* nothing old stops before the new one is healthy */
	assert_false(o.converged);
	plan_output_free(&o);
}

static void test_old_stops_only_after_new_healthy(void **st)
{
	struct plan_proc procs[] = {PROC("web", 2, 0)};
	struct plan_inst starting[] = {{"web", 1, 1, 0, true, true, false},
				       {"web", 2, 1, 0, true, true, false},
				       {"web", 1, 2, 0, false, false, false}};
	struct plan_input in = {2, false, procs, 1, starting, 3, 1};
	struct plan_output o;
	plan_compute(&in, &o);
	assert_int_equal(o.nstarts, 0);  /* batch of 1 already in flight */
	assert_int_equal(o.nstops, 0);
	plan_output_free(&o);

	starting[2].healthy = starting[2].ever_healthy = true;
	plan_compute(&in, &o);
	assert_true(stops(&o, 0));       /* old web.1 goes */
	assert_false(stops(&o, 1));
	assert_int_equal(o.nstarts, 1);  /* and web.2 of v2 starts */
	assert_int_equal(o.starts[0].slot, 2);
	plan_output_free(&o);
}

static void test_batch_allows_parallel_replacements(void **st)
{
	struct plan_proc procs[] = {PROC("web", 4, 0)};
	struct plan_inst insts[] = {{"web", 1, 1, 0, true, true, false}, {"web", 2, 1, 0, true, true, false},
				    {"web", 3, 1, 0, true, true, false}, {"web", 4, 1, 0, true, true, false}};
	struct plan_input in = {2, false, procs, 1, insts, 4, 2};
	struct plan_output o;
	plan_compute(&in, &o);
	assert_int_equal(o.nstarts, 2);
	plan_output_free(&o);
}

static void test_scale_down_and_up(void **st)
{
	struct plan_proc procs[] = {PROC("web", 1, 0), PROC("worker", 3, 0)};
	struct plan_inst insts[] = {{"web", 1, 2, 0, true, true, false},
				    {"web", 2, 2, 0, true, true, false},
				    {"worker", 1, 2, 0, true, true, false}};
	struct plan_input in = {2, false, procs, 2, insts, 3, 1};
	struct plan_output o;
	plan_compute(&in, &o);
	assert_true(stops(&o, 1));                   /* web.2 above the formation */
	assert_int_equal(count_starts(&o, "worker"), 2); /* scale-up is not throttled */
	plan_output_free(&o);
}

static void test_restart_generation_replaces(void **st)
{
	struct plan_proc procs[] = {PROC("web", 1, 1)};
	struct plan_inst insts[] = {{"web", 1, 3, 0, true, true, false}};
	struct plan_input in = {3, false, procs, 1, insts, 1, 1};
	struct plan_output o;
	plan_compute(&in, &o);
	assert_int_equal(o.nstarts, 1);
	assert_int_equal(o.nstops, 0);
	plan_output_free(&o);
}

static void test_stopped_app_stops_all(void **st)
{
	struct plan_proc procs[] = {PROC("web", 1, 0)};
	struct plan_inst insts[] = {{"web", 1, 3, 0, true, true, false}, {"web", 1, 2, 0, true, true, true}};
	struct plan_input in = {3, true, procs, 1, insts, 2, 1};
	struct plan_output o;
	plan_compute(&in, &o);
	assert_int_equal(o.nstarts, 0);
	assert_int_equal(o.nstops, 1);
	assert_true(stops(&o, 0));
	assert_false(o.converged);  /* one is still stopping */
	plan_output_free(&o);
}

static void test_removed_process_goes_after_rest_ready(void **st)
{
	struct plan_proc procs[] = {PROC("web", 1, 0)};
	struct plan_inst insts[] = {{"web", 1, 1, 0, true, true, false}, {"clock", 1, 1, 0, true, true, false}};
	struct plan_input in = {2, false, procs, 1, insts, 2, 1};
	struct plan_output o;
	plan_compute(&in, &o);
	assert_false(stops(&o, 1));   /* web of v2 not ready yet: keep clock */
	plan_output_free(&o);
	struct plan_inst ready[] = {{"web", 1, 2, 0, true, true, false}, {"clock", 1, 1, 0, true, true, false}};
	in.insts = ready;
	plan_compute(&in, &o);
	assert_true(stops(&o, 1));
	plan_output_free(&o);
}

static void test_duplicate_slot_is_stopped(void **st)
{
	struct plan_proc procs[] = {PROC("worker", 1, 0)};
	struct plan_inst insts[] = {{"worker", 1, 1, 0, true, true, false}, {"worker", 1, 1, 0, true, true, false}};
	struct plan_input in = {1, false, procs, 1, insts, 2, 1};
	struct plan_output o;
	plan_compute(&in, &o);
	assert_int_equal(o.nstops, 1);
	assert_int_equal(o.nstarts, 0);
	plan_output_free(&o);
}

static void test_rollback_to_nothing(void **st)
{
	struct plan_inst insts[] = {{"web", 1, 1, 0, false, false, false}};
	struct plan_input in = {0, false, NULL, 0, insts, 1, 1};
	struct plan_output o;
	plan_compute(&in, &o);
	assert_int_equal(o.nstops, 1);
	plan_output_free(&o);
}

static void test_slot_restart_replaces_one_slot(void **st)
{
	/* `restart web.2`: only slot 2 wants generation 1; web has a port, so it surges. */
	int sg[] = {0, 1};
	struct plan_proc procs[] = {{.name = "web", .count = 3, .gen = 0, .slot_gens = sg, .nslot_gens = 2}};
	struct plan_inst insts[] = {{"web", 1, 4, 0, true, true, false},
				    {"web", 2, 4, 0, true, true, false},
				    {"web", 3, 4, 0, true, true, false}};
	struct plan_input in = {4, false, procs, 1, insts, 3, 1};
	struct plan_output o;
	assert_int_equal(plan_want_gen(&procs[0], 1), 0);
	assert_int_equal(plan_want_gen(&procs[0], 2), 1);
	assert_int_equal(plan_want_gen(&procs[0], 3), 0);   /* beyond the array: the process's */
	plan_compute(&in, &o);
	assert_int_equal(o.nstarts, 1);
	assert_int_equal(o.starts[0].slot, 2);
	assert_int_equal(o.nstops, 0);      /* the old web.2 serves until the new one is healthy */
	assert_false(o.converged);
	plan_output_free(&o);

	struct plan_inst surge[] = {{"web", 1, 4, 0, true, true, false},
				    {"web", 2, 4, 0, true, true, false},
				    {"web", 3, 4, 0, true, true, false},
				    {"web", 2, 4, 1, false, false, false}};
	in.insts = surge;
	in.ninsts = 4;
	plan_compute(&in, &o);
	assert_int_equal(o.nstarts, 0);
	assert_int_equal(o.nstops, 0);      /* new web.2 not healthy yet */
	plan_output_free(&o);

	surge[3].healthy = surge[3].ever_healthy = true;
	plan_compute(&in, &o);
	assert_int_equal(o.nstarts, 0);
	assert_int_equal(o.nstops, 1);
	assert_true(stops(&o, 1));          /* only the old web.2 */
	plan_output_free(&o);

	surge[1].stopping = true;
	in.ninsts = 4;
	plan_compute(&in, &o);
	assert_int_equal(o.nstops, 0);
	assert_false(o.converged);          /* until the old one is gone */
	plan_output_free(&o);
	struct plan_inst done[] = {surge[0], surge[2], surge[3]};
	in.insts = done;
	in.ninsts = 3;
	plan_compute(&in, &o);
	assert_true(o.converged);
	plan_output_free(&o);
}

static void test_slot_restart_without_port_stops_first(void **st)
{
	/* `restart worker.1` of a process without a port: stop, wait until it is gone, start. */
	int sg[] = {3};
	struct plan_proc procs[] = {{.name = "worker", .count = 2, .gen = 2, .slot_gens = sg, .nslot_gens = 1,
				     .stop_first = true}};
	struct plan_inst insts[] = {{"worker", 1, 5, 2, true, true, false}, {"worker", 2, 5, 2, true, true, false}};
	struct plan_input in = {5, false, procs, 1, insts, 2, 1};
	struct plan_output o;
	plan_compute(&in, &o);
	assert_int_equal(o.nstarts, 0);     /* nothing new while the old one runs */
	assert_int_equal(o.nstops, 1);
	assert_true(stops(&o, 0));
	assert_false(o.converged);
	plan_output_free(&o);

	insts[0].stopping = true;
	plan_compute(&in, &o);
	assert_int_equal(o.nstarts, 0);     /* still stopping: wait */
	assert_int_equal(o.nstops, 0);
	assert_false(o.converged);
	plan_output_free(&o);

	in.insts = &insts[1];
	in.ninsts = 1;
	plan_compute(&in, &o);
	assert_int_equal(o.nstarts, 1);     /* gone: start worker.1 again */
	assert_int_equal(o.starts[0].slot, 1);
	assert_int_equal(o.nstops, 0);
	plan_output_free(&o);

	struct plan_inst fresh[] = {{"worker", 1, 5, 3, true, true, false}, {"worker", 2, 5, 2, true, true, false}};
	in.insts = fresh;
	in.ninsts = 2;
	plan_compute(&in, &o);
	assert_int_equal(o.nstarts, 0);
	assert_int_equal(o.nstops, 0);
	assert_true(o.converged);           /* worker.2 kept its generation */
	plan_output_free(&o);
}

static void test_slot_restart_then_deploy_surges(void **st)
{
	/* A new release replaces a lone-restarted slot like any other: surge, even stop_first. */
	int sg[] = {1};
	struct plan_proc procs[] = {{.name = "worker", .count = 1, .gen = 0, .slot_gens = sg, .nslot_gens = 1,
				     .stop_first = true}};
	struct plan_inst insts[] = {{"worker", 1, 5, 1, true, true, false}};
	struct plan_input in = {6, false, procs, 1, insts, 1, 1};
	struct plan_output o;
	plan_compute(&in, &o);
	assert_int_equal(o.nstarts, 1);
	assert_int_equal(o.nstops, 0);
	plan_output_free(&o);
	/* And a process restart (its generation above the slot's) surges too. */
	procs[0].gen = 2;
	in.release = 5;
	plan_compute(&in, &o);
	assert_int_equal(plan_want_gen(&procs[0], 1), 2);
	assert_int_equal(o.nstarts, 1);
	assert_int_equal(o.nstops, 0);
	plan_output_free(&o);
}

static void test_backoff(void **st)
{
	assert_int_equal(supervise_backoff_ms(1), 100);
	assert_int_equal(supervise_backoff_ms(2), 200);
	assert_int_equal(supervise_backoff_ms(3), 400);
	assert_int_equal(supervise_backoff_ms(9), 25600);
	assert_int_equal(supervise_backoff_ms(10), 30000);
	assert_int_equal(supervise_backoff_ms(1000), 30000);
	assert_int_equal(supervise_backoff_ms(0), 100);
}

static void test_release_changes(void **st)
{
	json_t *a = json_loads("{\"code\":\"aaaaaaaaaaaa\",\"config\":{\"A\":\"1\",\"B\":\"2\"},"
			       "\"manifest\":{\"processes\":[{\"name\":\"web\",\"command\":\"x\"},{\"name\":\"cron\",\"command\":\"c\"}]}}", 0, NULL);
	json_t *b = json_loads("{\"code\":\"bbbbbbbbbbbb\",\"config\":{\"A\":\"9\",\"C\":\"3\"},"
			       "\"manifest\":{\"processes\":[{\"name\":\"web\",\"command\":\"y\"},{\"name\":\"clock\",\"command\":\"k\"}]}}", 0, NULL);
	json_t *ch = model_release_changes(a, b);
	char *s = json_dumps(ch, JSON_COMPACT);
	assert_string_equal(s, "[\"code aaaaaaaa -> bbbbbbbb\",\"config ~A\",\"config +C\",\"config -B\","
			       "\"web: command changed\",\"process +clock\",\"process -cron\"]");
	free(s);
	json_decref(ch);
	ch = model_release_changes(a, a);
	s = json_dumps(ch, JSON_COMPACT);
	assert_string_equal(s, "[\"no changes\"]");
	free(s);
	json_decref(ch);
	ch = model_release_changes(NULL, a);
	assert_string_equal(json_string_value(json_array_get(ch, 0)), "first release");
	json_decref(ch);
	/* Config values never appear. */
	json_t *c = json_loads("{\"code\":\"aaaaaaaaaaaa\",\"config\":{\"A\":\"secret-value\"}}", 0, NULL);
	ch = model_release_changes(a, c);
	s = json_dumps(ch, JSON_COMPACT);
	assert_null(strstr(s, "secret-value"));
	free(s);
	json_decref(ch);
	json_decref(a);
	json_decref(b);
	json_decref(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_first_deploy_starts_everything),
		cmocka_unit_test(test_converged_when_all_healthy),
		cmocka_unit_test(test_not_converged_while_stopping),
		cmocka_unit_test(test_rolling_one_at_a_time),
		cmocka_unit_test(test_old_stops_only_after_new_healthy),
		cmocka_unit_test(test_batch_allows_parallel_replacements),
		cmocka_unit_test(test_scale_down_and_up),
		cmocka_unit_test(test_restart_generation_replaces),
		cmocka_unit_test(test_stopped_app_stops_all),
		cmocka_unit_test(test_removed_process_goes_after_rest_ready),
		cmocka_unit_test(test_duplicate_slot_is_stopped),
		cmocka_unit_test(test_rollback_to_nothing),
		cmocka_unit_test(test_slot_restart_replaces_one_slot),
		cmocka_unit_test(test_slot_restart_without_port_stops_first),
		cmocka_unit_test(test_slot_restart_then_deploy_surges),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_release_changes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
