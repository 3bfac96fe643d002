/* test_engine: the Docker Engine API client (src/engine/).
 *
 * Parsers, with the nasty cases written down: RFC 3339 times (whole seconds as podman 4.3
 * sends them, nanoseconds, offsets, leap days, what is refused); the log demuxer fed a stream
 * whole, cut in two at every byte and byte by byte (stdout and stderr interleaved, a line
 * split across frames, empty frames, stdin frames, lines without a time), terminal mode
 * (CRLF), lines over 16 KiB cut in pieces that keep their time, and bad frame headers; the
 * JSON-lines progress stream (podman's real build answer, a build error and a pull error sent
 * with status 200, progress text, documents back to back, non-JSON, an oversized message);
 * and the container, image and container-list documents (real podman answers, then broken
 * ones).
 *
 * The client against a fake engine on a unix socket in this process (a thread speaking just
 * enough HTTP/1.1): version negotiation and every ping refusal, buffered calls and error
 * texts, request bodies copied and streamed from a file, the body bound, an 8 MiB stream
 * delivered intact and in order while the loop lags behind, timeouts, a dropped connection,
 * cancel (before start, from outside, from inside a callback, of a finished call whose end
 * is queued) and engine_free with calls in flight or from inside a callback: no callback
 * after either, nothing leaked (run under ASan: make ... SAN=-fsanitize=address).
 *
 * And the client against a real podman service when one is given (otherwise that case is
 * skipped): BERTH_TEST_ENGINE=unix:///PATH is the engine's socket, BERTH_TEST_IMAGE an image
 * in it made by engine_lib.sh's ctr_import (its CMD prints "start ...", then a "... tick N"
 * line every 100 ms, and exits 0 on SIGTERM). The test starts nothing; with
 * tests/integration/engine_lib.sh (about 15 s, most of it podman starting and importing):
 *   bash -c '. tests/integration/engine_lib.sh; trap engine_cleanup EXIT
 *            engine_start && ctr_import localhost/berth-unit:v1 hello &&
 *            BERTH_TEST_ENGINE=$ENGINE_HOST BERTH_TEST_IMAGE=localhost/berth-unit:v1 \
 *            build/tests/test_engine'          (after make unit-build)
 * It pings, inspects the image, creates (engine_call_sync), starts and inspects a container,
 * finds it in the list, follows its logs through engine_call on a uv loop (demuxed, with
 * podman's whole-second times), cancels the follow, stops, inspects and removes it; a stream
 * of a missing container gets the engine's 404 message. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include "engine/engine.h"
#include "util/buf.h"
#include "util/timeutil.h"

/* ---- times ----------------------------------------------------------------------------------- */

static int64_t tparse(const char *s)
{
	int64_t us = 12345;
	if (engine_parse_time(s, strlen(s), &us))
		return -1;
	return us;
}

static void test_time(void **state)
{
	(void)state;
	assert_true(tparse("2026-12-07T23:00:01Z") == 1796684401LL * 1000000);            /* podman 4.3 */
	assert_true(tparse("2026-12-07T23:00:01.123456789Z") == 1796684401LL * 1000000 + 123456);
	assert_true(tparse("2026-12-07T23:00:01.5Z") == 1796684401LL * 1000000 + 500000);
	assert_true(tparse("2026-12-07T23:00:01.000001Z") == 1796684401LL * 1000000 + 1);
	assert_true(tparse("2026-12-07t23:00:01z") == 1796684401LL * 1000000);
	assert_true(tparse("2026-12-08T00:00:02+01:00") == 1796684402LL * 1000000);       /* east of UTC */
	assert_true(tparse("2026-12-07T18:30:01.25-04:30") == 1796684401LL * 1000000 + 250000);
	assert_true(tparse("2024-02-29T12:00:00Z") == 1709208000LL * 1000000);           /* a leap day */
	assert_true(tparse("1970-01-01T00:00:00Z") == 0);
	assert_true(tparse("0001-01-01T00:00:00Z") == -62135596800LL * 1000000);          /* Go's zero time */
	assert_true(tparse("9999-12-31T23:59:59Z") == 253402300799LL * 1000000);
	static const char *const bad[] = {
		"", "2026", "2026-12-07", "2026-12-07T23:00:01", "2026-12-07 23:00:01Z", "2026-12-07T23:00Z",
		"2026-13-07T23:00:01Z", "2026-00-07T23:00:01Z", "2026-12-32T23:00:01Z", "2023-02-29T00:00:00Z",
		"2026-04-31T00:00:00Z", "2026-12-07T24:00:00Z", "2026-12-07T23:60:00Z", "2026-12-07T23:00:61Z",
		"2026-12-07T23:00:01.Z", "2026-12-07T23:00:01.1234567891Z", "2026-12-07T23:00:01+0100",
		"2026-12-07T23:00:01+24:00", "2026-12-07T23:00:01Zjunk", "2026-12-07T23:00:01 Z", "+026-12-07T23:00:01Z",
		"2026-1a-07T23:00:01Z", "2026-12-07T23:00:01.12a4Z", "２026-12-07T23:00:01Z",
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		if (tparse(bad[i]) != -1)
			fail_msg("'%s' parsed", bad[i]);
	}
	/* the length bounds it: no NUL needed, nothing read past n */
	const char *s = "2026-12-07T23:00:01Z trailing";
	int64_t us;
	assert_int_equal(engine_parse_time(s, 20, &us), 0);
	assert_true(us == 1796684401LL * 1000000);
	assert_int_equal(engine_parse_time(s, 19, &us), -1);
	assert_int_equal(engine_parse_time(s, 21, &us), -1);
	char *exact = xmalloc(20);   /* ASan catches a read of the byte after */
	memcpy(exact, "2026-12-07T23:00:01Z", 20);
	assert_int_equal(engine_parse_time(exact, 20, &us), 0);
	for (size_t n = 0; n < 20; n++)
		assert_int_equal(engine_parse_time(exact, n, &us), -1);
	free(exact);
}

/* ---- the log demuxer ------------------------------------------------------------------------- */

struct lines {
	struct buf text;
	int n;
};

static void on_line(void *arg, int stream, int64_t ts, const char *line, size_t n)
{
	struct lines *l = arg;
	assert_true(stream == 1 || stream == 2);
	assert_true(n <= 16384);
	buf_addf(&l->text, "%d %lld ", stream, (long long)ts);
	buf_add(&l->text, line, n);   /* NULs and all */
	buf_adds(&l->text, "|\n");
	l->n++;
}

static void frame(struct buf *b, int stream, const char *s)
{
	size_t n = strlen(s);
	unsigned char h[8] = {(unsigned char)stream, 0, 0, 0, (unsigned char)(n >> 24), (unsigned char)(n >> 16),
			      (unsigned char)(n >> 8), (unsigned char)n};
	buf_add(b, h, 8);
	buf_add(b, s, n);
}

/* Demux in pieces of `piece` bytes (0: whole), or cut once at `cut` when piece < 0. Owned. */
static char *demux(const void *in, size_t n, bool tty, bool ts, long piece, size_t cut)
{
	struct lines l = {BUF_INIT, 0};
	struct engine_demux d;
	engine_demux_init(&d, tty, ts, on_line, &l);
	const char *c = in;
	if (piece < 0) {
		engine_demux_feed(&d, c, cut);
		engine_demux_feed(&d, c + cut, n - cut);
	} else {
		size_t step = piece ? (size_t)piece : n ? n : 1;
		for (size_t off = 0; off < n; off += step)
			engine_demux_feed(&d, c + off, n - off < step ? n - off : step);
	}
	if (d.bad)
		buf_adds(&l.text, "BAD\n");
	engine_demux_finish(&d);
	buf_adds(&l.text, "");
	return buf_detach(&l.text);
}

/* The same lines however the stream is cut. */
static void demux_everywhere(const struct buf *in, bool tty, bool ts, const char *want)
{
	char *got = demux(in->p, in->len, tty, ts, 0, 0);
	assert_string_equal(got, want);
	free(got);
	for (size_t cut = 0; cut <= in->len; cut++) {
		got = demux(in->p, in->len, tty, ts, -1, cut);
		if (strcmp(got, want))
			fail_msg("cut at %zu:\n%s\nwant:\n%s", cut, got, want);
		free(got);
	}
	for (long piece = 1; piece <= 9; piece++) {
		got = demux(in->p, in->len, tty, ts, piece, 0);
		if (strcmp(got, want))
			fail_msg("pieces of %ld:\n%s\nwant:\n%s", piece, got, want);
		free(got);
	}
}

static void test_demux_frames(void **state)
{
	(void)state;
	struct buf in = BUF_INIT;
	frame(&in, 1, "2026-12-07T23:00:01Z start mark port=8080\n");
	frame(&in, 2, "2026-12-07T23:00:01.123456789Z err one\n");
	frame(&in, 1, "2026-12-08T00:00:02+01:00 tick ");          /* the line goes on in a later frame */
	frame(&in, 2, "2026-12-07T23:00:02Z err two\n");            /* stderr in between */
	frame(&in, 1, "");                                          /* an empty frame */
	frame(&in, 1, "1\n2026-12-07T23:00:03Z tick 2\n");         /* the rest, and a whole line */
	frame(&in, 0, "2026-12-07T23:00:04Z from stdin\n");        /* stream 0 counts as stdout */
	frame(&in, 1, "2026-12-07T23:00:05Z \n");                  /* an empty line */
	frame(&in, 1, "2026-12-07T23:00:05Z\n");                   /* ... whose space went missing */
	frame(&in, 2, "no time here\n");                           /* kept whole, time 0 */
	frame(&in, 2, "2026-13-07T23:00:05Z bad month\n");
	frame(&in, 1, "2026-12-07T23:00:06Z a\tb\r\n");            /* \r stays without a terminal */
	frame(&in, 1, "2026-12-07T23:00:06Z unterminated");        /* given at the end */
	demux_everywhere(&in, false, true,
			 "1 1796684401000000 start mark port=8080|\n"
			 "2 1796684401123456 err one|\n"
			 "2 1796684402000000 err two|\n"
			 "1 1796684402000000 tick 1|\n"
			 "1 1796684403000000 tick 2|\n"
			 "1 1796684404000000 from stdin|\n"
			 "1 1796684405000000 |\n"
			 "1 1796684405000000 |\n"
			 "2 0 no time here|\n"
			 "2 0 2026-13-07T23:00:05Z bad month|\n"
			 "1 1796684406000000 a\tb\r|\n"
			 "1 1796684406000000 unterminated|\n");
	/* without timestamps the first word is text */
	char *got = demux(in.p, in.len, false, false, 0, 0);
	assert_non_null(strstr(got, "1 0 2026-12-07T23:00:01Z start mark port=8080|\n"));
	free(got);
	buf_free(&in);

	/* stderr's partial line waits while stdout goes on; both are flushed at the end */
	frame(&in, 2, "half of stderr");
	frame(&in, 1, "out 1\nout 2\n");
	frame(&in, 2, " and the rest\nlast err");
	frame(&in, 1, "last out");
	demux_everywhere(&in, false, false,
			 "1 0 out 1|\n1 0 out 2|\n2 0 half of stderr and the rest|\n1 0 last out|\n2 0 last err|\n");
	buf_free(&in);
}

