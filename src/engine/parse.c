/* engine parsers: the engine's answers read as hostile input (see engine.h). The log and
 * attach demuxer, the JSON-lines progress stream of pull/build/push, RFC 3339 times, and the
 * three JSON documents berth reads (a container, an image, the container list).
 * No I/O and no engine state here; every buffer is bounded (a log line piece by 16 KiB, a
 * progress message by 1 MiB, a document by ENGINE_BODY_MAX), and fuzz/fuzz_engine.c feeds all
 * of it arbitrary bytes. */
#include "engine/engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

#define LINE_MAX_PIECE 16384      /* a log line longer than this is cut */
#define TS_ROOM 40                /* a timestamp and its space fit in this many bytes */
#define JLINE_MAX (1u << 20)      /* a progress message longer than this is skipped */
#define TEXT_MAX 4096             /* progress text given to fn, at most */

/* ---- RFC 3339 times ---------------------------------------------------------------------- */

static int num(const char *s, size_t n, size_t *i, int digits, int *v)
{
	*v = 0;
	for (int k = 0; k < digits; k++, (*i)++) {
		if (*i >= n || s[*i] < '0' || s[*i] > '9')
			return -1;
		*v = *v * 10 + (s[*i] - '0');
	}
	return 0;
}

static int lit(const char *s, size_t n, size_t *i, char c)
{
	if (*i >= n || s[*i] != c)
		return -1;
	(*i)++;
	return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (no timegm: no time zone, no locks). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int month_days(int y, int m)
{
	static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return m == 2 && leap ? 29 : days[m - 1];
}

int engine_parse_time(const char *s, size_t n, int64_t *us)
{
	size_t i = 0;
	int y, mo, d, h, mi, se;
	if (!s || num(s, n, &i, 4, &y) || lit(s, n, &i, '-') || num(s, n, &i, 2, &mo) ||
	    lit(s, n, &i, '-') || num(s, n, &i, 2, &d))
		return -1;
	if (i >= n || (s[i] != 'T' && s[i] != 't'))
		return -1;
	i++;
	if (num(s, n, &i, 2, &h) || lit(s, n, &i, ':') || num(s, n, &i, 2, &mi) || lit(s, n, &i, ':') ||
	    num(s, n, &i, 2, &se))
		return -1;
	if (mo < 1 || mo > 12 || d < 1 || d > month_days(y, mo) || h > 23 || mi > 59 || se > 60)
		return -1;
	int64_t frac = 0;   /* µs */
	if (i < n && s[i] == '.') {
		i++;
		int nd = 0;
		while (i < n && s[i] >= '0' && s[i] <= '9') {
			if (++nd > 9)
				return -1;
			if (nd <= 6)
				frac = frac * 10 + (s[i] - '0');
			i++;
		}
		if (nd == 0)
			return -1;
		for (; nd < 6; nd++)
			frac *= 10;
	}
	int64_t off = 0;    /* seconds east of UTC */
	if (i < n && (s[i] == 'Z' || s[i] == 'z')) {
		i++;
	} else if (i < n && (s[i] == '+' || s[i] == '-')) {
		int sign = s[i++] == '-' ? -1 : 1, oh, om;
		if (num(s, n, &i, 2, &oh) || lit(s, n, &i, ':') || num(s, n, &i, 2, &om) || oh > 23 || om > 59)
			return -1;
		off = sign * (oh * 3600 + om * 60);
	} else {
		return -1;
	}
	if (i != n)
		return -1;
	int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - off;
	*us = secs * 1000000 + frac;
	return 0;
}

/* ---- log and attach streams -------------------------------------------------------------- */

void engine_demux_init(struct engine_demux *d, bool tty, bool timestamps, engine_line_fn fn, void *arg)
{
	memset(d, 0, sizeof *d);
	d->tty = tty;
	d->timestamps = timestamps;
	d->fn = fn;
	d->arg = arg;
}

/* Give fn the buffered bytes of stream s: the whole line (final) or, when the buffer is full,
 * its first piece, keeping the rest. The time comes off the front of a line's first piece. */
static void demux_emit(struct engine_demux *d, int s, bool final)
{
	const char *p = d->line[s];
	size_t n = d->line_len[s];
	int64_t ts = 0;
	if (d->cont[s]) {
		ts = d->cont_ts[s];
	} else if (d->timestamps && n) {
		const char *sp = memchr(p, ' ', n < TS_ROOM ? n : TS_ROOM);
		if (sp && engine_parse_time(p, (size_t)(sp - p), &ts) == 0) {
			n -= (size_t)(sp + 1 - p);
			p = sp + 1;
		} else if (!sp && final && engine_parse_time(p, n, &ts) == 0) {
			n = 0;   /* an empty line whose time came without its space */
		} else {
			ts = 0;
		}
	}
	if (final) {
		if (d->tty && n && p[n - 1] == '\r')
			n--;
		if (!(d->cont[s] && n == 0))
			d->fn(d->arg, s, ts, p ? p : "", n);
		d->line_len[s] = 0;
		d->cont[s] = false;
		return;
	}
	size_t take = n < LINE_MAX_PIECE ? n : LINE_MAX_PIECE;
	d->fn(d->arg, s, ts, p, take);
	size_t rest = n - take;
	memmove(d->line[s], p + take, rest);
	d->line_len[s] = rest;
	d->cont[s] = true;
	d->cont_ts[s] = ts;
}

/* Bytes of stream s, in any pieces. The buffer never holds more than a piece plus room for a
 * timestamp that has not come off yet. */
static void demux_text(struct engine_demux *d, int s, const char *p, size_t n)
{
	while (n) {
		size_t limit = LINE_MAX_PIECE + (d->timestamps && !d->cont[s] ? TS_ROOM : 0);
		const char *nl = memchr(p, '\n', n);
		size_t upto = nl ? (size_t)(nl - p) : n;
		size_t room = limit - d->line_len[s];
		size_t k = upto < room ? upto : room;
		if (d->line_cap[s] < limit) {
			d->line[s] = xrealloc(d->line[s], limit);
			d->line_cap[s] = limit;
		}
		memcpy(d->line[s] + d->line_len[s], p, k);
		d->line_len[s] += k;
		p += k;
		n -= k;
		if (d->line_len[s] >= limit) {
			demux_emit(d, s, false);
		} else if (nl && k == upto) {
			demux_emit(d, s, true);
			p++;
			n--;
		}
	}
}

void engine_demux_feed(struct engine_demux *d, const char *data, size_t n)
{
	if (d->tty) {
		demux_text(d, 1, data, n);
		return;
	}
	while (n && !d->bad) {
		if (d->frame_left == 0 && d->hdr_len < 8) {
			size_t k = 8 - d->hdr_len < n ? 8 - d->hdr_len : n;
			memcpy(d->hdr + d->hdr_len, data, k);
			d->hdr_len += k;
			data += k;
			n -= k;
			if (d->hdr_len < 8)
				return;
			if (d->hdr[0] > 2 || d->hdr[1] || d->hdr[2] || d->hdr[3]) {
				d->bad = true;
				return;
			}
			d->frame_stream = d->hdr[0] == 2 ? 2 : 1;
			d->frame_left = (uint64_t)d->hdr[4] << 24 | (uint64_t)d->hdr[5] << 16 |
					(uint64_t)d->hdr[6] << 8 | d->hdr[7];
			d->hdr_len = 0;
			continue;
		}
		size_t k = d->frame_left < n ? (size_t)d->frame_left : n;
		demux_text(d, d->frame_stream, data, k);
		d->frame_left -= k;
		data += k;
		n -= k;
	}
}

void engine_demux_finish(struct engine_demux *d)
{
	for (int s = 1; s <= 2; s++) {
		if (d->line_len[s])
			demux_emit(d, s, true);
		free(d->line[s]);
		d->line[s] = NULL;
		d->line_len[s] = d->line_cap[s] = 0;
		d->cont[s] = false;
	}
}

/* ---- JSON-lines progress ----------------------------------------------------------------- */

void engine_jstream_init(struct engine_jstream *j, engine_progress_fn fn, void *arg)
{
	memset(j, 0, sizeof *j);
	j->fn = fn;
	j->arg = arg;
}

/* Copy at most cap-1 bytes of s into out without cutting a UTF-8 sequence; NUL-terminated. */
static void copy_text(char *out, size_t cap, const char *s, size_t n)
{
	if (n >= cap) {
		n = cap - 1;
		while (n && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	}
	memcpy(out, s, n);
	out[n] = 0;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static void trim(const char **p, size_t *n)
{
	while (*n && is_space(**p)) {
		(*p)++;
		(*n)--;
	}
	while (*n && is_space((*p)[*n - 1]))
		(*n)--;
}

static void say(struct engine_jstream *j, const char *s, size_t n)
{
	trim(&s, &n);
	if (!n || !j->fn)
		return;
	char text[TEXT_MAX];
	copy_text(text, sizeof text, s, n);
	if (text[0])
		j->fn(j->arg, text);
}

enum { ID_NONE, ID_BARE, ID_BUILT, ID_AUX };   /* image_id_rank: later ones win */

static void set_image_id(struct engine_jstream *j, const char *id, size_t n, int rank)
{
	if (rank < j->image_id_rank || !n || n >= sizeof j->image_id)
		return;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)id[i] <= ' ' || id[i] == '"' || (unsigned char)id[i] >= 0x7f)
			return;
	copy_text(j->image_id, sizeof j->image_id, id, n);
	j->image_id_rank = rank;
}

static bool all_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* A build's "stream" text: one or more lines; each is said, and the ones naming the built
 * image ("Successfully built X", or podman's bare 64-hex id) are remembered. */
static void stream_text(struct engine_jstream *j, const char *s, size_t n)
{
	while (n) {
		const char *nl = memchr(s, '\n', n);
		size_t k = nl ? (size_t)(nl - s) : n;
		const char *line = s;
		size_t ln = k;
		trim(&line, &ln);
		static const char built[] = "Successfully built ";
		if (ln > sizeof built - 1 && !memcmp(line, built, sizeof built - 1))
			set_image_id(j, line + sizeof built - 1, ln - (sizeof built - 1), ID_BUILT);
		else if (ln == 64 && all_hex(line, ln)) {
			char id[72];
			snprintf(id, sizeof id, "sha256:%.*s", (int)ln, line);
			set_image_id(j, id, strlen(id), ID_BARE);
		}
		say(j, line, ln);
		s += k;
		n -= k;
		if (nl) {
			s++;
			n--;
		}
	}
}

static void jstream_doc(struct engine_jstream *j, json_t *doc)
{
	if (!json_is_object(doc))
		return;
	const char *m = json_string_value(json_object_get(doc, "error"));
	if (!m || !*m)
		m = json_string_value(json_object_get(json_object_get(doc, "errorDetail"), "message"));
	if (m && *m) {
		size_t n = strlen(m);
		trim(&m, &n);
		if (!n) {
			m = "the engine reported an empty error";
			n = strlen(m);
		}
		if (!j->error[0])
			copy_text(j->error, sizeof j->error, m, n);
		return;
	}
	json_t *aux = json_object_get(doc, "aux");
	const char *id = json_string_value(json_object_get(aux, "ID"));
	if (id)
		set_image_id(j, id, strlen(id), ID_AUX);
	const char *stream = json_string_value(json_object_get(doc, "stream"));
	if (stream) {
		stream_text(j, stream, json_string_length(json_object_get(doc, "stream")));
		return;
	}
	const char *status = json_string_value(json_object_get(doc, "status"));
	if (status) {
		const char *pid = json_string_value(json_object_get(doc, "id"));
		const char *prog = json_string_value(json_object_get(doc, "progress"));
		struct buf t = BUF_INIT;
		buf_add(&t, status, strnlen(status, TEXT_MAX));
		if (pid && *pid) {
			buf_addc(&t, ' ');
			buf_add(&t, pid, strnlen(pid, TEXT_MAX));
		}
		if (prog && *prog) {
			buf_addc(&t, ' ');
			buf_add(&t, prog, strnlen(prog, TEXT_MAX));
		}
		say(j, buf_str(&t), t.len);
		buf_free(&t);
		return;
	}
	const char *msg = json_string_value(json_object_get(doc, "message"));
	if (msg)
		say(j, msg, strlen(msg));
}

/* One line of the stream: usually one JSON document, sometimes several back to back; a line
 * that is not JSON at all is said as it is. */
static void jstream_line(struct engine_jstream *j, const char *p, size_t n)
{
	trim(&p, &n);
	bool first = true;
	while (n) {
		json_error_t je;
		json_t *doc = json_loadb(p, n, JSON_DISABLE_EOF_CHECK | JSON_DECODE_ANY, &je);
		if (!doc) {
			if (first)
				say(j, p, n);
			return;
		}
		jstream_doc(j, doc);
		json_decref(doc);
		size_t used = (size_t)je.position;
		if (used == 0 || used > n)
			return;
		p += used;
		n -= used;
		trim(&p, &n);
		first = false;
	}
}

void engine_jstream_feed(struct engine_jstream *j, const char *data, size_t n)
{
	while (n) {
		const char *nl = memchr(data, '\n', n);
		size_t k = nl ? (size_t)(nl - data) : n;
		if (j->skipping) {
			/* the rest of an oversized message */
		} else if (j->len + k > JLINE_MAX) {
			j->overflow = true;
			j->skipping = true;
			j->len = 0;
		} else if (k) {
			if (j->cap < j->len + k) {
				size_t cap = j->cap ? j->cap : 4096;
				while (cap < j->len + k)
					cap *= 2;
				j->buf = xrealloc(j->buf, cap);
				j->cap = cap;
			}
			memcpy(j->buf + j->len, data, k);
			j->len += k;
		}
		data += k;
		n -= k;
		if (nl) {
			if (!j->skipping)
				jstream_line(j, j->buf, j->len);
			j->skipping = false;
			j->len = 0;
			data++;
			n--;
		}
	}
}

void engine_jstream_finish(struct engine_jstream *j)
{
	if (j->len && !j->skipping)
		jstream_line(j, j->buf, j->len);
	free(j->buf);
	j->buf = NULL;
	j->len = j->cap = 0;
	j->skipping = false;
}

/* ---- JSON documents ---------------------------------------------------------------------- */

static json_t *load_doc(const char *body, size_t len, const char *what, struct err *e)
{
	if (len > ENGINE_BODY_MAX) {
		err_set(e, ERR_INTERNAL, "the engine's %s is too large (%zu bytes)", what, len);
		return NULL;
	}
	json_error_t je;
	json_t *doc = json_loadb(body ? body : "", body ? len : 0, 0, &je);
	if (!doc)
		err_set(e, ERR_INTERNAL, "the engine's %s is not JSON (line %d, column %d: %s)", what, je.line,
			je.column, je.text);
	return doc;
}

static char *dup_str(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	return xstrndup(json_is_string(v) ? json_string_value(v) : "", json_is_string(v) ? json_string_length(v) : 0);
}

/* The string members of a labels object, in a new object (anything else is dropped). */
static json_t *labels_copy(json_t *src)
{
	json_t *out = json_object();
	const char *k;
	json_t *v;
	if (json_is_object(src))
		json_object_foreach(src, k, v)
			if (json_is_string(v))
				json_object_set_new(out, k, json_stringn(json_string_value(v), json_string_length(v)));
	return out;
}

static int64_t time_of(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	int64_t us;
	if (!json_is_string(v) || engine_parse_time(json_string_value(v), json_string_length(v), &us) || us < 0)
		return 0;
	return us;
}

int engine_parse_container(const char *body, size_t len, struct engine_container *c, struct err *e)
{
	memset(c, 0, sizeof *c);
	json_t *doc = load_doc(body, len, "container document", e);
	if (!doc)
		return -1;
	json_t *id = json_object_get(doc, "Id"), *st = json_object_get(doc, "State");
	if (!json_is_object(doc) || !json_is_string(id) || !json_string_length(id) || !json_is_object(st)) {
		json_decref(doc);
		return err_set(e, ERR_INTERNAL, "the engine's answer is not a container document (no Id or State)");
	}
	c->id = dup_str(doc, "Id");
	c->name = dup_str(doc, "Name");
	if (c->name[0] == '/')
		memmove(c->name, c->name + 1, strlen(c->name));
	c->image = dup_str(doc, "Image");
	c->status = dup_str(st, "Status");
	c->running = json_is_true(json_object_get(st, "Running"));
	c->oom_killed = json_is_true(json_object_get(st, "OOMKilled"));
	json_int_t pid = json_integer_value(json_object_get(st, "Pid"));
	c->pid = pid > 0 && pid <= 0x7fffffff ? (int)pid : 0;
	c->exit_code = json_integer_value(json_object_get(st, "ExitCode"));
	c->started_us = time_of(st, "StartedAt");
	c->finished_us = time_of(st, "FinishedAt");
	c->labels = labels_copy(json_object_get(json_object_get(doc, "Config"), "Labels"));
	json_decref(doc);
	return 0;
}

void engine_container_free(struct engine_container *c)
{
	if (!c)
		return;
	free(c->id);
	free(c->name);
	free(c->image);
	free(c->status);
	json_decref(c->labels);
	memset(c, 0, sizeof *c);
}

int engine_parse_image(const char *body, size_t len, struct engine_image *im, struct err *e)
{
	memset(im, 0, sizeof *im);
	json_t *doc = load_doc(body, len, "image document", e);
	if (!doc)
		return -1;
	json_t *id = json_object_get(doc, "Id");
	if (!json_is_object(doc) || !json_is_string(id) || !json_string_length(id)) {
		json_decref(doc);
		return err_set(e, ERR_INTERNAL, "the engine's answer is not an image document (no Id)");
	}
	im->id = dup_str(doc, "Id");
	json_t *dg = json_array_get(json_object_get(doc, "RepoDigests"), 0);
	if (json_is_string(dg) && json_string_length(dg))
		im->repo_digest = xstrndup(json_string_value(dg), json_string_length(dg));
	json_t *cfg = json_object_get(doc, "Config");
	im->config = json_is_object(cfg) ? json_incref(cfg) : json_object();
	json_t *size = json_object_get(doc, "Size");
	im->size = json_is_integer(size) && json_integer_value(size) > 0 ? json_integer_value(size) : 0;
	json_decref(doc);
	return 0;
}

void engine_image_free(struct engine_image *im)
{
	if (!im)
		return;
	free(im->id);
	free(im->repo_digest);
	json_decref(im->config);
	memset(im, 0, sizeof *im);
}

json_t *engine_parse_container_list(const char *body, size_t len, struct err *e)
{
	json_t *doc = load_doc(body, len, "container list", e);
	if (!doc)
		return NULL;
	if (!json_is_array(doc)) {
		json_decref(doc);
		err_set(e, ERR_INTERNAL, "the engine's container list is not an array");
		return NULL;
	}
	json_t *out = json_array();
	size_t i;
	json_t *c;
	json_array_foreach(doc, i, c) {
		json_t *id = json_object_get(c, "Id");
		if (!json_is_string(id) || !json_string_length(id))
			continue;
		json_t *st = json_object_get(c, "State");
		if (json_is_object(st))   /* an inspect-shaped State */
			st = json_object_get(st, "Status");
		json_array_append_new(out, json_pack("{s:s%, s:s%, s:o}", "id", json_string_value(id),
						     json_string_length(id), "state",
						     json_is_string(st) ? json_string_value(st) : "",
						     json_is_string(st) ? json_string_length(st) : (size_t)0,
						     "labels", labels_copy(json_object_get(c, "Labels"))));
	}
	json_decref(doc);
	return out;
}
