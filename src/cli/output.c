/* cli/output: tables, durations, relative times, sizes and --json printing (see output.h). */
#include "cli/output.h"
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "util/timeutil.h"

struct table *table_new(size_t ncols, const char *const *headers)
{
	struct table *t = xcalloc(1, sizeof *t);
	t->ncols = ncols;
	table_add(t, headers);
	return t;
}

/* Copy s, showing control characters escaped. */
static char *cell_dup(const char *s)
{
	struct buf b = BUF_INIT;
	if (!s)
		s = "-";
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '\n')
			buf_adds(&b, "\\n");
		else if (*p == '\t')
			buf_adds(&b, "\\t");
		else if (*p == '\r')
			buf_adds(&b, "\\r");
		else if (*p < 0x20 || *p == 0x7f)
			buf_addf(&b, "\\x%02x", *p);
		else
			buf_addc(&b, (char)*p);
	}
	return b.p ? buf_detach(&b) : xstrdup("");
}

void table_add(struct table *t, const char *const *cells)
{
	t->cells = xrealloc(t->cells, (t->nrows + 1) * t->ncols * sizeof *t->cells);
	for (size_t c = 0; c < t->ncols; c++)
		t->cells[t->nrows * t->ncols + c] = cell_dup(cells[c]);
	t->nrows++;
}

/* Width in characters: UTF-8 continuation bytes do not count. */
static size_t text_width(const char *s)
{
	size_t w = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if ((*p & 0xC0) != 0x80)
			w++;
	return w;
}

void table_render(const struct table *t, struct buf *out)
{
	size_t *w = xcalloc(t->ncols, sizeof *w);
	for (size_t r = 0; r < t->nrows; r++)
		for (size_t c = 0; c < t->ncols; c++) {
			size_t cw = text_width(t->cells[r * t->ncols + c]);
			if (cw > w[c])
				w[c] = cw;
		}
	for (size_t r = 0; r < t->nrows; r++) {
		size_t line_start = out->len;
		for (size_t c = 0; c < t->ncols; c++) {
			const char *cell = t->cells[r * t->ncols + c];
			buf_adds(out, cell);
			if (c + 1 < t->ncols)
				for (size_t k = text_width(cell); k < w[c] + 2; k++)
					buf_addc(out, ' ');
		}
		/* An empty last cell would leave the padding of the one before it. */
		while (out->len > line_start && out->p[out->len - 1] == ' ')
			out->p[--out->len] = 0;
		buf_addc(out, '\n');
	}
	free(w);
}

void table_print(const struct table *t, FILE *f)
{
	struct buf b = BUF_INIT;
	table_render(t, &b);
	fwrite(buf_str(&b), 1, b.len, f);
	buf_free(&b);
}

void table_free(struct table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}

void fmt_duration(struct buf *b, double seconds)
{
	if (!(seconds > 0))   /* also NaN */
		seconds = 0;
	if (seconds < 1) {
		buf_addf(b, "%dms", (int)(seconds * 1000 + 0.5));
		return;
	}
	if (seconds > 9e15)
		seconds = 9e15;
	int64_t s = (int64_t)seconds;
	if (s < 60)
		buf_addf(b, "%" PRId64 "s", s);
	else if (s < 3600)
		buf_addf(b, "%" PRId64 "m%02" PRId64 "s", s / 60, s % 60);
	else if (s < 86400)
		buf_addf(b, "%" PRId64 "h%02" PRId64 "m", s / 3600, s % 3600 / 60);
	else
		buf_addf(b, "%" PRId64 "d%02" PRId64 "h", s / 86400, s % 86400 / 3600);
}

void fmt_ago(struct buf *b, int64_t then_us, int64_t now_us)
{
	int64_t s = (now_us - then_us) / 1000000;
	if (s < 1) {
		buf_adds(b, "just now");
	} else if (s < 60) {
		buf_addf(b, "%" PRId64 "s ago", s);
	} else if (s < 3600) {
		buf_addf(b, "%" PRId64 "m ago", s / 60);
	} else if (s < 86400) {
		buf_addf(b, "%" PRId64 "h ago", s / 3600);
	} else if (s < 60 * 86400) {
		buf_addf(b, "%" PRId64 "d ago", s / 86400);
	} else {
		time_t t = (time_t)(then_us / 1000000);
		struct tm tm;
		gmtime_r(&t, &tm);
		buf_addf(b, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
	}
}

void fmt_ago_str(struct buf *b, const char *rfc3339, int64_t now_us)
{
	int64_t us;
	if (rfc3339 && !time_parse_rfc3339(rfc3339, &us))
		fmt_ago(b, us, now_us);
	else
		buf_adds(b, rfc3339 ? rfc3339 : "-");
}

void fmt_bytes(struct buf *b, int64_t n)
{
	static const char *const units[] = {"KiB", "MiB", "GiB", "TiB"};
	if (n < 1024) {
		buf_addf(b, "%" PRId64 " B", n);
		return;
	}
	double v = (double)n / 1024;
	size_t u = 0;
	while (v >= 1023.95 && u + 1 < sizeof units / sizeof units[0]) {
		v /= 1024;
		u++;
	}
	buf_addf(b, "%.1f %s", v, units[u]);
}

void fmt_ts_ms(struct buf *b, const char *rfc3339)
{
	int64_t us;
	if (!rfc3339 || time_parse_rfc3339(rfc3339, &us)) {
		buf_adds(b, rfc3339 ? rfc3339 : "-");
		return;
	}
	int64_t sec = us / 1000000, frac = us % 1000000;
	if (frac < 0) {
		frac += 1000000;
		sec--;
	}
	time_t t = (time_t)sec;
	struct tm tm;
	gmtime_r(&t, &tm);
	buf_addf(b, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(frac / 1000));
}

void fmt_release(struct buf *b, json_t *v)
{
	if (json_is_integer(v) && json_integer_value(v) > 0)
		buf_addf(b, "v%" PRId64, (int64_t)json_integer_value(v));
	else
		buf_adds(b, "-");
}

void fmt_formation(struct buf *b, json_t *formation)
{
	const char *k;
	json_t *v;
	size_t start = b->len;
	json_object_foreach(formation, k, v) {
		if (b->len > start)
			buf_addc(b, ' ');
		if (json_is_integer(v))
			buf_addf(b, "%s=%" PRId64, k, (int64_t)json_integer_value(v));
		else
			buf_addf(b, "%s=?", k);
	}
	if (b->len == start)
		buf_adds(b, "-");
}

int json_print_doc(json_t *doc, FILE *f)
{
	char *s = json_dumps(doc, JSON_INDENT(2) | JSON_REAL_PRECISION(15) | JSON_ENCODE_ANY);
	if (!s)
		return -1;
	int rc = fputs(s, f) < 0 || fputc('\n', f) == EOF ? -1 : 0;
	free(s);
	return rc;
}
