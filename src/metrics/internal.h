/* metrics internals shared by registry.c (families, series, hot path), render.c (exposition)
 * and families.c (berth's own families, process collectors). Not for other modules. */
#ifndef BERTH_METRICS_INTERNAL_H
#define BERTH_METRICS_INTERNAL_H
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include "metrics/metrics.h"

/* One label set. Allocated 64-byte aligned so two series never share a cache line, with the
 * hot atomics on a line of their own. v[0] is the counter, the gauge's double bits, or the
 * histogram's sum bits; a histogram's v[1 + i] counts observations in bucket i (not
 * cumulative; i == nbuckets is +Inf). Everything before v is immutable once published. */
struct metric_series {
	uint64_t hash;
	struct metric_family *fam;
	struct metric_series *next;          /* creation order; written under fam->mu */
	char **values;                       /* fam->nlabels cleaned copies */
	const double *bounds;                /* histograms: fam->buckets */
	uint32_t nbuckets;
	uint32_t type;                       /* enum metric_type */
	_Alignas(64) _Atomic uint64_t v[];
};

struct metric_family {
	struct metrics *m;
	struct metric_family *next;          /* registration order (main thread) */
	char *name, *help;
	enum metric_type type;
	char **labels;
	size_t nlabels;
	double *buckets;
	size_t nbuckets;
	size_t max_series;

	pthread_mutex_t mu;                  /* series creation, and rendering's walk of the list */
	_Atomic(struct metric_series *) *slots;  /* open addressing, never resized or cleared */
	size_t mask;
	atomic_size_t nseries;
	struct metric_series *head, *tail;
	atomic_uint_fast64_t dropped;        /* refused series (berth_metrics_series_dropped_total) */

	metrics_collect_fn collect;
	void *collect_arg;
};

struct metrics {
	struct metric_family *head, *tail;
	struct metric_family *dropped;       /* berth_metrics_series_dropped_total, rendered last */
};

/* Label value as stored: at most METRICS_VALUE_MAX bytes, cut on a character boundary,
 * invalid UTF-8 bytes replaced by '?'. Returns in itself when it is already clean, else
 * writes into tmp (METRICS_VALUE_MAX + 1 bytes). NULL is "". */
const char *metrics_clean_value(const char *in, char *tmp);
uint64_t metrics_hash_values(const char *const *values, size_t n);
#endif
