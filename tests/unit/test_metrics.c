/* Tests for metrics: the exact exposition text of counters, gauges and histograms, escaping of
 * hostile label values and help texts, registration rules, the per-family series limit and its
 * dropped counter, collectors, berth's own families, `promtool check metrics` on a full
 * exposition (skipped with a reason when promtool is not installed), and exact totals when
 * threads record on the same series and race to create the same series. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "metrics/metrics.h"
#include "util/buf.h"
#include "util/fsutil.h"

static char *render(struct metrics *m)
{
	struct buf b = BUF_INIT;
	metrics_render(m, &b);
	if (!b.p)
		return xstrdup("");
	return buf_detach(&b);
}

/* The exposition without the always-present dropped-series family (rendered last). */
static char *render_own(struct metrics *m)
{
	char *all = render(m);
	char *p = strstr(all, "# HELP berth_metrics_series_dropped_total");
	if (p)
		*p = 0;
	return all;
}

static struct metric_family *reg(struct metrics *m, const char *name, enum metric_type t,
				 const char *const *labels, size_t n, const double *b, size_t nb, size_t max)
{
	struct err e = ERR_INIT;
	struct metric_desc d = {name, "Help.", t, labels, n, b, nb, max};
	struct metric_family *f = metrics_register(m, &d, &e);
	if (!f)
		fail_msg("register %s: %s", name, e.msg);
	return f;
}

static void test_counter_gauge_text(void **state)
{
	struct metrics *m = metrics_new();
	static const char *const l[] = {"env", "app"};
	struct metric_family *c = reg(m, "t_requests_total", METRIC_COUNTER, l, 2, NULL, 0, 0);
	struct metric_family *g = reg(m, "t_temperature", METRIC_GAUGE, NULL, 0, NULL, 0, 0);
	metrics_inc(c, (const char *[]){"production", "shop"});
	metrics_add(c, (const char *[]){"production", "shop"}, 41);
	metrics_inc(c, (const char *[]){"staging", "shop"});
	metrics_set(g, NULL, 21.5);
	char *out = render_own(m);
	assert_string_equal(out,
			    "# HELP t_requests_total Help.\n"
			    "# TYPE t_requests_total counter\n"
			    "t_requests_total{env=\"production\",app=\"shop\"} 42\n"
			    "t_requests_total{env=\"staging\",app=\"shop\"} 1\n"
			    "# HELP t_temperature Help.\n"
			    "# TYPE t_temperature gauge\n"
			    "t_temperature 21.5\n");
	free(out);

	struct metric_series *s = metrics_series(g, NULL);
	metrics_series_gauge_add(s, -22);
	metrics_series_add(s, 5);            /* wrong type: ignored */
	assert_true(metrics_series_value(s, NULL) == -0.5);
	metrics_free(m);
}

static void test_histogram_text(void **state)
{
	struct metrics *m = metrics_new();
	static const char *const l[] = {"route"};
	static const double b[] = {0.005, 0.1, 1};
	struct metric_family *h = reg(m, "t_duration_seconds", METRIC_HISTOGRAM, l, 1, b, 3, 0);
	struct metric_series *s = metrics_series(h, (const char *[]){"a.localhost/"});
	metrics_series_observe(s, 0.001);
	metrics_series_observe(s, 0.005);    /* le is inclusive */
	metrics_series_observe(s, 0.5);
	metrics_series_observe(s, 7);
	metrics_series_observe(s, NAN);      /* ignored */
	char *out = render_own(m);
	assert_string_equal(out,
			    "# HELP t_duration_seconds Help.\n"
			    "# TYPE t_duration_seconds histogram\n"
			    "t_duration_seconds_bucket{route=\"a.localhost/\",le=\"0.005\"} 2\n"
			    "t_duration_seconds_bucket{route=\"a.localhost/\",le=\"0.1\"} 2\n"
			    "t_duration_seconds_bucket{route=\"a.localhost/\",le=\"1\"} 3\n"
			    "t_duration_seconds_bucket{route=\"a.localhost/\",le=\"+Inf\"} 4\n"
			    "t_duration_seconds_sum{route=\"a.localhost/\"} 7.506\n"
			    "t_duration_seconds_count{route=\"a.localhost/\"} 4\n");
	free(out);
	double sum;
	assert_true(metrics_series_value(s, &sum) == 4);
	assert_true(fabs(sum - 7.506) < 1e-12);

	/* A histogram without labels. */
	struct metric_family *h2 = reg(m, "t_size_bytes", METRIC_HISTOGRAM, NULL, 0, b, 1, 0);
	metrics_observe(h2, NULL, 0.001);
	out = render_own(m);
	assert_non_null(strstr(out, "t_size_bytes_bucket{le=\"0.005\"} 1\n"
				    "t_size_bytes_bucket{le=\"+Inf\"} 1\n"
				    "t_size_bytes_sum 0.001\n"
				    "t_size_bytes_count 1\n"));
	free(out);
	metrics_free(m);
}

