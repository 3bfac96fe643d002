/* frame: the codec of berth-attach/1, the framed byte stream that `berth run` and `berth exec`
 * speak with the API after an HTTP/1.1 Upgrade (docs/API.md). Pure: no I/O, no globals.
 *
 * A frame is 1 byte type, 4 bytes big-endian payload length, then the payload (at most
 * FRAME_MAX_PAYLOAD bytes). Client -> server: STDIN, STDIN_EOF (empty), RESIZE (rows BE16,
 * cols BE16), SIGNAL (1 byte). Server -> client: STDOUT, STDERR, INFO (JSON {"message"}),
 * EXIT (JSON {"status"} or {"signal"}, optional "message"; always the last frame).
 *
 * The reader is incremental: feed it any chunks of the stream, it hands whole frames to a
 * callback. It holds at most one frame (header + payload) in memory, and refuses a stream
 * with an unknown type, an oversized payload, or a payload whose size its type forbids
 * (RESIZE must be 4 bytes, SIGNAL 1, STDIN_EOF 0). Which direction a type may travel is the
 * caller's business. */
#ifndef BERTH_FRAME_H
#define BERTH_FRAME_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util/buf.h"
#include "util/err.h"

enum frame_type {
	FRAME_STDIN = 0,
	FRAME_STDOUT = 1,
	FRAME_STDERR = 2,
	FRAME_EXIT = 3,
	FRAME_INFO = 4,
	FRAME_STDIN_EOF = 5,
	FRAME_RESIZE = 6,
	FRAME_SIGNAL = 7,
};
#define FRAME_TYPE_MAX FRAME_SIGNAL
#define FRAME_HEADER 5
#define FRAME_MAX_PAYLOAD (1u << 20)

/* "STDOUT" for FRAME_STDOUT; "unknown" for anything else. */
const char *frame_type_name(int type);

/* Append one frame to b. n must be at most FRAME_MAX_PAYLOAD (a larger n aborts: it is a
 * bug in the caller, who splits data into pieces). */
void frame_put(struct buf *b, int type, const void *p, size_t n);
/* RESIZE and SIGNAL with their payloads encoded. */
void frame_put_resize(struct buf *b, unsigned rows, unsigned cols);
void frame_put_signal(struct buf *b, int sig);
/* Decode a RESIZE payload (exactly 4 bytes, as the reader guarantees). */
void frame_get_resize(const void *p, unsigned *rows, unsigned *cols);

/* One whole frame. p points either into the chunk being fed or into the reader's own buffer:
 * valid only during the call. Return 0 to go on, a positive value to stop feeding. */
typedef int (*frame_fn)(int type, const void *p, size_t n, void *ud);

struct frame_reader {
	unsigned char hdr[FRAME_HEADER];
	size_t hlen;          /* header bytes held (0..5) */
	int type;             /* of the frame in progress, once hlen == 5 */
	size_t need;          /* payload bytes still to come */
	struct buf payload;   /* a payload that arrived in pieces */
	bool failed;          /* refused once: refuses everything after */
};

void frame_reader_init(struct frame_reader *r);
void frame_reader_free(struct frame_reader *r);   /* accepts a zeroed reader */
/* Feed n bytes. Returns 0 when all were taken (frames delivered, a partial one kept), the
 * callback's positive value when it stopped (the rest of the chunk is dropped), or -1 with e
 * (ERR_INVALID) on a malformed stream; a reader that failed keeps failing. */
int frame_reader_feed(struct frame_reader *r, const void *data, size_t n, frame_fn fn, void *ud,
		      struct err *e);
/* True when the reader sits between frames (the stream may end here). */
bool frame_reader_idle(const struct frame_reader *r);

#endif
