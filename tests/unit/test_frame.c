/* test_frame: the berth-attach/1 codec (src/util/frame.c): the bytes frame_put writes, a
 * stream read back whole, cut in two at every byte, and byte by byte (the same frames every
 * time), empty frames, a payload of exactly 1 MiB read in pieces with one frame's memory,
 * and every refusal: an oversized length, an unknown type, a RESIZE/SIGNAL/STDIN_EOF of the
 * wrong size, and a reader that keeps refusing after its first refusal. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "util/buf.h"
#include "util/frame.h"

/* Every frame the reader delivered, as text: "TYPE n hash\n". */
struct story {
	struct buf text;
	int stop_after;   /* stop (return 7) after this many frames; 0 = never */
	int frames;
};

static uint32_t fnv(const void *d, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ ((const unsigned char *)d)[i]) * 16777619u;
	return h;
}

static int on_frame(int type, const void *p, size_t n, void *ud)
{
	struct story *s = ud;
	assert_non_null(p);
	buf_addf(&s->text, "%s %zu %08x\n", frame_type_name(type), n, fnv(p, n));
	s->frames++;
	return s->stop_after && s->frames == s->stop_after ? 7 : 0;
}

/* Feed in pieces of `piece` bytes (0: whole), or cut once at `cut` when piece < 0. Returns
 * the story text (owned) and the last feed's result in *rc. */
static char *read_stream(const void *in, size_t n, long piece, size_t cut, int *rc, struct err *e)
{
	struct frame_reader r;
	struct story s = {BUF_INIT, 0, 0};
	frame_reader_init(&r);
	*rc = 0;
	const char *c = in;
	if (piece < 0) {
		*rc = frame_reader_feed(&r, c, cut, on_frame, &s, e);
		if (!*rc)
			*rc = frame_reader_feed(&r, c + cut, n - cut, on_frame, &s, e);
	} else {
		size_t step = piece ? (size_t)piece : n;
		for (size_t off = 0; off < n && !*rc; off += step) {
			size_t k = n - off < step ? n - off : step;
			*rc = frame_reader_feed(&r, c + off, k, on_frame, &s, e);
		}
	}
	if (!*rc && !frame_reader_idle(&r))
		buf_adds(&s.text, "PARTIAL\n");
	frame_reader_free(&r);
	buf_adds(&s.text, "");
	return buf_detach(&s.text);
}

static void test_put_bytes(void **state)
{
	(void)state;
	struct buf b = BUF_INIT;
	frame_put(&b, FRAME_STDOUT, "hi", 2);
	frame_put(&b, FRAME_STDIN_EOF, NULL, 0);
	frame_put_resize(&b, 40, 120);
	frame_put_signal(&b, 2);
	frame_put_resize(&b, 70000, 1);   /* clamped to 16 bits */
	static const unsigned char want[] = {
		1, 0, 0, 0, 2, 'h', 'i',
		5, 0, 0, 0, 0,
		6, 0, 0, 0, 4, 0, 40, 0, 120,
		7, 0, 0, 0, 1, 2,
		6, 0, 0, 0, 4, 0xff, 0xff, 0, 1,
	};
	assert_int_equal(b.len, sizeof want);
	assert_memory_equal(b.p, want, sizeof want);
	unsigned rows, cols;
	frame_get_resize(want + 17, &rows, &cols);
	assert_int_equal(rows, 40);
	assert_int_equal(cols, 120);
	assert_string_equal(frame_type_name(FRAME_EXIT), "EXIT");
	assert_string_equal(frame_type_name(8), "unknown");
	assert_string_equal(frame_type_name(-1), "unknown");
	buf_free(&b);
}

/* A stream with every type, empty frames first, last and in between. */
static void sample(struct buf *b)
{
	frame_put(b, FRAME_INFO, "", 0);
	frame_put(b, FRAME_INFO, "{\"message\":\"starting run.1\"}", 29);
	frame_put(b, FRAME_STDOUT, "hello\n", 6);
	frame_put(b, FRAME_STDOUT, NULL, 0);
	frame_put(b, FRAME_STDERR, "oops\n", 5);
	frame_put(b, FRAME_STDIN, "\x00\x01\x02\xff", 4);
	frame_put(b, FRAME_STDIN_EOF, NULL, 0);
	frame_put_resize(b, 24, 80);
	frame_put_signal(b, 15);
	char big[3000];
	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (char)(i * 7);
	frame_put(b, FRAME_STDOUT, big, sizeof big);
	frame_put(b, FRAME_EXIT, "{\"status\":7}", 12);
	frame_put(b, FRAME_STDOUT, NULL, 0);
}

