/* metrics registry: families, the lock-free series lookup and the recording hot path
 * (see metrics.h for the threading contract).
 *
 * Lookup: each family owns a power-of-two array of series pointers at least twice its
 * max_series, filled by linear probing and never resized or cleared, so a reader can probe it
 * without a lock: a slot goes from NULL to a fully built series exactly once (release store,
 * acquire load). A miss takes the family mutex, probes again and inserts. Because the array is
 * never more than half full a probe always ends on a NULL slot. */
#include "metrics/internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- label values ---- */

/* Length of the valid UTF-8 sequence at p (1..4), or 0 when it is not one. n = bytes left. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
	unsigned c = p[0];
	if (c < 0x80)
		return 1;
	size_t len;
	unsigned min;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	unsigned cp = c & (0x7f >> len);
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

const char *metrics_clean_value(const char *in, char *tmp)
{
	if (!in)
		return "";
	const unsigned char *p = (const unsigned char *)in;
	size_t i = 0;
	/* Fast path: short ASCII, as nearly every value is. */
	while (p[i] && p[i] < 0x80 && i <= METRICS_VALUE_MAX)
		i++;
	if (!p[i] && i <= METRICS_VALUE_MAX)
		return in;
	size_t n = strlen(in), o = 0;
	i = 0;
	while (i < n) {
		size_t len = utf8_seq(p + i, n - i);
		if (len == 0) {
			if (o + 1 > METRICS_VALUE_MAX)
				break;
			tmp[o++] = '?';
			i++;
			continue;
		}
		if (o + len > METRICS_VALUE_MAX)
			break;
		memcpy(tmp + o, p + i, len);
		o += len;
		i += len;
	}
	tmp[o] = 0;
	return tmp;
}

uint64_t metrics_hash_values(const char *const *values, size_t n)
{
	uint64_t h = 1469598103934665603ULL;    /* FNV-1a */
	for (size_t k = 0; k < n; k++) {
		for (const unsigned char *p = (const unsigned char *)values[k]; *p; p++) {
			h ^= *p;
			h *= 1099511628211ULL;
		}
		h ^= 0xff;                       /* separator: ("ab","") != ("a","b") */
		h *= 1099511628211ULL;
	}
	return h;
}

/* ---- registration ---- */

static bool valid_name(const char *s, bool colon)
{
	if (!s || !*s)
		return false;
	for (const char *p = s; *p; p++) {
		char c = *p;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
			  (colon && c == ':') || (p != s && c >= '0' && c <= '9');
		if (!ok)
			return false;
	}
	return true;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && strcmp(s + n - k, suffix) == 0;
}

