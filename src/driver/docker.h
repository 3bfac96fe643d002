/* driver/docker: what the rest of berth needs from the docker driver beyond the driver
 * table (driver.h): registry credentials for pulls, image references turned into engine
 * paths, the engine itself for deploy-time work (resolving and building images), and the
 * hijacked connections exec and attach use (hijack.c). */
#ifndef BERTH_DRIVER_DOCKER_H
#define BERTH_DRIVER_DOCKER_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <uv.h>
#include "driver/driver.h"

struct engine;

/* The X-Registry-Auth value for pulling ref (*out owned; NULL when there are no
 * credentials for its registry). 0, or -1 when the credentials cannot be read. */
typedef int (*docker_auth_fn)(void *arg, const char *ref, char **out);
void driver_docker_set_auth(struct driver *d, docker_auth_fn fn, void *arg);
struct engine *driver_docker_engine(struct driver *d);

/* "/images/create?fromImage=NAME&tag=TAG" (or the digest) for ref; owned. */
char *docker_pull_path(const char *ref);
/* "/images/REF" + suffix, ref escaped for a path; owned. */
char *docker_image_path(const char *ref, const char *suffix);
/* Percent-escape s for a query value; owned. */
char *docker_query_escape(const char *s);

/* A hijacked engine connection: POST path (with body) on the socket, then the raw stream
 * both ways (stdout/stderr frames unless tty). open_fn runs once (ok or why not); data_fn
 * per chunk of output; end_fn once the stream ended after a successful open. No callback runs
 * after hijack_free. */
struct hijack;
typedef void (*hijack_open_fn)(void *arg, int ok, const char *why);
typedef void (*hijack_data_fn)(void *arg, int stream, const char *data, size_t n);
typedef void (*hijack_end_fn)(void *arg);
struct hijack *hijack_open(uv_loop_t *loop, const char *sock, const char *version, const char *path,
			   const char *body, bool tty, hijack_open_fn open_fn, hijack_data_fn data_fn,
			   hijack_end_fn end_fn, void *arg);
int hijack_write(struct hijack *h, const void *data, size_t n);
size_t hijack_queued(const struct hijack *h);
void hijack_shutdown(struct hijack *h);     /* end of stdin (half-close) */
void hijack_close(struct hijack *h);        /* end the stream now (end_fn follows) */
bool hijack_closed(const struct hijack *h); /* the stream has ended (or never opened) */
void hijack_free(struct hijack *h);
/* The parser of the answer's head, for the fuzzer: the status code of a complete head in
 * data[0..n) and its length in *head_len; 0 when incomplete, -1 when malformed. */
int hijack_parse_head(const char *data, size_t n, size_t *head_len);

/* Deploy time: build an image through the engine (build_image.c). The context is a tar (gzip
 * allowed) of the app directory; the engine's output is said line by line (line may be NULL);
 * done gets the tag, and the built image's id or an error naming what failed, and the build's
 * lines for a report (all when few, else the first, "...", the last; borrowed during done).
 * done runs once, never inside this call, unless cancelled. NULL when the engine takes no
 * more calls (it is shutting down); then done never runs. */
struct docker_build;
struct docker_build_spec {
	const char *context;          /* path of the tar(.gz) context file; read during the build */
	const char *dockerfile;       /* its path inside the context */
	const char *tag;              /* "berth/ENV/APP:vN" */
	bool pull;                    /* pull=1: fetch every FROM image anew (breaks a FROM of an
	                               * image that is only local) */
	bool no_cache;                /* nocache=1: no layer reused */
	int64_t timeout_ms;           /* the whole build; 0: none */
	int64_t output_limit;         /* bytes of output after which it is stopped; 0: none */
	const char *const *headers;   /* extra "Name: value" lines (NULL-terminated), or NULL */
};
typedef void (*docker_build_line_fn)(void *arg, const char *text);
typedef void (*docker_built_fn)(void *arg, const char *tag, const char *id, const char *error, json_t *lines);
struct docker_build *docker_build(struct driver *d, const struct docker_build_spec *s, docker_build_line_fn line,
				  docker_built_fn done, void *arg);
/* Stop it (the engine stops a build whose connection closes); no callback afterwards. Accepts
 * NULL. */
void docker_build_cancel(struct docker_build *b);
#endif

/* Deploy time: make sure ref is on this host (inspect; pull per policy "missing", "always",
 * "never", progress reported as text) and tell its id and repo digest (NULL when it has none),
 * or an error naming what failed. done runs once, never inside this call, unless cancelled. */
struct docker_resolve;
typedef void (*docker_resolved_fn)(void *arg, const char *id, const char *digest, const char *error);
struct docker_resolve *docker_resolve(struct driver *d, const char *ref, const char *pull,
				      void (*progress)(void *arg, const char *text), docker_resolved_fn done,
				      void *arg);
void docker_resolve_cancel(struct docker_resolve *r);
/* The X-Registry-Auth header line ("X-Registry-Auth: ...") for ref, or NULL; owned. */
char *docker_auth_header(struct driver *d, const char *ref);