static void test_split_everywhere(void **state)
{
	(void)state;
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	int rc;
	sample(&b);
	char *whole = read_stream(b.p, b.len, 0, 0, &rc, &e);
	assert_int_equal(rc, 0);
	assert_int_equal(strncmp(whole, "INFO 0 811c9dc5\nINFO 29 ", 24), 0);
	assert_non_null(strstr(whole, "\nSTDOUT 6 "));
	assert_non_null(strstr(whole, "\nSTDIN_EOF 0 811c9dc5\nRESIZE 4 "));
	assert_non_null(strstr(whole, "\nSTDOUT 3000 "));
	assert_non_null(strstr(whole, "\nEXIT 12 "));
	const char *tail = "\nEXIT 12 ";
	assert_string_equal(strstr(strstr(whole, tail) + 1, "\n"), "\nSTDOUT 0 811c9dc5\n");
	for (size_t cut = 0; cut <= b.len; cut++) {
		char *two = read_stream(b.p, b.len, -1, cut, &rc, &e);
		assert_int_equal(rc, 0);
		if (strcmp(whole, two))
			fail_msg("cut at %zu:\n%s\nvs whole:\n%s", cut, two, whole);
		free(two);
	}
	for (long piece = 1; piece <= 13; piece++) {
		char *bytes = read_stream(b.p, b.len, piece, 0, &rc, &e);
		assert_int_equal(rc, 0);
		assert_string_equal(bytes, whole);
		free(bytes);
	}
	/* a stream that ends inside a frame says so */
	for (size_t end = 1; end < 7; end++) {
		char *part = read_stream(b.p, end, 0, 0, &rc, &e);
		assert_string_equal(part, end < 5 ? "PARTIAL\n" : end == 5 ? "INFO 0 811c9dc5\n"
								 : "INFO 0 811c9dc5\nPARTIAL\n");
		free(part);
	}
	free(whole);
	buf_free(&b);
}

static void test_stop(void **state)
{
	(void)state;
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	sample(&b);
	struct frame_reader r;
	struct story s = {BUF_INIT, 3, 0};
	frame_reader_init(&r);
	assert_int_equal(frame_reader_feed(&r, b.p, b.len, on_frame, &s, &e), 7);
	assert_int_equal(s.frames, 3);
	assert_true(frame_reader_idle(&r));
	frame_reader_free(&r);
	buf_free(&s.text);
	buf_free(&b);
}

static void test_max_size(void **state)
{
	(void)state;
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	char *big = malloc(FRAME_MAX_PAYLOAD);
	for (size_t i = 0; i < FRAME_MAX_PAYLOAD; i++)
		big[i] = (char)(i ^ (i >> 9));
	frame_put(&b, FRAME_STDERR, big, FRAME_MAX_PAYLOAD);
	frame_put(&b, FRAME_EXIT, "{\"signal\":9}", 12);
	struct frame_reader r;
	struct story s = {BUF_INIT, 0, 0};
	frame_reader_init(&r);
	/* in 64 KiB pieces with an odd start: the payload is gathered, in one frame's memory */
	size_t off = 0;
	for (size_t k = 3; off < b.len; k = 65536) {
		k = b.len - off < k ? b.len - off : k;
		assert_int_equal(frame_reader_feed(&r, b.p + off, k, on_frame, &s, &e), 0);
		assert_true(r.payload.cap <= FRAME_MAX_PAYLOAD + 1);
		off += k;
	}
	char want[64];
	snprintf(want, sizeof want, "STDERR %u %08x\n", FRAME_MAX_PAYLOAD, fnv(big, FRAME_MAX_PAYLOAD));
	assert_int_equal(strncmp(s.text.p, want, strlen(want)), 0);
	assert_int_equal(s.frames, 2);
	frame_reader_free(&r);
	buf_free(&s.text);
	buf_free(&b);
	free(big);
}

