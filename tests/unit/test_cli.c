/* test_cli: the CLI's pure logic: flag parsing (--error-pages, the repeatable --webhook), the
 * argument languages of scale/config/rollback/logs/routes (HOST[/PATH], --balance), NDJSON
 * line splitting, table and value formatting, the API address and path escaping, berth.yaml
 * defaults, and the exit codes of usage errors (routes, envs alerts). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include "cli/args.h"
#include "cli/cli.h"
#include "cli/client.h"
#include "cli/cmd.h"
#include "cli/ndjson.h"
#include "cli/output.h"
#include "util/timeutil.h"

/* ---- flags ---- */

static int parse(struct cli_opts *o, cli_flags_t allowed, struct err *e, ...)
{
	char *argv[32];
	int argc = 0;
	va_list ap;
	va_start(ap, e);
	for (char *a; (a = va_arg(ap, char *));)
		argv[argc++] = a;
	va_end(ap);
	memset(o, 0, sizeof *o);
	return cli_parse_flags(argc, argv, allowed, false, o, NULL, e);
}

static void test_flags_long_short_and_positions(void **state)
{
	struct cli_opts o;
	struct err e = ERR_INIT;
	unsigned all = F_COMMON | F_FOLLOW | F_LINES | F_PROCESS | F_SINCE | F_MESSAGE;
	assert_int_equal(parse(&o, all, &e, "web=3", "--app", "web", "--env=staging", "-fn5",
			       "worker=1", "--json", "-m", "hi there", "--process=worker", NULL), 0);
	assert_string_equal(o.app, "web");
	assert_string_equal(o.env, "staging");
	assert_true(o.follow);
	assert_string_equal(o.lines, "5");
	assert_true(o.json);
	assert_string_equal(o.message, "hi there");
	assert_string_equal(o.process, "worker");
	assert_int_equal(o.npos, 2);
	assert_string_equal(o.pos[0], "web=3");
	assert_string_equal(o.pos[1], "worker=1");
	assert_true(o.set & F_FOLLOW);
	assert_false(o.set & F_SINCE);
	cli_opts_free(&o);

	/* -n N as two args, value that looks like a flag, "--" ends flags, "-" is positional. */
	assert_int_equal(parse(&o, all, &e, "-n", "20", "--message", "--not-a-flag", "-", "--",
			       "--app", "-x", NULL), 0);
	assert_string_equal(o.lines, "20");
	assert_string_equal(o.message, "--not-a-flag");
	assert_null(o.app);
	assert_int_equal(o.npos, 3);
	assert_string_equal(o.pos[0], "-");
	assert_string_equal(o.pos[1], "--app");
	assert_string_equal(o.pos[2], "-x");
	cli_opts_free(&o);

	/* A repeated flag keeps its last value. */
	assert_int_equal(parse(&o, all, &e, "--app", "a", "--app", "b", NULL), 0);
	assert_string_equal(o.app, "b");
	cli_opts_free(&o);
}

static void test_flags_errors(void **state)
{
	struct cli_opts o;
	struct err e = ERR_INIT;
	assert_int_equal(parse(&o, F_COMMON, &e, "--bogus", NULL), -1);
	assert_string_equal(e.msg, "unknown flag --bogus");
	cli_opts_free(&o);
	assert_int_equal(parse(&o, F_COMMON, &e, "--bogus=1", NULL), -1);
	assert_string_equal(e.msg, "unknown flag --bogus");
	cli_opts_free(&o);
	assert_int_equal(parse(&o, F_COMMON, &e, "-z", NULL), -1);
	assert_string_equal(e.msg, "unknown flag -z");
	cli_opts_free(&o);
	assert_int_equal(parse(&o, F_COMMON, &e, "--follow", NULL), -1);
	assert_string_equal(e.msg, "flag --follow does not apply to this verb");
	cli_opts_free(&o);
	assert_int_equal(parse(&o, F_COMMON, &e, "-f", NULL), -1);
	assert_string_equal(e.msg, "flag --follow does not apply to this verb");
	cli_opts_free(&o);
	assert_int_equal(parse(&o, F_COMMON, &e, "ps", "--app", NULL), -1);
	assert_string_equal(e.msg, "flag --app needs a value");
	cli_opts_free(&o);
	assert_int_equal(parse(&o, F_COMMON | F_LINES, &e, "-n", NULL), -1);
	assert_string_equal(e.msg, "flag -n (--lines) needs a value");
	cli_opts_free(&o);
	assert_int_equal(parse(&o, F_COMMON, &e, "--json=yes", NULL), -1);
	assert_string_equal(e.msg, "flag --json takes no value");
	cli_opts_free(&o);
}

static void test_flags_stop_at_verb(void **state)
{
	char *argv[] = {"--api", "http://x:1", "--json", "ps", "--app", "web"};
	struct cli_opts o = {0};
	struct err e = ERR_INIT;
	int next = -1;
	assert_int_equal(cli_parse_flags(6, argv, F_COMMON, true, &o, &next, &e), 0);
	assert_int_equal(next, 3);
	assert_string_equal(o.api, "http://x:1");
	assert_true(o.json);
	assert_null(o.app);
	assert_int_equal(o.npos, 0);
	cli_opts_free(&o);
	assert_string_equal(cli_flag_name(F_SINCE), "since");
	assert_string_equal(cli_flag_name(0), "");
}

