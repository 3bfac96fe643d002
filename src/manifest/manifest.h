/* manifest: what an app is made of, read from berth.yaml or a Heroku-style Procfile.
 * Parsing is hostile-input code: every error names file:line:column and what was expected.
 * A manifest also round-trips through JSON, which is how a release records it in the store. */
#ifndef BERTH_MANIFEST_H
#define BERTH_MANIFEST_H
#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>
#include "util/err.h"

enum health_kind { HEALTH_NONE = 0, HEALTH_HTTP, HEALTH_TCP, HEALTH_EXEC };

struct health_spec {
	enum health_kind kind;   /* NONE: healthy once it has stayed up for startup_ms */
	char *path;              /* HTTP: request path, starts with '/' */
	char *command;           /* EXEC: shell command run in the release dir; exit 0 = healthy */
	int64_t interval_ms;     /* between checks once healthy (default 2000) */
	int64_t timeout_ms;      /* one check (default 1000) */
	int retries;             /* consecutive failures before unhealthy (default 3) */
	int64_t deadline_ms;     /* time a new instance has to become healthy (default 30000) */
	int64_t startup_ms;      /* NONE only: how long it must stay up to count as healthy (default 300) */
};

struct volume_spec {
	char *name;              /* [a-z0-9][a-z0-9-]*, at most 63 */
	char *env_var;           /* where the path is passed; default BERTH_VOLUME_<NAME>, '-' -> '_' */
};

struct process_spec {
	char *name;              /* [a-z0-9][a-z0-9-]*, at most 63 */
	char *command;           /* run as /bin/sh -c COMMAND; beside image: replaces its CMD */
	char *image;             /* a container image (the docker driver) instead of a command;
	                          * NULL in a manifest with a dockerfile: runs the built image */
	int instances;           /* default 1 */
	bool port;               /* gets $PORT; default true for "web", false otherwise */
	struct health_spec health; /* default: TCP on $PORT when port, else NONE */
	char *profile;           /* resource profile name, NULL = none (no limits) */
	struct volume_spec *volumes;
	size_t nvolumes;
	int64_t stop_grace_ms;   /* SIGTERM -> SIGKILL grace (default 10000) */
};

struct env_var {
	char *name;
	char *value;
};

/* A scheduled job (cron: in berth.yaml): a one-off of the live release on a schedule. */
struct cron_job {
	char *name;              /* [a-z0-9][a-z0-9-]*, at most 63 */
	char *schedule;          /* five fields or a macro, validated (src/cron/schedule.h) */
	char *command;           /* run as /bin/sh -c COMMAND */
	char *timezone;          /* IANA name; NULL = UTC */
	char *process;           /* whose environment, volumes and profile it gets; NULL = first */
	int64_t timeout_ms;      /* default 1 h */
	bool allow_overlap;      /* concurrency: allow; default forbid (a running job skips the next) */
};

struct manifest {
	char *source;            /* "berth.yaml" or "Procfile" */
	char *app;               /* optional app name from berth.yaml */
	char *env;               /* optional env name from berth.yaml */
	struct process_spec *procs;
	size_t nprocs;
	struct env_var *vars;    /* default config ("config:" in berth.yaml); release config overrides */
	size_t nvars;
	char *build;             /* build: command run in the release dir before it is released; NULL = detect */
	char *dockerfile;        /* build an image from this file (a path inside the app directory)
	                          * through the engine; NULL = no image build (docs/builds.md) */
	int64_t build_timeout_ms;/* default 10 min */
	char *release;           /* release phase: one-off before rollout (Procfile "release:" too) */
	int64_t release_timeout_ms; /* default 10 min */
	struct cron_job *cron;
	size_t ncron;
};

/* Read DIR/berth.yaml if present, else DIR/Procfile; an image is built from berth.yaml's
 * dockerfile:, or, without a berth.yaml, from a Dockerfile (or Containerfile) at the top (with
 * no Procfile either: one web process running it). Errors look like
 * "berth.yaml:7:12: processes.web.instances: expected a non-negative integer, got "two"". */
int manifest_load_dir(const char *dir, struct manifest *m, struct err *e);
/* Parse from memory; fname is used in error messages. */
int manifest_parse_yaml(const char *fname, const char *data, size_t n, struct manifest *m, struct err *e);
int manifest_parse_procfile(const char *fname, const char *data, size_t n, struct manifest *m, struct err *e);