/* Feed the bytes one at a time; the reader must refuse at byte `at` (1-based) with msg. */
static void refused(const unsigned char *in, size_t n, size_t at, const char *msg)
{
	struct frame_reader r;
	struct story s = {BUF_INIT, 0, 0};
	struct err e = ERR_INIT;
	frame_reader_init(&r);
	for (size_t i = 0; i < n; i++) {
		int rc = frame_reader_feed(&r, in + i, 1, on_frame, &s, &e);
		if (i + 1 < at) {
			assert_int_equal(rc, 0);
			continue;
		}
		assert_int_equal(rc, -1);
		assert_string_equal(e.msg, msg);
		assert_int_equal(e.code, ERR_INVALID);
		/* it sticks, even for a valid frame */
		assert_int_equal(frame_reader_feed(&r, "\x01\0\0\0\0", 5, on_frame, &s, &e), -1);
		assert_false(frame_reader_idle(&r));
		break;
	}
	/* whole at once: the same refusal, and no frame after it */
	struct frame_reader r2;
	struct err e2 = ERR_INIT;
	frame_reader_init(&r2);
	assert_int_equal(frame_reader_feed(&r2, in, n, on_frame, &s, &e2), -1);
	assert_string_equal(e2.msg, msg);
	frame_reader_free(&r2);
	frame_reader_free(&r);
	buf_free(&s.text);
}

static void test_refusals(void **state)
{
	(void)state;
	static const unsigned char over[] = {1, 0, 0x10, 0, 1, 'x'};
	refused(over, sizeof over, 5, "STDOUT frame of 1048577 bytes is larger than "
		"the limit of 1048576 bytes");
	static const unsigned char huge[] = {2, 0xff, 0xff, 0xff, 0xff};
	refused(huge, sizeof huge, 5, "STDERR frame of 4294967295 bytes is larger "
		"than the limit of 1048576 bytes");
	static const unsigned char unknown[] = {1, 0, 0, 0, 1, 'a', 8, 0, 0, 0, 0};
	refused(unknown, sizeof unknown, 11, "frame type 8 is not one of "
		"berth-attach/1 (0-7)");
	static const unsigned char ff[] = {0xff, 0, 0, 0, 0};
	refused(ff, sizeof ff, 5, "frame type 255 is not one of berth-attach/1 (0-7)");
	static const unsigned char resize3[] = {6, 0, 0, 0, 3, 0, 24, 0};
	refused(resize3, sizeof resize3, 5, "RESIZE frame of 3 bytes (it must be 4)");
	static const unsigned char sig2[] = {7, 0, 0, 0, 2, 2, 2};
	refused(sig2, sizeof sig2, 5, "SIGNAL frame of 2 bytes (it must be 1)");
	static const unsigned char sig0[] = {7, 0, 0, 0, 0};
	refused(sig0, sizeof sig0, 5, "SIGNAL frame of 0 bytes (it must be 1)");
	static const unsigned char eof1[] = {5, 0, 0, 0, 1, 'x'};
	refused(eof1, sizeof eof1, 5, "STDIN_EOF frame of 1 bytes (it must be 0)");
}

static void test_empty_feed(void **state)
{
	(void)state;
	struct frame_reader r;
	struct story s = {BUF_INIT, 0, 0};
	struct err e = ERR_INIT;
	frame_reader_init(&r);
	assert_int_equal(frame_reader_feed(&r, NULL, 0, on_frame, &s, &e), 0);
	assert_int_equal(frame_reader_feed(&r, "\x03\0\0", 3, on_frame, &s, &e), 0);
	assert_int_equal(frame_reader_feed(&r, "", 0, on_frame, &s, &e), 0);
	assert_false(frame_reader_idle(&r));
	assert_int_equal(frame_reader_feed(&r, "\0\0", 2, on_frame, &s, &e), 0);
	assert_true(frame_reader_idle(&r));
	assert_string_equal(s.text.p, "EXIT 0 811c9dc5\n");
	frame_reader_free(&r);
	frame_reader_free(&r);   /* twice is fine: free leaves a zeroed reader */
	buf_free(&s.text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_put_bytes),
		cmocka_unit_test(test_split_everywhere),
		cmocka_unit_test(test_stop),
		cmocka_unit_test(test_max_size),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_empty_feed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
