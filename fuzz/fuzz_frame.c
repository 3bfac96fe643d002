/* fuzz_frame: libFuzzer harness for the berth-attach/1 frame reader (src/util/frame.c),
 * without any I/O.
 *
 * The input is a byte stream as a peer would send it after the 101. It is read twice: once
 * in one piece, once cut into pieces whose sizes come from a hash of the input (so the
 * corpus stays plain frame streams). Both runs must tell the same story: the same frames,
 * then the same refusal or the same partial tail. Invariants on the way: a delivered frame
 * has a known type, at most FRAME_MAX_PAYLOAD bytes and the size its type demands; the
 * frames written back with frame_put are, byte for byte, the prefix of the input the reader
 * got through; the reader never holds more than one payload; a refusal sticks. */
#include "util/frame.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                       \
	do {                                                                              \
		if (!(cond)) {                                                            \
			fprintf(stderr, "fuzz_frame: %s:%d: check failed: %s\n", __FILE__,    \
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
	struct buf text;     /* "TYPE n hash" per frame, then how it ended */
	struct buf again;    /* the frames written back with frame_put */
};

static int on_frame(int type, const void *p, size_t n, void *ud)
{
	struct story *s = ud;
	CHECK(type >= 0 && type <= FRAME_TYPE_MAX);
	CHECK(n <= FRAME_MAX_PAYLOAD);
	CHECK(p != NULL);
	if (type == FRAME_RESIZE)
		CHECK(n == 4);
	if (type == FRAME_SIGNAL)
		CHECK(n == 1);
	if (type == FRAME_STDIN_EOF)
		CHECK(n == 0);
	buf_addf(&s->text, "%s %zu %016llx\n", frame_type_name(type), n,
		 (unsigned long long)fnv(p, n, 14695981039346656037ull));
	frame_put(&s->again, type, p, n);
	return 0;
}

static void finish(struct story *s, struct frame_reader *r, int rc, const struct err *e,
		   const uint8_t *data, size_t size)
{
	CHECK(s->again.len <= size);
	CHECK(s->again.len == 0 || !memcmp(s->again.p, data, s->again.len));
	if (rc < 0) {
		CHECK(e->msg[0] && e->code == ERR_INVALID);
		buf_addf(&s->text, "REFUSED %s\n", e->msg);
		struct err e2 = ERR_INIT;
		CHECK(frame_reader_feed(r, "\1\0\0\0\0", 5, on_frame, s, &e2) == -1);
	} else {
		CHECK(rc == 0);
		/* everything was taken: what was not handed out is one partial frame */
		CHECK(size - s->again.len < FRAME_HEADER + FRAME_MAX_PAYLOAD);
		CHECK(frame_reader_idle(r) == (s->again.len == size));
		buf_addf(&s->text, "END %zu\n", size - s->again.len);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct err e = ERR_INIT;
	struct frame_reader r;

	struct story one = {BUF_INIT, BUF_INIT};
	frame_reader_init(&r);
	int rc = frame_reader_feed(&r, data, size, on_frame, &one, &e);
	CHECK(r.payload.cap <= FRAME_MAX_PAYLOAD + 1);
	finish(&one, &r, rc, &e, data, size);
	frame_reader_free(&r);

	struct story two = {BUF_INIT, BUF_INIT};
	struct err e2 = ERR_INIT;
	frame_reader_init(&r);
	uint64_t x = fnv(data, size, 14695981039346656037ull) | 1;
	size_t pos = 0;
	rc = 0;
	while (pos < size && rc == 0) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		size_t piece = (x & 7) == 0 ? (size_t)(x >> 8) % 4096 + 1 : (size_t)(x >> 8) % 9;
		if (piece > size - pos)
			piece = size - pos;
		rc = frame_reader_feed(&r, data + pos, piece, on_frame, &two, &e2);
		CHECK(r.payload.cap <= FRAME_MAX_PAYLOAD + 1);
		pos += piece;
	}
	finish(&two, &r, rc, &e2, data, size);
	frame_reader_free(&r);

	if (strcmp(buf_str(&one.text), buf_str(&two.text))) {
		fprintf(stderr, "fuzz_frame: whole and split runs differ\n--- whole\n%s--- split\n%s",
			buf_str(&one.text), buf_str(&two.text));
		abort();
	}
	buf_free(&one.text);
	buf_free(&one.again);
	buf_free(&two.text);
	buf_free(&two.again);
	return 0;
}
