/* metrics render: the Prometheus text exposition (format 0.0.4) of a registry, and the
 * emitter that collector callbacks fill at scrape time.
 *
 * Format rules kept here: "# HELP" text escapes backslash and newline; label values escape
 * backslash, double quote and newline (they are already valid UTF-8, see
 * metrics_clean_value); histograms render cumulative _bucket{le=...} lines ending with
 * le="+Inf", then _sum and _count, where _count is always the +Inf bucket (both are computed
 * from the same bucket reads, so a scrape racing with observations stays consistent);
 * floats are printed in their shortest round-trip form ("0.005", "+Inf", "NaN"). */
#include "metrics/internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void metrics_fmt_double(struct buf *out, double v)
{
	if (isnan(v)) {
		buf_adds(out, "NaN");
		return;
	}
	if (isinf(v)) {
		buf_adds(out, v > 0 ? "+Inf" : "-Inf");
		return;
	}
	if (v == trunc(v) && fabs(v) < 1e15) {
		buf_addf(out, "%.0f", v);
		return;
	}
	char tmp[40];
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(tmp, sizeof tmp, "%.*g", prec, v);
		if (strtod(tmp, NULL) == v)
			break;
	}
	buf_adds(out, tmp);
}

static void add_escaped(struct buf *out, const char *s, bool quote)
{
	const char *run = s;
	for (const char *p = s; *p; p++) {
		const char *rep = NULL;
		if (*p == '\\')
			rep = "\\\\";
		else if (*p == '\n')
			rep = "\\n";
		else if (quote && *p == '"')
			rep = "\\\"";
		if (!rep)
			continue;
		buf_add(out, run, (size_t)(p - run));
		buf_adds(out, rep);
		run = p + 1;
	}
	buf_adds(out, run);
}

/* name + suffix + {labels[, extra="extra_value"]} + ' ' */
static void sample_start(struct buf *out, const struct metric_family *f, const char *suffix,
			 char *const *values, const char *extra, const char *extra_value)
{
	buf_adds(out, f->name);
	buf_adds(out, suffix);
	if (f->nlabels || extra) {
		buf_addc(out, '{');
		for (size_t i = 0; i < f->nlabels; i++) {
			if (i)
				buf_addc(out, ',');
			buf_adds(out, f->labels[i]);
			buf_adds(out, "=\"");
			add_escaped(out, values[i], true);
			buf_addc(out, '"');
		}
		if (extra) {
			if (f->nlabels)
				buf_addc(out, ',');
			buf_adds(out, extra);
			buf_adds(out, "=\"");
			buf_adds(out, extra_value);
			buf_addc(out, '"');
		}
		buf_addc(out, '}');
	}
	buf_addc(out, ' ');
}

static void render_series(struct buf *out, const struct metric_family *f, struct metric_series *s)
{
	if (f->type == METRIC_COUNTER) {
		sample_start(out, f, "", s->values, NULL, NULL);
		buf_addf(out, "%" PRIu64 "\n", (uint64_t)atomic_load_explicit(&s->v[0], memory_order_relaxed));
		return;
	}
	if (f->type == METRIC_GAUGE) {
		sample_start(out, f, "", s->values, NULL, NULL);
		metrics_fmt_double(out, metrics_series_value(s, NULL));
		buf_addc(out, '\n');
		return;
	}
	uint64_t cum = 0;
	struct buf le = BUF_INIT;
	for (size_t i = 0; i <= f->nbuckets; i++) {
		cum += atomic_load_explicit(&s->v[1 + i], memory_order_relaxed);
		buf_reset(&le);
		if (i < f->nbuckets)
			metrics_fmt_double(&le, f->buckets[i]);
		else
			buf_adds(&le, "+Inf");
		sample_start(out, f, "_bucket", s->values, "le", buf_str(&le));
		buf_addf(out, "%" PRIu64 "\n", cum);
	}
	buf_free(&le);
	uint64_t sumbits = atomic_load_explicit(&s->v[0], memory_order_relaxed);
	double sum;
	memcpy(&sum, &sumbits, sizeof sum);
	sample_start(out, f, "_sum", s->values, NULL, NULL);
	metrics_fmt_double(out, sum);
	buf_addc(out, '\n');
	sample_start(out, f, "_count", s->values, NULL, NULL);
	buf_addf(out, "%" PRIu64 "\n", cum);
}

/* ---- collectors ---- */

struct emitted {
	uint64_t hash;
	char **values;
	double v;             /* counters and gauges; a histogram's sum */
	uint64_t *counts;     /* histograms: per bucket, not cumulative, nbuckets + 1 */
};

struct metrics_emitter {
	struct metric_family *f;
	struct emitted *items;
	size_t n, cap;
	size_t *table;          /* index + 1 into items; 0 = empty */
	size_t mask;
};

static void emitter_rehash(struct metrics_emitter *em, size_t size)
{
	free(em->table);
	em->table = xcalloc(size, sizeof *em->table);
	em->mask = size - 1;
	for (size_t k = 0; k < em->n; k++) {
		size_t i = em->items[k].hash & em->mask;
		while (em->table[i])
			i = (i + 1) & em->mask;
		em->table[i] = k + 1;
	}
}

