/* ytree: read one YAML document with libyaml's event parser into a small tree of located
 * nodes, and the typed accessors the berth.yaml and server.yaml schemas are written with.
 * Hostile input: aliases are refused (no exponential expansion), nesting depth and node
 * count are capped, the input size is bounded, and every error names file:line:col. */
#include "manifest/internal.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>
#include "util/timeutil.h"

#define YT_MAX_DEPTH 64
#define YT_MAX_NODES 100000

void ynode_free(struct ynode *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->nkids; i++)
		ynode_free(n->kids[i]);
	free(n->kids);
	free(n->str);
	free(n);
}

static void add_kid(struct ynode *parent, struct ynode *kid)
{
	if (parent->nkids == parent->cap) {
		parent->cap = parent->cap ? parent->cap * 2 : 8;
		parent->kids = xrealloc(parent->kids, parent->cap * sizeof *parent->kids);
	}
	parent->kids[parent->nkids++] = kid;
}

/* Line and column (1-based) of a byte offset, for reader errors that carry no mark. */
static void offset_pos(const char *data, size_t n, size_t off, int *line, int *col)
{
	int l = 1, c = 1;
	for (size_t i = 0; i < off && i < n; i++) {
		if (data[i] == '\n') {
			l++;
			c = 1;
		} else {
			c++;
		}
	}
	*line = l;
	*col = c;
}

static int syntax_error(const char *fname, const char *data, size_t n, const yaml_parser_t *p,
			struct err *e)
{
	const char *problem = p->problem ? p->problem : "malformed YAML";
	int line, col;
	if (p->error == YAML_MEMORY_ERROR)
		return err_set(e, ERR_INVALID, "%s: YAML parser ran out of memory", fname);
	if (p->error == YAML_READER_ERROR) {
		offset_pos(data, n, p->problem_offset, &line, &col);
		return err_set(e, ERR_INVALID, "%s:%d:%d: YAML syntax error: %s (byte 0x%02x)", fname,
			       line, col, problem, (unsigned)p->problem_value & 0xff);
	}
	line = (int)p->problem_mark.line + 1;
	col = (int)p->problem_mark.column + 1;
	if (p->context)
		return err_set(e, ERR_INVALID, "%s:%d:%d: YAML syntax error: %s (%s that starts "
			       "on line %d)", fname, line, col, problem, p->context,
			       (int)p->context_mark.line + 1);
	return err_set(e, ERR_INVALID, "%s:%d:%d: YAML syntax error: %s", fname, line, col, problem);
}

static struct ynode *node_new(enum ynode_type t, const yaml_event_t *ev)
{
	struct ynode *y = xcalloc(1, sizeof *y);
	y->type = t;
	y->line = (int)ev->start_mark.line + 1;
	y->col = (int)ev->start_mark.column + 1;
	if (t == YN_SCALAR) {
		y->len = ev->data.scalar.length;
		y->str = xstrndup((const char *)ev->data.scalar.value, y->len);
		y->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
	}
	return y;
}

int ytree_parse(const char *fname, const char *data, size_t n, struct ynode **root,
		struct err *e)
{
	*root = NULL;
	if (n > MF_MAX_FILE_BYTES)
		return err_set(e, ERR_TOOBIG, "%s: file is larger than %d bytes", fname,
			       MF_MAX_FILE_BYTES);
	yaml_parser_t p;
	if (!yaml_parser_initialize(&p))
		return err_set(e, ERR_INTERNAL, "%s: cannot initialise the YAML parser", fname);
	yaml_parser_set_input_string(&p, (const unsigned char *)data, n);

