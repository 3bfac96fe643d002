/* metrics: berth's registry of counters, gauges and histograms, rendered in the Prometheus
 * text exposition format (version 0.0.4) for GET /metrics.
 *
 * Threads. Families are registered on the main thread at start-up (metrics_register) and live
 * until metrics_free. Everything that records a value (metrics_series, metrics_series_add,
 * _set, _observe and the family-level shorthands) may be called from any thread: the router's
 * loops, the DNS server, the alerts worker. Rendering (metrics_render) and collector callbacks
 * run on the main thread.
 *
 * Hot path. A series is one label set of a family. metrics_series() resolves it through a
 * fixed-size open-addressing table read without a lock (only creating a series takes the
 * family's mutex) and returns a handle that stays valid until metrics_free: a router caches
 * the handles of a route once and afterwards records with one relaxed atomic add (counters,
 * histogram buckets) or a short compare-and-swap loop (gauge adds, histogram sums). Series are
 * never deleted.
 *
 * Cardinality. A family holds at most max_series series (default METRICS_DEFAULT_MAX_SERIES).
 * Past it metrics_series() returns NULL (every recording function accepts a NULL series and
 * does nothing) and the refusal is counted in berth_metrics_series_dropped_total{family}.
 * Label values are cut at METRICS_VALUE_MAX bytes and invalid UTF-8 bytes become '?', so any
 * string may be passed; the rendered output always parses.
 *
 * Collected families. A counter or gauge family may instead get its samples at scrape time
 * from a callback (metrics_family_set_collect), e.g. instances by state counted from the
 * supervisor. Such a family renders only what its collector emits. */
#ifndef BERTH_METRICS_H
#define BERTH_METRICS_H
#include <stddef.h>
#include <stdint.h>
#include "util/buf.h"
#include "util/err.h"

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define METRICS_DEFAULT_MAX_SERIES 1000
#define METRICS_MAX_LABELS 8
#define METRICS_MAX_BUCKETS 32
#define METRICS_VALUE_MAX 256       /* bytes of a label value kept */

struct metrics;
struct metric_family;
struct metric_series;
struct metrics_emitter;

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

/* What metrics_register copies. Names follow Prometheus rules ([a-zA-Z_:][a-zA-Z0-9_:]*);
 * a counter's name ends in "_total"; a histogram's name does not end in _bucket/_sum/_count
 * and has no "le" label. buckets: strictly increasing finite upper bounds, +Inf is implied. */
struct metric_desc {
	const char *name;
	const char *help;
	enum metric_type type;
	const char *const *labels;
	size_t nlabels;                 /* <= METRICS_MAX_LABELS */
	const double *buckets;          /* histograms only */
	size_t nbuckets;                /* 1..METRICS_MAX_BUCKETS for histograms */
	size_t max_series;              /* 0 = METRICS_DEFAULT_MAX_SERIES */
};

/* A new, empty registry (it already holds berth_metrics_series_dropped_total). */
struct metrics *metrics_new(void);
/* Frees the registry, its families and every series handle. Accepts NULL. No other thread may
 * be recording any more. */
void metrics_free(struct metrics *m);

/* Register a family (main thread). Returns it (owned by the registry), or NULL with e set:
 * ERR_INVALID for a malformed description, ERR_CONFLICT for a name already registered. */
struct metric_family *metrics_register(struct metrics *m, const struct metric_desc *d, struct err *e);
/* The family registered under name, or NULL. */
struct metric_family *metrics_family(struct metrics *m, const char *name);

/* The series of a label set (values[i] belongs to the i-th label name; NULL is ""; values may
 * be NULL for a family without labels). Any thread. NULL when the family is full. */
struct metric_series *metrics_series(struct metric_family *f, const char *const *values);

/* Record on a series (any thread; s may be NULL). Counters take whole increments; gauges are
 * set or moved; histograms observe one value (NaN is ignored). Using the wrong function for
 * the family's type does nothing. */
void metrics_series_add(struct metric_series *s, uint64_t n);          /* counter */
void metrics_series_set(struct metric_series *s, double v);            /* gauge */
void metrics_series_gauge_add(struct metric_series *s, double delta);  /* gauge */
void metrics_series_observe(struct metric_series *s, double v);        /* histogram */

/* Shorthands that resolve the series on every call (a lock-free lookup when it exists). */
void metrics_inc(struct metric_family *f, const char *const *values);
void metrics_add(struct metric_family *f, const char *const *values, uint64_t n);
void metrics_set(struct metric_family *f, const char *const *values, double v);
void metrics_observe(struct metric_family *f, const char *const *values, double v);

/* Read back one series (tests, the dashboard). Counter: its count; gauge: its value;
 * histogram: the number of observations (sum in *sum when sum is not NULL). 0 for NULL. */
double metrics_series_value(const struct metric_series *s, double *sum);

/* Collected families: fn runs on the rendering thread for each scrape and calls
 * metrics_emit for its samples. Emitting the same label set again adds to its value, so a
 * collector may emit 1 per instance to count instances by state. Histograms use
 * metrics_emit_histogram. */
typedef void (*metrics_collect_fn)(void *arg, struct metrics_emitter *em);
void metrics_family_set_collect(struct metric_family *f, metrics_collect_fn fn, void *arg);
void metrics_emit(struct metrics_emitter *em, const char *const *values, double v);
/* For a collected histogram family: counts per bucket (not cumulative; n = the family's
 * buckets + 1 for +Inf) and the sum of the observations. Equal label sets add up. */
void metrics_emit_histogram(struct metrics_emitter *em, const char *const *values, const uint64_t *counts,
			    size_t n, double sum);

/* Append the whole exposition to out (main thread). Families in registration order, series
 * in creation order; a family without samples is left out. */
void metrics_render(struct metrics *m, struct buf *out);

/* The label value berth uses for an HTTP status: "1xx".."5xx", or "other". Static string. */
const char *metrics_status_class(int status);

/* ---- berth's own families (docs/metrics.md lists them) ---- */

struct metrics_families {
	struct metric_family *instances;           /* gauge {env,app,process,state}, collected */
	struct metric_family *instance_restarts;   /* counter {env,app,process} */
	struct metric_family *health_failures;     /* counter {env,app,process} */
	struct metric_family *deploys;             /* counter {env,app,outcome} */
	struct metric_family *deploy_duration;     /* histogram {env,app}, seconds */
	struct metric_family *router_requests;     /* counter {route,status}; status from
						      * metrics_status_class() */
	struct metric_family *router_duration;     /* histogram {route}, seconds */
	struct metric_family *router_upstream_errors; /* counter {route,kind} */
	struct metric_family *router_retries;      /* counter, no labels, collected */
	struct metric_family *router_aborts;       /* counter, no labels, collected */
	struct metric_family *router_connections;  /* gauge {kind}, collected */
	struct metric_family *router_log_dropped;  /* counter, no labels, collected */
	struct metric_family *dns_queries;         /* counter {qtype,rcode} */
	struct metric_family *log_lines;           /* counter, no labels, collected */
	struct metric_family *alerts;              /* counter {kind,outcome} */
};

/* Register the families above plus the process metrics (berth_process_*, collected from
 * /proc/self), filling f. Main thread, once per registry. The instances and log_lines
 * collectors are for the caller to set (metrics_family_set_collect). 0, or -1 with e set. */
int metrics_default_families(struct metrics *m, struct metrics_families *f, struct err *e);

#endif