static void test_flags_routes_and_router(void **state)
{
	struct cli_opts o;
	struct err e = ERR_INIT;
	unsigned routes = F_COMMON | F_PROCESS | F_STRIP | F_BALANCE;
	assert_int_equal(parse(&o, routes, &e, "add", "site.test/careers", "--app", "old",
			       "--strip-prefix", "--balance", "least-conn", "--process=api", NULL), 0);
	assert_true(o.strip_prefix);
	assert_true(o.set & F_STRIP);
	assert_string_equal(o.balance, "least-conn");
	assert_string_equal(o.process, "api");
	assert_false(o.router);
	assert_int_equal(o.npos, 2);
	assert_string_equal(o.pos[1], "site.test/careers");
	cli_opts_free(&o);
	assert_int_equal(parse(&o, routes, &e, "--balance=round-robin", NULL), 0);
	assert_string_equal(o.balance, "round-robin");
	assert_false(o.strip_prefix);
	cli_opts_free(&o);
	assert_int_equal(parse(&o, routes, &e, "--balance", NULL), -1);
	assert_string_equal(e.msg, "flag --balance needs a value");
	cli_opts_free(&o);
	assert_int_equal(parse(&o, routes, &e, "--strip-prefix=yes", NULL), -1);
	assert_string_equal(e.msg, "flag --strip-prefix takes no value");
	cli_opts_free(&o);
	assert_int_equal(parse(&o, routes, &e, "--router", NULL), -1);
	assert_string_equal(e.msg, "flag --router does not apply to this verb");
	cli_opts_free(&o);

	unsigned logs = F_COMMON | F_FOLLOW | F_LINES | F_SINCE | F_PROCESS | F_ROUTER;
	assert_int_equal(parse(&o, logs, &e, "--router", "-fn", "20", NULL), 0);
	assert_true(o.router);
	assert_true(o.follow);
	assert_string_equal(o.lines, "20");
	cli_opts_free(&o);
	assert_int_equal(parse(&o, logs, &e, "--strip-prefix", NULL), -1);
	assert_string_equal(e.msg, "flag --strip-prefix does not apply to this verb");
	cli_opts_free(&o);
	assert_string_equal(cli_flag_name(F_STRIP), "strip-prefix");
	assert_string_equal(cli_flag_name(F_BALANCE), "balance");
	assert_string_equal(cli_flag_name(F_ROUTER), "router");

	/* --error-pages DIR: only where the verb takes it, and never without its value. */
	unsigned add = routes | F_ERROR_PAGES;
	assert_int_equal(parse(&o, add, &e, "add", "h/p", "--app", "a", "--error-pages", "/x", NULL), 0);
	assert_string_equal(o.error_pages, "/x");
	assert_true(o.set & F_ERROR_PAGES);
	assert_string_equal(o.app, "a");
	assert_int_equal(o.npos, 2);
	assert_string_equal(o.pos[0], "add");
	assert_string_equal(o.pos[1], "h/p");
	cli_opts_free(&o);
	assert_int_equal(parse(&o, add, &e, "add", "h/p", "--error-pages=/srv/errors", "--app=a", NULL), 0);
	assert_string_equal(o.error_pages, "/srv/errors");
	cli_opts_free(&o);
	assert_int_equal(parse(&o, add, &e, "add", "h/p", "--app", "a", "--error-pages", NULL), -1);
	assert_string_equal(e.msg, "flag --error-pages needs a value");
	cli_opts_free(&o);
	assert_int_equal(parse(&o, routes, &e, "add", "h/p", "--error-pages", "/x", NULL), -1);
	assert_string_equal(e.msg, "flag --error-pages does not apply to this verb");
	cli_opts_free(&o);
	assert_string_equal(cli_flag_name(F_ERROR_PAGES), "error-pages");
}

static void test_flags_webhook_and_clear(void **state)
{
	struct cli_opts o;
	struct err e = ERR_INIT;
	unsigned envs = F_CONN | F_JSON | F_HELP | F_WEBHOOK | F_CLEAR;
	/* --webhook adds up (unlike other flags), in order. */
	assert_int_equal(parse(&o, envs, &e, "alerts", "staging", "--webhook", "https://a.example.com/1",
			       "--webhook=https://b.example.com/2", "--json", NULL), 0);
	assert_int_equal(o.nwebhooks, 2);
	assert_string_equal(o.webhooks[0], "https://a.example.com/1");
	assert_string_equal(o.webhooks[1], "https://b.example.com/2");
	assert_true(o.set & F_WEBHOOK);
	assert_false(o.clear);
	assert_true(o.json);
	assert_int_equal(o.npos, 2);
	assert_string_equal(o.pos[1], "staging");
	cli_opts_free(&o);
	assert_null(o.webhooks);
	assert_int_equal(o.nwebhooks, 0);

	assert_int_equal(parse(&o, envs, &e, "alerts", "staging", "--clear", NULL), 0);
	assert_true(o.clear);
	assert_int_equal(o.nwebhooks, 0);
	cli_opts_free(&o);
	assert_int_equal(parse(&o, envs, &e, "--clear=yes", NULL), -1);
	assert_string_equal(e.msg, "flag --clear takes no value");
	cli_opts_free(&o);
	assert_int_equal(parse(&o, envs, &e, "alerts", "staging", "--webhook", NULL), -1);
	assert_string_equal(e.msg, "flag --webhook needs a value");
	cli_opts_free(&o);
	assert_int_equal(parse(&o, F_COMMON, &e, "--webhook", "https://a.example.com/1", NULL), -1);
	assert_string_equal(e.msg, "flag --webhook does not apply to this verb");
	cli_opts_free(&o);

	/* Flags in front of the verb and after it add up too. */
	char *front[] = {"--webhook", "https://a.example.com/1", "envs"};
	char *after[] = {"alerts", "qa", "--webhook", "https://b.example.com/2"};
	struct cli_opts both = {0};
	int next = -1;
	assert_int_equal(cli_parse_flags(3, front, envs, true, &both, &next, &e), 0);
	assert_int_equal(next, 2);
	assert_int_equal(cli_parse_flags(4, after, envs, false, &both, NULL, &e), 0);
	assert_int_equal(both.nwebhooks, 2);
	assert_string_equal(both.webhooks[1], "https://b.example.com/2");
	cli_opts_free(&both);
	assert_string_equal(cli_flag_name(F_WEBHOOK), "webhook");
	assert_string_equal(cli_flag_name(F_CLEAR), "clear");
}

/* ---- argument languages ---- */