	struct ynode *stack[YT_MAX_DEPTH];
	int depth = 0, docs = 0, rc = -1;
	size_t count = 0;
	struct ynode *top = NULL;
	for (bool done = false; !done;) {
		yaml_event_t ev;
		if (!yaml_parser_parse(&p, &ev)) {
			syntax_error(fname, data, n, &p, e);
			goto out;
		}
		int line = (int)ev.start_mark.line + 1, col = (int)ev.start_mark.column + 1;
		struct ynode *y = NULL;
		bool bad = false;
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		case YAML_DOCUMENT_START_EVENT:
			if (docs++) {
				err_set(e, ERR_INVALID, "%s:%d:%d: expected a single YAML document, "
					"found a second one", fname, line, col);
				bad = true;
			}
			break;
		case YAML_ALIAS_EVENT:
			err_set(e, ERR_INVALID, "%s:%d:%d: YAML aliases (*%s) are not supported",
				fname, line, col, (const char *)ev.data.alias.anchor);
			bad = true;
			break;
		case YAML_SCALAR_EVENT:
			y = node_new(YN_SCALAR, &ev);
			break;
		case YAML_SEQUENCE_START_EVENT:
			y = node_new(YN_SEQ, &ev);
			break;
		case YAML_MAPPING_START_EVENT:
			y = node_new(YN_MAP, &ev);
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			if (depth > 0)
				depth--;
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
		if (bad)
			goto out;
		if (!y)
			continue;
		if (++count > YT_MAX_NODES) {
			ynode_free(y);
			err_set(e, ERR_INVALID, "%s:%d:%d: too many YAML nodes (at most %d)", fname,
				line, col, YT_MAX_NODES);
			goto out;
		}
		if (depth == 0)
			top = y;            /* libyaml guarantees one root node per document */
		else
			add_kid(stack[depth - 1], y);
		if (y->type != YN_SCALAR) {
			if (depth == YT_MAX_DEPTH) {
				err_set(e, ERR_INVALID, "%s:%d:%d: YAML nested too deeply (at most %d "
					"levels)", fname, line, col, YT_MAX_DEPTH);
				goto out;
			}
			stack[depth++] = y;
		}
	}
	*root = top;
	top = NULL;
	rc = 0;
out:
	ynode_free(top);
	yaml_parser_delete(&p);
	return rc;
}

/* --- schema helpers ------------------------------------------------------------------- */

int y_fail(const struct yctx *c, const struct ynode *n, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	buf_addf(&b, "%s:%d:%d: ", c->fname, n ? n->line : 1, n ? n->col : 1);
	va_list ap;
	va_start(ap, fmt);
	buf_vaddf(&b, fmt, ap);
	va_end(ap);
	err_set(c->e, ERR_INVALID, "%s", buf_str(&b));
	buf_free(&b);
	return -1;
}

bool y_is_null(const struct ynode *n)
{
	if (!n)
		return true;
	if (n->type != YN_SCALAR || !n->plain)
		return false;
	return n->len == 0 || !strcmp(n->str, "~") || !strcmp(n->str, "null") ||
	       !strcmp(n->str, "Null") || !strcmp(n->str, "NULL");
}

static void describe(struct buf *b, const struct ynode *n)
{
	if (!n || (n->type == YN_SCALAR && n->plain && n->len == 0))
		buf_adds(b, "nothing");
	else if (n->type == YN_MAP)
		buf_adds(b, "a mapping");
	else if (n->type == YN_SEQ)
		buf_adds(b, "a list");
	else
		mf_quote(b, n->str, n->len);
}

int y_expected(const struct yctx *c, const struct ynode *n, const char *path, const char *what)
{
	struct buf b = BUF_INIT;
	describe(&b, n);
	y_fail(c, n, "%s: expected %s, got %s", path, what, buf_str(&b));
	buf_free(&b);
	return -1;
}

static int fail_key(const struct yctx *c, const struct ynode *key, const char *fmt_pre,
		    const char *path, const char *post)
{
	struct buf q = BUF_INIT;
	mf_quote(&q, key->str, key->len);
	if (path && *path)
		y_fail(c, key, "%s %s in %s%s", fmt_pre, buf_str(&q), path, post);
	else
		y_fail(c, key, "%s %s at top level%s", fmt_pre, buf_str(&q), post);
	buf_free(&q);
	return -1;
}

