/* cli/output: how the CLI shows things to a person: tables with aligned columns, durations
 * ("3m04s"), relative times ("5m ago"), byte sizes ("12.3 KiB"), log timestamps shortened to
 * milliseconds, and JSON documents pretty-printed for --json. Pure formatting into struct buf
 * except the *_print helpers, which write to a FILE. */
#ifndef BERTH_CLI_OUTPUT_H
#define BERTH_CLI_OUTPUT_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <jansson.h>
#include "util/buf.h"

/* A table of text cells. Cells are copied; control characters in them are shown escaped
 * ("\n", "\t", "\x1b") so server data cannot break the layout or drive the terminal. */
struct table {
	size_t ncols;
	char **cells;    /* row-major; row 0 is the header */
	size_t nrows;    /* including the header */
};

/* headers: ncols strings. Returns an owned table; free with table_free. */
struct table *table_new(size_t ncols, const char *const *headers);
/* Append a row of ncols cells (NULL cell = "-"). */
void table_add(struct table *t, const char *const *cells);
/* Columns separated by two spaces, padded to the widest cell (counted in UTF-8 characters),
 * no trailing spaces, one '\n' per row. */
void table_render(const struct table *t, struct buf *out);
void table_print(const struct table *t, FILE *f);
void table_free(struct table *t);   /* accepts NULL */

/* 0.85 -> "850ms", 12 -> "12s", 184 -> "3m04s", 7500 -> "2h05m", 273600 -> "3d04h". */
void fmt_duration(struct buf *b, double seconds);
/* then relative to now: "just now" (< 1 s, or in the future), "12s ago", "5m ago", "3h ago",
 * "4d ago"; 60 days and older: the date "2026-09-01". */
void fmt_ago(struct buf *b, int64_t then_us, int64_t now_us);
/* RFC 3339 text relative to now (fmt_ago); the text itself when it does not parse. */
void fmt_ago_str(struct buf *b, const char *rfc3339, int64_t now_us);
/* 512 -> "512 B", 12595 -> "12.3 KiB", 4194304 -> "4.0 MiB" (binary units up to TiB). */
void fmt_bytes(struct buf *b, int64_t n);
/* "2026-11-24T20:19:13.123456Z" (or any RFC 3339 offset) -> "2026-11-24T20:19:13.123Z" in
 * UTC; text that does not parse is copied as it is. */
void fmt_ts_ms(struct buf *b, const char *rfc3339);

/* A release number field: 3 -> "v3"; null or missing -> "-". */
void fmt_release(struct buf *b, json_t *v);
/* A formation object {"web":2,"worker":1} -> "web=2 worker=1" (the server's order); empty
 * or missing -> "-". */
void fmt_formation(struct buf *b, json_t *formation);

/* --json output: the document pretty-printed (2-space indent, the server's key order, reals
 * with 15 significant digits so 12.3 stays 12.3), then '\n'. Returns 0, -1 on write error. */
int json_print_doc(json_t *doc, FILE *f);

#endif