json_t *manifest_to_json(const struct manifest *m);                /* new reference */
int manifest_from_json(json_t *j, struct manifest *m, struct err *e);
const struct process_spec *manifest_process(const struct manifest *m, const char *name);
void manifest_free(struct manifest *m);                            /* accepts zeroed struct */

/* Whether process p runs the image built from m's dockerfile (it names no image: of its own). */
bool manifest_process_built(const struct manifest *m, const struct process_spec *p);
/* A dockerfile: path: relative, inside the app directory (no "..", "." or empty parts),
 * printable ASCII without spaces or backslashes, at most 1024 bytes. */
bool manifest_dockerfile_valid(const char *s);

/* Names of apps, envs, processes, volumes: [a-z0-9][a-z0-9-]*, 1..63 bytes (DNS labels). */
bool name_valid(const char *s);
/* An image reference as Docker takes it: [host[:port]/]path[:tag][@sha256:64hex], or an image
 * id sha256:64hex; printable, no spaces, at most 255 bytes. */
bool manifest_image_ref_valid(const char *s);
/* The manifest of `berth deploy --image REF`: one process (port and a TCP check for "web")
 * running the image with its own CMD. */
int manifest_for_image(struct manifest *m, const char *process, const char *image, struct err *e);

/* Server configuration (DIR/server.yaml or --config): resource profiles, limits, alerts and
 * the HTTP router's settings. */
struct profile {
	char *name;
	double cpus;             /* CPU quota in cores (0 = unlimited) */
	int cpu_weight;          /* relative share 1..10000 (v2 cpu.weight; v1 shares = weight*1024/100) */
	int64_t memory_bytes;    /* 0 = unlimited */
	int64_t pids;            /* 0 = unlimited */
};

struct server_conf {
	struct profile *profiles;   /* always holds small, medium, large unless overridden */
	size_t nprofiles;
	int64_t upload_limit_bytes; /* default 256 MiB */
	int64_t log_rotate_bytes;   /* default 10 MiB */
	int log_keep;               /* rotated files kept per instance, default 5 */
	int release_keep;           /* releases per app whose code dir is kept, 1..1000, default 10 */
	bool image_gc;              /* images: {gc:}: remove images no kept release uses (default true) */
	/* alerts: (docs/metrics.md) */
	char *alert_name;           /* server name in alerts; NULL = host name */
	char **alert_webhooks;      /* server-wide webhook URLs */
	size_t nalert_webhooks;
	int64_t alert_rate_limit_ms;/* per (kind, env, app, process); default 60000; 0 = off */
	struct alert_env {
		char *env;
		char **webhooks;
		size_t nwebhooks;
	} *alert_envs;
	size_t nalert_envs;
	/* router: (docs/router.md). 0 / NULL everywhere means the router's built-in default. */
	struct server_router_conf {
		char *error_pages;        /* absolute dir with 404/502/503/504.html; NULL = built-in pages */
		int threads;              /* 1..64; 0 = one per CPU */
		int64_t connect_ms, header_ms, idle_ms, response_ms, body_ms, upstream_idle_ms,
			tunnel_idle_ms;   /* timeouts:, each 1ms..24h */
		int pool_max_idle;        /* idle upstream connections per instance per thread, 1..4096 */
		int64_t max_body;         /* request body limit in bytes; 0 = unlimited */
		char *forwarded_proto;    /* X-Forwarded-Proto sent upstream: "http" or "https" */
	} router;
	/* builds: the build stage (docs/builds.md). */
	struct server_build_conf {
		char *profile;            /* resource profile of builds; NULL = "large"; "" = no limits */
		int64_t output_limit;     /* a build printing more is stopped (default 64 MiB) */
		char **env;               /* "K=V" every build gets (env:, pip_find_links:, ...); NULL-terminated */
		size_t nenv;
	} builds;
	/* registries: container registries. insecure: hosts ("reg.lan:5000", lower-cased) that
	 * `berth registry login` speaks plain HTTP to (loopback hosts always are). */
	char **registry_insecure;
	size_t nregistry_insecure;
};

/* Defaults, then the YAML file at path if it exists (missing file = defaults). */
int server_conf_load(const char *path, struct server_conf *c, struct err *e);
const struct profile *server_conf_profile(const struct server_conf *c, const char *name);
void server_conf_free(struct server_conf *c);
/* Parse "512M", "1G", "1.5GiB", "100k", plain bytes. -1 when malformed. */
int parse_size(const char *s, int64_t *out);

#endif