static int check_key_scalar(const struct yctx *c, const struct ynode *key, const char *path)
{
	if (key->type == YN_SCALAR && !memchr(key->str, 0, key->len))
		return 0;
	return y_expected(c, key, path && *path ? path : "top level", "a plain key");
}

int y_check_map(const struct yctx *c, const struct ynode *n, const char *path, size_t max)
{
	if (!n || n->type != YN_MAP)
		return y_expected(c, n, path, "a mapping");
	for (size_t i = 0; i < y_map_len(n); i++) {
		const struct ynode *k = n->kids[2 * i];
		if (check_key_scalar(c, k, path) < 0)
			return -1;
		if (i == max)
			return y_fail(c, k, "%s: too many entries (at most %zu)", path, max);
		for (size_t j = 0; j < i; j++) {
			const struct ynode *o = n->kids[2 * j];
			if (o->len == k->len && !memcmp(o->str, k->str, k->len)) {
				char post[64];
				snprintf(post, sizeof post, " (first on line %d)", o->line);
				return fail_key(c, k, "duplicate key", path, post);
			}
		}
	}
	return 0;
}

int y_key_index(const struct yctx *c, const struct ynode *map, size_t i, const char *path,
		const char *const *allowed)
{
	const struct ynode *k = map->kids[2 * i];
	if (check_key_scalar(c, k, path) < 0)
		return -1;
	int idx = -1;
	for (int a = 0; allowed[a]; a++)
		if (strlen(allowed[a]) == k->len && !memcmp(allowed[a], k->str, k->len))
			idx = a;
	if (idx < 0) {
		struct buf post = BUF_INIT;
		buf_adds(&post, " (expected one of ");
		for (int a = 0; allowed[a]; a++)
			buf_addf(&post, "%s%s", a ? ", " : "", allowed[a]);
		buf_adds(&post, ")");
		fail_key(c, k, "unknown key", path, buf_str(&post));
		buf_free(&post);
		return -1;
	}
	/* Keys before i were all known (an unknown one stops the walk), so this scan is short. */
	for (size_t j = 0; j < i; j++) {
		const struct ynode *o = map->kids[2 * j];
		if (o->len == k->len && !memcmp(o->str, k->str, k->len)) {
			char post[64];
			snprintf(post, sizeof post, " (first on line %d)", o->line);
			return fail_key(c, k, "duplicate key", path, post);
		}
	}
	return idx;
}

int y_string(const struct yctx *c, const struct ynode *n, const char *path, const char *what,
	     bool allow_empty, char **out)
{
	*out = NULL;
	if (!n || n->type != YN_SCALAR || y_is_null(n) || (!allow_empty && n->len == 0))
		return y_expected(c, n, path, what);
	if (memchr(n->str, 0, n->len))
		return y_fail(c, n, "%s: must not contain NUL bytes", path);
	*out = xstrndup(n->str, n->len);
	return 0;
}

int y_name(const struct yctx *c, const struct ynode *n, const char *path, const char *what,
	   char **out)
{
	char full[160];
	snprintf(full, sizeof full, "%s ([a-z0-9][a-z0-9-]*, at most 63 characters)", what);
	if (y_string(c, n, path, full, false, out) < 0)
		return -1;
	if (!name_valid(*out)) {
		free(*out);
		*out = NULL;
		return y_expected(c, n, path, full);
	}
	return 0;
}

int y_bool(const struct yctx *c, const struct ynode *n, const char *path, bool *out)
{
	if (n && n->type == YN_SCALAR && n->plain) {
		const char *s = n->str;
		if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE")) {
			*out = true;
			return 0;
		}
		if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE")) {
			*out = false;
			return 0;
		}
	}
	return y_expected(c, n, path, n && n->type == YN_SCALAR && !n->plain ?
			  "true or false (without quotes)" : "true or false");
}

