/* engine: a client of the Docker Engine API (v1.41) over a unix socket, with libcurl.
 * Calls never block the daemon's loop: one engine thread runs every transfer (a curl multi
 * handle), and each call's result (and, for streams, each chunk of its body) is delivered
 * back on the loop thread through a uv_async_t. The answers are untrusted input: the parsers
 * below are bounded and fuzzed (fuzz/fuzz_engine.c).
 * Ownership: the engine owns every request; a request is freed after its on_done returns or
 * after engine_cancel. No callback runs after engine_cancel or engine_free returns. */
#ifndef BERTH_ENGINE_H
#define BERTH_ENGINE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include <jansson.h>
#include "util/err.h"

#define ENGINE_API_VERSION "1.41"         /* the newest version berth speaks */
#define ENGINE_BODY_MAX (16u << 20)       /* a buffered answer longer than this is an error */

struct engine;
struct engine_req;

/* host: "unix:///PATH" (DOCKER_HOST's form). Does not connect. NULL with e when malformed.
 * loop NULL: an engine for the _sync calls only (a CLI, a test); it has no thread, and
 * engine_call on it is a programming error (returns NULL). */
struct engine *engine_new(uv_loop_t *loop, const char *host, struct err *e);
/* Cancel everything in flight, stop the thread; no callback afterwards. Loop thread; may be
 * called from inside a callback. The async handle is closed with uv_close and the struct is
 * released in its close callback, so the loop must run once more afterwards (the server's
 * shutdown does: engine_free before the last uv_run that closes every handle). With a NULL
 * loop the memory is released at once. Accepts NULL. */
void engine_free(struct engine *en);
const char *engine_host(const struct engine *en);

/* Blocking (for start-up and tests, never on a serving loop): GET /_ping, then use
 * min(the engine's Api-Version, 1.41) for every later call (1.41 when it sends none). Fails
 * (ERR_UNAVAILABLE) with a clear message when the socket is missing, refuses, times out,
 * answers something that is not an engine, or speaks an API older than 1.24. */
int engine_ping_sync(struct engine *en, int64_t timeout_ms, struct err *e);
const char *engine_api_version(const struct engine *en);   /* "1.41" until negotiated */

struct engine_resp {
	long status;          /* HTTP status; 0 when the transfer failed */
	const char *body;     /* buffered body (NUL-terminated; a log body may hold NULs: use
	                       * len), or "" for a streamed call that succeeded */
	size_t len;
	const char *error;    /* transport failure ("cannot connect to the engine at /p: No such
	                       * file or directory", "timed out after 30000 ms", "the engine's
	                       * answer is larger than 16 MiB"), else NULL */
};
typedef void (*engine_done_fn)(void *arg, const struct engine_resp *r);
typedef void (*engine_data_fn)(void *arg, const char *data, size_t n);

struct engine_call {
	const char *method;           /* "GET", "POST", "DELETE" */
	const char *path;             /* "/containers/create?name=x" (the /vX.Y prefix is added) */
	const char *body;             /* request body (copied), or NULL */
	size_t body_len;
	const char *content_type;     /* default "application/json" with body, "application/x-tar"
	                               * with body_file */
	const char *body_file;        /* stream the request body from this file (a build context);
	                               * a file that cannot be read fails the call (r->error) */
	const char *const *headers;   /* extra "Name: value" lines, NULL-terminated, or NULL */
	int64_t timeout_ms;           /* whole transfer; 0: none (a followed stream) */
	engine_data_fn on_data;       /* NULL: buffer the body; else each chunk, as it arrives (but
	                               * an answer whose status is not 2xx is buffered for on_done:
	                               * it is the engine's error message, not the stream) */
	engine_done_fn on_done;       /* exactly once, unless cancelled */
	void *arg;
};
/* Queue a call; on_done (and on_data) run later on the loop thread, never inside this call.
 * Loop thread only, like engine_cancel. The engine keeps the loop alive (uv_ref) while a call
 * is in flight, and only then. on_data chunks come in order, all before on_done. */
struct engine_req *engine_call(struct engine *en, const struct engine_call *c);
/* Abort a call in flight: no callback runs after this returns (also when called from one of
 * its own callbacks). Not after its on_done returned: the request is gone by then. */
void engine_cancel(struct engine_req *r);

/* Blocking call on the calling thread (start-up and tests): status and the buffered body
 * (NUL-terminated; caller frees *out; out and outlen may be NULL). -1 (ERR_UNAVAILABLE,
 * "METHOD PATH: why") only when the transfer failed: an error status is an answer. */
int engine_call_sync(struct engine *en, const char *method, const char *path, const char *body,
		     int64_t timeout_ms, long *status, char **out, size_t *outlen, struct err *e);

/* The message of an error answer ({"message": "..."} as the engine sends it), else the
 * status line: "404: No such image: x". Writes into buf; returns buf. */