static void test_scale_args(void **state)
{
	json_t *f = NULL;
	struct err e = ERR_INIT;
	const char *ok[] = {"web=3", "worker=0", "big-one=10000"};
	assert_int_equal(cli_parse_scale(3, ok, &f, &e), 0);
	assert_int_equal(json_integer_value(json_object_get(f, "web")), 3);
	assert_int_equal(json_integer_value(json_object_get(f, "worker")), 0);
	assert_int_equal(json_integer_value(json_object_get(f, "big-one")), 10000);
	json_decref(f);

	static const struct {
		const char *arg, *msg;
	} bad[] = {
		{"web", "expected PROCESS=COUNT, got \"web\""},
		{"web=", "\"web=\": the count must be a non-negative integer (at most 10000)"},
		{"web=-1", "\"web=-1\": the count must be a non-negative integer (at most 10000)"},
		{"web=+1", "\"web=+1\": the count must be a non-negative integer (at most 10000)"},
		{"web=1.5", "\"web=1.5\": the count must be a non-negative integer (at most 10000)"},
		{"web=10001", "\"web=10001\": the count must be a non-negative integer (at most 10000)"},
		{"web=99999999999999999999999", "\"web=99999999999999999999999\": the count must be a "
						"non-negative integer (at most 10000)"},
		{"web= 2", "\"web= 2\": the count must be a non-negative integer (at most 10000)"},
		{"=2", "\"=2\": \"\" is not a process name (lowercase letters, digits and '-', at most 63)"},
		{"Web=2", "\"Web=2\": \"Web\" is not a process name (lowercase letters, digits and '-', "
			  "at most 63)"},
		{"-web=2", "\"-web=2\": \"-web\" is not a process name (lowercase letters, digits and "
			   "'-', at most 63)"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		const char *args[] = {"ok=1", bad[i].arg};
		f = (json_t *)0x1;
		assert_int_equal(cli_parse_scale(2, args, &f, &e), -1);
		assert_string_equal(e.msg, bad[i].msg);
		assert_ptr_equal(f, (json_t *)0x1);   /* untouched on failure */
	}
	const char *dup[] = {"web=1", "web=2"};
	assert_int_equal(cli_parse_scale(2, dup, &f, &e), -1);
	assert_string_equal(e.msg, "\"web=2\": process web is given twice");
}

static void test_config_args(void **state)
{
	json_t *j = NULL;
	struct err e = ERR_INIT;
	const char *set[] = {"A=1", "URL=postgres://h/db?x=y&z=w", "EMPTY=", "_x9=a b", "A=2"};
	assert_int_equal(cli_parse_config_set(5, set, &j, &e), 0);
	assert_int_equal(json_object_size(j), 4);
	assert_string_equal(json_string_value(json_object_get(j, "A")), "2");
	assert_string_equal(json_string_value(json_object_get(j, "URL")), "postgres://h/db?x=y&z=w");
	assert_string_equal(json_string_value(json_object_get(j, "EMPTY")), "");
	assert_string_equal(json_string_value(json_object_get(j, "_x9")), "a b");
	json_decref(j);

	const char *noeq[] = {"A"};
	assert_int_equal(cli_parse_config_set(1, noeq, &j, &e), -1);
	assert_string_equal(e.msg, "expected KEY=VALUE, got \"A\"");
	const char *badkey[] = {"9A=1"};
	assert_int_equal(cli_parse_config_set(1, badkey, &j, &e), -1);
	assert_string_equal(e.msg, "\"9A=1\": \"9A\" is not a config key (letters, digits and '_', "
				   "not starting with a digit)");
	const char *nokey[] = {"=1"};
	assert_int_equal(cli_parse_config_set(1, nokey, &j, &e), -1);
	const char *dash[] = {"MY-KEY=1"};
	assert_int_equal(cli_parse_config_set(1, dash, &j, &e), -1);
	const char *badutf8[] = {"K=\xff\xfe"};
	assert_int_equal(cli_parse_config_set(1, badutf8, &j, &e), -1);
	assert_string_equal(e.msg, "the value of K is not valid UTF-8");

	const char *unset[] = {"A", "B", "A"};
	assert_int_equal(cli_parse_config_unset(3, unset, &j, &e), 0);
	assert_int_equal(json_array_size(j), 2);
	assert_string_equal(json_string_value(json_array_get(j, 0)), "A");
	assert_string_equal(json_string_value(json_array_get(j, 1)), "B");
	json_decref(j);
	const char *unset_bad[] = {"A", "A=1"};
	assert_int_equal(cli_parse_config_unset(2, unset_bad, &j, &e), -1);
	assert_string_equal(e.msg, "\"A=1\": \"A=1\" is not a config key (letters, digits and '_', "
				   "not starting with a digit)");

	assert_true(cli_config_key_valid("_"));
	assert_true(cli_config_key_valid("Path_2"));
	assert_false(cli_config_key_valid(""));
	assert_false(cli_config_key_valid("a b"));
	assert_false(cli_config_key_valid("é"));
}

static void test_version_and_count(void **state)
{
	int64_t v;
	struct err e = ERR_INIT;
	assert_int_equal(cli_parse_version("v3", &v, &e), 0);
	assert_int_equal(v, 3);
	assert_int_equal(cli_parse_version("12", &v, &e), 0);
	assert_int_equal(v, 12);
	assert_int_equal(cli_parse_version("V7", &v, &e), 0);
	assert_int_equal(v, 7);
	assert_int_equal(cli_parse_version("2147483647", &v, &e), 0);
	const char *bad[] = {"v0", "0", "v", "", "vv3", "v-1", "3a", "2147483648", "v 3", "v3.1"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(cli_parse_version(bad[i], &v, &e), -1);
	assert_string_equal(e.msg, "\"v3.1\" is not a release: expected vN or N, e.g. v3");

	assert_int_equal(cli_parse_count("0", 10, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(cli_parse_count("10", 10, &v), 0);
	assert_int_equal(cli_parse_count("11", 10, &v), -1);
	assert_int_equal(cli_parse_count("", 10, &v), -1);
	assert_int_equal(cli_parse_count(NULL, 10, &v), -1);
	assert_int_equal(cli_parse_count("1e3", 10000, &v), -1);
	assert_int_equal(cli_parse_count("99999999999999999999999999", INT64_MAX / 10, &v), -1);
}

static void route_ok(const char *arg, const char *host, const char *path)
{
	char *h = (char *)"x", *p = (char *)"x";
	struct err e = ERR_INIT;
	if (cli_parse_route_addr(arg, &h, &p, &e))
		fail_msg("\"%s\" refused: %s", arg, e.msg);
	assert_string_equal(h, host);
	assert_string_equal(p, path);
	free(h);
	free(p);
}

static void route_bad(const char *arg, const char *msg)
{
	char *h = (char *)"x", *p = (char *)"x";
	struct err e = ERR_INIT;
	if (!cli_parse_route_addr(arg, &h, &p, &e))
		fail_msg("\"%s\" accepted as %s %s", arg, h, p);
	assert_null(h);
	assert_null(p);
	if (msg)
		assert_string_equal(e.msg, msg);
}

static void test_route_addr(void **state)
{
	route_ok("site.test", "site.test", "/");
	route_ok("site.test/", "site.test", "/");
	route_ok("site.test/careers", "site.test", "/careers");
	route_ok("site.test/careers/", "site.test", "/careers");
	route_bad("site.test/careers//", NULL);   /* "//" is refused, as the server does */
	route_ok("Site.TEST/Careers/Jobs", "site.test", "/Careers/Jobs");   /* only the host folds */
	route_ok("shop.production.localhost", "shop.production.localhost", "/");
	route_ok("my_host-1.example/a.b/..c/x-y_z~", "my_host-1.example", "/a.b/..c/x-y_z~");
	route_ok("localhost/api/v1", "localhost", "/api/v1");
	route_ok("site.test/a:b@c", "site.test", "/a:b@c");   /* split at the first '/' only */

	route_bad("", "\"\": a route starts with its host, e.g. site.test/careers");
	route_bad("/careers", "\"/careers\": a route starts with its host, e.g. site.test/careers");
	route_bad("http://site.test/careers",
		  "\"http://site.test/careers\": give HOST[/PATH] without a scheme, e.g. "
		  "site.test/careers");
	route_bad("site.test:8080",
		  "\"site.test:8080\" has a port: a route matches the Host header without one");
	route_bad("site.test:8080/x", "\"site.test:8080/x\": the host \"site.test:8080\" has a "
		  "port: a route matches the Host header without one");
	route_bad("site!test", "\"site!test\" is not a host name (letters, digits, '-', '.' and '_')");
	route_bad("site..test/x", "\"site..test/x\": the host \"site..test\" is not a host name "
		  "(an empty label between dots)");
	route_bad(".site.test", NULL);
	route_bad("-site.test", NULL);
	route_bad("site.test.", NULL);
	route_bad("*.site.test", NULL);
	route_bad("site test", NULL);
	route_bad("site.t\u00e9st", NULL);
	route_bad("site.test/a b", "\"site.test/a b\": the path holds a space, a control character, "
		  "'?', '#' or '%'");
	route_bad("site.test/a?b", NULL);
	route_bad("site.test/a#b", NULL);
	route_bad("site.test/a%2fb", NULL);
	route_bad("site.test/a\tb", NULL);
	route_bad("site.test/a\x7f", NULL);
	route_bad("site.test//a", "\"site.test//a\": the path holds an empty segment (\"//\")");
	route_bad("site.test/a//b", NULL);
	route_bad("site.test/../etc", "\"site.test/../etc\": the path holds a \".\" or \"..\" segment");
	route_bad("site.test/a/./b", NULL);
	route_bad("site.test/a/..", NULL);
	route_bad("site.test/.", NULL);

	/* Lengths: a 253-character host passes, 254 does not; a path of 1024 passes, 1025 not. */
	char big[1400];
	memset(big, 'a', 253);
	big[253] = 0;
	char *h, *p;
	struct err e = ERR_INIT;
	assert_int_equal(cli_parse_route_addr(big, &h, &p, &e), 0);
	free(h);
	free(p);
	big[253] = 'a';
	big[254] = 0;
	route_bad(big, NULL);
	memcpy(big, "h/", 2);
	memset(big + 2, 'p', 1023);
	big[1025] = 0;   /* path = "/" + 1023 = 1024 characters */
	assert_int_equal(cli_parse_route_addr(big, &h, &p, &e), 0);
	assert_int_equal(strlen(p), 1024);
	free(h);
	free(p);
	big[1025] = 'p';
	big[1026] = 0;
	route_bad(big, NULL);

	assert_true(cli_balance_valid("round-robin"));
	assert_true(cli_balance_valid("least-conn"));
	assert_false(cli_balance_valid("Round-Robin"));
	assert_false(cli_balance_valid("random"));
	assert_false(cli_balance_valid(""));
	assert_false(cli_balance_valid(NULL));
}

/* ---- NDJSON splitting ---- */

struct lines {
	char got[16][64];
	int n;
	int stop_at;   /* return 7 when this line number arrives (0 = never) */
};

static int collect(const char *line, size_t len, void *ud)
{
	struct lines *l = ud;
	assert_true(l->n < 16 && len < 64);
	memcpy(l->got[l->n], line, len);
	l->got[l->n][len] = 0;
	l->n++;
	return l->n == l->stop_at ? 7 : 0;
}

static void test_ndjson_split(void **state)
{
	struct ndjson s;
	struct lines l = {0};
	struct err e = ERR_INIT;
	ndjson_init(&s, 100);
	/* Whole lines, a split line, CRLF, blank lines, a last line with no newline. */
	const char *chunks[] = {"{\"a\":1}\n{\"b\"", ":2}\r\n\n", "", "\r\n{\"c\"", ":", "3}\n{\"d\":4}"};
	for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++)
		assert_int_equal(ndjson_feed(&s, chunks[i], strlen(chunks[i]), collect, &l, &e), 0);
	assert_int_equal(l.n, 3);
	assert_int_equal(ndjson_finish(&s, collect, &l), 0);
	assert_int_equal(l.n, 4);
	assert_string_equal(l.got[0], "{\"a\":1}");
	assert_string_equal(l.got[1], "{\"b\":2}");
	assert_string_equal(l.got[2], "{\"c\":3}");
	assert_string_equal(l.got[3], "{\"d\":4}");
	assert_int_equal(ndjson_finish(&s, collect, &l), 0);   /* nothing left */
	assert_int_equal(l.n, 4);

	/* Byte at a time gives the same lines. */
	struct lines l2 = {0};
	const char *all = "one\ntwo\r\nthree\n";
	for (const char *p = all; *p; p++)
		assert_int_equal(ndjson_feed(&s, p, 1, collect, &l2, &e), 0);
	assert_int_equal(l2.n, 3);
	assert_string_equal(l2.got[2], "three");
	ndjson_free(&s);
}

static void test_ndjson_limits_and_stop(void **state)
{
	struct ndjson s;
	struct lines l = {0};
	struct err e = ERR_INIT;
	char big[40];
	memset(big, 'x', sizeof big);
	ndjson_init(&s, 16);
	/* Exactly the limit is fine; one more byte is not, whole or split across chunks. */
	assert_int_equal(ndjson_feed(&s, big, 16, collect, &l, &e), 0);
	assert_int_equal(ndjson_feed(&s, "\n", 1, collect, &l, &e), 0);
	assert_int_equal(l.n, 1);
	assert_int_equal(ndjson_feed(&s, big, 10, collect, &l, &e), 0);
	assert_int_equal(ndjson_feed(&s, big, 7, collect, &l, &e), -1);
	assert_int_equal(e.code, ERR_TOOBIG);
	assert_string_equal(e.msg, "the server sent a line longer than 16 bytes");
	ndjson_free(&s);

	ndjson_init(&s, 16);
	char line[] = "xxxxxxxxxxxxxxxxx\n";   /* 17 bytes before '\n', in one chunk */
	assert_int_equal(ndjson_feed(&s, line, strlen(line), collect, &l, &e), -1);
	ndjson_free(&s);

	/* The callback's value stops the feed and comes back. */
	ndjson_init(&s, 100);
	struct lines l3 = {.stop_at = 2};
	const char *three = "a\nb\nc\n";
	assert_int_equal(ndjson_feed(&s, three, strlen(three), collect, &l3, &e), 7);
	assert_int_equal(l3.n, 2);
	ndjson_free(&s);
}

/* ---- output ---- */

static void test_table(void **state)
{
	const char *head[] = {"NAME", "STATE", "LAST EXIT"};
	struct table *t = table_new(3, head);
	const char *r1[] = {"web.1", "running", NULL};
	const char *r2[] = {"worker.10", "backoff", "exit status 1"};
	const char *r3[] = {"été", "a\tb\nc\x1b[2J", ""};
	table_add(t, r1);
	table_add(t, r2);
	table_add(t, r3);
	struct buf b = BUF_INIT;
	table_render(t, &b);
	assert_string_equal(b.p,
			    "NAME       STATE           LAST EXIT\n"
			    "web.1      running         -\n"
			    "worker.10  backoff         exit status 1\n"
			    "été        a\\tb\\nc\\x1b[2J\n");
	buf_free(&b);
	table_free(t);
	table_free(NULL);
}

static void test_formats(void **state)
{
	struct buf b = BUF_INIT;
	static const struct {
		double s;
		const char *want;
	} d[] = {{0, "0ms"}, {-3, "0ms"}, {0.0844, "84ms"}, {0.9999, "1000ms"}, {1, "1s"},
		 {59.9, "59s"}, {60, "1m00s"}, {184, "3m04s"}, {3600, "1h00m"}, {7500, "2h05m"},
		 {86400, "1d00h"}, {273600, "3d04h"}};
	for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) {
		buf_reset(&b);
		fmt_duration(&b, d[i].s);
		assert_string_equal(b.p, d[i].want);
	}
	int64_t now = 1795000000LL * 1000000;   /* 2026-11-18T... */
	static const struct {
		int64_t ago_s;
		const char *want;
	} a[] = {{0, "just now"}, {-100, "just now"}, {1, "1s ago"}, {59, "59s ago"},
		 {60, "1m ago"}, {3599, "59m ago"}, {3600, "1h ago"}, {86399, "23h ago"},
		 {86400, "1d ago"}, {59 * 86400, "59d ago"}};
	for (size_t i = 0; i < sizeof a / sizeof a[0]; i++) {
		buf_reset(&b);
		fmt_ago(&b, now - a[i].ago_s * 1000000, now);
		assert_string_equal(b.p, a[i].want);
	}
	int64_t then;
	assert_int_equal(time_parse_rfc3339("2026-01-02T03:04:05Z", &then), 0);
	buf_reset(&b);
	fmt_ago(&b, then, then + 61LL * 86400 * 1000000);
	assert_string_equal(b.p, "2026-01-02");
	buf_reset(&b);
	fmt_ago_str(&b, "not a time", now);
	assert_string_equal(b.p, "not a time");
	buf_reset(&b);
	fmt_ago_str(&b, NULL, now);
	assert_string_equal(b.p, "-");

	static const struct {
		int64_t n;
		const char *want;
	} sz[] = {{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {12595, "12.3 KiB"},
		  {1048575, "1.0 MiB"}, {4194304, "4.0 MiB"}, {5LL << 30, "5.0 GiB"},
		  {3LL << 50, "3072.0 TiB"}};
	for (size_t i = 0; i < sizeof sz / sizeof sz[0]; i++) {
		buf_reset(&b);
		fmt_bytes(&b, sz[i].n);
		assert_string_equal(b.p, sz[i].want);
	}

	static const struct {
		const char *in, *want;
	} ts[] = {{"2026-11-24T20:19:13.123456Z", "2026-11-24T20:19:13.123Z"},
		  {"2026-11-24T20:19:13Z", "2026-11-24T20:19:13.000Z"},
		  {"2026-11-24T21:19:13.9+01:00", "2026-11-24T20:19:13.900Z"},
		  {"garbage", "garbage"}};
	for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
		buf_reset(&b);
		fmt_ts_ms(&b, ts[i].in);
		assert_string_equal(b.p, ts[i].want);
	}

	json_t *j = json_loads("{\"r\":3,\"z\":0,\"n\":null,\"f\":{\"web\":2,\"worker\":0},"
			       "\"e\":{}}", JSON_PRESERVE_ORDER, NULL);
	const char *want_rel[] = {"v3", "-", "-"};
	const char *keys[] = {"r", "z", "n"};
	for (int i = 0; i < 3; i++) {
		buf_reset(&b);
		fmt_release(&b, json_object_get(j, keys[i]));
		assert_string_equal(b.p, want_rel[i]);
	}
	buf_reset(&b);
	fmt_formation(&b, json_object_get(j, "f"));
	assert_string_equal(b.p, "web=2 worker=0");
	buf_reset(&b);
	fmt_formation(&b, json_object_get(j, "e"));
	assert_string_equal(b.p, "-");
	json_decref(j);
	buf_free(&b);
}

static void test_json_print(void **state)
{
	json_t *doc = json_loads("{\"b\":12.3,\"a\":[1,\"x\"],\"c\":null}", 0, NULL);
	char *out = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&out, &n);
	assert_int_equal(json_print_doc(doc, f), 0);
	fclose(f);
	assert_string_equal(out, "{\n  \"b\": 12.3,\n  \"a\": [\n    1,\n    \"x\"\n  ],\n"
				 "  \"c\": null\n}\n");
	free(out);
	json_decref(doc);
}

/* ---- client helpers (no network) ---- */

static void test_base_url_and_escape(void **state)
{
	struct err e = ERR_INIT;
	char *u = client_base_url("127.0.0.1:7070", &e);
	assert_string_equal(u, "http://127.0.0.1:7070");
	free(u);
	u = client_base_url("https://berth.example.com/", &e);
	assert_string_equal(u, "https://berth.example.com");
	free(u);
	u = client_base_url("HTTP://h:1//", &e);
	assert_string_equal(u, "HTTP://h:1");
	free(u);
	assert_null(client_base_url("ftp://h", &e));
	assert_string_equal(e.msg, "API address \"ftp://h\": only http:// and https:// are supported");
	assert_null(client_base_url("http://", &e));
	assert_null(client_base_url("", &e));

	struct buf b = BUF_INIT;
	client_escape(&b, "web-1_a.b~");
	client_escape(&b, "/../x y?&=%\xc3\xa9");
	assert_string_equal(b.p, "web-1_a.b~%2F..%2Fx%20y%3F%26%3D%25%C3%A9");
	buf_free(&b);
}

/* ---- client against a canned one-shot HTTP server (a forked child) ---- */

struct canned {
	int port;
	pid_t pid;
	int req_fd;          /* the request as the child received it */
};

/* Serve one connection: read the request (head + Content-Length body), send it back to the
 * parent through a pipe, answer with `response` (written in pieces at each '|' with a pause,
 * so a chunked stream really arrives in several reads), close. */
static void canned_start(struct canned *cs, const char *response)
{
	int ls = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(ls, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(ls, 1), 0);
	socklen_t al = sizeof a;
	getsockname(ls, (struct sockaddr *)&a, &al);
	cs->port = ntohs(a.sin_port);
	int p[2];
	assert_int_equal(pipe(p), 0);
	fflush(stdout);
	fflush(stderr);
	cs->pid = fork();
	assert_true(cs->pid >= 0);
	if (cs->pid == 0) {
		close(p[0]);
		int c = accept(ls, NULL, NULL);
		char req[65536];
		size_t n = 0;
		for (;;) {
			ssize_t r = read(c, req + n, sizeof req - 1 - n);
			if (r <= 0)
				break;
			n += (size_t)r;
			req[n] = 0;
			char *end = strstr(req, "\r\n\r\n");
			if (!end)
				continue;
			char *cl = strcasestr(req, "\r\nContent-Length:");
			size_t want = (size_t)(end + 4 - req) + (cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0);
			if (n >= want)
				break;
		}
		if (write(p[1], req, n) < 0)
			_exit(1);
		close(p[1]);
		for (const char *r = response; *r;) {
			const char *bar = strchr(r, '|');
			size_t len = bar ? (size_t)(bar - r) : strlen(r);
			if (write(c, r, len) < 0)
				_exit(1);
			usleep(20000);
			r += len + (bar ? 1 : 0);
		}
		shutdown(c, SHUT_RDWR);
		close(c);
		_exit(0);
	}
	close(ls);
	close(p[1]);
	cs->req_fd = p[0];
}

/* A plain answer with a Content-Length that matches body. */
static void canned_answer(struct canned *cs, const char *status, const char *body)
{
	char *resp = xasprintf("HTTP/1.1 %s\r\nContent-Length: %zu\r\n\r\n%s", status,
			       strlen(body), body);
	canned_start(cs, resp);
	free(resp);
}

/* Wait for the child; the request it saw (caller frees). */
static char *canned_finish(struct canned *cs)
{
	struct buf b = BUF_INIT;
	char chunk[4096];
	ssize_t r;
	while ((r = read(cs->req_fd, chunk, sizeof chunk)) > 0)
		buf_add(&b, chunk, (size_t)r);
	close(cs->req_fd);
	int st;
	waitpid(cs->pid, &st, 0);
	return b.p ? buf_detach(&b) : strdup("");
}

static void open_client(struct client *c, const struct canned *cs, const char *token)
{
	char api[64];
	struct err e = ERR_INIT;
	snprintf(api, sizeof api, "127.0.0.1:%d", cs->port);
	unsetenv("BERTH_TOKEN");
	unsetenv("BERTH_DATA");
	assert_int_equal(client_open(c, api, token, NULL, &e), 0);
}

static void test_client_json(void **state)
{
	struct canned cs;
	struct client c;
	struct err e = ERR_INIT;
	json_t *out = NULL;
	canned_answer(&cs, "200 OK", "{\"envs\":[{\"name\":\"x\"}]}");
	open_client(&c, &cs, "berth_tok");
	json_t *body = json_pack("{s:i}", "version", 3);
	assert_int_equal(client_json(&c, "POST", "/v1/envs/e/apps/a/x", body, &out, &e), 0);
	json_decref(body);
	char *req = canned_finish(&cs);
	assert_non_null(strstr(req, "POST /v1/envs/e/apps/a/x HTTP/1.1\r\n"));
	assert_non_null(strstr(req, "Authorization: Bearer berth_tok\r\n"));
	assert_non_null(strstr(req, "Content-Type: application/json\r\n"));
	assert_null(strstr(req, "Expect:"));
	assert_non_null(strstr(req, "\r\n\r\n{\"version\":3}"));
	assert_string_equal(json_string_value(json_object_get(json_array_get(
				json_object_get(out, "envs"), 0), "name")), "x");
	json_decref(out);
	free(req);
	client_close(&c);
}

static void test_client_errors(void **state)
{
	struct canned cs;
	struct client c;
	struct err e = ERR_INIT;
	json_t *out = NULL;
	char want[256];

	canned_answer(&cs, "404 Not Found", "{\"error\":\"unknown app shop in prod\"}");
	open_client(&c, &cs, "t");
	assert_int_equal(client_json(&c, "GET", "/v1/envs/prod/apps/shop", NULL, &out, &e), -1);
	free(canned_finish(&cs));
	assert_int_equal(e.code, ERR_NOTFOUND);
	assert_string_equal(e.msg, "unknown app shop in prod");
	client_close(&c);

	canned_answer(&cs, "401 Unauthorized", "{\"error\":\"no.\"}\n");
	open_client(&c, &cs, NULL);
	assert_int_equal(client_json(&c, "GET", "/v1/envs", NULL, &out, &e), -1);
	char *req = canned_finish(&cs);
	assert_null(strstr(req, "Authorization:"));
	free(req);
	assert_int_equal(e.code, ERR_AUTH);
	assert_string_equal(e.msg, "no. (no API token found: set BERTH_TOKEN, pass --token TOKEN, or "
				   "on the server's machine pass --data DIR to use DIR/admin.token)");
	client_close(&c);

	canned_answer(&cs, "401 Unauthorized", "{\"error\":\"no.\"}");
	open_client(&c, &cs, "bad");
	assert_int_equal(client_json(&c, "GET", "/v1/envs", NULL, &out, &e), -1);
	free(canned_finish(&cs));
	assert_string_equal(e.msg, "no. (the token from --token was not accepted: check it, or ask "
				   "an admin for one with `berth tokens create`)");
	assert_null(strstr(e.msg, "bad"));   /* never the token itself */
	client_close(&c);

	canned_answer(&cs, "502 Bad Gateway", "<html>bad\x1b gate</html>\nmore");
	open_client(&c, &cs, "t");
	assert_int_equal(client_json(&c, "GET", "/v1/envs", NULL, &out, &e), -1);
	free(canned_finish(&cs));
	snprintf(want, sizeof want, "the server at http://127.0.0.1:%d answered HTTP 502: "
		 "<html>bad? gate</html>", cs.port);
	assert_string_equal(e.msg, want);
	client_close(&c);

	canned_answer(&cs, "200 OK", "[1]");
	open_client(&c, &cs, "t");
	assert_int_equal(client_json(&c, "GET", "/v1/envs", NULL, &out, &e), -1);
	free(canned_finish(&cs));
	assert_non_null(strstr(e.msg, "sent an answer that is not a JSON object"));
	client_close(&c);

	/* Nothing listening: the message names the URL and what to do. */
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof a;
	bind(s, (struct sockaddr *)&a, sizeof a);
	getsockname(s, (struct sockaddr *)&a, &al);
	close(s);   /* a port that was free a moment ago */
	cs.port = ntohs(a.sin_port);
	open_client(&c, &cs, "t");
	assert_int_equal(client_json(&c, "GET", "/v1/envs", NULL, &out, &e), -1);
	snprintf(want, sizeof want, "cannot reach the berth server at http://127.0.0.1:%d: "
		 "connection refused (is `berth server` running?)", cs.port);
	assert_string_equal(e.msg, want);
	client_close(&c);
}

static void test_client_stream(void **state)
{
	struct canned cs;
	struct client c;
	struct err e = ERR_INIT;
	struct lines l = {0};
	/* Chunked NDJSON whose lines straddle chunks and reads. */
	canned_start(&cs, "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
			  "Transfer-Encoding: chunked\r\n\r\n"
			  "8\r\n{\"a\":1}\n\r\n|4\r\n{\"b\"\r\n|4\r\n:2}\n\r\n|3\r\n{}\n\r\n|0\r\n\r\n");
	open_client(&c, &cs, "t");
	assert_int_equal(client_stream(&c, "POST", "/v1/x", "application/gzip", "\x1f\x8b", 2,
				       collect, &l, &e), 0);
	char *req = canned_finish(&cs);
	assert_non_null(strstr(req, "Content-Type: application/gzip\r\n"));
	assert_non_null(strstr(req, "Content-Length: 2\r\n"));
	free(req);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.got[0], "{\"a\":1}");
	assert_string_equal(l.got[1], "{\"b\":2}");
	assert_string_equal(l.got[2], "{}");
	client_close(&c);

	/* A 4xx answer to a stream request is an error with the server's message. */
	struct lines l2 = {0};
	canned_answer(&cs, "400 Bad Request", "{\"error\":\"Procfile:1:4: expected ':' after the name\"}");
	open_client(&c, &cs, "t");
	assert_int_equal(client_stream(&c, "POST", "/v1/x", NULL, NULL, 0, collect, &l2, &e), -1);
	free(canned_finish(&cs));
	assert_int_equal(l2.n, 0);
	assert_string_equal(e.msg, "Procfile:1:4: expected ':' after the name");
	client_close(&c);

	/* The callback stops the stream: its value comes back. */
	struct lines l3 = {.stop_at = 1};
	canned_answer(&cs, "200 OK", "x\ny\nz\nw\n");
	open_client(&c, &cs, "t");
	assert_int_equal(client_stream(&c, "GET", "/v1/x", NULL, NULL, 0, collect, &l3, &e), 7);
	free(canned_finish(&cs));
	assert_int_equal(l3.n, 1);
	client_close(&c);
}

