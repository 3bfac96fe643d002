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

/* Flags a verb may accept; a verb's table entry says which (a bit mask). */
enum cli_flag {
	F_APP = 1u << 0,      /* --app NAME */
	F_ENV = 1u << 1,      /* --env NAME */
	F_JSON = 1u << 2,     /* --json */
	F_API = 1u << 3,      /* --api URL */
	F_TOKEN = 1u << 4,    /* --token T */
	F_DATA = 1u << 5,     /* --data DIR */
	F_MESSAGE = 1u << 6,  /* -m, --message TEXT */
	F_FOLLOW = 1u << 7,   /* -f, --follow */
	F_LINES = 1u << 8,    /* -n, --lines N */
	F_PROCESS = 1u << 9,  /* --process P */
	F_SINCE = 1u << 10,   /* --since T */
	F_YES = 1u << 11,     /* -y, --yes */
	F_ROLE = 1u << 12,    /* --role R */
	F_HELP = 1u << 13,    /* -h, --help */
	F_VERSION = 1u << 14, /* --version (only before a verb) */
	F_STRIP = 1u << 15,   /* --strip-prefix */
	F_BALANCE = 1u << 16, /* --balance round-robin|least-conn */
	F_ROUTER = 1u << 17,  /* --router */
	F_ERROR_PAGES = 1u << 18, /* --error-pages DIR */
	F_WEBHOOK = 1u << 19, /* --webhook URL (repeatable: each adds one) */
	F_CLEAR = 1u << 20,   /* --clear */
};
#define F_CONN (F_API | F_TOKEN | F_DATA)
#define F_TARGET (F_APP | F_ENV)
/* What every verb that talks to the server accepts. */
#define F_COMMON (F_TARGET | F_CONN | F_JSON | F_HELP)

/* The parsed command line of one invocation. Strings point into argv (not owned);
 * the pos and webhooks arrays are owned (cli_opts_free). */
struct cli_opts {
	unsigned set;             /* F_* bits seen */
	const char *app, *env, *api, *token, *data;
	const char *message, *process, *since, *role, *lines, *balance, *error_pages;
	bool json, follow, yes, help, strip_prefix, router, clear;
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
int cli_parse_flags(int argc, char **argv, unsigned allowed, bool stop_at_positional,
		    struct cli_opts *o, int *next, struct err *e);
void cli_opts_free(struct cli_opts *o);
/* "--app" for F_APP (the flag's long spelling), "" for an unknown bit. */
const char *cli_flag_name(unsigned flag);

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
