/* fuzz_engine: libFuzzer harness for the parsers of the Docker Engine API client
 * (src/engine/parse.c, and engine_error_text), without any I/O.
 *
 * The input is an engine's answer body. It goes to the log demuxer three times (frames with
 * timestamps, a terminal's raw bytes with timestamps, frames without) and to the progress
 * stream, each read twice: once in one piece, once cut into pieces whose sizes come from a
 * hash of the input (so the corpus stays plain answers). Both runs must tell the same story:
 * the same lines with the same streams and times, the same progress texts, error and image
 * id. Invariants on the way: a line is at most 16 KiB and of stream 1 or 2 (only 1 with a
 * terminal), a progress text is a non-empty C string under 4 KiB. Then the same bytes as a
 * container, an image and a container list document: what parses has every field the header
 * promises (strings never NULL, labels an object of strings). A time that parses formats
 * back to itself; an error text always fits its buffer. */
#include "engine/engine.h"
#include "util/buf.h"
#include "util/timeutil.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                       \
	do {                                                                              \
		if (!(cond)) {                                                            \
			fprintf(stderr, "fuzz_engine: %s:%d: check failed: %s\n", __FILE__,   \
				__LINE__, #cond);                                                 \
			abort();                                                          \
		}                                                                         \
	} while (0)

static uint64_t fnv(const void *d, size_t n, uint64_t h)
{
	const unsigned char *p = d;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

struct story {
	struct buf text;
	bool tty;
};

static void on_line(void *arg, int stream, int64_t ts, const char *line, size_t n)
{
	struct story *s = arg;
	CHECK(stream == 1 || stream == 2);
	CHECK(!s->tty || stream == 1);
	CHECK(n <= 16384);
	CHECK(line != NULL);
	buf_addf(&s->text, "%d %lld %zu %016llx\n", stream, (long long)ts, n,
		 (unsigned long long)fnv(line, n, 14695981039346656037ull));
}

static void on_progress(void *arg, const char *text)
{
	struct story *s = arg;
	size_t n = strlen(text);
	CHECK(n > 0 && n < 4096);
	buf_addf(&s->text, "%s\n", text);
}

/* Cut sizes for the split run: mostly small, sometimes large. */
struct cutter {
	uint64_t x;
};

static size_t next_piece(struct cutter *c, size_t left)
{
	c->x ^= c->x << 13;
	c->x ^= c->x >> 7;
	c->x ^= c->x << 17;
	size_t piece = (c->x & 7) == 0 ? (size_t)(c->x >> 8) % 4096 + 1 : (size_t)(c->x >> 8) % 16 + 1;
	return piece < left ? piece : left;
}

static char *demux(const uint8_t *data, size_t size, bool tty, bool ts, uint64_t seed)
{
	struct story s = {BUF_INIT, tty};
	struct engine_demux d;
	engine_demux_init(&d, tty, ts, on_line, &s);
	if (!seed) {
		engine_demux_feed(&d, (const char *)data, size);
	} else {
		struct cutter c = {seed | 1};
		for (size_t pos = 0; pos < size;) {
			size_t k = next_piece(&c, size - pos);
			engine_demux_feed(&d, (const char *)data + pos, k);
			pos += k;
		}
	}
	CHECK(!tty || !d.bad);
	for (int i = 1; i <= 2; i++)
		CHECK(d.line_len[i] <= 16384 + 40);
	buf_addf(&s.text, "bad=%d\n", d.bad);
	engine_demux_finish(&d);
	buf_adds(&s.text, "");
	return buf_detach(&s.text);
}

static char *progress(const uint8_t *data, size_t size, uint64_t seed)
{
	struct story s = {BUF_INIT, false};
	struct engine_jstream j;
	engine_jstream_init(&j, on_progress, &s);
	if (!seed) {
		engine_jstream_feed(&j, (const char *)data, size);
	} else {
		struct cutter c = {seed | 1};
		for (size_t pos = 0; pos < size;) {
			size_t k = next_piece(&c, size - pos);
			engine_jstream_feed(&j, (const char *)data + pos, k);
			pos += k;
		}
	}
	engine_jstream_finish(&j);
	CHECK(memchr(j.error, 0, sizeof j.error) && memchr(j.image_id, 0, sizeof j.image_id));
	buf_addf(&s.text, "error=%s\nid=%s\noverflow=%d\n", j.error, j.image_id, j.overflow);
	return buf_detach(&s.text);
}

static void same(const char *what, char *one, char *two)
{
	if (strcmp(one, two)) {
		fprintf(stderr, "fuzz_engine: %s: whole and split runs differ\n--- whole\n%s--- split\n%s", what, one,
			two);
		abort();
	}
	free(one);
	free(two);
}

static void check_labels(json_t *labels)
{
	CHECK(json_is_object(labels));
	const char *k;
	json_t *v;
	json_object_foreach(labels, k, v)
		CHECK(json_is_string(v));
}

static void documents(const uint8_t *data, size_t size)
{
	const char *body = (const char *)data;
	struct err e = ERR_INIT;
	struct engine_container c;
	if (engine_parse_container(body, size, &c, &e) == 0) {
		CHECK(c.id && c.id[0] && c.name && c.image && c.status);
		CHECK(c.pid >= 0 && c.started_us >= 0 && c.finished_us >= 0);
		check_labels(c.labels);
		engine_container_free(&c);
	} else {
		CHECK(e.msg[0] && !c.id && !c.labels);
	}
	struct engine_image im;
	if (engine_parse_image(body, size, &im, &e) == 0) {
		CHECK(im.id && im.id[0] && json_is_object(im.config) && im.size >= 0);
		CHECK(!im.repo_digest || im.repo_digest[0]);
		engine_image_free(&im);
	} else {
		CHECK(!im.id && !im.config);
	}
	json_t *list = engine_parse_container_list(body, size, &e);
	if (list) {
		size_t i;
		json_t *it;
		json_array_foreach(list, i, it) {
			CHECK(json_string_length(json_object_get(it, "id")) > 0);
			CHECK(json_is_string(json_object_get(it, "state")));
			check_labels(json_object_get(it, "labels"));
		}
		json_decref(list);
	}
	/* the body as an error answer */
	char buf[96];
	struct engine_resp r = {404, body, size, NULL};
	char *copy = xstrndup(body, size);   /* a body is always NUL-terminated */
	r.body = copy;
	engine_error_text(&r, buf, sizeof buf);
	CHECK(memchr(buf, 0, sizeof buf));
	free(copy);
}

static void times(const uint8_t *data, size_t size)
{
	int64_t us;
	size_t n = size < 64 ? size : 64;
	if (engine_parse_time((const char *)data, n, &us))
		return;
	if (us >= 0 && us < 253402300800000000LL) {
		char out[40];
		int64_t back;
		time_format_rfc3339(us, out, sizeof out);
		CHECK(engine_parse_time(out, strlen(out), &back) == 0 && back == us);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t h = fnv(data, size, 14695981039346656037ull);
	same("demux frames", demux(data, size, false, true, 0), demux(data, size, false, true, h));
	same("demux tty", demux(data, size, true, true, 0), demux(data, size, true, true, h ^ 0x5555));
	same("demux plain", demux(data, size, false, false, 0), demux(data, size, false, false, h ^ 0xaaaa));
	same("progress", progress(data, size, 0), progress(data, size, h));
	documents(data, size);
	times(data, size);
	return 0;
}
