/* cli/args: the pure parsing behind every verb's command line: flags (long, short, --k=v,
 * before or after positional args, `--` ends them), and the small argument languages of
 * `scale NAME=COUNT`, `config set K=V` / `unset K`, `rollback vN`, `logs -n N` and
 * `routes add HOST[/PATH] --balance B`.
 * Nothing here does I/O; every failure is a usage error described in a struct err, which
 * the caller prints once and turns into exit status 2. */
#ifndef BERTH_CLI_ARGS_H
#define BERTH_CLI_ARGS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "util/err.h"

/* Flags a verb may accept; a verb's table entry says which (a bit mask, cli_flags_t). */
typedef uint64_t cli_flags_t;
#define F_APP          (UINT64_C(1) << 0)   /* --app NAME */
#define F_ENV          (UINT64_C(1) << 1)   /* --env NAME */
#define F_JSON         (UINT64_C(1) << 2)   /* --json */
#define F_API          (UINT64_C(1) << 3)   /* --api URL */
#define F_TOKEN        (UINT64_C(1) << 4)   /* --token T */
#define F_DATA         (UINT64_C(1) << 5)   /* --data DIR */
#define F_MESSAGE      (UINT64_C(1) << 6)   /* -m, --message TEXT */
#define F_FOLLOW       (UINT64_C(1) << 7)   /* -f, --follow */
#define F_LINES        (UINT64_C(1) << 8)   /* -n, --lines N */
#define F_PROCESS      (UINT64_C(1) << 9)   /* --process P */
#define F_SINCE        (UINT64_C(1) << 10)   /* --since T */
#define F_YES          (UINT64_C(1) << 11)   /* -y, --yes */
#define F_ROLE         (UINT64_C(1) << 12)   /* --role R */
#define F_HELP         (UINT64_C(1) << 13)   /* -h, --help */
#define F_VERSION      (UINT64_C(1) << 14)   /* --version (only before a verb) */
#define F_STRIP        (UINT64_C(1) << 15)   /* --strip-prefix */
#define F_BALANCE      (UINT64_C(1) << 16)   /* --balance round-robin|least-conn */
#define F_ROUTER       (UINT64_C(1) << 17)   /* --router */
#define F_ERROR_PAGES  (UINT64_C(1) << 18)   /* --error-pages DIR */
#define F_WEBHOOK      (UINT64_C(1) << 19)   /* --webhook URL (repeatable: each adds one) */
#define F_CLEAR        (UINT64_C(1) << 20)   /* --clear */
#define F_SIZE         (UINT64_C(1) << 21)   /* --size PROFILE */
#define F_DETACH       (UINT64_C(1) << 22)   /* -d, --detach */
#define F_NO_CACHE     (UINT64_C(1) << 23)   /* --no-cache */
#define F_CANCEL       (UINT64_C(1) << 24)   /* --cancel */
#define F_CONFIRM      (UINT64_C(1) << 25)   /* --confirm NAME */
#define F_VOLUMES      (UINT64_C(1) << 26)   /* --volumes */
#define F_PURGE_LOGS   (UINT64_C(1) << 27)   /* --purge-logs */
#define F_SHELL        (UINT64_C(1) << 28)   /* --shell */
#define F_RUN_RELEASE  (UINT64_C(1) << 29)   /* --run-release */
#define F_TTY          (UINT64_C(1) << 30)   /* -t, --tty: force a terminal */
#define F_NO_TTY       (UINT64_C(1) << 31)   /* -T, --no-tty: plain pipes */
#define F_REVEAL       (UINT64_C(1) << 32)   /* --reveal: show secret values */
#define F_FORCE        (UINT64_C(1) << 33)   /* --force */
#define F_TIMEOUT      (UINT64_C(1) << 34)   /* --timeout DURATION */
#define F_SOURCE       (UINT64_C(1) << 35)   /* --source app|berth|all */
#define F_IMAGE        (UINT64_C(1) << 36)   /* --image REF */
#define F_PULL         (UINT64_C(1) << 37)   /* --pull always|missing|never */

#define F_CONN (F_API | F_TOKEN | F_DATA)
#define F_TARGET (F_APP | F_ENV)
/* What every verb that talks to the server accepts. */
#define F_COMMON (F_TARGET | F_CONN | F_JSON | F_HELP)

/* The parsed command line of one invocation. Strings point into argv (not owned);
 * the pos and webhooks arrays are owned (cli_opts_free). */
struct cli_opts {
	cli_flags_t set;             /* F_* bits seen */
	const char *app, *env, *api, *token, *data;
	const char *message, *process, *since, *role, *lines, *balance, *error_pages;
	const char *size, *confirm, *timeout, *source, *image, *pull;
	bool json, follow, yes, help, strip_prefix, router, clear;
	bool detach, no_cache, cancel, volumes, purge_logs, shell, run_release, tty, no_tty, reveal, force;
	const char **pos;         /* positional args in order */
	size_t npos;
	const char **webhooks;    /* every --webhook in order */
	size_t nwebhooks;
};

/* Parse argv[0..argc) into o (which the caller zeroes once; repeated calls add to it, a
 * repeated flag keeps its last value, except --webhook, whose values add up). Flags outside `allowed` are usage errors naming the
 * flag. When stop_at_positional, parsing stops before the first positional arg and *next is
 * its index (used for the flags in front of the verb); otherwise every arg is consumed.
 * Returns 0, or -1 with e (ERR_INVALID) saying what was wrong. */
int cli_parse_flags(int argc, char **argv, cli_flags_t allowed, bool stop_at_positional,
		    struct cli_opts *o, int *next, struct err *e);
void cli_opts_free(struct cli_opts *o);
/* "--app" for F_APP (the flag's long spelling), "" for an unknown bit. */
const char *cli_flag_name(cli_flags_t flag);

/* `scale web=3 worker=0` -> {"web":3,"worker":0} (new reference in *out). A name must be a
 * valid process name (name_valid), a count a non-negative integer (at most 10000); a repeated
 * name is an error. The message quotes the bad argument. */
int cli_parse_scale(size_t n, const char *const *args, json_t **out, struct err *e);
/* `config set K=V ...` -> {"K":"V"}: K matches [A-Za-z_][A-Za-z0-9_]*, V is everything after
 * the first '=' (may be empty, may contain '='). A repeated key keeps its last value. */
int cli_parse_config_set(size_t n, const char *const *args, json_t **out, struct err *e);
/* `config unset K ...` -> ["K", ...] (duplicates dropped). */
int cli_parse_config_unset(size_t n, const char *const *args, json_t **out, struct err *e);
bool cli_config_key_valid(const char *k);
/* "v3" or "3" -> 3 (1 .. 2^31-1). */
int cli_parse_version(const char *s, int64_t *out, struct err *e);
/* A non-negative decimal integer no larger than max, nothing else (no sign, no spaces). */
int cli_parse_count(const char *s, int64_t max, int64_t *out);

/* A route's address as `routes add/remove` take it: "HOST[/PATH]", split at the first '/'.
 * HOST is letters, digits, '-', '.' and '_' (at most 253, no empty label, no scheme, no
 * port) and comes out lower-cased; PATH is "/" when absent, starts with '/', holds no
 * spaces, control characters, '?', '#', '%', "//" or "."/".." segments (at most 1024), and
 * comes out without trailing '/' (except "/" itself). Owned strings in *host and *path
 * (caller frees); on failure both are NULL and e says what was wrong, quoting arg. */
int cli_parse_route_addr(const char *arg, char **host, char **path, struct err *e);
/* "round-robin" or "least-conn": the balancing methods of a route. */
bool cli_balance_valid(const char *s);

#endif
