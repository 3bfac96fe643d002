/* registry: credentials for container registries (`berth registry login|list|logout`), and
 * what the Docker driver needs from them (the X-Registry-Auth header of a pull).
 * Files: ref.c (pure: registry hosts, image references, WWW-Authenticate challenges),
 * verify.c (the login handshake with a registry over libcurl; blocking, for a worker
 * thread), creds.c (the credentials in the store, the password sealed with util/secret).
 * A password never reaches a log line, an error message or an API answer; the store holds
 * only its sealed form under /registries/<host> (model.h). */
#ifndef BERTH_REGISTRY_H
#define BERTH_REGISTRY_H
#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>
#include "store/store.h"
#include "util/err.h"

#define REGISTRY_HOST_MAX 262          /* a normalised host and port, with its NUL */
#define REGISTRY_USERNAME_MAX 256
#define REGISTRY_PASSWORD_MAX 16384    /* cloud registries' access tokens run to a few KiB */
#define REGISTRY_DOCKER_HUB "docker.io"

/* ---- ref.c: pure ---- */

/* Normalise a registry host as a user writes it: a DNS name or IPv4 address, or an IPv6
 * address in brackets, with an optional ":PORT" (1..65535); lower-cased into out
 * (REGISTRY_HOST_MAX bytes). The Docker Hub's other names (index.docker.io,
 * registry-1.docker.io) become docker.io. -1 with e (ERR_INVALID) saying what is wrong
 * (a URL instead of a host, a bad label, a bad port). */
int registry_host_normalize(const char *in, char out[REGISTRY_HOST_MAX], struct err *e);
/* The registry host of an image reference, by Docker's rule: the part before the first '/'
 * is a registry host when it has a '.' or a ':', is "localhost", or has an upper-case letter;
 * otherwise (and without a '/') the image is on docker.io ("redis", "library/redis",
 * "bitnami/redis" -> docker.io; "ghcr.io/o/app:1", "localhost:5000/app@sha256:..." -> theirs).
 * Normalised as registry_host_normalize does. -1 with e (ERR_INVALID) for an empty reference
 * or a host part that is not a valid host. */
int registry_host_of_ref(const char *ref, char out[REGISTRY_HOST_MAX], struct err *e);
/* Is host a loopback name (localhost, 127.0.0.0/8, [::1], with any port)? Such registries
 * are spoken to over plain HTTP, as Docker does. */
bool registry_host_is_loopback(const char *host);
/* The base URL of host's API, "https://ghcr.io" or "http://127.0.0.1:5000" (plain_http);
 * docker.io's is https://registry-1.docker.io. Caller frees. */
char *registry_base_url(const char *host, bool plain_http);
/* The serveraddress Docker expects for host's credentials: "https://index.docker.io/v1/" for
 * docker.io, else host itself. Static or host. */
const char *registry_server_address(const char *host);

/* One challenge of a WWW-Authenticate header (RFC 7235): its scheme and the parameters the
 * registry token handshake uses. Unknown parameters are skipped. */
enum registry_scheme { REGISTRY_AUTH_OTHER, REGISTRY_AUTH_BASIC, REGISTRY_AUTH_BEARER };
struct registry_challenge {
	enum registry_scheme scheme;
	char realm[1024];
	char service[256];
	char scope[1024];
};
/* Parse the first challenge of a header value ("Bearer realm=\"https://a/token\",service=\"x\"").
 * 0 and *out filled, or -1 when it is malformed (no scheme, an unterminated quoted string, a
 * control byte, a value longer than its field). Bounded; never reads past the NUL. */
int registry_parse_challenge(const char *value, struct registry_challenge *out);

/* ---- verify.c: blocking; call it from a work-queue thread, never from the loop ---- */

/* Check username/password against host's registry as `docker login` does: GET /v2/; on a
 * 401 with a Bearer challenge, GET the realm (service, scope, account) with Basic auth and
 * expect a token; on a 401 with a Basic challenge, GET /v2/ again with Basic auth.
 * plain_http: http:// instead of https:// (loopback hosts, registries.insecure); a token
 * realm must then be http(s), otherwise https. Each request: 10 s to connect, 20 s in all.
 * 0 when accepted (*open: the registry asked for no credentials at all, so nothing was
 * checked), else -1 with e: ERR_INVALID when the registry refused the credentials or is no
 * registry (messages name the host and the URL, never the password), ERR_UNAVAILABLE when
 * it cannot be reached or failed (5xx). Needs curl_global_init. */
int registry_verify(const char *host, const char *username, const char *password, bool plain_http,
		    bool *open, struct err *e);

/* ---- creds.c: the stored credentials; loop thread (the store) ---- */

/* Store (or replace) host's credentials: the password sealed for "registry:HOST" with the
 * data dir's key (made on first use). by: who ("token NAME"). *replaced (may be NULL): there
 * were credentials for host before. Returns the public record (new reference:
 * {"host","username","added_at","added_by"}) or NULL with e. */
json_t *registry_creds_put(struct store *st, const char *data_dir, const char *host, const char *username,
			   const char *password, const char *by, bool *replaced, struct err *e);
/* Every stored record, by host, without anything secret: {"registries":[record...]} (new
 * reference) or NULL with e. */
json_t *registry_creds_list(struct store *st, struct err *e);
/* Remove host's credentials: 0, or -1 with e (ERR_NOTFOUND: none stored). */
int registry_creds_delete(struct store *st, const char *host, struct err *e);

/* For the Docker driver: the value of the X-Registry-Auth header for pulling image_ref, i.e.
 * base64url (with padding) of {"username","password","serveraddress"}, when credentials for
 * the reference's registry host (registry_host_of_ref) are stored. 0 with *header_value set
 * (caller frees it with secret_str_wipe: it holds the password), 0 with *header_value NULL
 * when none are stored (pull anonymously), -1 with e on a bad reference (ERR_INVALID) or a
 * record that cannot be read or opened (ERR_INTERNAL; the message names the host, never the
 * password). Reads the store and DATA/keys/secrets.key: call it on the loop thread. */
int registry_auth_for(struct store *st, const char *data_dir, const char *image_ref, char **header_value,
		      struct err *e);
/* For an engine build: the value of the X-Registry-Config header, base64url of {HOST:
 * {"username","password","serveraddress"}, ...} for every stored registry (the build's FROM
 * images may come from any of them); *header_value NULL when none are stored. Same rules as
 * registry_auth_for. */
int registry_build_config(struct store *st, const char *data_dir, char **header_value, struct err *e);
#endif