static void test_demux_tty(void **state)
{
	(void)state;
	/* raw bytes with CRLF line ends; bytes that would be a frame header are just text */
	struct buf in = BUF_INIT;
	buf_adds(&in, "2026-12-07T23:00:01Z $ ls\r\n2026-12-07T23:00:01.5Z file one\r\n");
	buf_add(&in, "\x01\0\0\0 not a frame header\n", 24);
	buf_adds(&in, "2026-12-07T23:00:02Z \r\n2026-12-07T23:00:03Z progress\r50%\rdone\r\n"
		      "2026-12-07T23:00:04Z no newline");
	struct buf w = BUF_INIT;
	buf_adds(&w, "1 1796684401000000 $ ls|\n1 1796684401500000 file one|\n1 0 ");
	buf_add(&w, "\x01\0\0\0 not a frame header", 23);
	buf_adds(&w, "|\n1 1796684402000000 |\n1 1796684403000000 progress\r50%\rdone|\n"
		     "1 1796684404000000 no newline|\n");
	/* compare with lengths: the text holds NULs */
	for (size_t cut = 0; cut <= in.len; cut++) {
		struct lines l = {BUF_INIT, 0};
		struct engine_demux d;
		engine_demux_init(&d, true, true, on_line, &l);
		engine_demux_feed(&d, in.p, cut);
		engine_demux_feed(&d, in.p + cut, in.len - cut);
		assert_false(d.bad);
		engine_demux_finish(&d);
		assert_int_equal(l.text.len, w.len);
		assert_memory_equal(l.text.p, w.p, w.len);
		buf_free(&l.text);
	}
	buf_free(&w);
	buf_free(&in);
}

static void test_demux_long_lines(void **state)
{
	(void)state;
	/* 40000 bytes in one line: pieces of 16384, 16384 and 7232, each with the line's time */
	struct buf line = BUF_INIT;
	buf_adds(&line, "2026-12-07T23:00:01.25Z ");
	for (int i = 0; i < 40000; i++)
		buf_addc(&line, (char)('a' + i % 26));
	buf_adds(&line, "\n2026-12-07T23:00:02Z next\n");
	struct buf in = BUF_INIT;
	for (size_t off = 0; off < line.len; off += 5000) {   /* in frames of 5000 bytes */
		size_t k = line.len - off < 5000 ? line.len - off : 5000;
		char *part = xstrndup(line.p + off, k);
		frame(&in, 1, part);
		free(part);
	}
	for (long piece = 0; piece <= 4096; piece = piece ? piece * 4 : 1) {
		struct lines l = {BUF_INIT, 0};
		struct engine_demux d;
		engine_demux_init(&d, false, true, on_line, &l);
		size_t step = piece ? (size_t)piece : in.len;
		for (size_t off = 0; off < in.len; off += step)
			engine_demux_feed(&d, in.p + off, in.len - off < step ? in.len - off : step);
		engine_demux_finish(&d);
		assert_int_equal(l.n, 4);
		const char *p = l.text.p;
		size_t sizes[3] = {16384, 16384, 7232}, at = 0;
		for (int k = 0; k < 3; k++) {
			assert_memory_equal(p, "1 1796684401250000 ", 19);
			p += 19;
			for (size_t i = 0; i < sizes[k]; i++, at++)
				assert_int_equal(p[i], 'a' + at % 26);
			p += sizes[k];
			assert_memory_equal(p, "|\n", 2);
			p += 2;
		}
		assert_string_equal(p, "1 1796684402000000 next|\n");
		buf_free(&l.text);
	}
	buf_free(&in);

	/* exactly 16384 bytes: one piece, no empty one after it; 16385: two */
	for (int extra = 0; extra <= 1; extra++) {
		buf_reset(&line);
		for (int i = 0; i < 16384 + extra; i++)
			buf_addc(&line, 'x');
		buf_addc(&line, '\n');
		char *got = demux(line.p, line.len, true, false, 0, 0);
		struct buf w = BUF_INIT;
		buf_adds(&w, "1 0 ");
		buf_add(&w, line.p, 16384);
		buf_adds(&w, extra ? "|\n1 0 x|\n" : "|\n");
		assert_string_equal(got, w.p);
		buf_free(&w);
		free(got);
	}
	/* a line of a timestamp-sized word with no space, then 20000 bytes: the word is text */
	buf_reset(&line);
	for (int i = 0; i < 20000; i++)
		buf_addc(&line, 'y');
	char *got = demux(line.p, line.len, true, true, 7, 0);
	struct buf w = BUF_INIT;
	buf_adds(&w, "1 0 ");
	buf_add(&w, line.p, 16384);
	buf_adds(&w, "|\n1 0 ");
	buf_add(&w, line.p, 20000 - 16384);
	buf_adds(&w, "|\n");
	assert_string_equal(got, w.p);
	free(got);
	buf_free(&w);
	buf_free(&line);
}

static void test_demux_bad_headers(void **state)
{
	(void)state;
	static const unsigned char heads[][4] = {{3, 0, 0, 0}, {1, 1, 0, 0}, {2, 0, 0, 9}, {'2', '0', '2', '6'}, {0xff, 0, 0, 0}};
	for (size_t i = 0; i < sizeof heads / sizeof *heads; i++) {
		struct buf in = BUF_INIT;
		frame(&in, 1, "before\npartial");
		buf_add(&in, heads[i], 4);
		buf_add(&in, "\0\0\0\x05hello\n", 9);
		frame(&in, 1, "after\n");
		char *got = demux(in.p, in.len, false, false, 0, 0);
		assert_string_equal(got, "1 0 before|\nBAD\n1 0 partial|\n");
		free(got);
		for (size_t cut = 0; cut <= in.len; cut++) {
			got = demux(in.p, in.len, false, false, -1, cut);
			assert_string_equal(got, "1 0 before|\nBAD\n1 0 partial|\n");
			free(got);
		}
		buf_free(&in);
	}
	/* an unframed answer (a tty container read as if it had none) is refused at once */
	char *got = demux("2026-12-07T23:00:01Z hello\n", 27, false, true, 0, 0);
	assert_string_equal(got, "BAD\n");
	free(got);
	/* a truncated header or frame at the end: the lines so far, nothing invented */
	struct buf in = BUF_INIT;
	frame(&in, 2, "whole\n");
	frame(&in, 1, "cut short by the end of the stream\n");
	got = demux(in.p, in.len - 10, false, false, 0, 0);
	assert_string_equal(got, "2 0 whole|\n1 0 cut short by the end of t|\n");
	free(got);
	got = demux(in.p, 14 + 3, false, false, 0, 0);
	assert_string_equal(got, "2 0 whole|\n");
	free(got);
	buf_free(&in);
	/* a huge declared length is just a long frame, not memory */
	unsigned char big[] = {1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 'o', 'k', '\n'};
	got = demux(big, sizeof big, false, false, 1, 0);
	assert_string_equal(got, "1 0 ok|\n");
	free(got);
	/* finish twice, and nothing fed */
	struct engine_demux d;
	struct lines l = {BUF_INIT, 0};
	engine_demux_init(&d, false, true, on_line, &l);
	engine_demux_feed(&d, NULL, 0);
	engine_demux_finish(&d);
	engine_demux_finish(&d);
	assert_int_equal(l.n, 0);
}

/* ---- the progress stream --------------------------------------------------------------------- */

struct said {
	struct buf text;
};

static void on_progress(void *arg, const char *text)
{
	struct said *s = arg;
	assert_non_null(text);
	assert_true(strlen(text) < 4096);
	buf_addf(&s->text, "%s|\n", text);
}

/* Progress of `in` cut once at `cut` (or whole when cut > len): "texts\nerror=..\nid=..\n". */
static char *progress(const char *in, size_t len, size_t cut)
{
	struct said s = {BUF_INIT};
	struct engine_jstream j;
	engine_jstream_init(&j, on_progress, &s);
	if (cut > len)
		cut = len;
	engine_jstream_feed(&j, in, cut);
	engine_jstream_feed(&j, in + cut, len - cut);
	engine_jstream_finish(&j);
	buf_addf(&s.text, "error=%s\nid=%s\noverflow=%d\n", j.error, j.image_id, j.overflow);
	return buf_detach(&s.text);
}

static void progress_everywhere(const char *in, const char *want)
{
	size_t len = strlen(in);
	for (size_t cut = 0; cut <= len; cut++) {
		char *got = progress(in, len, cut);
		if (strcmp(got, want))
			fail_msg("cut at %zu:\n%s\nwant:\n%s", cut, got, want);
		free(got);
	}
}

static void test_jstream_build(void **state)
{
	(void)state;
	/* podman 4.3.1's answer to POST /build, as it came */
	progress_everywhere(
		"{\"stream\":\"STEP 1/3: FROM localhost/berth-test:v1\\n\"}\n"
		"{\"stream\":\"STEP 2/3: RUN echo built-step \\u0026\\u0026 echo err \\u003e\\u00262\\n\"}\n"
		"{\"stream\":\"err\\n\"}\n"
		"{\"stream\":\"built-step\\n\"}\n"
		"{\"stream\":\"--\\u003e 848574f7096\\n\"}\n"
		"{\"stream\":\"STEP 3/3: CMD [\\\"/bin/sh\\\"]\\n\"}\n"
		"{\"stream\":\"COMMIT localhost/built:1\\n\"}\n"
		"{\"stream\":\"--\\u003e 5e4777bdb11\\n\"}\n"
		"{\"stream\":\"Successfully tagged localhost/built:1\\n\"}\n"
		"{\"stream\":\"5e4777bdb112fc8b78618cf933c869693fcc71db001dd68675ed5ab7b485f54c\\n\"}\n"
		"{\"aux\":{\"ID\":\"sha256:5e4777bdb112fc8b78618cf933c869693fcc71db001dd68675ed5ab7b485f54c\"}}\n"
		"{\"stream\":\"Successfully built 5e4777bdb112\\n\"}\n"
		"{\"stream\":\"Successfully tagged localhost/built:1\\n\"}\n",
		"STEP 1/3: FROM localhost/berth-test:v1|\n"
		"STEP 2/3: RUN echo built-step && echo err >&2|\n"
		"err|\n"
		"built-step|\n"
		"--> 848574f7096|\n"
		"STEP 3/3: CMD [\"/bin/sh\"]|\n"
		"COMMIT localhost/built:1|\n"
		"--> 5e4777bdb11|\n"
		"Successfully tagged localhost/built:1|\n"
		"5e4777bdb112fc8b78618cf933c869693fcc71db001dd68675ed5ab7b485f54c|\n"
		"Successfully built 5e4777bdb112|\n"
		"Successfully tagged localhost/built:1|\n"
		"error=\nid=sha256:5e4777bdb112fc8b78618cf933c869693fcc71db001dd68675ed5ab7b485f54c\noverflow=0\n");
	/* Docker's classic builder: no aux, the id from "Successfully built" (it beats a bare id) */
	progress_everywhere("{\"stream\":\"Step 1/2 : FROM busybox\\n\"}\r\n"
			    "{\"stream\":\" ---\\u003e 1c35c4412082\\n\"}\r\n"
			    "{\"stream\":\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\\n\"}\r\n"
			    "{\"stream\":\"Successfully built 1c35c4412082\\n\"}\r\n",
			    "Step 1/2 : FROM busybox|\n---> 1c35c4412082|\n"
			    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef|\n"
			    "Successfully built 1c35c4412082|\n"
			    "error=\nid=1c35c4412082\noverflow=0\n");
	/* only podman's bare id */
	progress_everywhere("{\"stream\":\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\\n\"}",
			    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef|\n"
			    "error=\nid=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\noverflow=0\n");
	/* a stream text of several lines, and blank ones */
	progress_everywhere("{\"stream\":\"one\\ntwo\\r\\n\\n  \\nthree\"}\n{\"stream\":\"\\n\"}\n",
			    "one|\ntwo|\nthree|\nerror=\nid=\noverflow=0\n");
}