static void test_number_format(void **state)
{
	struct metrics *m = metrics_new();
	static const char *const l[] = {"k"};
	struct metric_family *g = reg(m, "t_g", METRIC_GAUGE, l, 1, NULL, 0, 0);
	metrics_set(g, (const char *[]){"a"}, 0.1);
	metrics_set(g, (const char *[]){"b"}, 1e-9);
	metrics_set(g, (const char *[]){"c"}, 1e20);
	metrics_set(g, (const char *[]){"d"}, NAN);
	metrics_set(g, (const char *[]){"e"}, -INFINITY);
	metrics_set(g, (const char *[]){"f"}, 1234567);
	metrics_set(g, (const char *[]){"g"}, 1.0 / 3);
	char *out = render_own(m);
	assert_non_null(strstr(out, "t_g{k=\"a\"} 0.1\n"));
	assert_non_null(strstr(out, "t_g{k=\"b\"} 1e-09\n"));
	assert_non_null(strstr(out, "t_g{k=\"c\"} 1e+20\n"));
	assert_non_null(strstr(out, "t_g{k=\"d\"} NaN\n"));
	assert_non_null(strstr(out, "t_g{k=\"e\"} -Inf\n"));
	assert_non_null(strstr(out, "t_g{k=\"f\"} 1234567\n"));
	assert_non_null(strstr(out, "t_g{k=\"g\"} 0.3333333333333333\n"));
	free(out);
	metrics_free(m);
}

static void test_escaping(void **state)
{
	struct metrics *m = metrics_new();
	static const char *const l[] = {"route"};
	struct err e = ERR_INIT;
	struct metric_desc d = {"t_esc_total", "Back\\slash and\nnewline \"quoted\".", METRIC_COUNTER, l, 1,
				NULL, 0, 0};
	struct metric_family *c = metrics_register(m, &d, &e);
	assert_non_null(c);
	metrics_inc(c, (const char *[]){"a\"b\\c\nd"});
	metrics_inc(c, (const char *[]){"caf\xc3\xa9 \xff\xfe x"});   /* é kept, bad bytes -> ? */
	metrics_inc(c, (const char *[]){"\xed\xa0\x80"});             /* a UTF-16 surrogate: invalid */
	metrics_inc(c, (const char *[]){NULL});                        /* NULL is "" */
	metrics_inc(c, (const char *[]){""});
	char longv[600];
	memset(longv, 'x', sizeof longv - 1);
	longv[sizeof longv - 1] = 0;
	longv[METRICS_VALUE_MAX - 1] = '\xc3';      /* a 2-byte char straddling the cut */
	longv[METRICS_VALUE_MAX] = '\xa9';
	metrics_inc(c, (const char *[]){longv});
	metrics_inc(c, (const char *[]){longv});    /* the same (cut) series again */
	char *out = render_own(m);
	assert_non_null(strstr(out, "# HELP t_esc_total Back\\\\slash and\\nnewline \"quoted\".\n"));
	assert_non_null(strstr(out, "t_esc_total{route=\"a\\\"b\\\\c\\nd\"} 1\n"));
	assert_non_null(strstr(out, "t_esc_total{route=\"caf\xc3\xa9 ?? x\"} 1\n"));
	assert_non_null(strstr(out, "t_esc_total{route=\"???\"} 1\n"));
	assert_non_null(strstr(out, "t_esc_total{route=\"\"} 2\n"));
	struct buf want = BUF_INIT;
	buf_adds(&want, "t_esc_total{route=\"");
	for (int i = 0; i < METRICS_VALUE_MAX - 1; i++)
		buf_addc(&want, 'x');
	buf_adds(&want, "\"} 2\n");
	assert_non_null(strstr(out, want.p));
	buf_free(&want);
	free(out);
	metrics_free(m);
}