/* Decimal integer, optional sign, no spaces. 1 = not an integer, 2 = out of int64 range. */
static int parse_int(const char *s, size_t len, int64_t *out)
{
	size_t i = 0;
	bool neg = false;
	if (i < len && (s[i] == '-' || s[i] == '+'))
		neg = s[i++] == '-';
	if (i == len)
		return 1;
	uint64_t v = 0;
	bool big = false;
	for (; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 1;
		if (v > (UINT64_MAX - 9) / 10)
			big = true;
		else
			v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (big || v > (uint64_t)INT64_MAX)
		return 2;
	*out = neg ? -(int64_t)v : (int64_t)v;
	return 0;
}

int y_int(const struct yctx *c, const struct ynode *n, const char *path, int64_t min,
	  int64_t max, int64_t *out)
{
	char what[96];
	if (min == 0)
		snprintf(what, sizeof what, "a non-negative integer");
	else
		snprintf(what, sizeof what, "an integer from %lld to %lld", (long long)min,
			 (long long)max);
	int64_t v = 0;
	int r = n && n->type == YN_SCALAR && n->plain ? parse_int(n->str, n->len, &v) : 1;
	if (r == 1 && n && n->type == YN_SCALAR && !n->plain)
		strncat(what, " (without quotes)", sizeof what - strlen(what) - 1);
	if (r == 1)
		return y_expected(c, n, path, what);
	if (r == 2 || v < min || v > max) {
		if (min == 0 && (r == 2 || v >= 0))
			snprintf(what, sizeof what, "a non-negative integer up to %lld", (long long)max);
		return y_expected(c, n, path, what);
	}
	*out = v;
	return 0;
}

/* Characters a duration or size may be made of: digits, '.', letters; starts with a digit. */
static bool unitnum_chars(const struct ynode *n)
{
	if (!n || n->type != YN_SCALAR || n->len == 0 || n->str[0] < '0' || n->str[0] > '9')
		return false;
	for (size_t i = 0; i < n->len; i++) {
		char ch = n->str[i];
		if (!((ch >= '0' && ch <= '9') || ch == '.' || (ch >= 'a' && ch <= 'z') ||
		      (ch >= 'A' && ch <= 'Z') || ch == ' '))
			return false;
	}
	return true;
}

int y_duration(const struct yctx *c, const struct ynode *n, const char *path, int64_t min,
	       int64_t *out)
{
	int64_t ms;
	if (!unitnum_chars(n) || memchr(n->str, ' ', n->len) ||
	    time_parse_duration_ms(n->str, &ms) < 0)
		return y_expected(c, n, path, "a duration like 150ms, 2s or 1m");
	if (ms < min || ms > MF_MAX_DURATION_MS) {
		struct buf q = BUF_INIT;
		mf_quote(&q, n->str, n->len);
		if (ms < min)
			y_fail(c, n, "%s: expected a duration of at least %lldms, got %s", path,
			       (long long)min, buf_str(&q));
		else
			y_fail(c, n, "%s: expected a duration of at most 24h, got %s", path,
			       buf_str(&q));
		buf_free(&q);
		return -1;
	}
	*out = ms;
	return 0;
}

int y_size(const struct yctx *c, const struct ynode *n, const char *path, int64_t *out)
{
	if (!unitnum_chars(n) || parse_size(n->str, out) < 0)
		return y_expected(c, n, path, "a size like 512M, 2G or 1048576");
	return 0;
}

int y_number(const struct yctx *c, const struct ynode *n, const char *path, double min,
	     double max, double *out)
{
	char what[96];
	snprintf(what, sizeof what, "a number from %g to %g", min, max);
	if (!n || n->type != YN_SCALAR || !n->plain || n->len == 0 || n->len > 32)
		return y_expected(c, n, path, what);
	int dots = 0;
	for (size_t i = 0; i < n->len; i++) {
		char ch = n->str[i];
		if (ch == '.')
			dots++;
		else if (ch < '0' || ch > '9')
			return y_expected(c, n, path, what);
	}
	if (dots > 1 || !strcmp(n->str, "."))
		return y_expected(c, n, path, what);
	double v = strtod(n->str, NULL);
	if (!(v >= min && v <= max))
		return y_expected(c, n, path, what);
	*out = v;
	return 0;
}