static void test_jstream_errors(void **state)
{
	(void)state;
	/* a failed build step: status 200, then the error in the stream */
	progress_everywhere(
		"{\"stream\":\"STEP 1/2: FROM localhost/berth-test:v1\\n\"}\n"
		"{\"stream\":\"STEP 2/2: RUN false\\n\"}\n"
		"{\"errorDetail\":{\"message\":\"building at STEP \\\"RUN false\\\": while running runtime: exit status 1\\n\"},"
		"\"error\":\"building at STEP \\\"RUN false\\\": while running runtime: exit status 1\\n\"}\n",
		"STEP 1/2: FROM localhost/berth-test:v1|\nSTEP 2/2: RUN false|\n"
		"error=building at STEP \"RUN false\": while running runtime: exit status 1\nid=\noverflow=0\n");
	/* a failed pull (podman 4.3.1) */
	progress_everywhere(
		"{\"progressDetail\":{},\"errorDetail\":{\"message\":\"initializing source docker://localhost:1/nope:x: "
		"pinging container registry localhost:1: connect: connection refused\"},\"error\":\"initializing source "
		"docker://localhost:1/nope:x: pinging container registry localhost:1: connect: connection refused\"}\n",
		"error=initializing source docker://localhost:1/nope:x: pinging container registry localhost:1: connect: "
		"connection refused\nid=\noverflow=0\n");
	/* only errorDetail; the first error wins; an empty one still counts */
	progress_everywhere("{\"errorDetail\":{\"message\":\"first\"}}\n{\"error\":\"second\"}\n",
			    "error=first\nid=\noverflow=0\n");
	progress_everywhere("{\"error\":\"  \"}\n", "error=the engine reported an empty error\nid=\noverflow=0\n");
	/* "error": null or "" with no detail is no error */
	progress_everywhere("{\"status\":\"ok\",\"error\":null}\n{\"error\":\"\"}\n", "ok|\nerror=\nid=\noverflow=0\n");
}

static void test_jstream_progress(void **state)
{
	(void)state;
	progress_everywhere(
		"{\"status\":\"Pulling from library/busybox\",\"id\":\"latest\"}\r\n"
		"{\"status\":\"Pulling fs layer\",\"progressDetail\":{},\"id\":\"abc123\"}\r\n"
		"{\"status\":\"Downloading\",\"progressDetail\":{\"current\":1,\"total\":2},"
		"\"progress\":\"[=====>    ]  1MB/2MB\",\"id\":\"abc123\"}\r\n"
		"{\"status\":\"Digest: sha256:feed\"}{\"status\":\"Status: Downloaded newer image\"}\r\n"   /* back to back */
		"{\"aux\":{\"Tag\":\"v1\",\"Digest\":\"sha256:feed\",\"Size\":528}}\n"                        /* push's aux */
		"{\"message\":\"a message\"}\n"
		"[1,2,3]\n\"a string\"\n42\nnull\n{}\n"                                                       /* not objects */
		"plain text, not JSON\n"
		"{\"status\":\"half a document\"\n"
		"{\"status\":\"fine\"} trailing garbage\n",
		"Pulling from library/busybox latest|\n"
		"Pulling fs layer abc123|\n"
		"Downloading abc123 [=====>    ]  1MB/2MB|\n"
		"Digest: sha256:feed|\n"
		"Status: Downloaded newer image|\n"
		"a message|\n"
		"plain text, not JSON|\n"
		"{\"status\":\"half a document\"|\n"
		"fine|\n"
		"error=\nid=\noverflow=0\n");
	/* a message over 1 MiB is skipped, the next one is read */
	struct buf in = BUF_INIT;
	buf_adds(&in, "{\"stream\":\"");
	for (int i = 0; i < (1 << 20); i++)
		buf_addc(&in, 'z');
	buf_adds(&in, "\"}\n{\"stream\":\"after\"}\n");
	char *got = progress(in.p, in.len, 4097);
	assert_string_equal(got, "after|\nerror=\nid=\noverflow=1\n");
	free(got);
	/* a long text is cut to fit, at a character boundary */
	buf_reset(&in);
	buf_adds(&in, "{\"stream\":\"");
	for (int i = 0; i < 3000; i++)
		buf_adds(&in, "\xc3\xa9");   /* é */
	buf_adds(&in, "\"}\n");
	got = progress(in.p, in.len, in.len);
	size_t n = strcspn(got, "|");
	assert_int_equal(n, 4094);
	for (size_t i = 0; i < n; i += 2)
		assert_memory_equal(got + i, "\xc3\xa9", 2);
	free(got);
	buf_free(&in);
	/* an image id that could not be an id is not taken */
	progress_everywhere("{\"aux\":{\"ID\":\"sha256:abc def\"}}\n{\"aux\":{\"ID\":42}}\n", "error=\nid=\noverflow=0\n");
}

/* ---- JSON documents --------------------------------------------------------------------------- */

static const char podman_container[] =
	"{\"Id\":\"2d6d132b7976f3a1df6f1e907031bb3a698edbb2d48a23571e83ad553430c26a\",\"Created\":"
	"\"2026-12-07T23:04:19.858857962Z\",\"Path\":\"/bin/sh\",\"Args\":[\"-c\",\"trap \\\"exit 0\\\" TERM\"],"
	"\"State\":{\"Status\":\"running\",\"Running\":true,\"Paused\":false,\"Restarting\":false,\"OOMKilled\":false,"
	"\"Dead\":false,\"Pid\":5601,\"ExitCode\":0,\"Error\":\"\",\"StartedAt\":\"2026-12-07T23:04:19.966454065Z\","
	"\"FinishedAt\":\"0001-01-01T00:00:00Z\",\"Health\":{\"Status\":\"\",\"FailingStreak\":0,\"Log\":null}},"
	"\"Image\":\"sha256:98b65f19516e276390f01c640e6a51f59e9c36063ef94f7e03399cf230e62d39\",\"Name\":\"/t1\","
	"\"RestartCount\":0,\"Driver\":\"vfs\",\"HostConfig\":{\"NetworkMode\":\"host\",\"Ulimits\":[]},"
	"\"Config\":{\"Hostname\":\"vm\",\"Env\":[\"PATH=/bin\",\"MARK=m\"],\"Labels\":{\"a\":\"b\","
	"\"io.berth.app\":\"web\"},\"Tty\":false}}";

static void test_parse_container(void **state)
{
	(void)state;
	struct engine_container c;
	struct err e = ERR_INIT;
	assert_int_equal(engine_parse_container(podman_container, strlen(podman_container), &c, &e), 0);
	assert_string_equal(c.id, "2d6d132b7976f3a1df6f1e907031bb3a698edbb2d48a23571e83ad553430c26a");
	assert_string_equal(c.name, "t1");
	assert_string_equal(c.image, "sha256:98b65f19516e276390f01c640e6a51f59e9c36063ef94f7e03399cf230e62d39");
	assert_string_equal(c.status, "running");
	assert_true(c.running);
	assert_false(c.oom_killed);
	assert_int_equal(c.pid, 5601);
	assert_int_equal(c.exit_code, 0);
	assert_true(c.started_us == tparse("2026-12-07T23:04:19.966454Z"));
	assert_true(c.finished_us == 0);    /* the zero time is "not yet" */
	assert_int_equal(json_object_size(c.labels), 2);
	assert_string_equal(json_string_value(json_object_get(c.labels, "io.berth.app")), "web");
	engine_container_free(&c);
	engine_container_free(&c);   /* twice is fine */
	engine_container_free(NULL);

	/* an exited, OOM-killed one, with odd members left out or of the wrong type */
	const char *ex = "{\"Id\":\"abc\",\"State\":{\"Status\":\"exited\",\"Running\":false,\"OOMKilled\":true,\"Pid\":0,"
			 "\"ExitCode\":137,\"StartedAt\":\"2026-12-07T23:00:01Z\",\"FinishedAt\":\"2026-12-07T23:00:03+00:00\"},"
			 "\"Name\":42,\"Config\":{\"Labels\":{\"ok\":\"1\",\"num\":2,\"obj\":{},\"nul\":null}}}";
	assert_int_equal(engine_parse_container(ex, strlen(ex), &c, &e), 0);
	assert_string_equal(c.name, "");
	assert_string_equal(c.image, "");
	assert_false(c.running);
	assert_true(c.oom_killed);
	assert_int_equal(c.exit_code, 137);
	assert_true(c.finished_us - c.started_us == 2000000);
	assert_int_equal(json_object_size(c.labels), 1);
	engine_container_free(&c);
	/* Labels null, Pid out of range, times malformed */
	const char *odd = "{\"Id\":\"x\",\"State\":{\"Pid\":99999999999,\"StartedAt\":\"yesterday\",\"Running\":\"yes\"},"
			  "\"Config\":{\"Labels\":null}}";
	assert_int_equal(engine_parse_container(odd, strlen(odd), &c, &e), 0);
	assert_int_equal(c.pid, 0);
	assert_true(c.started_us == 0);
	assert_false(c.running);
	assert_string_equal(c.status, "");
	assert_int_equal(json_object_size(c.labels), 0);
	engine_container_free(&c);

	static const char *const bad[] = {
		"", "not json", "[]", "{}", "{\"Id\":\"\",\"State\":{}}", "{\"Id\":5,\"State\":{}}", "{\"Id\":\"x\"}",
		"{\"Id\":\"x\",\"State\":\"running\"}", "{\"Id\":\"x\",\"State\":{}", "{\"Id\":\"x\",\"State\":{}} {}",
		"{\"Id\":\"x\\u0000y\",\"State\":{}}", "{\"Id\":\"\xff\",\"State\":{}}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		err_clear(&e);
		if (engine_parse_container(bad[i], strlen(bad[i]), &c, &e) != -1)
			fail_msg("'%s' parsed", bad[i]);
		assert_true(e.msg[0]);
		assert_null(c.id);
	}
	assert_int_equal(engine_parse_container("{\"Id\":\"x\",\"State\":{}}", 5, &c, &e), -1);
	assert_non_null(strstr(e.msg, "not JSON"));
	/* deep nesting is refused by jansson's depth limit, not by the stack */
	struct buf deep = BUF_INIT;
	buf_adds(&deep, "{\"Id\":\"x\",\"State\":{},\"Config\":");
	for (int i = 0; i < 100000; i++)
		buf_addc(&deep, '[');
	assert_int_equal(engine_parse_container(deep.p, deep.len, &c, &e), -1);
	/* over the bound: refused before parsing */
	buf_reset(&deep);
	buf_adds(&deep, "{\"Id\":\"x\",\"State\":{}}");
	buf_grow(&deep, ENGINE_BODY_MAX);
	memset(deep.p + deep.len, ' ', ENGINE_BODY_MAX);
	assert_int_equal(engine_parse_container(deep.p, deep.len + ENGINE_BODY_MAX - deep.len, &c, &e), 0);
	engine_container_free(&c);
	assert_int_equal(engine_parse_container(deep.p, ENGINE_BODY_MAX + 1, &c, &e), -1);
	assert_non_null(strstr(e.msg, "too large"));
	buf_free(&deep);
}

