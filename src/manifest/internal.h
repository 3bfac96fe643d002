/* manifest/internal.h: what the manifest module's files share and nobody else sees:
 * the limits every parser enforces, default values, the small validators that berth.yaml,
 * Procfile and JSON all apply, and the YAML node tree (ytree.c) that berth.yaml and
 * server.yaml are read through. Not part of the public face (that is manifest.h). */
#ifndef BERTH_MANIFEST_INTERNAL_H
#define BERTH_MANIFEST_INTERNAL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "manifest/manifest.h"
#include "util/buf.h"
#include "util/err.h"

/* Bounds: hostile input must never make us allocate or loop without limit. */
#define MF_MAX_FILE_BYTES   (1024 * 1024)      /* berth.yaml, Procfile, server.yaml */
#define MF_MAX_PROCS        100
#define MF_MAX_INSTANCES    1000
#define MF_MAX_VOLUMES      32
#define MF_MAX_VARS         1000
#define MF_MAX_ENV_NAME     255
#define MF_MAX_HTTP_PATH    1024
#define MF_MAX_DOCKERFILE_PATH 1024
#define MF_MAX_RETRIES      100
#define MF_MAX_DURATION_MS  (24LL * 3600 * 1000)
#define MF_MAX_PROFILES     100
#define MF_MAX_CPUS         4096.0
#define MF_MAX_LOG_KEEP     1000

/* Defaults of a process (see manifest.h). */
#define MF_DEF_INTERVAL_MS   2000
#define MF_DEF_TIMEOUT_MS    1000
#define MF_DEF_RETRIES       3
#define MF_DEF_DEADLINE_MS   30000
#define MF_DEF_STARTUP_MS    300
#define MF_DEF_STOP_GRACE_MS 10000
#define MF_DEF_BUILD_TIMEOUT_MS   (10LL * 60 * 1000)
#define MF_DEF_RELEASE_TIMEOUT_MS (10LL * 60 * 1000)
#define MF_DEF_CRON_TIMEOUT_MS    (60LL * 60 * 1000)
#define MF_MAX_CRON          100

/* manifest.c */
/* Fill p with the defaults of a process called name (name is copied). The health kind is
 * left NONE; mf_process_finish picks TCP for a port process whose kind was not chosen. */
void mf_process_init(struct process_spec *p, const char *name);
void mf_process_free(struct process_spec *p);
/* [A-Za-z_][A-Za-z0-9_]*, 1..255 bytes: a config var or a volume's env var. */
bool mf_env_name_valid(const char *s);
/* An HTTP health path: starts with '/', printable ASCII without spaces, <= 1024 bytes. */
bool mf_http_path_valid(const char *s);
/* BERTH_VOLUME_<NAME> with '-' -> '_' and upper case. Caller frees. */
char *mf_volume_default_env(const char *volume);
/* Append s (n bytes) to b as a short double-quoted string fit for an error message:
 * control bytes escaped, long text cut with "...". */
void mf_quote(struct buf *b, const char *s, size_t n);
/* Length of the longest valid UTF-8 prefix of s[0..n) (n when all of it is valid).
 * Strict: no overlong forms, surrogates or code points past U+10FFFF. */
size_t mf_utf8_valid_prefix(const char *s, size_t n);
/* The name of a health kind as written in berth.yaml and JSON: none, http, tcp, exec. */
const char *mf_health_kind_name(enum health_kind k);

/* manifest.c: cross-checks of a whole manifest (cron processes exist, no reserved names). */
int mf_check_refs(const struct manifest *m, struct err *e);

/* cron.c: a cron job's schedule and time zone as the manifest checks them (src/cron). */
int mf_cron_check(const char *schedule, char *msg, size_t msglen, size_t *off);
bool mf_cron_tz_ok(const char *tz);

/* procfile.c: the parser behind manifest_parse_procfile, filling only m->procs. */
int mf_procfile_procs(const char *fname, const char *data, size_t n, struct manifest *m,
		      struct err *e);

/* yaml.c: the parser behind manifest_parse_yaml. seen tells whether the file has a
 * processes: key at all (manifest_load_dir then falls back to a Procfile when it has not) and
 * where its dockerfile: value is, for errors about that file found later. */
struct mf_yaml_seen {
	bool has_procs;
	int dockerfile_line, dockerfile_col;   /* 0 when there is no dockerfile: */
};
int mf_yaml_parse(const char *fname, const char *data, size_t n, struct manifest *m,
		  struct mf_yaml_seen *seen, struct err *e);

/* manifest.c: a manifest that builds an image but names no processes gets one: web, with
 * $PORT and a TCP check, running the built image with its own CMD. */
void mf_add_built_web(struct manifest *m);

/* ytree.c: a YAML document as a bounded tree of located nodes. Aliases are refused
 * (no billion laughs), depth and node count are capped, one document per file. */
enum ynode_type { YN_SCALAR, YN_SEQ, YN_MAP };

struct ynode {
	enum ynode_type type;
	int line, col;            /* 1-based, where the node starts */
	bool plain;               /* scalar written without quotes or block style */
	char *str;                /* scalar text, NUL-terminated; may contain NULs (see len) */
	size_t len;
	struct ynode **kids;      /* SEQ: items; MAP: key0, value0, key1, value1, ... */
	size_t nkids;
	size_t cap;
};

/* Parse data into *root (NULL for an empty document). Syntax errors are
 * "fname:line:col: YAML syntax error: problem (context)". Caller frees with ynode_free. */
int ytree_parse(const char *fname, const char *data, size_t n, struct ynode **root,
		struct err *e);
void ynode_free(struct ynode *n);

/* Schema helpers: every error is "fname:line:col: path: expected ..., got ..." at node n. */
struct yctx {
	const char *fname;
	struct err *e;
};

int y_fail(const struct yctx *c, const struct ynode *n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* "path: expected WHAT, got DESCRIPTION-OF-n" at n. */
int y_expected(const struct yctx *c, const struct ynode *n, const char *path, const char *what);
bool y_is_null(const struct ynode *n);
/* The number of key/value pairs of a mapping. */
static inline size_t y_map_len(const struct ynode *n) { return n->nkids / 2; }
/* Check a mapping whose keys are data (process names, config vars): keys are scalars, at
 * most max pairs, no key twice. path names the mapping in messages ("processes"). */
int y_check_map(const struct yctx *c, const struct ynode *n, const char *path, size_t max);
/* Key i of mapping map, checked against the NULL-terminated list of allowed keys and against
 * the keys before it; returns its index in allowed, or -1 after an "unknown key" or
 * "duplicate key" error. Walk a fixed-schema mapping in order and stop at the first error. */
int y_key_index(const struct yctx *c, const struct ynode *map, size_t i, const char *path,
		const char *const *allowed);
/* Scalar accessors: null, NUL bytes, mappings and sequences are errors ("expected WHAT");
 * *out is owned by the caller. */
int y_string(const struct yctx *c, const struct ynode *n, const char *path, const char *what,
	     bool allow_empty, char **out);
int y_name(const struct yctx *c, const struct ynode *n, const char *path, const char *what,
	   char **out);
int y_bool(const struct yctx *c, const struct ynode *n, const char *path, bool *out);
int y_int(const struct yctx *c, const struct ynode *n, const char *path, int64_t min,
	  int64_t max, int64_t *out);
int y_duration(const struct yctx *c, const struct ynode *n, const char *path, int64_t min,
	       int64_t *out);
int y_size(const struct yctx *c, const struct ynode *n, const char *path, int64_t *out);
int y_number(const struct yctx *c, const struct ynode *n, const char *path, double min,
	     double max, double *out);

#endif