static int check_desc(struct metrics *m, const struct metric_desc *d, struct err *e)
{
	if (!valid_name(d->name, true))
		return err_set(e, ERR_INVALID, "metric name \"%s\" is not [a-zA-Z_:][a-zA-Z0-9_:]*",
			       d->name ? d->name : "");
	if (!d->help || !*d->help)
		return err_set(e, ERR_INVALID, "metric %s: help text is required", d->name);
	if (metrics_family(m, d->name))
		return err_set(e, ERR_CONFLICT, "metric %s is already registered", d->name);
	if (d->type != METRIC_COUNTER && d->type != METRIC_GAUGE && d->type != METRIC_HISTOGRAM)
		return err_set(e, ERR_INVALID, "metric %s: unknown type %d", d->name, (int)d->type);
	if (d->type == METRIC_COUNTER && !ends_with(d->name, "_total"))
		return err_set(e, ERR_INVALID, "counter %s: name must end in _total", d->name);
	if (d->nlabels > METRICS_MAX_LABELS)
		return err_set(e, ERR_INVALID, "metric %s: %zu labels, at most %d", d->name, d->nlabels,
			       METRICS_MAX_LABELS);
	if (d->nlabels && !d->labels)
		return err_set(e, ERR_INVALID, "metric %s: label names missing", d->name);
	for (size_t i = 0; i < d->nlabels; i++) {
		const char *l = d->labels[i];
		if (!valid_name(l, false) || strncmp(l, "__", 2) == 0)
			return err_set(e, ERR_INVALID, "metric %s: bad label name \"%s\"", d->name, l ? l : "");
		if (d->type == METRIC_HISTOGRAM && strcmp(l, "le") == 0)
			return err_set(e, ERR_INVALID, "histogram %s: label \"le\" is reserved", d->name);
		for (size_t k = 0; k < i; k++)
			if (strcmp(d->labels[k], l) == 0)
				return err_set(e, ERR_INVALID, "metric %s: label %s twice", d->name, l);
	}
	if (d->type == METRIC_HISTOGRAM) {
		if (ends_with(d->name, "_bucket") || ends_with(d->name, "_sum") || ends_with(d->name, "_count"))
			return err_set(e, ERR_INVALID, "histogram %s: name must not end in _bucket, _sum or _count",
				       d->name);
		if (!d->buckets || d->nbuckets == 0 || d->nbuckets > METRICS_MAX_BUCKETS)
			return err_set(e, ERR_INVALID, "histogram %s: 1 to %d buckets needed", d->name,
				       METRICS_MAX_BUCKETS);
		for (size_t i = 0; i < d->nbuckets; i++) {
			if (!isfinite(d->buckets[i]))
				return err_set(e, ERR_INVALID, "histogram %s: bucket bounds must be finite", d->name);
			if (i && !(d->buckets[i] > d->buckets[i - 1]))
				return err_set(e, ERR_INVALID, "histogram %s: bucket bounds must increase", d->name);
		}
	} else if (d->nbuckets) {
		return err_set(e, ERR_INVALID, "metric %s: only histograms have buckets", d->name);
	}
	if (d->max_series > (1u << 20))
		return err_set(e, ERR_INVALID, "metric %s: max_series %zu is above 1048576", d->name,
			       d->max_series);
	return 0;
}

struct metric_family *metrics_register(struct metrics *m, const struct metric_desc *d, struct err *e)
{
	if (check_desc(m, d, e) < 0)
		return NULL;
	struct metric_family *f = xcalloc(1, sizeof *f);
	f->m = m;
	f->name = xstrdup(d->name);
	f->help = xstrdup(d->help);
	f->type = d->type;
	f->nlabels = d->nlabels;
	f->labels = xcalloc(d->nlabels ? d->nlabels : 1, sizeof *f->labels);
	for (size_t i = 0; i < d->nlabels; i++)
		f->labels[i] = xstrdup(d->labels[i]);
	if (d->type == METRIC_HISTOGRAM) {
		f->nbuckets = d->nbuckets;
		f->buckets = xmalloc(d->nbuckets * sizeof *f->buckets);
		memcpy(f->buckets, d->buckets, d->nbuckets * sizeof *f->buckets);
	}
	/* A family without labels has one series at most. */
	f->max_series = d->nlabels == 0 ? 1 : d->max_series ? d->max_series : METRICS_DEFAULT_MAX_SERIES;
	size_t cap = 16;
	while (cap < 2 * f->max_series)
		cap *= 2;
	f->slots = xcalloc(cap, sizeof *f->slots);
	f->mask = cap - 1;
	pthread_mutex_init(&f->mu, NULL);
	atomic_init(&f->nseries, 0);
	atomic_init(&f->dropped, 0);
	if (m->tail)
		m->tail->next = f;
	else
		m->head = f;
	m->tail = f;
	return f;
}

struct metric_family *metrics_family(struct metrics *m, const char *name)
{
	for (struct metric_family *f = m->head; f; f = f->next)
		if (strcmp(f->name, name) == 0)
			return f;
	return NULL;
}

void metrics_family_set_collect(struct metric_family *f, metrics_collect_fn fn, void *arg)
{
	f->collect = fn;
	f->collect_arg = arg;
}

/* ---- the registry ---- */

static void dropped_collect(void *arg, struct metrics_emitter *em)
{
	struct metrics *m = arg;
	for (struct metric_family *f = m->head; f; f = f->next) {
		if (f->nlabels == 0 || f == m->dropped)
			continue;
		const char *v[1] = {f->name};
		metrics_emit(em, v, (double)atomic_load_explicit(&f->dropped, memory_order_relaxed));
	}
}