static void test_register_rules(void **state)
{
	struct metrics *m = metrics_new();
	struct err e = ERR_INIT;
	static const char *const le[] = {"le"};
	static const char *const dup[] = {"a", "a"};
	static const char *const reserved[] = {"__name"};
	static const char *const bad[] = {"1abc"};
	static const double inc[] = {1, 2}, flat[] = {1, 1}, inf[] = {1, INFINITY};
	struct {
		struct metric_desc d;
		int code;
		const char *msg;
	} cases[] = {
		{{"t_requests", "h", METRIC_COUNTER, NULL, 0, NULL, 0, 0}, ERR_INVALID, "must end in _total"},
		{{"9lives", "h", METRIC_GAUGE, NULL, 0, NULL, 0, 0}, ERR_INVALID, "is not"},
		{{"t-dash", "h", METRIC_GAUGE, NULL, 0, NULL, 0, 0}, ERR_INVALID, "is not"},
		{{"t_nohelp", NULL, METRIC_GAUGE, NULL, 0, NULL, 0, 0}, ERR_INVALID, "help"},
		{{"t_h", "h", METRIC_HISTOGRAM, le, 1, inc, 2, 0}, ERR_INVALID, "\"le\" is reserved"},
		{{"t_h", "h", METRIC_HISTOGRAM, NULL, 0, flat, 2, 0}, ERR_INVALID, "must increase"},
		{{"t_h", "h", METRIC_HISTOGRAM, NULL, 0, inf, 2, 0}, ERR_INVALID, "finite"},
		{{"t_h", "h", METRIC_HISTOGRAM, NULL, 0, NULL, 0, 0}, ERR_INVALID, "buckets"},
		{{"t_h_count", "h", METRIC_HISTOGRAM, NULL, 0, inc, 2, 0}, ERR_INVALID, "_count"},
		{{"t_g", "h", METRIC_GAUGE, dup, 2, NULL, 0, 0}, ERR_INVALID, "label a twice"},
		{{"t_g", "h", METRIC_GAUGE, reserved, 1, NULL, 0, 0}, ERR_INVALID, "bad label name"},
		{{"t_g", "h", METRIC_GAUGE, bad, 1, NULL, 0, 0}, ERR_INVALID, "bad label name"},
		{{"t_g", "h", METRIC_GAUGE, NULL, 0, inc, 2, 0}, ERR_INVALID, "only histograms"},
		{{"berth_metrics_series_dropped_total", "h", METRIC_COUNTER, NULL, 0, NULL, 0, 0}, ERR_CONFLICT,
		 "already registered"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		err_clear(&e);
		assert_null(metrics_register(m, &cases[i].d, &e));
		assert_int_equal(e.code, cases[i].code);
		if (!strstr(e.msg, cases[i].msg))
			fail_msg("case %zu: \"%s\" lacks \"%s\"", i, e.msg, cases[i].msg);
	}
	struct metric_desc ok = {"ns:t_ok_total", "h", METRIC_COUNTER, NULL, 0, NULL, 0, 0};
	assert_non_null(metrics_register(m, &ok, &e));
	assert_non_null(metrics_family(m, "ns:t_ok_total"));
	assert_null(metrics_family(m, "t_missing"));
	metrics_free(m);
}

static void test_cardinality_limit(void **state)
{
	struct metrics *m = metrics_new();
	static const char *const l[] = {"route", "status"};
	struct metric_family *c = reg(m, "t_limited_total", METRIC_COUNTER, l, 2, NULL, 0, 3);
	assert_non_null(metrics_series(c, (const char *[]){"a", "2xx"}));
	assert_non_null(metrics_series(c, (const char *[]){"b", "2xx"}));
	assert_non_null(metrics_series(c, (const char *[]){"c", "2xx"}));
	assert_null(metrics_series(c, (const char *[]){"d", "2xx"}));
	metrics_inc(c, (const char *[]){"e", "2xx"});                  /* refused, no crash */
	metrics_series_add(NULL, 1);
	metrics_series_observe(NULL, 1);
	metrics_series_set(NULL, 1);
	metrics_inc(c, (const char *[]){"a", "2xx"});                  /* existing: still counted */
	char *out = render(m);
	assert_non_null(strstr(out, "t_limited_total{route=\"a\",status=\"2xx\"} 1\n"));
	assert_null(strstr(out, "route=\"d\""));
	assert_null(strstr(out, "route=\"e\""));
	assert_non_null(strstr(out, "# TYPE berth_metrics_series_dropped_total counter\n"));
	assert_non_null(strstr(out, "berth_metrics_series_dropped_total{family=\"t_limited_total\"} 2\n"));
	free(out);
	metrics_free(m);
}

static void count_instances(void *arg, struct metrics_emitter *em)
{
	int *calls = arg;
	(*calls)++;
	/* One emit per instance; the emitter sums equal label sets. */
	metrics_emit(em, (const char *[]){"production", "shop", "web", "running"}, 1);
	metrics_emit(em, (const char *[]){"production", "shop", "web", "running"}, 1);
	metrics_emit(em, (const char *[]){"production", "shop", "worker", "backoff"}, 1);
	metrics_emit(em, (const char *[]){"production", "shop", "web", "running"}, 1);
}

static void emit_nothing(void *arg, struct metrics_emitter *em)
{
}

static void test_collectors(void **state)
{
	struct metrics *m = metrics_new();
	struct metrics_families f;
	struct err e = ERR_INIT;
	assert_int_equal(metrics_default_families(m, &f, &e), 0);
	int calls = 0;
	metrics_family_set_collect(f.instances, count_instances, &calls);
	metrics_family_set_collect(f.log_lines, emit_nothing, NULL);
	char *out = render(m);
	assert_int_equal(calls, 1);
	assert_non_null(strstr(out, "# HELP berth_instances Instances by state"));
	assert_non_null(strstr(out, "# TYPE berth_instances gauge\n"
				    "berth_instances{env=\"production\",app=\"shop\",process=\"web\",state=\"running\"} 3\n"
				    "berth_instances{env=\"production\",app=\"shop\",process=\"worker\",state=\"backoff\"} 1\n"));
	/* Families without samples are left out entirely. */
	assert_null(strstr(out, "# TYPE berth_log_lines_total"));
	assert_null(strstr(out, "# TYPE berth_router_requests_total"));
	free(out);
	metrics_free(m);
}

/* A collector that emits more label sets than the family allows. */
static void emit_many(void *arg, struct metrics_emitter *em)
{
	char v[16];
	for (int i = 0; i < 10; i++) {
		snprintf(v, sizeof v, "%d", i);
		metrics_emit(em, (const char *[]){v}, i);
	}
}

static void test_collector_limit(void **state)
{
	struct metrics *m = metrics_new();
	static const char *const l[] = {"k"};
	struct metric_family *g = reg(m, "t_collected", METRIC_GAUGE, l, 1, NULL, 0, 4);
	metrics_family_set_collect(g, emit_many, NULL);
	char *out = render(m);
	assert_non_null(strstr(out, "t_collected{k=\"3\"} 3\n"));
	assert_null(strstr(out, "t_collected{k=\"4\"}"));
	assert_non_null(strstr(out, "berth_metrics_series_dropped_total{family=\"t_collected\"} 6\n"));
	free(out);
	metrics_free(m);
}

static void test_default_families(void **state)
{
	struct metrics *m = metrics_new();
	struct metrics_families f;
	struct err e = ERR_INIT;
	assert_int_equal(metrics_default_families(m, &f, &e), 0);
	/* Registering them twice is a conflict, not a crash. */
	struct metrics_families f2;
	assert_int_equal(metrics_default_families(m, &f2, &e), -1);
	assert_int_equal(e.code, ERR_CONFLICT);

	metrics_inc(f.instance_restarts, (const char *[]){"production", "shop", "web"});
	metrics_inc(f.health_failures, (const char *[]){"production", "shop", "web"});
	metrics_inc(f.deploys, (const char *[]){"production", "shop", "succeeded"});
	metrics_observe(f.deploy_duration, (const char *[]){"production", "shop"}, 0.7);
	metrics_inc(f.router_requests, (const char *[]){"shop.production.localhost/", metrics_status_class(204)});
	metrics_observe(f.router_duration, (const char *[]){"shop.production.localhost/"}, 0.0012);
	metrics_inc(f.router_upstream_errors, (const char *[]){"shop.production.localhost/", "connect"});
	metrics_inc(f.dns_queries, (const char *[]){"SRV", "NOERROR"});
	metrics_inc(f.alerts, (const char *[]){"crash_loop", "sent"});
	char *out = render(m);
	static const char *const want[] = {
		("# TYPE berth_instance_restarts_total counter\n"
		 "berth_instance_restarts_total{env=\"production\",app=\"shop\",process=\"web\"} 1\n"),
		"berth_health_check_failures_total{env=\"production\",app=\"shop\",process=\"web\"} 1\n",
		"berth_deploys_total{env=\"production\",app=\"shop\",outcome=\"succeeded\"} 1\n",
		"# TYPE berth_deploy_duration_seconds histogram\n",
		"berth_deploy_duration_seconds_bucket{env=\"production\",app=\"shop\",le=\"1\"} 1\n",
		"berth_router_requests_total{route=\"shop.production.localhost/\",status=\"2xx\"} 1\n",
		"berth_router_request_duration_seconds_bucket{route=\"shop.production.localhost/\",le=\"0.0025\"} 1\n",
		"berth_router_upstream_errors_total{route=\"shop.production.localhost/\",kind=\"connect\"} 1\n",
		"berth_dns_queries_total{qtype=\"SRV\",rcode=\"NOERROR\"} 1\n",
		"berth_alerts_total{kind=\"crash_loop\",outcome=\"sent\"} 1\n",
		"# TYPE berth_process_resident_memory_bytes gauge\n",
		"# TYPE berth_process_cpu_seconds_total counter\n",
		"# TYPE berth_process_open_fds gauge\n",
		"# TYPE berth_process_max_fds gauge\n",
		"# TYPE berth_process_threads gauge\n",
		"# TYPE berth_process_virtual_memory_bytes gauge\n",
	};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		if (!strstr(out, want[i]))
			fail_msg("missing:\n%s\nin:\n%s", want[i], out);
	/* Process values are plausible: some memory, a start time within the last day. */
	const char *p = strstr(out, "\nberth_process_resident_memory_bytes ");
	assert_non_null(p);
	assert_true(strtod(p + 37, NULL) > 1e5);
	p = strstr(out, "\nberth_process_start_time_seconds ");
	assert_non_null(p);
	double start = strtod(p + 34, NULL);
	assert_true(start > (double)time(NULL) - 86400 && start <= (double)time(NULL) + 1);
	p = strstr(out, "\nberth_process_open_fds ");
	assert_non_null(p);
	assert_true(strtod(p + 24, NULL) >= 3);
	free(out);

	assert_string_equal(metrics_status_class(101), "1xx");
	assert_string_equal(metrics_status_class(302), "3xx");
	assert_string_equal(metrics_status_class(404), "4xx");
	assert_string_equal(metrics_status_class(599), "5xx");
	assert_string_equal(metrics_status_class(600), "other");
	assert_string_equal(metrics_status_class(0), "other");
	metrics_free(m);
}

/* ---- promtool ---- */

static void lines_collect(void *arg, struct metrics_emitter *em)
{
	metrics_emit(em, NULL, 12345);
}

static void test_promtool(void **state)
{
	if (system("command -v promtool >/dev/null 2>&1") != 0) {
		printf("SKIP promtool check: promtool not installed (apt-get install prometheus)\n");
		skip();
	}
	struct metrics *m = metrics_new();
	struct metrics_families f;
	struct err e = ERR_INIT;
	assert_int_equal(metrics_default_families(m, &f, &e), 0);
	int calls = 0;
	metrics_family_set_collect(f.instances, count_instances, &calls);
	metrics_family_set_collect(f.log_lines, lines_collect, NULL);
	const char *statuses[] = {"1xx", "2xx", "3xx", "4xx", "5xx", "other"};
	for (int i = 0; i < 6; i++)
		metrics_add(f.router_requests, (const char *[]){"shop.example.com/careers", statuses[i]}, (uint64_t)i);
	metrics_inc(f.router_requests, (const char *[]){"we\"ird\\host\n/\xff", "2xx"});
	metrics_observe(f.router_duration, (const char *[]){"shop.example.com/careers"}, 0.02);
	metrics_observe(f.router_duration, (const char *[]){"shop.example.com/careers"}, 40);
	metrics_inc(f.router_upstream_errors, (const char *[]){"unmatched", "no_healthy"});
	metrics_inc(f.deploys, (const char *[]){"staging", "shop", "rolled_back"});
	metrics_observe(f.deploy_duration, (const char *[]){"staging", "shop"}, 3.5);
	metrics_inc(f.instance_restarts, (const char *[]){"staging", "shop", "web"});
	metrics_inc(f.health_failures, (const char *[]){"staging", "shop", "web"});
	metrics_inc(f.dns_queries, (const char *[]){"A", "NXDOMAIN"});
	metrics_inc(f.alerts, (const char *[]){"deploy_failed", "failed"});
	char *out = render(m);
	char path[] = "/tmp/berth-metrics-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, out, strlen(out)), (ssize_t)strlen(out));
	close(fd);
	char *cmd = xasprintf("promtool check metrics < %s 2>&1", path);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	char msg[4096];
	size_t n = fread(msg, 1, sizeof msg - 1, p);
	msg[n] = 0;
	int rc = pclose(p);
	if (rc != 0)
		fail_msg("promtool check metrics failed (%d):\n%s\n--- exposition ---\n%s", rc, msg, out);
	unlink(path);
	free(cmd);
	free(out);
	metrics_free(m);
}

/* ---- concurrency ---- */

#define ADDS 1000000

struct worker {
	struct metric_family *c, *h, *shared;
	int id;
};

static void *hammer(void *arg)
{
	struct worker *w = arg;
	struct metric_series *s = metrics_series(w->c, (const char *[]){"same"});
	struct metric_series *h = metrics_series(w->h, NULL);
	for (int i = 0; i < ADDS; i++) {
		metrics_series_add(s, 1);
		if ((i & 15) == 0)
			metrics_series_observe(h, 1.0);
	}
	return NULL;
}

/* Every thread creates and bumps the same 300 series through the lookup path. */
static void *create_race(void *arg)
{
	struct worker *w = arg;
	char v[32];
	for (int round = 0; round < 20; round++)
		for (int i = 0; i < 300; i++) {
			snprintf(v, sizeof v, "series-%d", (i * 7 + w->id * 13) % 300);
			metrics_inc(w->shared, (const char *[]){v});
		}
	return NULL;
}

static void test_concurrent_exact(void **state)
{
	struct metrics *m = metrics_new();
	static const char *const l[] = {"k"};
	static const double b[] = {0.5, 2};
	struct metric_family *c = reg(m, "t_hot_total", METRIC_COUNTER, l, 1, NULL, 0, 0);
	struct metric_family *h = reg(m, "t_hot_seconds", METRIC_HISTOGRAM, NULL, 0, b, 2, 0);
	struct metric_family *shared = reg(m, "t_race_total", METRIC_COUNTER, l, 1, NULL, 0, 300);
	pthread_t t[4];
	struct worker w[4];
	for (int i = 0; i < 2; i++) {
		w[i] = (struct worker){c, h, shared, i};
		assert_int_equal(pthread_create(&t[i], NULL, hammer, &w[i]), 0);
	}
	/* Scrapes race with the writers: every rendered count is a valid number. */
	for (int i = 0; i < 20; i++) {
		char *out = render(m);
		assert_non_null(out);
		free(out);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	struct metric_series *s = metrics_series(c, (const char *[]){"same"});
	assert_true(metrics_series_value(s, NULL) == 2.0 * ADDS);
	double sum;
	assert_true(metrics_series_value(metrics_series(h, NULL), &sum) == 2.0 * (ADDS / 16));
	assert_true(sum == 2.0 * (ADDS / 16));

	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){c, h, shared, i};
		assert_int_equal(pthread_create(&t[i], NULL, create_race, &w[i]), 0);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	char *out = render(m);
	int lines = 0;
	for (const char *p = out; (p = strstr(p, "\nt_race_total{")); p++) {
		lines++;
		const char *sp = strchr(p, ' ');
		assert_int_equal(atoi(sp + 1), 4 * 20);
	}
	assert_int_equal(lines, 300);                     /* each series created exactly once */
	assert_non_null(strstr(out, "berth_metrics_series_dropped_total{family=\"t_race_total\"} 0\n"));
	free(out);
	metrics_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counter_gauge_text),
		cmocka_unit_test(test_histogram_text),
		cmocka_unit_test(test_number_format),
		cmocka_unit_test(test_escaping),
		cmocka_unit_test(test_register_rules),
		cmocka_unit_test(test_cardinality_limit),
		cmocka_unit_test(test_collectors),
		cmocka_unit_test(test_collector_limit),
		cmocka_unit_test(test_default_families),
		cmocka_unit_test(test_promtool),
		cmocka_unit_test(test_concurrent_exact),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