const char *engine_error_text(const struct engine_resp *r, char *buf, size_t n);

/* ---- parsers of the engine's answers (hostile input: bounded, never crash) ---- */

/* Log and attach streams. Without a terminal the engine multiplexes stdout and stderr in
 * frames (an 8-byte header: stream, 3 zero bytes, big-endian length); with one it sends raw
 * bytes. With timestamps, each line starts with an RFC 3339 time ("2026-12-07T23:00:01.5Z ").
 * The demuxer takes the body in any chunking and calls fn once per complete line (without its
 * newline; a line over 16 KiB is cut in pieces, each with the line's time), with its stream
 * (1 or 2; a frame of stream 0, stdin, counts as 1) and its time in µs since the epoch (0 when
 * there is none or it is malformed; then the line keeps its first word). With a terminal, one
 * "\r" before the newline is dropped too (the terminal's CRLF). */
typedef void (*engine_line_fn)(void *arg, int stream, int64_t ts_us, const char *line, size_t n);
struct engine_demux {
	bool tty, timestamps;
	engine_line_fn fn;
	void *arg;
	unsigned char hdr[8];
	size_t hdr_len;
	uint64_t frame_left;
	int frame_stream;
	char *line[3];                /* partial line per stream (index 1, 2) */
	size_t line_len[3], line_cap[3];
	bool cont[3];                 /* the partial line continues a line already cut */
	int64_t cont_ts[3];           /* ... whose time the next pieces repeat */
	bool bad;                     /* a malformed frame header: everything after it is dropped */
};
void engine_demux_init(struct engine_demux *d, bool tty, bool timestamps, engine_line_fn fn, void *arg);
void engine_demux_feed(struct engine_demux *d, const char *data, size_t n);
/* Deliver the partial lines left (end of stream) and free the buffers. */
void engine_demux_finish(struct engine_demux *d);

/* JSON-lines progress (pull, build, push): fn gets each message as a line of text a person
 * can read ("Pulling fs layer abc123", "Step 2/5 : RUN make"; under 4 KiB, never empty; a
 * line that is not JSON is given as it is), and the stream's end result: an error message if
 * one came ({"error": ...} arrives with status 200; it is not given to fn), the built image's
 * id if one came (aux.ID, else "Successfully built X", else podman's bare 64-hex id line). */
typedef void (*engine_progress_fn)(void *arg, const char *text);
struct engine_jstream {
	engine_progress_fn fn;
	void *arg;
	char *buf;
	size_t len, cap;
	char error[512];              /* first error message, "" when none */
	char image_id[160];           /* aux.ID or "Successfully built X", "" when none */
	int image_id_rank;            /* where image_id came from: aux.ID beats the stream text */
	bool overflow;                /* a message over 1 MiB was skipped */
	bool skipping;                /* inside that message: drop bytes up to its newline */
};
void engine_jstream_init(struct engine_jstream *j, engine_progress_fn fn, void *arg);
void engine_jstream_feed(struct engine_jstream *j, const char *data, size_t n);
void engine_jstream_finish(struct engine_jstream *j);

/* RFC 3339 time with optional fraction (up to ns) and Z or +hh:mm offset -> µs since the
 * epoch. -1 when malformed. */
int engine_parse_time(const char *s, size_t n, int64_t *us);

/* GET /containers/{id}/json, the parts berth uses. Strings are owned and never NULL ("" when
 * the engine left them out); free with engine_container_free. Times are 0 when unset (the
 * engine's "0001-01-01T00:00:00Z"). -1 (with e) when the document is not a container's. */
struct engine_container {
	char *id, *name, *image;      /* image: the image id the container runs */
	char *status;                 /* "created", "running", "exited", ... */
	bool running, oom_killed;
	int pid;
	int64_t exit_code;
	int64_t started_us, finished_us;
	json_t *labels;               /* object, owned */
};
int engine_parse_container(const char *body, size_t len, struct engine_container *c, struct err *e);
void engine_container_free(struct engine_container *c);

/* GET /images/{ref}/json: id ("sha256:..."), the first repo digest ("name@sha256:..."), and
 * the config berth needs (Cmd, Entrypoint, Env, WorkingDir, User, ExposedPorts, Healthcheck).
 * Owned; free with engine_image_free. */
struct engine_image {
	char *id;
	char *repo_digest;            /* NULL when the image has none (Docker: built or imported
	                               * locally; podman gives those a digest too) */
	json_t *config;               /* the "Config" object, owned (may be an empty object) */
	int64_t size;
};
int engine_parse_image(const char *body, size_t len, struct engine_image *im, struct err *e);
void engine_image_free(struct engine_image *im);

/* GET /containers/json: each container's id, state and labels (owned array of objects
 * {"id","state","labels"}), for adoption and clean-up. */
json_t *engine_parse_container_list(const char *body, size_t len, struct err *e);
#endif