struct metrics *metrics_new(void)
{
	struct metrics *m = xcalloc(1, sizeof *m);
	static const char *const labels[] = {"family"};
	struct metric_desc d = {
		.name = "berth_metrics_series_dropped_total",
		.help = "Label sets refused because their family reached its series limit.",
		.type = METRIC_COUNTER, .labels = labels, .nlabels = 1, .max_series = 1000,
	};
	struct err e = ERR_INIT;
	m->dropped = metrics_register(m, &d, &e);
	metrics_family_set_collect(m->dropped, dropped_collect, m);
	return m;
}

static void series_free(struct metric_series *s, size_t nlabels)
{
	for (size_t i = 0; i < nlabels; i++)
		free(s->values[i]);
	free(s->values);
	free(s);
}

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	struct metric_family *f = m->head;
	while (f) {
		struct metric_family *next = f->next;
		struct metric_series *s = f->head;
		while (s) {
			struct metric_series *sn = s->next;
			series_free(s, f->nlabels);
			s = sn;
		}
		pthread_mutex_destroy(&f->mu);
		free(f->slots);
		for (size_t i = 0; i < f->nlabels; i++)
			free(f->labels[i]);
		free(f->labels);
		free(f->buckets);
		free(f->name);
		free(f->help);
		free(f);
		f = next;
	}
	free(m);
}

/* ---- series ---- */

static bool series_matches(const struct metric_series *s, uint64_t h, const char *const *vals, size_t n)
{
	if (s->hash != h)
		return false;
	for (size_t i = 0; i < n; i++)
		if (strcmp(s->values[i], vals[i]) != 0)
			return false;
	return true;
}

/* Probe for vals; returns the series, or NULL with *slot at the empty slot that ended it. */
static struct metric_series *probe(struct metric_family *f, uint64_t h, const char *const *vals, size_t *slot)
{
	for (size_t i = h & f->mask;; i = (i + 1) & f->mask) {
		struct metric_series *s = atomic_load_explicit(&f->slots[i], memory_order_acquire);
		if (!s) {
			*slot = i;
			return NULL;
		}
		if (series_matches(s, h, vals, f->nlabels))
			return s;
	}
}

static struct metric_series *series_create(struct metric_family *f, uint64_t h, const char *const *vals)
{
	size_t nv = f->type == METRIC_HISTOGRAM ? f->nbuckets + 2 : 1;
	size_t size = sizeof(struct metric_series) + nv * sizeof(_Atomic uint64_t);
	size = (size + 63) & ~(size_t)63;
	struct metric_series *s = aligned_alloc(64, size);
	if (!s) {
		fprintf(stderr, "berth: out of memory allocating %zu bytes\n", size);
		abort();
	}
	memset(s, 0, size);
	s->hash = h;
	s->fam = f;
	s->values = xcalloc(f->nlabels ? f->nlabels : 1, sizeof *s->values);
	for (size_t i = 0; i < f->nlabels; i++)
		s->values[i] = xstrdup(vals[i]);
	s->bounds = f->buckets;
	s->nbuckets = (uint32_t)f->nbuckets;
	s->type = (uint32_t)f->type;
	for (size_t i = 0; i < nv; i++)
		atomic_init(&s->v[i], 0);
	return s;
}