/* The item of a label set, created on first use; NULL when the family is full. */
static struct emitted *emitted_get(struct metrics_emitter *em, const char *const *values)
{
	struct metric_family *f = em->f;
	char tmp[METRICS_MAX_LABELS][METRICS_VALUE_MAX + 1];
	const char *vals[METRICS_MAX_LABELS];
	for (size_t i = 0; i < f->nlabels; i++)
		vals[i] = metrics_clean_value(values ? values[i] : NULL, tmp[i]);
	uint64_t h = metrics_hash_values(vals, f->nlabels);
	size_t i = h & em->mask;
	for (; em->table[i]; i = (i + 1) & em->mask) {
		struct emitted *it = &em->items[em->table[i] - 1];
		if (it->hash != h)
			continue;
		size_t k = 0;
		while (k < f->nlabels && strcmp(it->values[k], vals[k]) == 0)
			k++;
		if (k == f->nlabels)
			return it;
	}
	if (em->n >= f->max_series) {
		atomic_fetch_add_explicit(&f->dropped, 1, memory_order_relaxed);
		return NULL;
	}
	if (em->n == em->cap) {
		em->cap = em->cap ? em->cap * 2 : 16;
		em->items = xrealloc(em->items, em->cap * sizeof *em->items);
	}
	struct emitted *it = &em->items[em->n];
	it->hash = h;
	it->v = 0;
	it->counts = f->type == METRIC_HISTOGRAM ? xcalloc(f->nbuckets + 1, sizeof *it->counts) : NULL;
	it->values = xcalloc(f->nlabels ? f->nlabels : 1, sizeof *it->values);
	for (size_t k = 0; k < f->nlabels; k++)
		it->values[k] = xstrdup(vals[k]);
	em->table[i] = ++em->n;
	if (em->n * 2 > em->mask + 1)
		emitter_rehash(em, (em->mask + 1) * 2);
	return &em->items[em->n - 1];
}

void metrics_emit(struct metrics_emitter *em, const char *const *values, double v)
{
	if (em->f->type == METRIC_HISTOGRAM)
		return;
	struct emitted *it = emitted_get(em, values);
	if (it)
		it->v += v;
}

void metrics_emit_histogram(struct metrics_emitter *em, const char *const *values, const uint64_t *counts,
			    size_t n, double sum)
{
	struct metric_family *f = em->f;
	if (f->type != METRIC_HISTOGRAM || n != f->nbuckets + 1)
		return;
	struct emitted *it = emitted_get(em, values);
	if (!it)
		return;
	for (size_t k = 0; k < n; k++)
		it->counts[k] += counts[k];
	it->v += sum;
}

static void render_collected(struct buf *out, struct metric_family *f)
{
	struct metrics_emitter em = {.f = f};
	emitter_rehash(&em, 32);
	f->collect(f->collect_arg, &em);
	struct buf le = BUF_INIT;
	for (size_t k = 0; k < em.n; k++) {
		struct emitted *it = &em.items[k];
		if (f->type == METRIC_HISTOGRAM) {
			uint64_t cum = 0;
			for (size_t i = 0; i <= f->nbuckets; i++) {
				cum += it->counts[i];
				buf_reset(&le);
				if (i < f->nbuckets)
					metrics_fmt_double(&le, f->buckets[i]);
				else
					buf_adds(&le, "+Inf");
				sample_start(out, f, "_bucket", it->values, "le", buf_str(&le));
				buf_addf(out, "%" PRIu64 "\n", cum);
			}
			sample_start(out, f, "_sum", it->values, NULL, NULL);
			metrics_fmt_double(out, it->v);
			buf_addc(out, '\n');
			sample_start(out, f, "_count", it->values, NULL, NULL);
			buf_addf(out, "%" PRIu64 "\n", cum);
		} else {
			sample_start(out, f, "", it->values, NULL, NULL);
			metrics_fmt_double(out, it->v);
			buf_addc(out, '\n');
		}
		for (size_t i = 0; i < f->nlabels; i++)
			free(it->values[i]);
		free(it->values);
		free(it->counts);
	}
	buf_free(&le);
	free(em.items);
	free(em.table);
}

static const char *type_name(enum metric_type t)
{
	switch (t) {
	case METRIC_COUNTER: return "counter";
	case METRIC_GAUGE: return "gauge";
	case METRIC_HISTOGRAM: return "histogram";
	}
	return "untyped";
}

static void render_family(struct buf *out, struct buf *body, struct metric_family *f)
{
	buf_reset(body);
	if (f->collect) {
		render_collected(body, f);
	} else {
		pthread_mutex_lock(&f->mu);
		for (struct metric_series *s = f->head; s; s = s->next)
			render_series(body, f, s);
		pthread_mutex_unlock(&f->mu);
	}
	if (!body->len)
		return;
	buf_adds(out, "# HELP ");
	buf_adds(out, f->name);
	buf_addc(out, ' ');
	add_escaped(out, f->help, false);
	buf_addf(out, "\n# TYPE %s %s\n", f->name, type_name(f->type));
	buf_add(out, body->p, body->len);
}

void metrics_render(struct metrics *m, struct buf *out)
{
	struct buf body = BUF_INIT;
	for (struct metric_family *f = m->head; f; f = f->next)
		if (f != m->dropped)
			render_family(out, &body, f);
	/* Last, so it includes what collectors refused during this very scrape. */
	render_family(out, &body, m->dropped);
	buf_free(&body);
}