static const char podman_image[] =
	"{\"Id\":\"sha256:98b65f19516e276390f01c640e6a51f59e9c36063ef94f7e03399cf230e62d39\",\"RepoTags\":"
	"[\"localhost/berth-test:v1\"],\"RepoDigests\":[\"localhost/berth-test@sha256:201b7a7c6e77bb66a6b1647de2ec8da15bce0a0b8"
	"71914826ec9ef19e526bb96\"],\"Parent\":\"\",\"Comment\":\"imported from tarball\",\"Created\":"
	"\"2026-12-07T23:04:15.536136046Z\",\"Config\":{\"Hostname\":\"\",\"User\":\"\",\"Env\":[\"MARK=m\"],\"Cmd\":"
	"[\"/bin/sh\",\"-c\",\"echo hi\"],\"WorkingDir\":\"\",\"Entrypoint\":null,\"Labels\":null},\"Architecture\":"
	"\"amd64\",\"Os\":\"linux\",\"Size\":2131303,\"VirtualSize\":2131303}";

static void test_parse_image(void **state)
{
	(void)state;
	struct engine_image im;
	struct err e = ERR_INIT;
	assert_int_equal(engine_parse_image(podman_image, strlen(podman_image), &im, &e), 0);
	assert_string_equal(im.id, "sha256:98b65f19516e276390f01c640e6a51f59e9c36063ef94f7e03399cf230e62d39");
	assert_string_equal(im.repo_digest,
			    "localhost/berth-test@sha256:201b7a7c6e77bb66a6b1647de2ec8da15bce0a0b871914826ec9ef19e526bb96");
	assert_true(im.size == 2131303);
	json_t *cmd = json_object_get(im.config, "Cmd");
	assert_int_equal(json_array_size(cmd), 3);
	assert_string_equal(json_string_value(json_array_get(cmd, 2)), "echo hi");
	engine_image_free(&im);
	engine_image_free(&im);
	engine_image_free(NULL);

	const char *bare = "{\"Id\":\"sha256:1\",\"RepoDigests\":[],\"Config\":null,\"Size\":-5}";
	assert_int_equal(engine_parse_image(bare, strlen(bare), &im, &e), 0);
	assert_null(im.repo_digest);
	assert_true(json_is_object(im.config) && json_object_size(im.config) == 0);
	assert_true(im.size == 0);
	engine_image_free(&im);
	const char *odd = "{\"Id\":\"sha256:1\",\"RepoDigests\":[7,\"x@sha256:2\"],\"Config\":[1]}";
	assert_int_equal(engine_parse_image(odd, strlen(odd), &im, &e), 0);
	assert_null(im.repo_digest);       /* only the first, and only a string */
	assert_true(json_is_object(im.config));
	engine_image_free(&im);

	static const char *const bad[] = {"", "{", "[]", "{}", "{\"Id\":\"\"}", "{\"Id\":null}", "\"sha256:1\""};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		if (engine_parse_image(bad[i], strlen(bad[i]), &im, &e) != -1)
			fail_msg("'%s' parsed", bad[i]);
		assert_null(im.id);
	}
}

static void test_parse_container_list(void **state)
{
	(void)state;
	const char *list =
		"[{\"Id\":\"2d6d\",\"Names\":[\"/t1\"],\"Image\":\"localhost/berth-test:v1\",\"Labels\":{\"a\":\"b\"},"
		"\"State\":\"running\",\"Status\":\"Up 1 second\"},"
		"{\"Id\":\"3e7e\",\"Labels\":null,\"State\":\"exited\"},"
		"{\"Id\":\"4f8f\",\"State\":{\"Status\":\"created\"},\"Labels\":{\"n\":1}},"   /* an inspect-shaped State */
		"{\"Names\":[\"/no-id\"]},7,null,{\"Id\":\"\"}]";
	struct err e = ERR_INIT;
	json_t *a = engine_parse_container_list(list, strlen(list), &e);
	assert_non_null(a);
	assert_int_equal(json_array_size(a), 3);
	char *dump = json_dumps(a, JSON_SORT_KEYS | JSON_COMPACT);
	assert_string_equal(dump, "[{\"id\":\"2d6d\",\"labels\":{\"a\":\"b\"},\"state\":\"running\"},"
				  "{\"id\":\"3e7e\",\"labels\":{},\"state\":\"exited\"},"
				  "{\"id\":\"4f8f\",\"labels\":{},\"state\":\"created\"}]");
	free(dump);
	json_decref(a);
	a = engine_parse_container_list("[]", 2, &e);
	assert_int_equal(json_array_size(a), 0);
	json_decref(a);
	static const char *const bad[] = {"", "{}", "[", "null", "\"x\""};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		assert_null(engine_parse_container_list(bad[i], strlen(bad[i]), &e));
}

/* ---- a fake engine ------------------------------------------------------------------------------ */

enum ping_mode { PING_OK, PING_404, PING_GARBAGE, PING_HANG, PING_NOT_OK };

struct fake {
	char dir[64], path[108];
	int lfd, stop[2];
	pthread_t accept_th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t conns[512];
	int nconns;
	/* settings (set before use) */
	char apiver[16];                  /* "" to leave the header out */
	enum ping_mode ping;
	/* what happened (mu) */
	size_t stream_written;
	size_t hangs_closed;
	char last_target[256];
};

struct fake_conn {
	struct fake *f;
	int fd;
};

/* Wait for fd to be ready for `events`, or the stop pipe: 1, 0 on stop. */
static int fake_wait(struct fake *f, int fd, short events)
{
	struct pollfd p[2] = {{fd, events, 0}, {f->stop[0], POLLIN, 0}};
	for (;;) {
		int n = poll(p, 2, -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || p[1].revents)
			return 0;
		return 1;
	}
}

static int fake_write(struct fake *f, int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n) {
		if (!fake_wait(f, fd, POLLOUT))
			return -1;
		ssize_t k = send(fd, c, n, MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		c += k;
		n -= (size_t)k;
	}
	return 0;
}

static int fake_printf(struct fake *f, int fd, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fake_printf(struct fake *f, int fd, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	buf_vaddf(&b, fmt, ap);
	va_end(ap);
	int rc = fake_write(f, fd, b.p, b.len);
	buf_free(&b);
	return rc;
}

static int fake_read(struct fake *f, int fd, struct buf *in)
{
	if (!fake_wait(f, fd, POLLIN))
		return -1;
	char tmp[65536];
	ssize_t k = recv(fd, tmp, sizeof tmp, 0);
	if (k > 0)
		buf_add(in, tmp, (size_t)k);
	return k > 0 ? 1 : -1;
}

static uint32_t fnv(const void *d, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ ((const unsigned char *)d)[i]) * 16777619u;
	return h;
}

/* Wait for the client to go away (a hanging answer); counts it. */
static void fake_hang(struct fake *f, int fd)
{
	struct buf junk = BUF_INIT;
	while (fake_read(f, fd, &junk) > 0)
		buf_reset(&junk);
	buf_free(&junk);
	pthread_mutex_lock(&f->mu);
	f->hangs_closed++;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
}