/* ---- berth.yaml defaults ---- */

static char *write_tmp(const char *text)
{
	char *path = strdup("/tmp/test_cli_yaml_XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static int defaults(const char *text, char **app, char **env, struct err *e)
{
	char *path = write_tmp(text);
	int rc = cli_yaml_defaults(path, app, env, e);
	unlink(path);
	free(path);
	return rc;
}

static void test_yaml_defaults(void **state)
{
	char *app, *env;
	struct err e = ERR_INIT;
	assert_int_equal(cli_yaml_defaults("/nonexistent/berth.yaml", &app, &env, &e), 0);
	assert_null(app);
	assert_null(env);

	/* Only the top-level keys count; nested app: keys and other content are skipped. */
	assert_int_equal(defaults("processes:\n  web:\n    app: nested\n    command: x\n"
				  "app: shop\nenv: \"staging\"\nother: [1, 2, {app: no}]\n",
				  &app, &env, &e), 0);
	assert_string_equal(app, "shop");
	assert_string_equal(env, "staging");
	free(app);
	free(env);

	assert_int_equal(defaults("app: only\n", &app, &env, &e), 0);
	assert_string_equal(app, "only");
	assert_null(env);
	free(app);

	assert_int_equal(defaults("", &app, &env, &e), 0);
	assert_null(app);
	assert_int_equal(defaults("just a scalar\n", &app, &env, &e), 0);
	assert_null(app);
	/* A complex key does not confuse which scalar is a key. */
	assert_int_equal(defaults("? [a, b]\n: app\nx: y\napp: real\n", &app, &env, &e), 0);
	assert_string_equal(app, "real");
	free(app);

	assert_int_equal(defaults("env: prod\napp:\n  - x\n", &app, &env, &e), -1);
	assert_string_equal(strchr(e.msg, ':'), ":3:3: app: expected a name");
	assert_null(app);
	assert_null(env);
	assert_int_equal(defaults("base: &b web\napp: *b\n", &app, &env, &e), -1);
	assert_string_equal(strchr(e.msg, ':'), ":2:6: app: expected a name");
	assert_int_equal(defaults("app: \"\"\n", &app, &env, &e), -1);
	assert_int_equal(defaults("- app\n", &app, &env, &e), -1);
	assert_string_equal(strchr(e.msg, ':'), ":1:1: expected a mapping at the top");
	assert_int_equal(defaults("app: web\nprocesses: [\n", &app, &env, &e), -1);
	assert_non_null(strstr(e.msg, ":3:1: YAML syntax error: "));
}

/* ---- whole command lines that must fail before any network use ---- */

/* cli_main("berth", args..., NULL) with its output thrown away; its exit status. */
static int run_args(const char *first, ...)
{
	char *argv[16] = {"berth"};
	int argc = 1;
	va_list ap;
	va_start(ap, first);
	for (const char *a = first; a; a = va_arg(ap, const char *))
		argv[argc++] = (char *)a;
	va_end(ap);
	fflush(stdout);
	fflush(stderr);
	/* Keep the test's output readable: the CLI's messages go to /dev/null. */
	int out = dup(1), err = dup(2);
	FILE *null = fopen("/dev/null", "w");
	dup2(fileno(null), 1);
	dup2(fileno(null), 2);
	int rc = cli_main(argc, argv);
	fflush(stdout);
	fflush(stderr);
	dup2(out, 1);
	dup2(err, 2);
	close(out);
	close(err);
	fclose(null);
	return rc;
}

static void test_exit_codes(void **state)
{
	unsetenv("BERTH_TOKEN");
	unsetenv("BERTH_DATA");
	setenv("BERTH_API", "http://127.0.0.1:1", 1);   /* nothing listens on port 1 */
	assert_int_equal(run_args(NULL), EXIT_OK);
	assert_int_equal(run_args("help", NULL), EXIT_OK);
	assert_int_equal(run_args("help", "logs", NULL), EXIT_OK);
	assert_int_equal(run_args("ps", "--help", NULL), EXIT_OK);
	assert_int_equal(run_args("--version", NULL), EXIT_OK);
	assert_int_equal(run_args("version", NULL), EXIT_OK);
	assert_int_equal(run_args("help", "nope", NULL), EXIT_USAGE);
	assert_int_equal(run_args("nope", NULL), EXIT_USAGE);
	assert_int_equal(run_args("--json", NULL), EXIT_USAGE);
	assert_int_equal(run_args("ps", "--app", "web", "--bogus", NULL), EXIT_USAGE);
	assert_int_equal(run_args("ps", "--app", "web", "-f", NULL), EXIT_USAGE);
	assert_int_equal(run_args("--app", "web", "envs", NULL), EXIT_USAGE);
	assert_int_equal(run_args("scale", "web=x", "--app", "web", NULL), EXIT_USAGE);
	assert_int_equal(run_args("config", "set", "1A=b", "--app=web", NULL), EXIT_USAGE);
	assert_int_equal(run_args("config", "set", "--app=web", NULL), EXIT_USAGE);
	assert_int_equal(run_args("config", "A=b", "--app=web", NULL), EXIT_USAGE);
	assert_int_equal(run_args("rollback", "vx", "--app", "web", NULL), EXIT_USAGE);
	assert_int_equal(run_args("logs", "-n", "lots", "--app=web", NULL), EXIT_USAGE);
	assert_int_equal(run_args("logs", "--since", "yesterday", "--app=web", NULL), EXIT_USAGE);
	assert_int_equal(run_args("volumes", "rm", "data", "--app", "web", NULL), EXIT_USAGE);
	assert_int_equal(run_args("tokens", "create", "ci", "--role=root", NULL), EXIT_USAGE);
	assert_int_equal(run_args("tokens", "create", "ci", NULL), EXIT_USAGE);
	assert_int_equal(run_args("ps", "--app=Bad_Name", NULL), EXIT_USAGE);
	assert_int_equal(run_args("deploy", "/nonexistent-dir", NULL), EXIT_USAGE);
	assert_int_equal(run_args("help", "routes", NULL), EXIT_OK);
	assert_int_equal(run_args("routes", "add", "site.test/careers", NULL), EXIT_USAGE);
	assert_int_equal(run_args("routes", "add", "--app", "old", NULL), EXIT_USAGE);
	assert_int_equal(run_args("routes", "add", "a.test", "b.test", "--app", "old", NULL),
			 EXIT_USAGE);
	assert_int_equal(run_args("routes", "add", "site.test:80", "--app", "old", NULL), EXIT_USAGE);
	assert_int_equal(run_args("routes", "add", "site.test", "--app", "old", "--balance",
				  "random", NULL), EXIT_USAGE);
	assert_int_equal(run_args("routes", "add", "site.test", "--app", "old", "--process", "Web",
				  NULL), EXIT_USAGE);
	assert_int_equal(run_args("routes", "add", "site.test", "--app", "Old", NULL), EXIT_USAGE);
	assert_int_equal(run_args("routes", "remove", "site.test", "--app", "old", NULL),
			 EXIT_USAGE);
	assert_int_equal(run_args("routes", "rm", "/x", NULL), EXIT_USAGE);
	assert_int_equal(run_args("routes", "list", "--strip-prefix", NULL), EXIT_USAGE);
	assert_int_equal(run_args("routes", "list", "extra", NULL), EXIT_USAGE);
	assert_int_equal(run_args("routes", "frob", NULL), EXIT_USAGE);
	assert_int_equal(run_args("logs", "--router", "--app", "web", NULL), EXIT_USAGE);
	assert_int_equal(run_args("logs", "--router", "--process", "web", NULL), EXIT_USAGE);
	assert_int_equal(run_args("logs", "--router", "--env", "staging", NULL), EXIT_USAGE);
	assert_int_equal(run_args("logs", "--router", "-n", "x", NULL), EXIT_USAGE);
	assert_int_equal(run_args("ps", "--router", "--app", "web", NULL), EXIT_USAGE);
	assert_int_equal(run_args("--strip-prefix", "ps", "--app", "web", NULL), EXIT_USAGE);
	assert_int_equal(run_args("routes", "add", "site.test", "--app", "a", "--error-pages", NULL),
			 EXIT_USAGE);
	assert_int_equal(run_args("routes", "add", "site.test", "--app", "a", "--error-pages=", NULL),
			 EXIT_USAGE);
	assert_int_equal(run_args("help", "envs", NULL), EXIT_OK);
	assert_int_equal(run_args("envs", "frob", NULL), EXIT_USAGE);
	assert_int_equal(run_args("envs", "alerts", NULL), EXIT_USAGE);
	assert_int_equal(run_args("envs", "alerts", "Bad_Env", NULL), EXIT_USAGE);
	assert_int_equal(run_args("envs", "alerts", "staging", "qa", NULL), EXIT_USAGE);
	assert_int_equal(run_args("envs", "--webhook", "https://h.example.com/x", NULL), EXIT_USAGE);
	assert_int_equal(run_args("envs", "--clear", NULL), EXIT_USAGE);
	assert_int_equal(run_args("envs", "alerts", "staging", "--webhook", "ftp://h.example.com/x", NULL),
			 EXIT_USAGE);
	assert_int_equal(run_args("envs", "alerts", "staging", "--webhook", "https:///x", NULL), EXIT_USAGE);
	assert_int_equal(run_args("envs", "alerts", "staging", "--webhook", "https://h.example.com/x",
				  "--clear", NULL), EXIT_USAGE);
	assert_int_equal(run_args("envs", "alerts", "staging", "--webhook", "https://h.example.com/x",
				  "--webhook", "https://h.example.com/x", NULL), EXIT_USAGE);
	assert_int_equal(run_args("envs", "alerts", "staging", "--app", "web", NULL), EXIT_USAGE);
	/* No app anywhere (the test runs where there is no berth.yaml app: key). */
	char *cwd = getcwd(NULL, 0);
	assert_int_equal(chdir("/"), 0);
	assert_int_equal(run_args("ps", NULL), EXIT_USAGE);
	/* Valid command lines reach the network, which is not there: exit 1. */
	assert_int_equal(run_args("ps", "--app=web", NULL), EXIT_FAIL);
	assert_int_equal(run_args("envs", NULL), EXIT_FAIL);
	assert_int_equal(run_args("envs", "alerts", "staging", NULL), EXIT_FAIL);
	assert_int_equal(run_args("envs", "alerts", "staging", "--webhook", "https://h.example.com/x",
				  "--webhook", "http://127.0.0.1:9/y", NULL), EXIT_FAIL);
	assert_int_equal(run_args("envs", "alerts", "staging", "--clear", "--json", NULL), EXIT_FAIL);
	assert_int_equal(run_args("routes", "add", "site.test", "--app", "a", "--error-pages", "/",
				  NULL), EXIT_FAIL);
	assert_int_equal(run_args("scale", "web=2", "--app", "web", NULL), EXIT_FAIL);
	assert_int_equal(run_args("routes", NULL), EXIT_FAIL);
	assert_int_equal(run_args("routes", "add", "Site.Test/careers/", "--app", "old",
				  "--strip-prefix", "--balance", "least-conn", NULL), EXIT_FAIL);
	assert_int_equal(run_args("routes", "rm", "site.test/careers", NULL), EXIT_FAIL);
	assert_int_equal(run_args("logs", "--router", "-f", "--since", "10m", NULL), EXIT_FAIL);
	assert_int_equal(chdir(cwd), 0);
	free(cwd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_flags_long_short_and_positions),
		cmocka_unit_test(test_flags_errors),
		cmocka_unit_test(test_flags_stop_at_verb),
		cmocka_unit_test(test_flags_routes_and_router),
		cmocka_unit_test(test_flags_webhook_and_clear),
		cmocka_unit_test(test_scale_args),
		cmocka_unit_test(test_config_args),
		cmocka_unit_test(test_version_and_count),
		cmocka_unit_test(test_route_addr),
		cmocka_unit_test(test_ndjson_split),
		cmocka_unit_test(test_ndjson_limits_and_stop),
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_formats),
		cmocka_unit_test(test_json_print),
		cmocka_unit_test(test_base_url_and_escape),
		cmocka_unit_test(test_client_json),
		cmocka_unit_test(test_client_errors),
		cmocka_unit_test(test_client_stream),
		cmocka_unit_test(test_yaml_defaults),
		cmocka_unit_test(test_exit_codes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