struct metric_series *metrics_series(struct metric_family *f, const char *const *values)
{
	if (!f)
		return NULL;
	char tmp[METRICS_MAX_LABELS][METRICS_VALUE_MAX + 1];
	const char *vals[METRICS_MAX_LABELS];
	for (size_t i = 0; i < f->nlabels; i++)
		vals[i] = metrics_clean_value(values ? values[i] : NULL, tmp[i]);
	uint64_t h = metrics_hash_values(vals, f->nlabels);
	size_t slot;
	struct metric_series *s = probe(f, h, vals, &slot);
	if (s)
		return s;
	/* A full family refuses without taking the lock, so a flood of new label sets cannot
	 * make every recording thread queue on the mutex. */
	if (atomic_load_explicit(&f->nseries, memory_order_relaxed) >= f->max_series) {
		atomic_fetch_add_explicit(&f->dropped, 1, memory_order_relaxed);
		return NULL;
	}
	pthread_mutex_lock(&f->mu);
	s = probe(f, h, vals, &slot);
	if (!s) {
		size_t n = atomic_load_explicit(&f->nseries, memory_order_relaxed);
		if (n >= f->max_series) {
			atomic_fetch_add_explicit(&f->dropped, 1, memory_order_relaxed);
		} else {
			s = series_create(f, h, vals);
			if (f->tail)
				f->tail->next = s;
			else
				f->head = s;
			f->tail = s;
			atomic_store_explicit(&f->nseries, n + 1, memory_order_relaxed);
			atomic_store_explicit(&f->slots[slot], s, memory_order_release);
		}
	}
	pthread_mutex_unlock(&f->mu);
	return s;
}

/* ---- recording ---- */

static double bits_to_double(uint64_t b)
{
	double d;
	memcpy(&d, &b, sizeof d);
	return d;
}

static uint64_t double_to_bits(double d)
{
	uint64_t b;
	memcpy(&b, &d, sizeof b);
	return b;
}

static void atomic_add_double(_Atomic uint64_t *p, double delta)
{
	uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
	uint64_t want;
	do
		want = double_to_bits(bits_to_double(old) + delta);
	while (!atomic_compare_exchange_weak_explicit(p, &old, want, memory_order_relaxed,
						      memory_order_relaxed));
}

void metrics_series_add(struct metric_series *s, uint64_t n)
{
	if (s && s->type == METRIC_COUNTER)
		atomic_fetch_add_explicit(&s->v[0], n, memory_order_relaxed);
}

void metrics_series_set(struct metric_series *s, double v)
{
	if (s && s->type == METRIC_GAUGE)
		atomic_store_explicit(&s->v[0], double_to_bits(v), memory_order_relaxed);
}

void metrics_series_gauge_add(struct metric_series *s, double delta)
{
	if (s && s->type == METRIC_GAUGE)
		atomic_add_double(&s->v[0], delta);
}

void metrics_series_observe(struct metric_series *s, double v)
{
	if (!s || s->type != METRIC_HISTOGRAM || isnan(v))
		return;
	uint32_t i = 0;
	while (i < s->nbuckets && v > s->bounds[i])
		i++;
	atomic_fetch_add_explicit(&s->v[1 + i], 1, memory_order_relaxed);
	atomic_add_double(&s->v[0], v);
}

double metrics_series_value(const struct metric_series *s, double *sum)
{
	if (sum)
		*sum = 0;
	if (!s)
		return 0;
	struct metric_series *w = (struct metric_series *)s;   /* atomic loads take non-const */
	switch (s->type) {
	case METRIC_COUNTER:
		return (double)atomic_load_explicit(&w->v[0], memory_order_relaxed);
	case METRIC_GAUGE:
		return bits_to_double(atomic_load_explicit(&w->v[0], memory_order_relaxed));
	default: {
		uint64_t n = 0;
		for (uint32_t i = 0; i <= s->nbuckets; i++)
			n += atomic_load_explicit(&w->v[1 + i], memory_order_relaxed);
		if (sum)
			*sum = bits_to_double(atomic_load_explicit(&w->v[0], memory_order_relaxed));
		return (double)n;
	}
	}
}

void metrics_inc(struct metric_family *f, const char *const *values)
{
	metrics_series_add(metrics_series(f, values), 1);
}

void metrics_add(struct metric_family *f, const char *const *values, uint64_t n)
{
	metrics_series_add(metrics_series(f, values), n);
}

void metrics_set(struct metric_family *f, const char *const *values, double v)
{
	metrics_series_set(metrics_series(f, values), v);
}

void metrics_observe(struct metric_family *f, const char *const *values, double v)
{
	metrics_series_observe(metrics_series(f, values), v);
}

const char *metrics_status_class(int status)
{
	static const char *const classes[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
	if (status >= 100 && status <= 599)
		return classes[status / 100 - 1];
	return "other";
}