/* One request; 0 to keep the connection, -1 to close it. */
static int fake_answer(struct fake *f, int fd, const char *method, const char *target, const char *ctype,
		       const char *body, size_t blen)
{
	pthread_mutex_lock(&f->mu);
	snprintf(f->last_target, sizeof f->last_target, "%s %s", method, target);
	enum ping_mode ping = f->ping;
	char apiver[sizeof f->apiver];
	memcpy(apiver, f->apiver, sizeof apiver);
	pthread_mutex_unlock(&f->mu);
	if (!strcmp(target, "/_ping")) {
		switch (ping) {
		case PING_OK:
		case PING_NOT_OK: {
			const char *b = ping == PING_OK ? "OK" : "<html>hello</html>";
			char hv[64] = "";
			if (apiver[0])
				snprintf(hv, sizeof hv, "Api-Version: %s\r\n", apiver);
			return fake_printf(f, fd, "HTTP/1.1 200 OK\r\n%sContent-Length: %zu\r\n\r\n%s", hv, strlen(b), b);
		}
		case PING_404:
			fake_printf(f, fd, "HTTP/1.1 404 Not Found\r\nContent-Length: 19\r\n\r\n404 page not found\n");
			return 0;
		case PING_GARBAGE:
			fake_printf(f, fd, "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n");
			return -1;
		case PING_HANG:
			fake_hang(f, fd);
			return -1;
		}
	}
	/* everything else under the version prefix */
	const char *p = target;
	if (strncmp(p, "/v1.", 4))
		return fake_printf(f, fd, "HTTP/1.1 400 Bad Request\r\nContent-Length: 10\r\n\r\nno version");
	p = strchr(p + 1, '/');
	if (!p)
		return -1;
	if (!strncmp(p, "/json/", 6)) {
		char doc[512];
		snprintf(doc, sizeof doc, "{\"Id\":\"%s\",\"Target\":\"%s\"}", p + 6, target);
		return fake_printf(f, fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
				   strlen(doc), doc);
	}
	if (!strcmp(p, "/echo")) {
		char doc[512];
		snprintf(doc, sizeof doc, "%s ctype=%s len=%zu sum=%08x", method, ctype, blen, fnv(body, blen));
		return fake_printf(f, fd, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s", strlen(doc), doc);
	}
	if (!strcmp(p, "/err404")) {
		const char *b = "{\"cause\":\"no such container\",\"message\":\"no container with name or ID \\\"x\\\" "
				"found: no such container\\n\",\"response\":404}";
		return fake_printf(f, fd, "HTTP/1.1 404 Not Found\r\nContent-Length: %zu\r\n\r\n%s", strlen(b), b);
	}
	if (!strcmp(p, "/empty500"))
		return fake_printf(f, fd, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n");
	if (!strcmp(p, "/nocontent"))
		return fake_printf(f, fd, "HTTP/1.1 204 No Content\r\n\r\n");
	if (!strcmp(p, "/big") || !strcmp(p, "/exact")) {
		size_t total = ENGINE_BODY_MAX + (p[1] == 'b');
		if (fake_printf(f, fd, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", total))
			return -1;
		char *zs = xmalloc(65536);
		memset(zs, 'z', 65536);
		int rc = 0;
		for (size_t off = 0; off < total && !rc; off += 65536)
			rc = fake_write(f, fd, zs, total - off < 65536 ? total - off : 65536);
		free(zs);
		return rc;
	}
	if (!strncmp(p, "/stream", 7)) {   /* /stream?size=N: N bytes, byte k = k % 251, in chunks */
		size_t total = strtoul(strstr(p, "size=") + 5, NULL, 10);
		if (fake_printf(f, fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"))
			return -1;
		char chunk[7001];
		for (size_t off = 0; off < total;) {
			size_t k = total - off < sizeof chunk ? total - off : sizeof chunk;
			for (size_t i = 0; i < k; i++)
				chunk[i] = (char)((off + i) % 251);
			if (fake_printf(f, fd, "%zx\r\n", k) || fake_write(f, fd, chunk, k) || fake_write(f, fd, "\r\n", 2))
				return -1;
			off += k;
			pthread_mutex_lock(&f->mu);
			f->stream_written = off;
			pthread_cond_broadcast(&f->cv);
			pthread_mutex_unlock(&f->mu);
		}
		return fake_write(f, fd, "0\r\n\r\n", 5);
	}
	if (!strcmp(p, "/hang")) {         /* a stream that starts and never ends */
		fake_printf(f, fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello\n\r\n");
		fake_hang(f, fd);
		return -1;
	}
	if (!strcmp(p, "/silent")) {       /* no answer at all */
		fake_hang(f, fd);
		return -1;
	}
	if (!strcmp(p, "/drop"))
		return -1;
	return fake_printf(f, fd, "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nno route\n");
}

/* What the fake says to /_ping from now on (apiver NULL: unchanged). */
static void fake_set(struct fake *f, const char *apiver, enum ping_mode ping)
{
	pthread_mutex_lock(&f->mu);
	if (apiver)
		snprintf(f->apiver, sizeof f->apiver, "%s", apiver);
	f->ping = ping;
	pthread_mutex_unlock(&f->mu);
}

static void *fake_conn_main(void *arg)
{
	struct fake_conn *c = arg;
	struct fake *f = c->f;
	struct buf in = BUF_INIT;
	for (;;) {
		char *end;
		while (!in.p || !(end = memmem(in.p, in.len, "\r\n\r\n", 4)))
			if (fake_read(f, c->fd, &in) < 0)
				goto out;
		size_t hlen = (size_t)(end + 4 - in.p);
		char method[16] = "", target[256] = "", ctype[128] = "";
		size_t clen = 0;
		if (sscanf(in.p, "%15s %255s", method, target) != 2)
			goto out;
		for (char *l = strstr(in.p, "\r\n") + 2; l < end; l = strstr(l, "\r\n") + 2) {
			if (!strncasecmp(l, "Content-Length:", 15))
				clen = strtoul(l + 15, NULL, 10);
			else if (!strncasecmp(l, "Content-Type:", 13))
				sscanf(l + 13, " %127[^\r]", ctype);
		}
		while (in.len < hlen + clen)
			if (fake_read(f, c->fd, &in) < 0)
				goto out;
		if (fake_answer(f, c->fd, method, target, ctype, in.p + hlen, clen))
			goto out;
		buf_consume(&in, hlen + clen);
	}
out:
	buf_free(&in);
	close(c->fd);
	free(c);
	return NULL;
}

static void *fake_accept_main(void *arg)
{
	struct fake *f = arg;
	while (fake_wait(f, f->lfd, POLLIN)) {
		int fd = accept(f->lfd, NULL, NULL);
		if (fd < 0)
			continue;
		struct fake_conn *c = xmalloc(sizeof *c);
		c->f = f;
		c->fd = fd;
		pthread_mutex_lock(&f->mu);
		assert_true(f->nconns < 512);
		pthread_create(&f->conns[f->nconns++], NULL, fake_conn_main, c);
		pthread_mutex_unlock(&f->mu);
	}
	return NULL;
}

static struct fake *fake_start(void)
{
	struct fake *f = xcalloc(1, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "/tmp/berth-engine-test.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof f->path, "%s/engine.sock", f->dir);
	snprintf(f->apiver, sizeof f->apiver, "1.41");
	assert_int_equal(pipe(f->stop), 0);
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cv, NULL);
	f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", f->path);
	assert_int_equal(bind(f->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(f->lfd, 64), 0);
	pthread_create(&f->accept_th, NULL, fake_accept_main, f);
	return f;
}

static void fake_stop(struct fake *f)
{
	if (!f)
		return;
	assert_int_equal(write(f->stop[1], "x", 1), 1);
	pthread_join(f->accept_th, NULL);
	for (int i = 0; i < f->nconns; i++)
		pthread_join(f->conns[i], NULL);
	close(f->lfd);
	close(f->stop[0]);
	close(f->stop[1]);
	unlink(f->path);
	rmdir(f->dir);
	pthread_mutex_destroy(&f->mu);
	pthread_cond_destroy(&f->cv);
	free(f);
}

/* Wait (at most ms) until the fake's *counter reaches want. */
static bool fake_until(struct fake *f, const size_t *counter, size_t want, int64_t ms)
{
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += ms / 1000;
	dl.tv_nsec += (ms % 1000) * 1000000;
	if (dl.tv_nsec >= 1000000000) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&f->mu);
	while (*counter < want)
		if (pthread_cond_timedwait(&f->cv, &f->mu, &dl) == ETIMEDOUT)
			break;
	bool ok = *counter >= want;
	pthread_mutex_unlock(&f->mu);
	return ok;
}

/* ---- the client against the fake ---------------------------------------------------------------- */

static void on_deadline(uv_timer_t *t)
{
	*(bool *)t->data = true;
}

/* Not on run_until's stack: a failed assertion inside a callback leaves uv_run by longjmp,
 * and the loop must still hold a valid timer for the teardown to close. */
static uv_timer_t deadline_timer;

/* Run the loop until *flag or ms pass; true when the flag came. */
static bool run_until(uv_loop_t *loop, const bool *flag, int64_t ms)
{
	bool expired = false;
	uv_timer_init(loop, &deadline_timer);
	deadline_timer.data = &expired;
	uv_timer_start(&deadline_timer, on_deadline, (uint64_t)ms, 0);
	while (!*flag && !expired)
		uv_run(loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&deadline_timer, NULL);
	uv_run(loop, UV_RUN_NOWAIT);
	return *flag;
}

static void close_any(uv_handle_t *h, void *arg)
{
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

/* After engine_free: close what a failed case may have left, run the close callbacks. */
static void loop_finish(uv_loop_t *loop)
{
	uv_walk(loop, close_any, NULL);
	uv_run(loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(loop), 0);
}

struct fixture {
	uv_loop_t loop;
	struct fake *f;
	struct engine *en;
	char host[160];
};

static int fx_setup(void **state)
{
	struct fixture *fx = xcalloc(1, sizeof *fx);
	uv_loop_init(&fx->loop);
	fx->f = fake_start();
	snprintf(fx->host, sizeof fx->host, "unix://%s", fx->f->path);
	struct err e = ERR_INIT;
	fx->en = engine_new(&fx->loop, fx->host, &e);
	if (!fx->en)
		fail_msg("%s", e.msg);
	*state = fx;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fixture *fx = *state;
	engine_free(fx->en);
	loop_finish(&fx->loop);   /* the engine's close callback */
	fake_stop(fx->f);
	free(fx);
	return 0;
}

/* What a call delivered. */
struct result {
	bool done;
	int dones, datas;
	long status;
	char *body;
	size_t len;
	char *error;
	char errtext[256];
	struct buf data;
	bool data_after_done;
	/* checks of a patterned stream */
	size_t stream_off;
	bool stream_bad;
	struct fake *block_on;            /* first chunk: block the loop until the fake wrote this much */
	size_t block_until;
	bool got_data, unterminated;
	struct engine_req *cancel_me;     /* cancel this request from inside a callback ... */
	struct result *cancel_target;     /* ... whose results these are, unless it has ended */
	bool cancelled_other;
	struct engine **free_me;          /* engine_free from inside the first callback */
};

static void cancel_other(struct result *res)
{
	if (res->cancel_me && (!res->cancel_target || !res->cancel_target->dones)) {
		engine_cancel(res->cancel_me);
		res->cancelled_other = true;
	}
	res->cancel_me = NULL;
}

static void on_done(void *arg, const struct engine_resp *r)
{
	struct result *res = arg;
	res->dones++;
	res->done = true;
	res->status = r->status;
	res->body = xstrndup(r->body, r->len);   /* a log body holds NULs: copied by length */
	if (r->body[r->len])
		res->unterminated = true;
	res->len = r->len;
	res->error = r->error ? xstrdup(r->error) : NULL;
	engine_error_text(r, res->errtext, sizeof res->errtext);
	cancel_other(res);
	if (res->free_me) {
		engine_free(*res->free_me);
		*res->free_me = NULL;
	}
}

static void on_data(void *arg, const char *data, size_t n)
{
	struct result *res = arg;
	assert_true(n > 0);
	if (res->done)
		res->data_after_done = true;
	if (res->datas++ == 0 && res->block_on)
		assert_true(fake_until(res->block_on, &res->block_on->stream_written, res->block_until, 10000));
	if (res->stream_off || res->block_on) {
		for (size_t i = 0; i < n; i++, res->stream_off++)
			if ((unsigned char)data[i] != res->stream_off % 251)
				res->stream_bad = true;
	} else {
		buf_add(&res->data, data, n);
	}
	res->got_data = true;
	cancel_other(res);
	if (res->free_me) {
		engine_free(*res->free_me);
		*res->free_me = NULL;
	}
}

/* Frees and zeroes it, ready for the next call. */
static void result_free(struct result *r)
{
	free(r->body);
	free(r->error);
	buf_free(&r->data);
	memset(r, 0, sizeof *r);
}

static struct engine_req *call(struct engine *en, const char *method, const char *path, struct result *res)
{
	struct engine_call c = {.method = method, .path = path, .timeout_ms = 10000, .on_done = on_done, .arg = res};
	return engine_call(en, &c);
}

static void test_client_new(void **state)
{
	(void)state;
	struct err e = ERR_INIT;
	static const char *const bad[] = {"tcp://127.0.0.1:2375", "unix://relative.sock", "unix://", "unix:///",
					  "/var/run/docker.sock", "", "unix:/x"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		err_clear(&e);
		assert_null(engine_new(NULL, bad[i], &e));
		assert_int_equal(e.code, ERR_INVALID);
		assert_non_null(strstr(e.msg, "docker host"));
	}
	assert_null(engine_new(NULL, NULL, &e));
	char longp[200];
	memset(longp, 'a', sizeof longp);
	memcpy(longp, "unix:///", 8);
	longp[sizeof longp - 1] = 0;
	assert_null(engine_new(NULL, longp, &e));
	assert_non_null(strstr(e.msg, "longer than 107"));

	struct engine *en = engine_new(NULL, "unix:///nonexistent/berth/engine.sock", &e);
	assert_non_null(en);
	assert_string_equal(engine_host(en), "unix:///nonexistent/berth/engine.sock");
	assert_string_equal(engine_api_version(en), "1.41");
	struct engine_call c = {.method = "GET", .path = "/x"};
	assert_null(engine_call(en, &c));        /* no loop: sync only */
	assert_int_equal(engine_ping_sync(en, 2000, &e), -1);
	assert_string_equal(e.msg, "cannot connect to the engine at /nonexistent/berth/engine.sock: No such file or directory");
	assert_int_equal(e.code, ERR_UNAVAILABLE);
	long status = 7;
	char *out = NULL;
	assert_int_equal(engine_call_sync(en, "GET", "/info", NULL, 2000, &status, &out, NULL, &e), -1);
	assert_string_equal(e.msg, "GET /info: cannot connect to the engine at /nonexistent/berth/engine.sock: "
				   "No such file or directory");
	assert_null(out);
	engine_free(en);
	engine_free(NULL);

	/* a path that exists but is no socket */
	char dir[] = "/tmp/berth-engine-test.XXXXXX";
	assert_non_null(mkdtemp(dir));
	char host[128], file[100];
	snprintf(file, sizeof file, "%s/plain", dir);
	FILE *fp = fopen(file, "w");
	fclose(fp);
	snprintf(host, sizeof host, "unix://%s", file);
	en = engine_new(NULL, host, &e);
	assert_int_equal(engine_ping_sync(en, 2000, &e), -1);
	assert_non_null(strstr(e.msg, "cannot connect to the engine at "));
	assert_non_null(strstr(e.msg, "Connection refused"));
	engine_free(en);
	unlink(file);
	rmdir(dir);
}

static void test_client_ping(void **state)
{
	struct fixture *fx = *state;
	struct err e = ERR_INIT;
	struct { const char *server; const char *use; } cases[] = {
		{"1.41", "1.41"}, {"1.43", "1.41"}, {"1.40", "1.40"}, {"1.24", "1.24"}, {"", "1.41"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		fake_set(fx->f, cases[i].server, PING_OK);
		if (engine_ping_sync(fx->en, 5000, &e))
			fail_msg("%s: %s", cases[i].server, e.msg);
		assert_string_equal(engine_api_version(fx->en), cases[i].use);
		/* later calls carry the prefix */
		long status = 0;
		char *out = NULL;
		size_t len = 0;
		assert_int_equal(engine_call_sync(fx->en, "GET", "/json/abc", NULL, 5000, &status, &out, &len, &e), 0);
		assert_int_equal(status, 200);
		char want[128];
		snprintf(want, sizeof want, "{\"Id\":\"abc\",\"Target\":\"/v%s/json/abc\"}", cases[i].use);
		assert_string_equal(out, want);
		assert_int_equal(len, strlen(want));
		free(out);
	}
	fake_set(fx->f, "1.12", PING_OK);
	assert_int_equal(engine_ping_sync(fx->en, 5000, &e), -1);
	assert_non_null(strstr(e.msg, "speaks API 1.12; berth needs 1.24 or newer"));
	fake_set(fx->f, "two", PING_OK);
	assert_int_equal(engine_ping_sync(fx->en, 5000, &e), -1);
	assert_non_null(strstr(e.msg, "malformed API version 'two'"));
	fake_set(fx->f, "1.41", PING_OK);

	fake_set(fx->f, NULL, PING_404);
	assert_int_equal(engine_ping_sync(fx->en, 5000, &e), -1);
	assert_non_null(strstr(e.msg, "does not look like a Docker Engine API socket: GET /_ping answered 404 "
				      "'404 page not found?', not 200 'OK'"));
	fake_set(fx->f, NULL, PING_NOT_OK);
	assert_int_equal(engine_ping_sync(fx->en, 5000, &e), -1);
	assert_non_null(strstr(e.msg, "answered 200 '<html>hello</html>'"));
	fake_set(fx->f, NULL, PING_GARBAGE);
	assert_int_equal(engine_ping_sync(fx->en, 5000, &e), -1);
	if (!strstr(e.msg, "answered something that is not HTTP"))
		fail_msg("%s", e.msg);
	fake_set(fx->f, NULL, PING_HANG);
	assert_int_equal(engine_ping_sync(fx->en, 300, &e), -1);
	char want[256];
	snprintf(want, sizeof want, "the engine at %s did not answer /_ping: timed out after 300 ms", fx->f->path);
	assert_string_equal(e.msg, want);
	fake_set(fx->f, NULL, PING_OK);
}

static void test_client_calls(void **state)
{
	struct fixture *fx = *state;
	struct result a = {0}, b = {0}, c = {0}, d = {0}, n = {0};
	call(fx->en, "GET", "/json/a%20b", &a);
	call(fx->en, "GET", "/err404", &b);
	call(fx->en, "GET", "/empty500", &c);
	call(fx->en, "DELETE", "/nocontent", &d);
	call(fx->en, "GET", "/nowhere", &n);
	assert_false(a.done);    /* never inside engine_call */
	uv_run(&fx->loop, UV_RUN_DEFAULT);   /* returns once nothing is in flight */
	assert_int_equal(a.dones + b.dones + c.dones + d.dones + n.dones, 5);
	assert_int_equal(a.status, 200);
	assert_false(a.unterminated || b.unterminated || c.unterminated || d.unterminated);
	assert_string_equal(a.body, "{\"Id\":\"a%20b\",\"Target\":\"/v1.41/json/a%20b\"}");
	assert_null(a.error);
	assert_int_equal(b.status, 404);
	assert_string_equal(b.errtext, "404: no container with name or ID \"x\" found: no such container");
	assert_int_equal(c.status, 500);
	assert_string_equal(c.errtext, "500: Internal Server Error");
	assert_int_equal(d.status, 204);
	assert_string_equal(d.body, "");
	assert_string_equal(n.errtext, "404: no route");
	result_free(&a);
	result_free(&b);
	result_free(&c);
	result_free(&d);
	result_free(&n);

	/* a streamed call that fails: the error answer is kept for on_done, not streamed */
	struct result st = {0};
	struct engine_call sc = {.method = "GET", .path = "/err404", .on_data = on_data, .on_done = on_done, .arg = &st};
	engine_call(fx->en, &sc);
	uv_run(&fx->loop, UV_RUN_DEFAULT);
	assert_int_equal(st.datas, 0);
	assert_int_equal(st.status, 404);
	assert_string_equal(st.errtext, "404: no container with name or ID \"x\" found: no such container");
	result_free(&st);

	/* many at once: each ends exactly once */
	enum { N = 64 };
	struct result many[N];
	memset(many, 0, sizeof many);
	for (int i = 0; i < N; i++) {
		char path[32];
		snprintf(path, sizeof path, "/json/%d", i);
		assert_non_null(call(fx->en, "GET", path, &many[i]));
	}
	uv_run(&fx->loop, UV_RUN_DEFAULT);
	for (int i = 0; i < N; i++) {
		assert_int_equal(many[i].dones, 1);
		char want[64];
		snprintf(want, sizeof want, "{\"Id\":\"%d\",\"Target\":\"/v1.41/json/%d\"}", i, i);
		assert_string_equal(many[i].body, want);
		result_free(&many[i]);
	}
}

static void test_client_bodies(void **state)
{
	struct fixture *fx = *state;
	/* the body is copied: the caller's buffer may change at once */
	char body[] = "{\"Image\":\"busybox\"}";
	struct result a = {0}, b = {0}, c = {0}, d = {0};
	struct engine_call ca = {.method = "POST", .path = "/echo", .body = body, .body_len = strlen(body),
				 .on_done = on_done, .arg = &a};
	engine_call(fx->en, &ca);
	char want_a[128];
	snprintf(want_a, sizeof want_a, "POST ctype=application/json len=%zu sum=%08x", strlen(body),
		 fnv(body, strlen(body)));
	memset(body, 'X', strlen(body));
	/* a POST without a body has no form content type; extra headers; a content type of its own */
	struct engine_call cb = {.method = "POST", .path = "/echo", .on_done = on_done, .arg = &b};
	engine_call(fx->en, &cb);
	const char *hdrs[] = {"X-Registry-Auth: e30=", NULL};
	struct engine_call cc = {.method = "PUT", .path = "/echo", .body = "abc", .body_len = 3,
				 .content_type = "application/x-tar", .headers = hdrs, .on_done = on_done, .arg = &c};
	engine_call(fx->en, &cc);
	/* a body file of 3 MiB, streamed */
	char dir[] = "/tmp/berth-engine-test.XXXXXX";
	assert_non_null(mkdtemp(dir));
	char file[128];
	snprintf(file, sizeof file, "%s/context.tar", dir);
	size_t fsize = 3u << 20;
	char *content = xmalloc(fsize);
	for (size_t i = 0; i < fsize; i++)
		content[i] = (char)(i * 7 + (i >> 12));
	FILE *fp = fopen(file, "wb");
	assert_int_equal(fwrite(content, 1, fsize, fp), fsize);
	fclose(fp);
	struct engine_call cd = {.method = "POST", .path = "/echo", .body_file = file, .on_done = on_done, .arg = &d};
	engine_call(fx->en, &cd);
	uv_run(&fx->loop, UV_RUN_DEFAULT);
	assert_string_equal(a.body, want_a);
	assert_string_equal(b.body, "POST ctype= len=0 sum=811c9dc5");
	assert_string_equal(c.body, "PUT ctype=application/x-tar len=3 sum=1a47e90b");
	char want_d[128];
	snprintf(want_d, sizeof want_d, "POST ctype=application/x-tar len=%zu sum=%08x", fsize, fnv(content, fsize));
	assert_string_equal(d.body, want_d);
	result_free(&a);
	result_free(&b);
	result_free(&c);
	result_free(&d);
	free(content);
	/* a body file that is missing, or not a file */
	struct result m = {0}, dd = {0};
	char missing[160];
	snprintf(missing, sizeof missing, "%s/missing.tar", dir);
	cd.body_file = missing;
	cd.arg = &m;
	engine_call(fx->en, &cd);
	cd.body_file = dir;
	cd.arg = &dd;
	engine_call(fx->en, &cd);
	uv_run(&fx->loop, UV_RUN_DEFAULT);
	assert_int_equal(m.status, 0);
	char want[256];
	snprintf(want, sizeof want, "cannot read the request body %s: No such file or directory", missing);
	assert_string_equal(m.error, want);
	assert_string_equal(m.errtext, want);
	snprintf(want, sizeof want, "cannot read the request body %s: not a regular file", dir);
	assert_string_equal(dd.error, want);
	result_free(&m);
	result_free(&dd);
	unlink(file);
	rmdir(dir);
}

static void test_client_limits(void **state)
{
	struct fixture *fx = *state;
	struct result big = {0}, exact = {0}, slow = {0}, drop = {0};
	struct engine_call cb = {.method = "GET", .path = "/big", .timeout_ms = 120000, .on_done = on_done, .arg = &big};
	engine_call(fx->en, &cb);
	cb.path = "/exact";
	cb.arg = &exact;
	engine_call(fx->en, &cb);
	struct engine_call c = {.method = "GET", .path = "/silent", .timeout_ms = 200, .on_done = on_done, .arg = &slow};
	engine_call(fx->en, &c);
	call(fx->en, "GET", "/drop", &drop);
	uv_run(&fx->loop, UV_RUN_DEFAULT);
	assert_int_equal(big.status, 0);
	assert_string_equal(big.error, "the engine's answer is larger than 16 MiB");
	assert_int_equal(exact.status, 200);
	assert_int_equal(exact.len, ENGINE_BODY_MAX);
	assert_int_equal(slow.status, 0);
	assert_string_equal(slow.error, "timed out after 200 ms");
	assert_string_equal(slow.errtext, "timed out after 200 ms");
	char want[256];
	snprintf(want, sizeof want, "the engine at %s closed the connection without an answer", fx->f->path);
	assert_string_equal(drop.error, want);
	result_free(&big);
	result_free(&exact);
	result_free(&slow);
	result_free(&drop);
	/* the silent request's connection was closed by the client */
	assert_true(fake_until(fx->f, &fx->f->hangs_closed, 1, 10000));
}

static void test_client_stream(void **state)
{
	struct fixture *fx = *state;
	/* 8 MiB while the loop stalls in the first chunk until the fake wrote 1 MiB: the engine
	 * thread queues, pauses the transfer, resumes it; every byte arrives once, in order */
	struct result s = {0};
	s.block_on = fx->f;
	s.block_until = 1u << 20;
	struct engine_call c = {.method = "GET", .path = "/stream?size=8388608", .on_data = on_data,
				.on_done = on_done, .arg = &s};
	engine_call(fx->en, &c);
	assert_true(run_until(&fx->loop, &s.done, 30000));
	assert_int_equal(s.dones, 1);
	assert_int_equal(s.status, 200);
	assert_string_equal(s.body, "");      /* streamed: nothing buffered */
	assert_int_equal(s.stream_off, 8u << 20);
	assert_false(s.stream_bad);
	assert_false(s.data_after_done);
	result_free(&s);
}

static void test_client_cancel(void **state)
{
	struct fixture *fx = *state;
	struct fake *f = fx->f;
	/* from outside, once the stream has started: the client closes the connection */
	struct result h = {0};
	struct engine_call c = {.method = "GET", .path = "/hang", .on_data = on_data, .on_done = on_done, .arg = &h};
	struct engine_req *r = engine_call(fx->en, &c);
	assert_true(run_until(&fx->loop, &h.got_data, 10000));
	assert_string_equal(buf_str(&h.data), "hello\n");
	engine_cancel(r);
	assert_true(fake_until(f, &f->hangs_closed, 1, 10000));
	/* from inside its own on_data */
	struct result h2 = {0};
	c.arg = &h2;
	h2.cancel_me = engine_call(fx->en, &c);
	assert_true(run_until(&fx->loop, &h2.got_data, 10000));
	assert_true(h2.cancelled_other);
	assert_true(fake_until(f, &f->hangs_closed, 2, 10000));
	/* before the engine thread saw it */
	struct result never = {0};
	engine_cancel(call(fx->en, "GET", "/json/never", &never));
	/* from another call's on_done, while its own end may be queued already or not */
	enum { PAIRS = 32 };
	struct result first[PAIRS], second[PAIRS];
	memset(first, 0, sizeof first);
	memset(second, 0, sizeof second);
	for (int i = 0; i < PAIRS; i++) {
		call(fx->en, "GET", "/json/1", &first[i]);
		first[i].cancel_me = call(fx->en, "GET", "/json/2", &second[i]);
		first[i].cancel_target = &second[i];
	}
	uv_run(&fx->loop, UV_RUN_DEFAULT);   /* until nothing is in flight */
	assert_int_equal(h.dones + h2.dones + never.dones, 0);
	assert_int_equal(h.datas, 1);
	assert_int_equal(h2.datas, 1);
	int cancelled = 0;
	for (int i = 0; i < PAIRS; i++) {
		assert_int_equal(first[i].dones, 1);
		/* cancelled: it never ends; else it had ended before */
		assert_int_equal(second[i].dones, first[i].cancelled_other ? 0 : 1);
		cancelled += first[i].cancelled_other;
		result_free(&first[i]);
		result_free(&second[i]);
	}
	print_message("      %d of %d cancelled from another call's on_done\n", cancelled, PAIRS);
	result_free(&h);
	result_free(&h2);
	result_free(&never);
}

static void test_client_free_in_flight(void **state)
{
	struct fixture *fx = *state;
	struct fake *f = fx->f;
	/* engine_free with a stream running and calls queued: no callback, nothing leaked */
	struct result h = {0}, q[8];
	memset(q, 0, sizeof q);
	struct engine_call c = {.method = "GET", .path = "/hang", .on_data = on_data, .on_done = on_done, .arg = &h};
	engine_call(fx->en, &c);
	assert_true(run_until(&fx->loop, &h.got_data, 10000));
	for (int i = 0; i < 8; i++)
		call(fx->en, "GET", "/json/q", &q[i]);
	engine_free(fx->en);
	fx->en = NULL;
	uv_run(&fx->loop, UV_RUN_DEFAULT);
	assert_int_equal(h.dones, 0);
	assert_int_equal(h.datas, 1);
	for (int i = 0; i < 8; i++) {
		assert_int_equal(q[i].dones, 0);
		result_free(&q[i]);
	}
	assert_true(fake_until(f, &f->hangs_closed, 1, 10000));
	result_free(&h);

	/* engine_free from inside a stream's on_data, with another call in flight */
	struct err e = ERR_INIT;
	fx->en = engine_new(&fx->loop, fx->host, &e);
	struct result h2 = {0}, other = {0};
	c.arg = &h2;
	engine_call(fx->en, &c);
	struct engine_call co = {.method = "GET", .path = "/silent", .on_done = on_done, .arg = &other};
	engine_call(fx->en, &co);
	h2.free_me = &fx->en;
	uv_run(&fx->loop, UV_RUN_DEFAULT);
	assert_null(fx->en);
	assert_int_equal(h2.datas, 1);
	assert_int_equal(h2.dones + other.dones, 0);
	assert_true(fake_until(f, &f->hangs_closed, 3, 10000));
	result_free(&h2);
	result_free(&other);

	/* ... and from inside an on_done */
	fx->en = engine_new(&fx->loop, fx->host, &e);
	struct result a = {0}, b = {0};
	a.free_me = &fx->en;
	call(fx->en, "GET", "/json/a", &a);
	call(fx->en, "GET", "/silent", &b);
	uv_run(&fx->loop, UV_RUN_DEFAULT);
	assert_null(fx->en);
	assert_int_equal(a.dones, 1);
	assert_int_equal(b.dones, 0);
	result_free(&a);
	result_free(&b);
}

static void test_error_text(void **state)
{
	(void)state;
	char buf[128];
	struct engine_resp r = {404, "{\"message\":\"No such image: x\"}", 30, NULL};
	assert_string_equal(engine_error_text(&r, buf, sizeof buf), "404: No such image: x");
	r = (struct engine_resp){0, "", 0, "timed out after 30000 ms"};
	assert_string_equal(engine_error_text(&r, buf, sizeof buf), "timed out after 30000 ms");
	r = (struct engine_resp){409, "{\"message\":\"  line one\\nline\\u0007two\\n\"}", 41, NULL};
	assert_string_equal(engine_error_text(&r, buf, sizeof buf), "409: line one line?two");
	r = (struct engine_resp){500, "{\"message\":42}", 14, NULL};
	assert_string_equal(engine_error_text(&r, buf, sizeof buf), "500: Internal Server Error");
	r = (struct engine_resp){500, "{\"message\":\"trunc", 17, NULL};
	assert_string_equal(engine_error_text(&r, buf, sizeof buf), "500: Internal Server Error");
	r = (struct engine_resp){502, "bad gateway text\n", 17, NULL};
	assert_string_equal(engine_error_text(&r, buf, sizeof buf), "502: bad gateway text");
	r = (struct engine_resp){418, "two\nlines\n", 10, NULL};
	assert_string_equal(engine_error_text(&r, buf, sizeof buf), "HTTP 418");
	r = (struct engine_resp){0, "", 0, NULL};
	assert_string_equal(engine_error_text(&r, buf, sizeof buf), "no answer from the engine");
	r = (struct engine_resp){404, "{\"message\":\"a long message that does not fit\"}", 46, NULL};
	assert_string_equal(engine_error_text(&r, buf, 12), "404: a long");
	assert_string_equal(engine_error_text(&r, buf, 1), "");
}

/* ---- a real engine (podman), when BERTH_TEST_ENGINE names one -------------------------------------- */

struct real {
	uv_loop_t loop;
	struct engine *en;
	char id[80];
	char name[64];
};

static int real_setup(void **state)
{
	const char *host = getenv("BERTH_TEST_ENGINE");
	if (!host || !*host) {
		*state = NULL;
		return 0;
	}
	struct real *rl = xcalloc(1, sizeof *rl);
	uv_loop_init(&rl->loop);
	struct err e = ERR_INIT;
	rl->en = engine_new(&rl->loop, host, &e);
	if (!rl->en) {
		fprintf(stderr, "BERTH_TEST_ENGINE: %s\n", e.msg);
		return -1;
	}
	snprintf(rl->name, sizeof rl->name, "berth-unit-%d", (int)getpid());
	*state = rl;
	return 0;
}

static int real_teardown(void **state)
{
	struct real *rl = *state;
	if (!rl)
		return 0;
	if (rl->id[0]) {   /* a failed case left it: remove it */
		char path[160];
		snprintf(path, sizeof path, "/containers/%s?force=1", rl->id);
		struct err e = ERR_INIT;
		engine_call_sync(rl->en, "DELETE", path, NULL, 30000, NULL, NULL, NULL, &e);
	}
	engine_free(rl->en);
	loop_finish(&rl->loop);
	free(rl);
	return 0;
}

/* An async call to the real engine, run to its end. */
static void real_call(struct real *rl, const char *method, const char *path, const char *body, struct result *res)
{
	struct engine_call c = {.method = method, .path = path, .body = body, .body_len = body ? strlen(body) : 0,
				.timeout_ms = 60000, .on_done = on_done, .arg = res};
	assert_non_null(engine_call(rl->en, &c));
	if (!run_until(&rl->loop, &res->done, 70000))
		fail_msg("%s %s: no answer in 70 s", method, path);
	if (res->error)
		fail_msg("%s %s: %s", method, path, res->error);
}

static void real_inspect(struct real *rl, struct engine_container *ct)
{
	char path[160];
	snprintf(path, sizeof path, "/containers/%s/json", rl->id);
	struct result r = {0};
	real_call(rl, "GET", path, NULL, &r);
	assert_int_equal(r.status, 200);
	struct err e = ERR_INIT;
	if (engine_parse_container(r.body, r.len, ct, &e))
		fail_msg("%s", e.msg);
	result_free(&r);
}

/* The follow stream: demuxed lines, counted. */
struct follow {
	struct engine_demux d;
	struct buf text;
	int ticks, starts;
	int64_t last_ts;
	bool ts_backwards, cancelled, after_cancel, enough;
	char ended[256];              /* the stream ended: how */
};

static void on_follow_line(void *arg, int stream, int64_t ts, const char *line, size_t n)
{
	struct follow *fo = arg;
	if (fo->cancelled)
		fo->after_cancel = true;
	if (ts <= 0 || ts < fo->last_ts)
		fo->ts_backwards = true;
	fo->last_ts = ts;
	if (memmem(line, n, " tick ", 6))
		fo->ticks++;
	if (n >= 6 && !memcmp(line, "start ", 6))
		fo->starts++;
	if (fo->text.len < 4096)
		buf_addf(&fo->text, "%d %lld %.*s\n", stream, (long long)ts, (int)n, line);
	if (fo->ticks >= 5)
		fo->enough = true;
}

static void on_follow_data(void *arg, const char *data, size_t n)
{
	struct follow *fo = arg;
	if (fo->cancelled)
		fo->after_cancel = true;
	engine_demux_feed(&fo->d, data, n);
}

static void on_follow_done(void *arg, const struct engine_resp *r)
{
	struct follow *fo = arg;
	snprintf(fo->ended, sizeof fo->ended, "the follow stream ended (status %ld, %s)", r->status,
		 r->error ? r->error : "no error");
	fo->enough = true;
}

static void test_real_engine(void **state)
{
	struct real *rl = *state;
	if (!rl) {
		fprintf(stderr, "      (no BERTH_TEST_ENGINE: the podman-backed case is skipped)\n");
		skip();
	}
	struct err e = ERR_INIT;
	if (engine_ping_sync(rl->en, 10000, &e))
		fail_msg("%s", e.msg);
	assert_string_equal(engine_api_version(rl->en), "1.41");   /* podman 4.3 says 1.41 */
	const char *image = getenv("BERTH_TEST_IMAGE");
	if (!image || !*image) {
		fprintf(stderr, "      (no BERTH_TEST_IMAGE: only the ping was checked)\n");
		skip();
	}

	/* the image */
	char path[512];
	snprintf(path, sizeof path, "/images/%s/json", image);
	struct result ri = {0};
	real_call(rl, "GET", path, NULL, &ri);
	assert_int_equal(ri.status, 200);
	struct engine_image im;
	if (engine_parse_image(ri.body, ri.len, &im, &e))
		fail_msg("%s", e.msg);
	assert_memory_equal(im.id, "sha256:", 7);
	assert_true(json_is_object(im.config));
	result_free(&ri);

	/* create (blocking), then everything else through the loop */
	json_t *spec = json_pack("{s:s, s:[s], s:{s:s}, s:{s:s}}", "Image", image, "Env", "PORT=18080", "Labels",
				 "io.berth.test", rl->name, "HostConfig", "NetworkMode", "none");
	char *body = json_dumps(spec, JSON_COMPACT);
	json_decref(spec);
	snprintf(path, sizeof path, "/containers/create?name=%s", rl->name);
	long status = 0;
	char *out = NULL;
	size_t len = 0;
	if (engine_call_sync(rl->en, "POST", path, body, 60000, &status, &out, &len, &e))
		fail_msg("%s", e.msg);
	free(body);
	if (status != 201)
		fail_msg("create: %ld %s", status, out);
	json_t *created = json_loadb(out, len, 0, NULL);
	snprintf(rl->id, sizeof rl->id, "%s", json_string_value(json_object_get(created, "Id")));
	json_decref(created);
	free(out);
	assert_int_equal(strlen(rl->id), 64);

	struct result r = {0};
	snprintf(path, sizeof path, "/containers/%s/start", rl->id);
	real_call(rl, "POST", path, NULL, &r);
	assert_int_equal(r.status, 204);
	result_free(&r);

	struct engine_container ct;
	real_inspect(rl, &ct);
	assert_string_equal(ct.id, rl->id);
	assert_string_equal(ct.name, rl->name);
	assert_string_equal(ct.image, im.id);
	assert_string_equal(ct.status, "running");
	assert_true(ct.running);
	assert_true(ct.pid > 0);
	assert_true(ct.started_us > 0);
	assert_true(ct.finished_us == 0);
	assert_string_equal(json_string_value(json_object_get(ct.labels, "io.berth.test")), rl->name);
	int64_t started = ct.started_us;
	engine_container_free(&ct);
	engine_image_free(&im);

	/* the list names it */
	struct result rlst = {0};
	snprintf(path, sizeof path, "/containers/json?all=1");
	real_call(rl, "GET", path, NULL, &rlst);
	json_t *list = engine_parse_container_list(rlst.body, rlst.len, &e);
	assert_non_null(list);
	bool listed = false;
	size_t i;
	json_t *it;
	json_array_foreach(list, i, it) {
		if (!strcmp(json_string_value(json_object_get(it, "id")), rl->id)) {
			listed = true;
			assert_string_equal(json_string_value(json_object_get(it, "state")), "running");
		}
	}
	assert_true(listed);
	json_decref(list);
	result_free(&rlst);

	/* a stream of a container that is not there: the engine's message, not a stream */
	struct result nr = {0};
	struct engine_call nc = {.method = "GET", .path = "/containers/berth-unit-no-such-container/logs?stdout=1&follow=1",
				 .on_data = on_data, .on_done = on_done, .arg = &nr};
	engine_call(rl->en, &nc);
	assert_true(run_until(&rl->loop, &nr.done, 30000));
	assert_int_equal(nr.datas, 0);
	assert_int_equal(nr.status, 404);
	if (!strstr(nr.errtext, "no such container"))
		fail_msg("%s", nr.errtext);
	result_free(&nr);

	/* follow the logs with timestamps, streamed, until five ticks came; then cancel */
	struct follow fo = {0};
	engine_demux_init(&fo.d, false, true, on_follow_line, &fo);
	snprintf(path, sizeof path, "/containers/%s/logs?stdout=1&stderr=1&timestamps=1&follow=1", rl->id);
	struct engine_call fc = {.method = "GET", .path = path, .on_data = on_follow_data, .on_done = on_follow_done,
				 .arg = &fo};
	struct engine_req *freq = engine_call(rl->en, &fc);
	if (!run_until(&rl->loop, &fo.enough, 30000) || fo.ended[0])
		fail_msg("no five tick lines in 30 s (%s); got:\n%s", fo.ended, buf_str(&fo.text));
	engine_cancel(freq);
	fo.cancelled = true;
	assert_int_equal(fo.starts, 1);
	assert_false(fo.d.bad);
	assert_false(fo.ts_backwards);
	assert_true(fo.last_ts >= started - 1000000);   /* whole seconds: the start's second */

	/* stop: the image's shell traps TERM and exits 0 */
	snprintf(path, sizeof path, "/containers/%s/stop?t=10", rl->id);
	real_call(rl, "POST", path, NULL, &r);
	assert_int_equal(r.status, 204);
	result_free(&r);
	assert_false(fo.after_cancel);
	engine_demux_finish(&fo.d);
	buf_free(&fo.text);

	real_inspect(rl, &ct);
	if (ct.running || strcmp(ct.status, "exited"))
		fail_msg("after stop: status %s, running %d, pid %d", ct.status, ct.running, ct.pid);
	assert_int_equal(ct.exit_code, 0);
	assert_true(ct.finished_us >= ct.started_us);
	engine_container_free(&ct);

	/* the whole log, buffered, demuxed: the same lines as followed */
	snprintf(path, sizeof path, "/containers/%s/logs?stdout=1&stderr=1&timestamps=1", rl->id);
	real_call(rl, "GET", path, NULL, &r);
	assert_int_equal(r.status, 200);
	struct follow all = {0};
	engine_demux_init(&all.d, false, true, on_follow_line, &all);
	engine_demux_feed(&all.d, r.body, r.len);
	engine_demux_finish(&all.d);
	assert_int_equal(all.starts, 1);
	assert_true(all.ticks >= 5);
	assert_false(all.ts_backwards);
	buf_free(&all.text);
	result_free(&r);

	snprintf(path, sizeof path, "/containers/%s?force=1", rl->id);
	real_call(rl, "DELETE", path, NULL, &r);
	assert_true(r.status == 204 || r.status == 200);
	result_free(&r);
	snprintf(path, sizeof path, "/containers/%s/json", rl->id);
	real_call(rl, "GET", path, NULL, &r);
	assert_int_equal(r.status, 404);
	assert_non_null(strstr(r.errtext, "404: "));
	assert_non_null(strstr(r.errtext, "no such container"));
	result_free(&r);
	rl->id[0] = 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_time),
		cmocka_unit_test(test_demux_frames),
		cmocka_unit_test(test_demux_tty),
		cmocka_unit_test(test_demux_long_lines),
		cmocka_unit_test(test_demux_bad_headers),
		cmocka_unit_test(test_jstream_build),
		cmocka_unit_test(test_jstream_errors),
		cmocka_unit_test(test_jstream_progress),
		cmocka_unit_test(test_parse_container),
		cmocka_unit_test(test_parse_image),
		cmocka_unit_test(test_parse_container_list),
		cmocka_unit_test(test_error_text),
		cmocka_unit_test(test_client_new),
		cmocka_unit_test_setup_teardown(test_client_ping, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_client_calls, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_client_bodies, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_client_limits, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_client_stream, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_client_cancel, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_client_free_in_flight, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_real_engine, real_setup, real_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
