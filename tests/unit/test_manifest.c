/* test_manifest: berth.yaml, Procfile and server.yaml as a user writes them: every field of
 * a full berth.yaml, the defaults of a minimal one, Procfile variants, the exact
 * file:line:col message of each mistake, the bounds on hostile input, the JSON round trip a
 * release relies on, manifest_load_dir's choice between the files (and a Dockerfile: which
 * one builds, which processes run the built image), server.yaml's router: section (with its
 * error_pages directory checked on disk), and parse_size. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "manifest/manifest.h"
#include "util/buf.h"
#include "util/fsutil.h"

static const char full_yaml[] =
	"app: hello\n"
	"env: staging\n"
	"config:\n"
	"  GREETING: hello\n"
	"  WORKERS: 4\n"
	"  DEBUG: false\n"
	"  EMPTY: \"\"\n"
	"processes:\n"
	"  web:\n"
	"    command: python3 -m http.server $PORT\n"
	"    instances: 2\n"
	"    port: true\n"
	"    health:\n"
	"      http: /healthz\n"
	"      interval: 2s\n"
	"      timeout: 1500ms\n"
	"      retries: 4\n"
	"      deadline: 1m\n"
	"      startup: 300ms\n"
	"    profile: small\n"
	"    volumes: [data, my-cache]\n"
	"    stop_grace: 5s\n"
	"  worker:\n"
	"    command: ./worker.sh --queue default\n"
	"    instances: 0\n"
	"    health:\n"
	"      exec: \"test -f ready\"\n"
	"    volumes:\n"
	"      data: DATA_DIR\n"
	"      scratch:\n";

static void parse_ok(const char *yaml, struct manifest *m)
{
	struct err e = ERR_INIT;
	if (manifest_parse_yaml("berth.yaml", yaml, strlen(yaml), m, &e) < 0)
		fail_msg("unexpected error: %s", e.msg);
}

static void test_full_yaml(void **state)
{
	struct manifest m;
	parse_ok(full_yaml, &m);
	assert_string_equal(m.source, "berth.yaml");
	assert_string_equal(m.app, "hello");
	assert_string_equal(m.env, "staging");
	assert_int_equal(m.nvars, 4);
	assert_string_equal(m.vars[0].name, "GREETING");
	assert_string_equal(m.vars[0].value, "hello");
	assert_string_equal(m.vars[1].value, "4");          /* numbers keep their text */
	assert_string_equal(m.vars[2].value, "false");
	assert_string_equal(m.vars[3].value, "");
	assert_int_equal(m.nprocs, 2);

	const struct process_spec *w = manifest_process(&m, "web");
	assert_non_null(w);
	assert_string_equal(w->command, "python3 -m http.server $PORT");
	assert_int_equal(w->instances, 2);
	assert_true(w->port);
	assert_int_equal(w->health.kind, HEALTH_HTTP);
	assert_string_equal(w->health.path, "/healthz");
	assert_int_equal(w->health.interval_ms, 2000);
	assert_int_equal(w->health.timeout_ms, 1500);
	assert_int_equal(w->health.retries, 4);
	assert_int_equal(w->health.deadline_ms, 60000);
	assert_int_equal(w->health.startup_ms, 300);
	assert_string_equal(w->profile, "small");
	assert_int_equal(w->nvolumes, 2);
	assert_string_equal(w->volumes[0].name, "data");
	assert_string_equal(w->volumes[0].env_var, "BERTH_VOLUME_DATA");
	assert_string_equal(w->volumes[1].name, "my-cache");
	assert_string_equal(w->volumes[1].env_var, "BERTH_VOLUME_MY_CACHE");
	assert_int_equal(w->stop_grace_ms, 5000);

	const struct process_spec *k = manifest_process(&m, "worker");
	assert_non_null(k);
	assert_ptr_equal(k, &m.procs[1]);
	assert_int_equal(k->instances, 0);
	assert_false(k->port);
	assert_int_equal(k->health.kind, HEALTH_EXEC);
	assert_string_equal(k->health.command, "test -f ready");
	assert_null(k->profile);
	assert_int_equal(k->nvolumes, 2);
	assert_string_equal(k->volumes[0].env_var, "DATA_DIR");
	assert_string_equal(k->volumes[1].env_var, "BERTH_VOLUME_SCRATCH");
	assert_null(manifest_process(&m, "clock"));
	manifest_free(&m);
	manifest_free(&m);            /* a freed manifest is zeroed: freeing again is harmless */
}

static void test_defaults(void **state)
{
	struct manifest m;
	parse_ok("processes:\n  web:\n    command: ./server\n  worker:\n    command: ./w\n", &m);
	assert_null(m.app);
	assert_null(m.env);
	assert_int_equal(m.nvars, 0);
	const struct process_spec *w = &m.procs[0], *k = &m.procs[1];
	assert_string_equal(w->name, "web");
	assert_int_equal(w->instances, 1);
	assert_true(w->port);
	assert_int_equal(w->health.kind, HEALTH_TCP);
	assert_null(w->health.path);
	assert_int_equal(w->health.interval_ms, 2000);
	assert_int_equal(w->health.timeout_ms, 1000);
	assert_int_equal(w->health.retries, 3);
	assert_int_equal(w->health.deadline_ms, 30000);
	assert_int_equal(w->health.startup_ms, 300);
	assert_int_equal(w->stop_grace_ms, 10000);
	assert_null(w->profile);
	assert_int_equal(w->nvolumes, 0);
	assert_string_equal(k->name, "worker");
	assert_false(k->port);
	assert_int_equal(k->health.kind, HEALTH_NONE);
	manifest_free(&m);

	/* The default check follows port:, and health timings alone keep the default kind. */
	parse_ok("processes:\n"
		 "  web: {command: x, port: false}\n"
		 "  api: {command: y, port: true, health: {interval: 5s}}\n"
		 "  site: {command: z, port: true, health: none}\n"
		 "  tick: {command: t, health: {tcp: true}, port: true}\n", &m);
	assert_false(m.procs[0].port);
	assert_int_equal(m.procs[0].health.kind, HEALTH_NONE);
	assert_int_equal(m.procs[1].health.kind, HEALTH_TCP);
	assert_int_equal(m.procs[1].health.interval_ms, 5000);
	assert_true(m.procs[2].port);
	assert_int_equal(m.procs[2].health.kind, HEALTH_NONE);
	assert_int_equal(m.procs[3].health.kind, HEALTH_TCP);
	manifest_free(&m);

	/* An empty config: and a bare-number duration (seconds). */
	parse_ok("config:\nprocesses:\n  web:\n    command: x\n    stop_grace: 3\n", &m);
	assert_int_equal(m.nvars, 0);
	assert_int_equal(m.procs[0].stop_grace_ms, 3000);
	manifest_free(&m);
}

struct bad_case {
	const char *in;
	const char *msg;
};

static void check_yaml_errors(const struct bad_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct manifest m;
		struct err e = ERR_INIT;
		memset(&m, 0x5a, sizeof m);
		if (manifest_parse_yaml("berth.yaml", cases[i].in, strlen(cases[i].in), &m, &e) == 0)
			fail_msg("case %zu parsed, expected: %s", i, cases[i].msg);
		if (strcmp(e.msg, cases[i].msg))
			fail_msg("case %zu:\n got: %s\nwant: %s", i, e.msg, cases[i].msg);
		assert_int_equal(e.code, ERR_INVALID);
		assert_null(m.procs);          /* a failed parse leaves nothing to free */
		assert_int_equal(m.nprocs, 0);
		manifest_free(&m);
	}
}

static void test_yaml_errors(void **state)
{
	static const struct bad_case cases[] = {
		{"app: hello\nprocesses:\n  web:\n    comand: ./server\n",
		 "berth.yaml:4:5: unknown key \"comand\" in processes.web (expected one of command, "
		 "instances, port, health, profile, volumes, stop_grace, image)"},
		{"processes:\n  web:\n    command: x\n    instances: two\n",
		 "berth.yaml:4:16: processes.web.instances: expected a non-negative integer, got \"two\""},
		{"processes:\n  web:\n    command: x\n    instances: -1\n",
		 "berth.yaml:4:16: processes.web.instances: expected a non-negative integer, got \"-1\""},
		{"processes:\n  web:\n    command: x\n    instances: 1001\n",
		 "berth.yaml:4:16: processes.web.instances: expected a non-negative integer up to "
		 "1000, got \"1001\""},
		{"processes:\n  web:\n    command: x\n    instances: 99999999999999999999999\n",
		 "berth.yaml:4:16: processes.web.instances: expected a non-negative integer up to "
		 "1000, got \"99999999999999999999999\""},
		{"processes:\n  web:\n    command: x\n    instances: \"2\"\n",
		 "berth.yaml:4:16: processes.web.instances: expected a non-negative integer (without "
		 "quotes), got \"2\""},
		{"processes:\n  web:\n    command: \"\"\n",
		 "berth.yaml:3:14: processes.web.command: expected a non-empty command, got \"\""},
		{"processes:\n  web:\n    command:\n",
		 "berth.yaml:3:13: processes.web.command: expected a non-empty command, got nothing"},
		{"processes:\n  web:\n    command: [a, b]\n",
		 "berth.yaml:3:14: processes.web.command: expected a non-empty command, got a list"},
		{"processes:\n  web:\n    instances: 2\n",
		 "berth.yaml:2:3: processes.web: missing required key \"command\" (or \"image\", or a "
		 "top-level dockerfile: to run the image built from it)"},
		{"processes:\n  web:\n  worker:\n    command: x\n",
		 "berth.yaml:2:3: processes.web: missing required key \"command\" (or \"image\", or a "
		 "top-level dockerfile: to run the image built from it)"},
		{"dockerfile: ../Dockerfile\n",
		 "berth.yaml:1:13: dockerfile: expected a relative path inside the app directory (no \"..\", "
		 "\".\" or empty parts, no spaces, at most 1024 bytes), got \"../Dockerfile\""},
		{"dockerfile: /etc/Dockerfile\n",
		 "berth.yaml:1:13: dockerfile: expected a relative path inside the app directory (no \"..\", "
		 "\".\" or empty parts, no spaces, at most 1024 bytes), got \"/etc/Dockerfile\""},
		{"dockerfile: a/../../b\n",
		 "berth.yaml:1:13: dockerfile: expected a relative path inside the app directory (no \"..\", "
		 "\".\" or empty parts, no spaces, at most 1024 bytes), got \"a/../../b\""},
		{"dockerfile: \"my Dockerfile\"\n",
		 "berth.yaml:1:13: dockerfile: expected a relative path inside the app directory (no \"..\", "
		 "\".\" or empty parts, no spaces, at most 1024 bytes), got \"my Dockerfile\""},
		{"dockerfile: docker/\n",
		 "berth.yaml:1:13: dockerfile: expected a relative path inside the app directory (no \"..\", "
		 "\".\" or empty parts, no spaces, at most 1024 bytes), got \"docker/\""},
		{"dockerfile:\n", "berth.yaml:1:12: dockerfile: expected a path inside the app directory, got "
		 "nothing"},
		{"dockerfile: [Dockerfile]\n", "berth.yaml:1:13: dockerfile: expected a path inside the app "
		 "directory, got a list"},
		{"build: make\nprocesses: {web: {command: x}}\ndockerfile: Dockerfile\n",
		 "berth.yaml:3:1: dockerfile: cannot be used with build: (the Dockerfile's RUN steps are the "
		 "build; build: is on line 1)"},
		{"dockerfile: Dockerfile\nbuild: make\n",
		 "berth.yaml:2:1: build: cannot be used with dockerfile: (the Dockerfile's RUN steps are the "
		 "build; dockerfile: is on line 1)"},
		{"processes:\n  web: python app.py\n",
		 "berth.yaml:2:8: processes.web: expected a mapping with at least command: or image:, got "
		 "\"python app.py\""},
		{"processes: {}\n", "berth.yaml:1:12: processes: expected at least one process"},
		{"processes:\n", "berth.yaml:1:11: processes: expected a mapping, got nothing"},
		{"app: hello\n", "berth.yaml:1:1: no processes: key (expected a mapping of process "
		 "names to their command)"},
		{"", "berth.yaml:1:1: no processes: key (expected a mapping of process names to their "
		 "command)"},
		{"processes:\n  Web:\n    command: x\n",
		 "berth.yaml:2:3: processes: expected a process name ([a-z0-9][a-z0-9-]*, at most 63 "
		 "characters), got \"Web\""},
		{"processes:\n  web:\n    command: x\n  web:\n    command: y\n",
		 "berth.yaml:4:3: duplicate key \"web\" in processes (first on line 2)"},
		{"processes:\n  web:\n    command: x\n    command: y\n",
		 "berth.yaml:4:5: duplicate key \"command\" in processes.web (first on line 3)"},
		{"app: x\napp: y\nprocesses: {web: {command: x}}\n",
		 "berth.yaml:2:1: duplicate key \"app\" at top level (first on line 1)"},
		{"app: Hello\nprocesses: {web: {command: x}}\n",
		 "berth.yaml:1:6: app: expected an app name ([a-z0-9][a-z0-9-]*, at most 63 "
		 "characters), got \"Hello\""},
		{"env:\n  FOO: bar\nprocesses: {web: {command: x}}\n",
		 "berth.yaml:2:3: env: expected an environment name; default config vars go under "
		 "config:"},
		{"foo: 1\n", "berth.yaml:1:1: unknown key \"foo\" at top level (expected one of app, "
		 "env, config, processes, build, build_timeout, dockerfile, release, release_timeout, cron)"},
		{"- 1\n- 2\n", "berth.yaml:1:1: top level: expected a mapping (app:, env:, config:, "
		 "processes:), got a list"},
		{"processes:\n  worker:\n    command: x\n    health:\n      tcp: true\n",
		 "berth.yaml:5:7: processes.worker.health.tcp: a TCP health check needs port: true "
		 "(this process gets no $PORT)"},
		{"processes:\n  web:\n    command: x\n    port: false\n    health: {http: /up}\n",
		 "berth.yaml:5:14: processes.web.health.http: an HTTP health check needs port: true "
		 "(this process gets no $PORT)"},
		{"processes:\n  web:\n    command: x\n    health: {http: /x, tcp: true}\n",
		 "berth.yaml:4:24: processes.web.health: only one of http, tcp or exec may be given "
		 "(http is on line 4)"},
		{"processes:\n  web:\n    command: x\n    health: {http: healthz}\n",
		 "berth.yaml:4:20: processes.web.health.http: expected a request path starting with "
		 "'/' (printable ASCII, no spaces, at most 1024 bytes), got \"healthz\""},
		{"processes:\n  web:\n    command: x\n    health: {tcp: false}\n",
		 "berth.yaml:4:19: processes.web.health.tcp: expected true (write \"health: none\" to "
		 "turn checks off), got \"false\""},
		{"processes:\n  web:\n    command: x\n    health: {exec: \"\"}\n",
		 "berth.yaml:4:20: processes.web.health.exec: expected a non-empty command, got \"\""},
		{"processes:\n  web:\n    command: x\n    health: {interval: 2w}\n",
		 "berth.yaml:4:24: processes.web.health.interval: expected a duration like 150ms, 2s "
		 "or 1m, got \"2w\""},
		{"processes:\n  web:\n    command: x\n    health: {timeout: -1s}\n",
		 "berth.yaml:4:23: processes.web.health.timeout: expected a duration like 150ms, 2s "
		 "or 1m, got \"-1s\""},
		{"processes:\n  web:\n    command: x\n    health: {interval: 0s}\n",
		 "berth.yaml:4:24: processes.web.health.interval: expected a duration of at least "
		 "1ms, got \"0s\""},
		{"processes:\n  web:\n    command: x\n    health: {deadline: 48h}\n",
		 "berth.yaml:4:24: processes.web.health.deadline: expected a duration of at most 24h, "
		 "got \"48h\""},
		{"processes:\n  web:\n    command: x\n    health: {retries: 0}\n",
		 "berth.yaml:4:23: processes.web.health.retries: expected an integer from 1 to 100, "
		 "got \"0\""},
		{"processes:\n  web:\n    command: x\n    health: {path: /x}\n",
		 "berth.yaml:4:14: unknown key \"path\" in processes.web.health (expected one of "
		 "http, tcp, exec, interval, timeout, retries, deadline, startup)"},
		{"processes:\n  web:\n    command: x\n    health: [tcp]\n",
		 "berth.yaml:4:13: processes.web.health: expected a mapping (http:, tcp: or exec:, "
		 "and timings) or none, got a list"},
		{"processes:\n  web:\n    command: x\n    stop_grace: soon\n",
		 "berth.yaml:4:17: processes.web.stop_grace: expected a duration like 150ms, 2s or "
		 "1m, got \"soon\""},
		{"processes:\n  web:\n    command: x\n    port: yes\n",
		 "berth.yaml:4:11: processes.web.port: expected true or false, got \"yes\""},
		{"processes:\n  web:\n    command: x\n    profile: Small\n",
		 "berth.yaml:4:14: processes.web.profile: expected a profile name ([a-z0-9][a-z0-9-]*, "
		 "at most 63 characters), got \"Small\""},
		{"processes:\n  web:\n    command: x\n    volumes: [data, data]\n",
		 "berth.yaml:4:21: processes.web.volumes: duplicate volume \"data\""},
		{"processes:\n  web:\n    command: x\n    volumes: [Data]\n",
		 "berth.yaml:4:15: processes.web.volumes: expected a volume name ([a-z0-9][a-z0-9-]*, "
		 "at most 63 characters), got \"Data\""},
		{"processes:\n  web:\n    command: x\n    volumes: {a: X, b: X}\n",
		 "berth.yaml:4:24: processes.web.volumes: env var \"X\" is already used by volume \"a\""},
		{"processes:\n  web:\n    command: x\n    volumes: {a: 1X}\n",
		 "berth.yaml:4:18: processes.web.volumes.a: expected an env var name "
		 "([A-Za-z_][A-Za-z0-9_]*, at most 255 characters), got \"1X\""},
		{"processes:\n  web:\n    command: x\n    volumes: data\n",
		 "berth.yaml:4:14: processes.web.volumes: expected a list of volume names or a "
		 "mapping of volume name to env var, got \"data\""},
		{"config:\n  1FOO: bar\nprocesses: {web: {command: x}}\n",
		 "berth.yaml:2:3: config: expected a variable name ([A-Za-z_][A-Za-z0-9_]*, at most "
		 "255 characters), got \"1FOO\""},
		{"config:\n  FOO:\nprocesses: {web: {command: x}}\n",
		 "berth.yaml:2:7: config.FOO: expected a string value (write \"\" for an empty one), "
		 "got nothing"},
		{"config:\n  FOO: {a: 1}\nprocesses: {web: {command: x}}\n",
		 "berth.yaml:2:8: config.FOO: expected a string value (write \"\" for an empty one), "
		 "got a mapping"},
		{"config:\n  A: 1\n  A: 2\nprocesses: {web: {command: x}}\n",
		 "berth.yaml:3:3: duplicate key \"A\" in config (first on line 2)"},
		{"config: [A]\nprocesses: {web: {command: x}}\n",
		 "berth.yaml:1:9: config: expected a mapping, got a list"},
		{"processes:\n  web:\n    command: \"a\\0b\"\n",
		 "berth.yaml:3:14: processes.web.command: must not contain NUL bytes"},
		{"processes:\n  web:\n    command: \"a\\x01\\nb\\\"\"\n    port: \"\\x7f\"\n",
		 "berth.yaml:4:11: processes.web.port: expected true or false (without quotes), got "
		 "\"\\x7f\""},
		{"base: &b {command: x}\nprocesses:\n  web: *b\n",
		 "berth.yaml:3:8: YAML aliases (*b) are not supported"},
		{"processes:\n  web:\n   command: x\n  bad: [\n",
		 "berth.yaml:5:1: YAML syntax error: did not find expected node content (while "
		 "parsing a flow node that starts on line 5)"},
		{"processes:\n  web:\n    command: x\n    stop_grace: x: y\n",
		 "berth.yaml:4:18: YAML syntax error: mapping values are not allowed in this context"},
		{"processes:\n  web:\n   command: x\n  bad: x\n y: 2\n",
		 "berth.yaml:5:2: YAML syntax error: did not find expected key (while parsing a "
		 "block mapping that starts on line 1)"},
		{"processes:\n\tweb: x\n",
		 "berth.yaml:2:1: YAML syntax error: found character that cannot start any token "
		 "(while scanning for the next token that starts on line 2)"},
		{"app: \"\xc3\x28\"\n", "berth.yaml:1:8: YAML syntax error: invalid trailing UTF-8 "
		 "octet (byte 0x28)"},
		{"processes: {web: {command: x}}\n---\nprocesses: {web: {command: y}}\n",
		 "berth.yaml:2:1: expected a single YAML document, found a second one"},
		{"? [a]\n: 1\n", "berth.yaml:1:3: top level: expected a plain key, got a list"},
	};
	check_yaml_errors(cases, sizeof cases / sizeof cases[0]);
}

/* Hostile sizes: each bound is an error that says which bound, never a crash or a hang. */
static void test_yaml_bounds(void **state)
{
	struct manifest m;
	struct err e = ERR_INIT;
	struct buf b = BUF_INIT;

	buf_adds(&b, "processes:\n  web:\n    command: x\n#");
	while (b.len <= 1024 * 1024)
		buf_adds(&b, "0123456789abcdef");
	assert_int_equal(manifest_parse_yaml("berth.yaml", b.p, b.len, &m, &e), -1);
	assert_int_equal(e.code, ERR_TOOBIG);
	assert_string_equal(e.msg, "berth.yaml: file is larger than 1048576 bytes");

	buf_reset(&b);
	buf_adds(&b, "processes:\n");
	for (int i = 0; i < 101; i++)
		buf_addf(&b, "  p%d: {command: x}\n", i);
	assert_int_equal(manifest_parse_yaml("berth.yaml", b.p, b.len, &m, &e), -1);
	assert_string_equal(e.msg, "berth.yaml:102:3: processes: too many entries (at most 100)");

	buf_reset(&b);
	buf_adds(&b, "processes: {web: {command: x, volumes: [");
	for (int i = 0; i < 33; i++)
		buf_addf(&b, "%sv%d", i ? ", " : "", i);
	buf_adds(&b, "]}}\n");
	assert_int_equal(manifest_parse_yaml("berth.yaml", b.p, b.len, &m, &e), -1);
	assert_string_equal(e.msg, "berth.yaml:1:191: processes.web.volumes: too many volumes "
			    "(at most 32)");

	buf_reset(&b);
	for (int i = 0; i < 100; i++)
		buf_addc(&b, '[');
	assert_int_equal(manifest_parse_yaml("berth.yaml", b.p, b.len, &m, &e), -1);
	assert_string_equal(e.msg, "berth.yaml:1:65: YAML nested too deeply (at most 64 levels)");

	buf_reset(&b);
	buf_adds(&b, "config: [");
	for (int i = 0; i < 100001; i++)
		buf_adds(&b, "a,");
	buf_adds(&b, "]\n");
	assert_int_equal(manifest_parse_yaml("berth.yaml", b.p, b.len, &m, &e), -1);
	assert_string_equal(e.msg, "berth.yaml:1:200004: too many YAML nodes (at most 100000)");

	/* A wide config map: the bound stops the duplicate scan from going quadratic. */
	buf_reset(&b);
	buf_adds(&b, "config:\n");
	for (int i = 0; i < 20000; i++)
		buf_addf(&b, "  V%d: x\n", i);
	assert_int_equal(manifest_parse_yaml("berth.yaml", b.p, b.len, &m, &e), -1);
	assert_string_equal(e.msg, "berth.yaml:1002:3: config: too many entries (at most 1000)");

	/* Embedded NUL in the raw text, and a lone control byte. */
	static const char nul[] = "processes:\n  web: {command: x}\0\n";
	assert_int_equal(manifest_parse_yaml("berth.yaml", nul, sizeof nul - 1, &m, &e), -1);
	assert_string_equal(e.msg, "berth.yaml:2:20: YAML syntax error: control characters are "
			    "not allowed (byte 0x00)");
	buf_free(&b);
}

static void parse_proc_ok(const char *text, size_t n, struct manifest *m)
{
	struct err e = ERR_INIT;
	if (manifest_parse_procfile("Procfile", text, n, m, &e) < 0)
		fail_msg("unexpected error: %s", e.msg);
}

static void test_procfile(void **state)
{
	struct manifest m;
	static const char text[] =
		"# processes of the demo app\n"
		"\n"
		"web: gunicorn app:app --bind 0.0.0.0:$PORT\r\n"
		"worker :   celery -A app worker  \r\n"
		"   # indented comment\n"
		"  clock\t:\t./cron.sh\n"
		"release:./migrate.sh";          /* no final newline */
	parse_proc_ok(text, sizeof text - 1, &m);
	assert_string_equal(m.source, "Procfile");
	assert_null(m.app);
	assert_null(m.env);
	assert_int_equal(m.nprocs, 3);   /* release: is Heroku's release phase, not a process */
	assert_string_equal(m.release, "./migrate.sh");
	assert_string_equal(m.procs[0].name, "web");
	assert_string_equal(m.procs[0].command, "gunicorn app:app --bind 0.0.0.0:$PORT");
	assert_true(m.procs[0].port);
	assert_int_equal(m.procs[0].health.kind, HEALTH_TCP);
	assert_int_equal(m.procs[0].instances, 1);
	assert_int_equal(m.procs[0].stop_grace_ms, 10000);
	assert_string_equal(m.procs[1].name, "worker");
	assert_string_equal(m.procs[1].command, "celery -A app worker");
	assert_false(m.procs[1].port);
	assert_int_equal(m.procs[1].health.kind, HEALTH_NONE);
	assert_int_equal(m.procs[1].health.startup_ms, 300);
	assert_string_equal(m.procs[2].name, "clock");
	assert_string_equal(m.procs[2].command, "./cron.sh");
	manifest_free(&m);

	static const char bom[] = "\xef\xbb\xbfweb: ./server \xe2\x9c\x93\n";
	parse_proc_ok(bom, sizeof bom - 1, &m);
	assert_string_equal(m.procs[0].name, "web");
	assert_string_equal(m.procs[0].command, "./server \xe2\x9c\x93");
	manifest_free(&m);
}

static void test_procfile_errors(void **state)
{
	static const struct bad_case cases[] = {
		{"web\n", "Procfile:1:4: expected ':' after process name \"web\""},
		{"web python app.py\n", "Procfile:1:4: expected ':' after process name \"web\""},
		{"web: ok\nworker exec sleep 1\n", "Procfile:2:7: expected ':' after process name "
		 "\"worker\""},
		{"web\t = x\n", "Procfile:1:4: expected ':' after process name \"web\""},
		{"web: ok\n:x\n", "Procfile:2:1: expected a process name before ':'"},
		{"web:\n", "Procfile:1:5: empty command for process \"web\""},
		{"web:   \r\n", "Procfile:1:8: empty command for process \"web\""},
		{"web: a\n\nweb: b\n", "Procfile:3:1: duplicate process \"web\" (first defined on line 1)"},
		{"# c\nWeb_1: a\n", "Procfile:2:1: invalid process name \"Web_1\" (expected "
		 "[a-z0-9][a-z0-9-]*, at most 63 characters)"},
		{"-web: a\n", "Procfile:1:1: invalid process name \"-web\" (expected "
		 "[a-z0-9][a-z0-9-]*, at most 63 characters)"},
		{"# only a comment\n\n", "Procfile:1:1: no processes (expected lines like \"web: "
		 "./server\")"},
		{"", "Procfile:1:1: no processes (expected lines like \"web: ./server\")"},
		{"web: ./x \xff\n", "Procfile:1:10: invalid UTF-8 (byte 0xff)"},
		{"web: ./x \xc0\xaf\n", "Procfile:1:10: invalid UTF-8 (byte 0xc0)"},
		{"web: ./x \xed\xa0\x80\n", "Procfile:1:10: invalid UTF-8 (byte 0xed)"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct manifest m;
		struct err e = ERR_INIT;
		if (manifest_parse_procfile("Procfile", cases[i].in, strlen(cases[i].in), &m, &e) == 0)
			fail_msg("case %zu parsed, expected: %s", i, cases[i].msg);
		if (strcmp(e.msg, cases[i].msg))
			fail_msg("case %zu:\n got: %s\nwant: %s", i, e.msg, cases[i].msg);
		assert_int_equal(e.code, ERR_INVALID);
		assert_null(m.procs);
	}

	struct manifest m;
	struct err e = ERR_INIT;
	static const char nul[] = "web: a\0b\n";
	assert_int_equal(manifest_parse_procfile("Procfile", nul, sizeof nul - 1, &m, &e), -1);
	assert_string_equal(e.msg, "Procfile:1:7: unexpected NUL byte");

	struct buf b = BUF_INIT;
	for (int i = 0; i < 101; i++)
		buf_addf(&b, "p%d: run %d\n", i, i);
	assert_int_equal(manifest_parse_procfile("Procfile", b.p, b.len, &m, &e), -1);
	assert_string_equal(e.msg, "Procfile:101:1: too many processes (at most 100)");
	buf_reset(&b);
	while (b.len <= 1024 * 1024)
		buf_adds(&b, "# padding padding padding\n");
	assert_int_equal(manifest_parse_procfile("Procfile", b.p, b.len, &m, &e), -1);
	assert_int_equal(e.code, ERR_TOOBIG);
	buf_free(&b);
}

static void assert_json_same(const struct manifest *a, const struct manifest *b)
{
	json_t *ja = manifest_to_json(a), *jb = manifest_to_json(b);
	char *sa = json_dumps(ja, JSON_SORT_KEYS), *sb = json_dumps(jb, JSON_SORT_KEYS);
	assert_string_equal(sa, sb);
	free(sa);
	free(sb);
	json_decref(ja);
	json_decref(jb);
}

static void test_json_roundtrip(void **state)
{
	struct manifest m, back;
	struct err e = ERR_INIT;
	parse_ok(full_yaml, &m);
	json_t *j = manifest_to_json(&m);
	json_t *web = json_array_get(json_object_get(j, "processes"), 0);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(web, "health"),
							    "timeout_ms")), 1500);
	assert_string_equal(json_string_value(json_object_get(json_object_get(j, "config"),
							      "WORKERS")), "4");
	if (manifest_from_json(j, &back, &e) < 0)
		fail_msg("%s", e.msg);
	json_decref(j);
	assert_json_same(&m, &back);
	assert_string_equal(back.app, "hello");
	assert_string_equal(back.env, "staging");
	assert_int_equal(back.nvars, 4);
	assert_string_equal(back.vars[3].name, "EMPTY");
	const struct process_spec *w = manifest_process(&back, "web");
	assert_int_equal(w->health.kind, HEALTH_HTTP);
	assert_string_equal(w->health.path, "/healthz");
	assert_int_equal(w->health.deadline_ms, 60000);
	assert_int_equal(w->health.retries, 4);
	assert_string_equal(w->volumes[1].env_var, "BERTH_VOLUME_MY_CACHE");
	assert_int_equal(w->stop_grace_ms, 5000);
	const struct process_spec *k = manifest_process(&back, "worker");
	assert_int_equal(k->health.kind, HEALTH_EXEC);
	assert_string_equal(k->health.command, "test -f ready");
	assert_int_equal(k->instances, 0);
	assert_string_equal(k->volumes[0].env_var, "DATA_DIR");
	manifest_free(&back);
	manifest_free(&m);

	/* Procfile manifests round-trip too (source kept). */
	parse_proc_ok("web: ./s\nworker: ./w\n", 20, &m);
	j = manifest_to_json(&m);
	assert_int_equal(manifest_from_json(j, &back, &e), 0);
	json_decref(j);
	assert_string_equal(back.source, "Procfile");
	assert_json_same(&m, &back);
	manifest_free(&back);
	manifest_free(&m);

	/* Missing optional fields take the defaults. */
	j = json_loads("{\"processes\":[{\"name\":\"web\",\"command\":\"./s\"},"
		       "{\"name\":\"worker\",\"command\":\"./w\",\"volumes\":[{\"name\":\"d-1\"}],"
		       "\"health\":{\"kind\":\"exec\",\"command\":\"true\"}}]}", 0, NULL);
	assert_non_null(j);
	if (manifest_from_json(j, &m, &e) < 0)
		fail_msg("%s", e.msg);
	json_decref(j);
	assert_string_equal(m.source, "berth.yaml");
	assert_null(m.app);
	assert_true(m.procs[0].port);
	assert_int_equal(m.procs[0].health.kind, HEALTH_TCP);
	assert_int_equal(m.procs[0].health.interval_ms, 2000);
	assert_int_equal(m.procs[0].instances, 1);
	assert_int_equal(m.procs[0].stop_grace_ms, 10000);
	assert_false(m.procs[1].port);
	assert_int_equal(m.procs[1].health.retries, 3);
	assert_string_equal(m.procs[1].volumes[0].env_var, "BERTH_VOLUME_D_1");
	manifest_free(&m);
}

static void test_json_errors(void **state)
{
	static const struct bad_case cases[] = {
		{"[]", "manifest JSON: expected an object"},
		{"{}", "manifest JSON: processes: expected an array of 1 to 100 processes"},
		{"{\"processes\":[]}", "manifest JSON: processes: expected an array of 1 to 100 "
		 "processes"},
		{"{\"processes\":[7]}", "manifest JSON: processes[0]: expected an object"},
		{"{\"processes\":[{\"command\":\"x\"}]}", "manifest JSON: processes[0].name: missing"},
		{"{\"processes\":[{\"name\":\"Web\",\"command\":\"x\"}]}",
		 "manifest JSON: processes[0].name: expected a name ([a-z0-9][a-z0-9-]*, at most 63 "
		 "characters)"},
		{"{\"processes\":[{\"name\":\"web\"}]}", "manifest JSON: processes.web.command: missing"},
		{"{\"processes\":[{\"name\":\"web\",\"command\":\"\"}]}",
		 "manifest JSON: processes.web.command: expected a non-empty string without NUL bytes"},
		{"{\"processes\":[{\"name\":\"web\",\"command\":\"a\\u0000b\"}]}",
		 "manifest JSON: processes.web.command: expected a non-empty string without NUL bytes"},
		{"{\"processes\":[{\"name\":\"web\",\"command\":\"x\"},{\"name\":\"web\",\"command\":\"y\"}]}",
		 "manifest JSON: processes[1].name: duplicate process \"web\""},
		{"{\"processes\":[{\"name\":\"web\",\"command\":\"x\",\"instances\":\"2\"}]}",
		 "manifest JSON: processes.web.instances: expected an integer from 0 to 1000"},
		{"{\"processes\":[{\"name\":\"web\",\"command\":\"x\",\"instances\":-1}]}",
		 "manifest JSON: processes.web.instances: expected an integer from 0 to 1000"},
		{"{\"processes\":[{\"name\":\"web\",\"command\":\"x\",\"port\":1}]}",
		 "manifest JSON: processes.web.port: expected true or false"},
		{"{\"processes\":[{\"name\":\"w\",\"command\":\"x\",\"health\":{\"kind\":\"tcp\"}}]}",
		 "manifest JSON: processes.w.health.kind: a TCP health check needs port: true"},
		{"{\"processes\":[{\"name\":\"web\",\"command\":\"x\",\"health\":{\"kind\":\"udp\"}}]}",
		 "manifest JSON: processes.web.health.kind: expected one of none, http, tcp, exec"},
		{"{\"processes\":[{\"name\":\"web\",\"command\":\"x\",\"health\":{\"kind\":\"http\"}}]}",
		 "manifest JSON: processes.web.health.path: expected a request path starting with '/'"},
		{"{\"processes\":[{\"name\":\"web\",\"command\":\"x\",\"health\":{\"kind\":\"exec\"}}]}",
		 "manifest JSON: processes.web.health.command: expected a non-empty command"},
		{"{\"processes\":[{\"name\":\"web\",\"command\":\"x\",\"health\":{\"interval_ms\":0}}]}",
		 "manifest JSON: processes.web.health.interval_ms: expected an integer from 1 to "
		 "86400000"},
		{"{\"processes\":[{\"name\":\"web\",\"command\":\"x\",\"health\":{\"retries\":1.5}}]}",
		 "manifest JSON: processes.web.health.retries: expected an integer from 1 to 100"},
		{"{\"processes\":[{\"name\":\"web\",\"command\":\"x\",\"stop_grace_ms\":-5}]}",
		 "manifest JSON: processes.web.stop_grace_ms: expected an integer from 0 to 86400000"},
		{"{\"processes\":[{\"name\":\"web\",\"command\":\"x\",\"profile\":\"A B\"}]}",
		 "manifest JSON: processes.web.profile: expected a name ([a-z0-9][a-z0-9-]*, at most "
		 "63 characters)"},
		{"{\"processes\":[{\"name\":\"web\",\"command\":\"x\",\"volumes\":[{\"name\":\"a\"},"
		 "{\"name\":\"a\"}]}]}",
		 "manifest JSON: processes.web.volumes[1].env_var: volume \"a\" or its env var "
		 "appears twice"},
		{"{\"processes\":[{\"name\":\"web\",\"command\":\"x\",\"volumes\":[{\"name\":\"a\","
		 "\"env_var\":\"A-B\"}]}]}",
		 "manifest JSON: processes.web.volumes[0].env_var: expected an env var name "
		 "([A-Za-z_][A-Za-z0-9_]*)"},
		{"{\"config\":{\"A\":1},\"processes\":[{\"name\":\"web\",\"command\":\"x\"}]}",
		 "manifest JSON: config.A: expected a string without NUL bytes"},
		{"{\"config\":{\"A B\":\"1\"},\"processes\":[{\"name\":\"web\",\"command\":\"x\"}]}",
		 "manifest JSON: config: invalid variable name (expected [A-Za-z_][A-Za-z0-9_]*, at "
		 "most 255 characters)"},
		{"{\"app\":\"-x\",\"processes\":[{\"name\":\"web\",\"command\":\"x\"}]}",
		 "manifest JSON: app: expected a name ([a-z0-9][a-z0-9-]*, at most 63 characters)"},
		{"{\"dockerfile\":\"../Dockerfile\",\"processes\":[{\"name\":\"web\"}]}",
		 "manifest JSON: dockerfile: expected a relative path inside the app directory"},
		{"{\"dockerfile\":7,\"processes\":[{\"name\":\"web\"}]}",
		 "manifest JSON: dockerfile: expected a non-empty string without NUL bytes"},
		{"{\"dockerfile\":\"Docker\\u0000file\",\"processes\":[{\"name\":\"web\"}]}",
		 "manifest JSON: dockerfile: expected a non-empty string without NUL bytes"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		json_error_t je;
		json_t *j = json_loads(cases[i].in, JSON_ALLOW_NUL | JSON_DECODE_ANY, &je);
		if (!j)
			fail_msg("case %zu: bad test JSON: %s", i, je.text);
		struct manifest m;
		struct err e = ERR_INIT;
		if (manifest_from_json(j, &m, &e) == 0)
			fail_msg("case %zu parsed, expected: %s", i, cases[i].msg);
		json_decref(j);
		if (strcmp(e.msg, cases[i].msg))
			fail_msg("case %zu:\n got: %s\nwant: %s", i, e.msg, cases[i].msg);
		assert_int_equal(e.code, ERR_INVALID);
		assert_null(m.procs);
	}
}

static void test_name_valid(void **state)
{
	assert_true(name_valid("web"));
	assert_true(name_valid("a"));
	assert_true(name_valid("0"));
	assert_true(name_valid("my-app-2"));
	assert_true(name_valid("a-"));   /* the documented pattern allows a trailing '-' */
	assert_true(name_valid("abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0"));
	assert_false(name_valid("abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz01"));
	assert_false(name_valid(""));
	assert_false(name_valid(NULL));
	assert_false(name_valid("-web"));
	assert_false(name_valid("Web"));
	assert_false(name_valid("web_1"));
	assert_false(name_valid("web.1"));
	assert_false(name_valid("web 1"));
	assert_false(name_valid("caf\xc3\xa9"));
}

/* --- dockerfile: an image built from the app directory ---------------------------------- */

static void test_dockerfile_yaml(void **state)
{
	struct manifest m, back;
	struct err e = ERR_INIT;
	/* Beside dockerfile:, a process with neither command: nor image: runs the built image with
	 * its own CMD, one with command: runs that command in it, one with image: its own image. */
	parse_ok("processes:\n"
		 "  web:\n"
		 "  worker:\n"
		 "    command: ./worker --queue q\n"
		 "  db:\n"
		 "    image: localhost/pg:16\n"
		 "  api: {port: true, health: {http: /up}}\n"
		 "dockerfile: docker/Containerfile\n", &m);
	assert_string_equal(m.dockerfile, "docker/Containerfile");
	assert_int_equal(m.nprocs, 4);
	const struct process_spec *web = manifest_process(&m, "web"), *wk = manifest_process(&m, "worker"),
				  *db = manifest_process(&m, "db"), *api = manifest_process(&m, "api");
	assert_null(web->command);
	assert_null(web->image);
	assert_true(web->port);
	assert_int_equal(web->health.kind, HEALTH_TCP);
	assert_true(manifest_process_built(&m, web));
	assert_string_equal(wk->command, "./worker --queue q");
	assert_true(manifest_process_built(&m, wk));
	assert_false(wk->port);
	assert_false(manifest_process_built(&m, db));
	assert_true(manifest_process_built(&m, api));
	assert_int_equal(api->health.kind, HEALTH_HTTP);

	/* The release keeps how it was built: dockerfile: and command-less processes round-trip. */
	json_t *j = manifest_to_json(&m);
	assert_string_equal(json_string_value(json_object_get(j, "dockerfile")), "docker/Containerfile");
	if (manifest_from_json(j, &back, &e) < 0)
		fail_msg("%s", e.msg);
	json_decref(j);
	assert_json_same(&m, &back);
	assert_string_equal(back.dockerfile, "docker/Containerfile");
	assert_null(manifest_process(&back, "web")->command);
	assert_true(manifest_process_built(&back, manifest_process(&back, "web")));
	manifest_free(&back);
	manifest_free(&m);

	/* dockerfile: without processes: one web process running the built image. */
	parse_ok("app: shop\ndockerfile: Dockerfile\nbuild_timeout: 20m\n", &m);
	assert_string_equal(m.dockerfile, "Dockerfile");
	assert_int_equal(m.nprocs, 1);
	assert_string_equal(m.procs[0].name, "web");
	assert_true(m.procs[0].port);
	assert_int_equal(m.procs[0].health.kind, HEALTH_TCP);
	assert_null(m.procs[0].command);
	assert_int_equal(m.build_timeout_ms, 20 * 60000);
	manifest_free(&m);

	/* Without dockerfile: nothing is built and nothing changes. */
	parse_ok("processes: {web: {command: x}}\n", &m);
	assert_null(m.dockerfile);
	assert_false(manifest_process_built(&m, &m.procs[0]));
	j = manifest_to_json(&m);
	assert_null(json_object_get(j, "dockerfile"));
	json_decref(j);
	manifest_free(&m);

	/* A command-less process in JSON needs a dockerfile there too. */
	j = json_loads("{\"dockerfile\":\"Dockerfile\",\"processes\":[{\"name\":\"web\"}]}", 0, NULL);
	assert_int_equal(manifest_from_json(j, &m, &e), 0);
	json_decref(j);
	assert_true(manifest_process_built(&m, &m.procs[0]));
	manifest_free(&m);
}

static void test_dockerfile_path_valid(void **state)
{
	static const char *const good[] = {"Dockerfile", "Containerfile", "docker/Dockerfile.prod",
					   "a/b/c/Dockerfile", ".docker/Dockerfile", "Dockerfile..bak", "..Dockerfile",
					   NULL};
	static const char *const bad[] = {"", "/Dockerfile", "../Dockerfile", "a/../Dockerfile", "./Dockerfile",
					  "a/./b", "a//b", "docker/", "..", ".", "my Dockerfile", "a\\b",
					  "tab\there", "caf\xc3\xa9", "a\nb", NULL};
	for (const char *const *g = good; *g; g++)
		if (!manifest_dockerfile_valid(*g))
			fail_msg("refused: \"%s\"", *g);
	for (const char *const *b = bad; *b; b++)
		if (manifest_dockerfile_valid(*b))
			fail_msg("accepted: \"%s\"", *b);
	assert_false(manifest_dockerfile_valid(NULL));
	struct buf big = BUF_INIT;
	while (big.len < 1024)
		buf_adds(&big, "d/");
	buf_adds(&big, "Dockerfile");
	assert_false(manifest_dockerfile_valid(big.p));
	buf_free(&big);
}

/* --- manifest_load_dir ---------------------------------------------------------------- */

struct dirfx {
	char dir[64];
};

static int dir_setup(void **state)
{
	struct dirfx *f = xcalloc(1, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "/tmp/berth-test-manifest-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	*state = f;
	return 0;
}

static int dir_teardown(void **state)
{
	struct dirfx *f = *state;
	fs_rm_rf(f->dir, NULL);
	free(f);
	return 0;
}

static void put(const struct dirfx *f, const char *name, const char *text)
{
	char *p = xasprintf("%s/%s", f->dir, name);
	struct err e = ERR_INIT;
	if (fs_write_atomic(p, text, strlen(text), 0644, &e) < 0)
		fail_msg("%s", e.msg);
	free(p);
}

static void rm(const struct dirfx *f, const char *name)
{
	char *p = xasprintf("%s/%s", f->dir, name);
	unlink(p);
	free(p);
}

static void test_load_dir(void **state)
{
	struct dirfx *f = *state;
	struct manifest m;
	struct err e = ERR_INIT;

	assert_int_equal(manifest_load_dir(f->dir, &m, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	char *want = xasprintf("no berth.yaml or Procfile in %s, and no Dockerfile or Containerfile to "
			       "build an image from", f->dir);
	assert_string_equal(e.msg, want);
	free(want);

	put(f, "Procfile", "web: ./server\nworker: ./worker\n");
	assert_int_equal(manifest_load_dir(f->dir, &m, &e), 0);
	assert_string_equal(m.source, "Procfile");
	assert_int_equal(m.nprocs, 2);
	manifest_free(&m);

	/* Both: berth.yaml wins. */
	put(f, "berth.yaml", "app: hello\nprocesses:\n  api:\n    command: ./api\n");
	assert_int_equal(manifest_load_dir(f->dir, &m, &e), 0);
	assert_string_equal(m.source, "berth.yaml");
	assert_int_equal(m.nprocs, 1);
	assert_string_equal(m.procs[0].name, "api");
	manifest_free(&m);

	/* berth.yaml without processes: the processes come from the Procfile, the rest stays. */
	put(f, "berth.yaml", "app: hello\nenv: staging\nconfig: {GREETING: hi}\n");
	assert_int_equal(manifest_load_dir(f->dir, &m, &e), 0);
	assert_string_equal(m.source, "berth.yaml");
	assert_string_equal(m.app, "hello");
	assert_string_equal(m.env, "staging");
	assert_int_equal(m.nvars, 1);
	assert_int_equal(m.nprocs, 2);
	assert_string_equal(m.procs[0].name, "web");
	assert_int_equal(m.procs[0].health.kind, HEALTH_TCP);
	manifest_free(&m);

	/* Errors name the bare file. */
	put(f, "Procfile", "web: ./server\n\nweb\n");
	assert_int_equal(manifest_load_dir(f->dir, &m, &e), -1);
	assert_string_equal(e.msg, "Procfile:3:4: expected ':' after process name \"web\"");
	put(f, "berth.yaml", "app: hello\nprocesses:\n  web:\n    comand: x\n");
	assert_int_equal(manifest_load_dir(f->dir, &m, &e), -1);
	assert_string_equal(e.msg, "berth.yaml:4:5: unknown key \"comand\" in processes.web "
			    "(expected one of command, instances, port, health, profile, volumes, "
			    "stop_grace, image)");

	rm(f, "Procfile");
	put(f, "berth.yaml", "app: hello\n");
	assert_int_equal(manifest_load_dir(f->dir, &m, &e), -1);
	assert_string_equal(e.msg, "berth.yaml:1:1: no processes: key and no Procfile (expected a "
			    "mapping of process names to their command)");

	/* An uploaded tree is hostile: a symlinked manifest is refused, not followed. */
	rm(f, "berth.yaml");
	char *link = xasprintf("%s/berth.yaml", f->dir);
	assert_int_equal(symlink("/etc/passwd", link), 0);
	free(link);
	assert_int_equal(manifest_load_dir(f->dir, &m, &e), -1);
	assert_string_equal(e.msg, "berth.yaml: is a symbolic link, expected a regular file");
	rm(f, "berth.yaml");
	char *sub = xasprintf("%s/Procfile", f->dir);
	assert_int_equal(mkdir(sub, 0755), 0);
	assert_int_equal(manifest_load_dir(f->dir, &m, &e), -1);
	assert_string_equal(e.msg, "Procfile: expected a regular file");
	rmdir(sub);
	free(sub);

	struct buf big = BUF_INIT;
	while (big.len <= 1024 * 1024)
		buf_adds(&big, "# a comment line that pads the file out\n");
	put(f, "berth.yaml", big.p);
	buf_free(&big);
	assert_int_equal(manifest_load_dir(f->dir, &m, &e), -1);
	assert_int_equal(e.code, ERR_TOOBIG);
	assert_string_equal(e.msg, "berth.yaml: file is larger than 1048576 bytes");
}

static void test_load_dir_dockerfile(void **state)
{
	struct dirfx *f = *state;
	struct manifest m;
	struct err e = ERR_INIT;

	/* Only a Dockerfile: built; one web process (port, TCP check) runs it. */
	put(f, "Dockerfile", "FROM localhost/base:1\n");
	if (manifest_load_dir(f->dir, &m, &e) < 0)
		fail_msg("%s", e.msg);
	assert_string_equal(m.source, "Dockerfile");
	assert_string_equal(m.dockerfile, "Dockerfile");
	assert_int_equal(m.nprocs, 1);
	assert_string_equal(m.procs[0].name, "web");
	assert_true(m.procs[0].port);
	assert_int_equal(m.procs[0].health.kind, HEALTH_TCP);
	assert_true(manifest_process_built(&m, &m.procs[0]));
	manifest_free(&m);

	/* A Containerfile counts the same; with both, the Dockerfile is used. */
	put(f, "Containerfile", "FROM localhost/base:1\n");
	assert_int_equal(manifest_load_dir(f->dir, &m, &e), 0);
	assert_string_equal(m.dockerfile, "Dockerfile");
	manifest_free(&m);
	rm(f, "Dockerfile");
	assert_int_equal(manifest_load_dir(f->dir, &m, &e), 0);
	assert_string_equal(m.source, "Containerfile");
	assert_string_equal(m.dockerfile, "Containerfile");
	manifest_free(&m);

	/* A Procfile beside it: its processes run as commands in the built image. */
	put(f, "Procfile", "web: ./server\nworker: ./worker\nrelease: ./migrate\n");
	assert_int_equal(manifest_load_dir(f->dir, &m, &e), 0);
	assert_string_equal(m.source, "Procfile");
	assert_string_equal(m.dockerfile, "Containerfile");
	assert_int_equal(m.nprocs, 2);
	assert_string_equal(m.procs[1].command, "./worker");
	assert_true(manifest_process_built(&m, &m.procs[1]));
	assert_string_equal(m.release, "./migrate");
	manifest_free(&m);

	/* A berth.yaml without dockerfile: next to it: the Containerfile is not used. */
	put(f, "berth.yaml", "processes:\n  web:\n    command: ./server\n");
	assert_int_equal(manifest_load_dir(f->dir, &m, &e), 0);
	assert_null(m.dockerfile);
	manifest_free(&m);
	put(f, "berth.yaml", "app: shop\n");         /* processes from the Procfile, still no build */
	assert_int_equal(manifest_load_dir(f->dir, &m, &e), 0);
	assert_null(m.dockerfile);
	assert_int_equal(m.nprocs, 2);
	manifest_free(&m);

	/* berth.yaml's dockerfile: without processes: the Procfile's, else one web process. */
	put(f, "berth.yaml", "app: shop\ndockerfile: Containerfile\n");
	assert_int_equal(manifest_load_dir(f->dir, &m, &e), 0);
	assert_string_equal(m.source, "berth.yaml");
	assert_string_equal(m.dockerfile, "Containerfile");
	assert_int_equal(m.nprocs, 2);
	manifest_free(&m);
	rm(f, "Procfile");
	assert_int_equal(manifest_load_dir(f->dir, &m, &e), 0);
	assert_int_equal(m.nprocs, 1);
	assert_string_equal(m.procs[0].name, "web");
	assert_null(m.procs[0].command);
	manifest_free(&m);

	/* The file must be there, as a regular file, reached without a symbolic link. */
	put(f, "berth.yaml", "app: shop\ndockerfile: docker/Dockerfile.prod\n");
	assert_int_equal(manifest_load_dir(f->dir, &m, &e), -1);
	assert_string_equal(e.msg, "berth.yaml:2:13: dockerfile: there is no file \"docker/Dockerfile.prod\" "
			    "in the app directory");
	char *sub = xasprintf("%s/docker", f->dir);
	assert_int_equal(mkdir(sub, 0755), 0);
	put(f, "docker/Dockerfile.prod", "FROM x\n");
	assert_int_equal(manifest_load_dir(f->dir, &m, &e), 0);
	assert_string_equal(m.dockerfile, "docker/Dockerfile.prod");
	manifest_free(&m);
	put(f, "berth.yaml", "app: shop\ndockerfile: docker\n");
	assert_int_equal(manifest_load_dir(f->dir, &m, &e), -1);
	assert_string_equal(e.msg, "berth.yaml:2:13: dockerfile: \"docker\" is a directory, expected a regular "
			    "file");
	char *link = xasprintf("%s/linked", f->dir);
	assert_int_equal(symlink("docker", link), 0);
	put(f, "berth.yaml", "app: shop\ndockerfile: linked/Dockerfile.prod\n");
	assert_int_equal(manifest_load_dir(f->dir, &m, &e), -1);
	assert_string_equal(e.msg, "berth.yaml:2:13: dockerfile: \"linked/Dockerfile.prod\" has a symbolic link "
			    "on its way, expected a regular file");
	free(link);
	link = xasprintf("%s/Dockerfile", f->dir);
	assert_int_equal(symlink("/etc/passwd", link), 0);
	put(f, "berth.yaml", "dockerfile: Dockerfile\n");
	assert_int_equal(manifest_load_dir(f->dir, &m, &e), -1);
	assert_string_equal(e.msg, "berth.yaml:1:13: dockerfile: \"Dockerfile\" is a symbolic link, expected a "
			    "regular file");
	/* ... and without berth.yaml, a symlinked Dockerfile is refused, not followed. */
	rm(f, "berth.yaml");
	assert_int_equal(manifest_load_dir(f->dir, &m, &e), -1);
	assert_string_equal(e.msg, "Dockerfile: is a symbolic link, expected a regular file");
	unlink(link);
	free(link);
	fs_rm_rf(sub, NULL);
	free(sub);
}

/* --- server_conf -------------------------------------------------------------------- */

#define MIB (1024LL * 1024)

static void test_server_conf_defaults(void **state)
{
	struct server_conf c;
	struct err e = ERR_INIT;
	assert_int_equal(server_conf_load("/nonexistent/berth-server.yaml", &c, &e), 0);
	assert_int_equal(c.nprofiles, 3);
	const struct profile *s = server_conf_profile(&c, "small");
	assert_non_null(s);
	assert_true(s->cpus == 0.5);
	assert_int_equal(s->memory_bytes, 256 * MIB);
	assert_int_equal(s->pids, 256);
	assert_int_equal(s->cpu_weight, 50);
	const struct profile *md = server_conf_profile(&c, "medium");
	assert_true(md->cpus == 1.0);
	assert_int_equal(md->memory_bytes, 512 * MIB);
	assert_int_equal(md->pids, 512);
	assert_int_equal(md->cpu_weight, 100);
	const struct profile *l = server_conf_profile(&c, "large");
	assert_true(l->cpus == 2.0);
	assert_int_equal(l->memory_bytes, 2048 * MIB);
	assert_int_equal(l->pids, 2048);
	assert_null(server_conf_profile(&c, "huge"));
	assert_int_equal(c.upload_limit_bytes, 256 * MIB);
	assert_int_equal(c.log_rotate_bytes, 10 * MIB);
	assert_int_equal(c.log_keep, 5);
	assert_int_equal(c.release_keep, 10);
	/* router: nothing set, so the router keeps its own defaults */
	assert_null(c.router.error_pages);
	assert_null(c.router.forwarded_proto);
	assert_int_equal(c.router.threads, 0);
	assert_int_equal(c.router.connect_ms + c.router.header_ms + c.router.idle_ms +
			 c.router.response_ms + c.router.body_ms + c.router.upstream_idle_ms +
			 c.router.tunnel_idle_ms, 0);
	assert_int_equal(c.router.pool_max_idle, 0);
	assert_int_equal(c.router.max_body, 0);
	server_conf_free(&c);
	server_conf_free(&c);
	assert_int_equal(server_conf_load(NULL, &c, &e), 0);
	assert_int_equal(c.nprofiles, 3);
	server_conf_free(&c);
}

static void test_server_conf_alerts(void **state)
{
	struct dirfx *f = *state;
	struct server_conf c;
	struct err e = ERR_INIT;
	put(f, "server.yaml",
	    "alerts:\n"
	    "  name: prod-1\n"
	    "  webhooks: [https://hooks.example.com/T0/B1/secret]\n"
	    "  rate_limit: 30s\n"
	    "  envs:\n"
	    "    staging: {webhooks: [http://127.0.0.1:9/hook]}\n");
	char *path = xasprintf("%s/server.yaml", f->dir);
	assert_int_equal(server_conf_load(path, &c, &e), 0);
	assert_string_equal(c.alert_name, "prod-1");
	assert_int_equal(c.nalert_webhooks, 1);
	assert_int_equal(c.alert_rate_limit_ms, 30000);
	assert_int_equal(c.nalert_envs, 1);
	assert_string_equal(c.alert_envs[0].env, "staging");
	assert_int_equal(c.alert_envs[0].nwebhooks, 1);
	server_conf_free(&c);
	put(f, "server.yaml", "alerts:\n  webhooks: [ftp://x/y-secret]\n");
	assert_int_equal(server_conf_load(path, &c, &e), -1);
	assert_non_null(strstr(e.msg, "server.yaml:2:"));
	assert_non_null(strstr(e.msg, "http:// or https://"));
	assert_null(strstr(e.msg, "secret]"));
	assert_null(strstr(e.msg, "y-secret"));
	put(f, "server.yaml", "alerts:\n  webhooks: [\"https:///T0/y-secret\"]\n");
	assert_int_equal(server_conf_load(path, &c, &e), -1);
	assert_non_null(strstr(e.msg, "server.yaml:2:"));
	assert_null(strstr(e.msg, "y-secret"));
	put(f, "server.yaml", "alerts:\n  hooks: []\n");
	assert_int_equal(server_conf_load(path, &c, &e), -1);
	assert_non_null(strstr(e.msg, "unknown key \"hooks\""));
	free(path);
}

static void test_server_conf_file(void **state)
{
	struct dirfx *f = *state;
	struct server_conf c;
	struct err e = ERR_INIT;
	put(f, "server.yaml",
	    "profiles:\n"
	    "  small:  {cpus: 0.25, memory: 128M}\n"
	    "  tiny:   {cpus: 0.1, memory: 64M}\n"
	    "  big:    {cpus: 8, memory: 1.5GiB, pids: 10000, cpu_weight: 400}\n"
	    "upload_limit: 1G\n"
	    "log_rotate: 512k\n"
	    "log_keep: 0\n"
	    "release_keep: 3\n");
	char *path = xasprintf("%s/server.yaml", f->dir);
	if (server_conf_load(path, &c, &e) < 0)
		fail_msg("%s", e.msg);
	assert_int_equal(c.nprofiles, 5);
	const struct profile *s = server_conf_profile(&c, "small");
	assert_true(s->cpus == 0.25);
	assert_int_equal(s->memory_bytes, 128 * MIB);
	assert_int_equal(s->pids, 0);               /* replaced whole: unset means unlimited */
	assert_int_equal(s->cpu_weight, 100);
	const struct profile *t = server_conf_profile(&c, "tiny");
	assert_true(t->cpus == 0.1);
	assert_int_equal(t->memory_bytes, 64 * MIB);
	const struct profile *b = server_conf_profile(&c, "big");
	assert_true(b->cpus == 8);
	assert_int_equal(b->memory_bytes, 1536 * MIB);
	assert_int_equal(b->pids, 10000);
	assert_int_equal(b->cpu_weight, 400);
	assert_int_equal(server_conf_profile(&c, "medium")->memory_bytes, 512 * MIB);
	assert_int_equal(c.upload_limit_bytes, 1024 * MIB);
	assert_int_equal(c.log_rotate_bytes, 512 * 1024);
	assert_int_equal(c.log_keep, 0);
	assert_int_equal(c.release_keep, 3);
	server_conf_free(&c);

	/* release_keep bounds: 1 and 1000 are allowed */
	put(f, "server.yaml", "release_keep: 1\n");
	if (server_conf_load(path, &c, &e) < 0)
		fail_msg("%s", e.msg);
	assert_int_equal(c.release_keep, 1);
	server_conf_free(&c);
	put(f, "server.yaml", "release_keep: 1000\n");
	if (server_conf_load(path, &c, &e) < 0)
		fail_msg("%s", e.msg);
	assert_int_equal(c.release_keep, 1000);
	server_conf_free(&c);

	put(f, "server.yaml", "# nothing but a comment\n");
	assert_int_equal(server_conf_load(path, &c, &e), 0);
	assert_int_equal(c.nprofiles, 3);
	server_conf_free(&c);

	static const struct bad_case cases[] = {
		{"profiles:\n  small: {cpu: 1}\n", ":2:11: unknown key \"cpu\" in profiles.small "
		 "(expected one of cpus, memory, pids, cpu_weight)"},
		{"profiles:\n  small: {cpus: -1}\n", ":2:17: profiles.small.cpus: expected a number "
		 "from 0 to 4096, got \"-1\""},
		{"profiles:\n  small: {cpus: lots}\n", ":2:17: profiles.small.cpus: expected a "
		 "number from 0 to 4096, got \"lots\""},
		{"profiles:\n  small: {memory: 12Q}\n", ":2:19: profiles.small.memory: expected a "
		 "size like 512M, 2G or 1048576, got \"12Q\""},
		{"profiles:\n  small: {memory: -5M}\n", ":2:19: profiles.small.memory: expected a "
		 "size like 512M, 2G or 1048576, got \"-5M\""},
		{"profiles:\n  small: {pids: 1.5}\n", ":2:17: profiles.small.pids: expected a "
		 "non-negative integer, got \"1.5\""},
		{"profiles:\n  small: {cpu_weight: 0}\n", ":2:23: profiles.small.cpu_weight: "
		 "expected an integer from 1 to 10000, got \"0\""},
		{"profiles:\n  Small: {cpus: 1}\n", ":2:3: profiles: expected a profile name "
		 "([a-z0-9][a-z0-9-]*, at most 63 characters), got \"Small\""},
		{"profiles:\n  a: {cpus: 1}\n  a: {cpus: 2}\n", ":3:3: duplicate key \"a\" in "
		 "profiles (first on line 2)"},
		{"profiles:\n  a: 1\n", ":2:6: profiles.a: expected a mapping of cpus, memory, pids, "
		 "cpu_weight, got \"1\""},
		{"upload_limit: 0\n", ":1:15: upload_limit: expected a size greater than 0, got \"0\""},
		{"log_rotate: big\n", ":1:13: log_rotate: expected a size like 512M, 2G or 1048576, "
		 "got \"big\""},
		{"log_keep: -1\n", ":1:11: log_keep: expected a non-negative integer, got \"-1\""},
		{"release_keep: 0\n", ":1:15: release_keep: expected an integer from 1 to 1000, got \"0\""},
		{"release_keep: 1001\n", ":1:15: release_keep: expected an integer from 1 to 1000, "
		 "got \"1001\""},
		{"release_keep: \"5\"\n", ":1:15: release_keep: expected an integer from 1 to 1000 "
		 "(without quotes), got \"5\""},
		{"release_keep: [3]\n", ":1:15: release_keep: expected an integer from 1 to 1000, "
		 "got a list"},
		{"upload: 1G\n", ":1:1: unknown key \"upload\" at top level (expected one of profiles, "
		 "upload_limit, log_rotate, log_keep, release_keep, alerts, router, builds, registries, images)"},
		{"profiles: [\n", ":2:1: YAML syntax error: did not find expected node content (while "
		 "parsing a flow node that starts on line 2)"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		put(f, "server.yaml", cases[i].in);
		if (server_conf_load(path, &c, &e) == 0)
			fail_msg("case %zu loaded, expected: %s", i, cases[i].msg);
		char *msg = xasprintf("%s%s", path, cases[i].msg);
		if (strcmp(e.msg, msg))
			fail_msg("case %zu:\n got: %s\nwant: %s", i, e.msg, msg);
		free(msg);
		assert_int_equal(e.code, ERR_INVALID);
		assert_null(c.profiles);          /* nothing left to free after a failure */
	}
	free(path);
}

/* s with every "@D" replaced by dir (the test's directory; error_pages must be absolute). */
static char *with_dir(const char *s, const char *dir)
{
	struct buf b = BUF_INIT;
	for (const char *p = s; *p; p++) {
		if (p[0] == '@' && p[1] == 'D') {
			buf_adds(&b, dir);
			p++;
		} else {
			buf_add(&b, p, 1);
		}
	}
	return buf_detach(&b);
}

static void test_server_conf_router(void **state)
{
	struct dirfx *f = *state;
	struct server_conf c;
	struct err e = ERR_INIT;
	char *pages = xasprintf("%s/pages", f->dir);
	assert_int_equal(mkdir(pages, 0755), 0);
	put(f, "file.html", "<p>not a directory</p>\n");
	char *path = xasprintf("%s/server.yaml", f->dir);
	char *yaml = with_dir("router:\n"
			      "  error_pages: @D/pages//\n"
			      "  threads: 3\n"
			      "  timeouts:\n"
			      "    connect: 500ms\n"
			      "    header: 5s\n"
			      "    idle: 2m\n"
			      "    response: 30s\n"
			      "    body: 45s\n"
			      "    upstream_idle: 10s\n"
			      "    tunnel_idle: 2h\n"
			      "  pool_max_idle: 128\n"
			      "  max_body: 10M\n"
			      "  forwarded_proto: https\n"
			      "log_keep: 2\n", f->dir);
	put(f, "server.yaml", yaml);
	free(yaml);
	if (server_conf_load(path, &c, &e) < 0)
		fail_msg("%s", e.msg);
	assert_string_equal(c.router.error_pages, pages);   /* trailing '/' dropped */
	assert_int_equal(c.router.threads, 3);
	assert_int_equal(c.router.connect_ms, 500);
	assert_int_equal(c.router.header_ms, 5000);
	assert_int_equal(c.router.idle_ms, 120000);
	assert_int_equal(c.router.response_ms, 30000);
	assert_int_equal(c.router.body_ms, 45000);
	assert_int_equal(c.router.upstream_idle_ms, 10000);
	assert_int_equal(c.router.tunnel_idle_ms, 2 * 3600 * 1000);
	assert_int_equal(c.router.pool_max_idle, 128);
	assert_int_equal(c.router.max_body, 10 * MIB);
	assert_string_equal(c.router.forwarded_proto, "https");
	assert_int_equal(c.log_keep, 2);
	server_conf_free(&c);

	/* bounds that are allowed; an empty section or timeouts: is the defaults */
	put(f, "server.yaml", "router:\n  threads: 64\n  pool_max_idle: 4096\n  timeouts:\n"
	    "    connect: 1ms\n    tunnel_idle: 24h\n  forwarded_proto: http\n");
	if (server_conf_load(path, &c, &e) < 0)
		fail_msg("%s", e.msg);
	assert_int_equal(c.router.threads, 64);
	assert_int_equal(c.router.pool_max_idle, 4096);
	assert_int_equal(c.router.connect_ms, 1);
	assert_int_equal(c.router.tunnel_idle_ms, 24 * 3600 * 1000);
	assert_int_equal(c.router.header_ms, 0);
	assert_string_equal(c.router.forwarded_proto, "http");
	assert_null(c.router.error_pages);
	server_conf_free(&c);
	put(f, "server.yaml", "router:\n");
	assert_int_equal(server_conf_load(path, &c, &e), 0);
	assert_int_equal(c.router.threads, 0);
	server_conf_free(&c);
	put(f, "server.yaml", "router: {threads: 1, timeouts: }\n");
	assert_int_equal(server_conf_load(path, &c, &e), 0);
	assert_int_equal(c.router.threads, 1);
	assert_int_equal(c.router.connect_ms, 0);
	server_conf_free(&c);

	static const struct bad_case cases[] = {
		{"router: 5\n", ":1:9: router: expected a mapping (error_pages:, threads:, timeouts:, "
		 "pool_max_idle:, max_body:, forwarded_proto:), got \"5\""},
		{"router:\n  workers: 4\n", ":2:3: unknown key \"workers\" in router (expected one of "
		 "error_pages, threads, timeouts, pool_max_idle, max_body, forwarded_proto)"},
		{"router:\n  threads: 1\n  threads: 2\n", ":3:3: duplicate key \"threads\" in router "
		 "(first on line 2)"},
		{"router:\n  threads: 0\n", ":2:12: router.threads: expected an integer from 1 to 64, "
		 "got \"0\""},
		{"router:\n  threads: 65\n", ":2:12: router.threads: expected an integer from 1 to 64, "
		 "got \"65\""},
		{"router:\n  threads: many\n", ":2:12: router.threads: expected an integer from 1 to "
		 "64, got \"many\""},
		{"router:\n  pool_max_idle: 0\n", ":2:18: router.pool_max_idle: expected an integer "
		 "from 1 to 4096, got \"0\""},
		{"router:\n  pool_max_idle: 4097\n", ":2:18: router.pool_max_idle: expected an integer "
		 "from 1 to 4096, got \"4097\""},
		{"router:\n  max_body: 0\n", ":2:13: router.max_body: expected a size greater than 0, "
		 "got \"0\""},
		{"router:\n  max_body: 12Q\n", ":2:13: router.max_body: expected a size like 512M, 2G "
		 "or 1048576, got \"12Q\""},
		{"router:\n  forwarded_proto: ftp\n", ":2:20: router.forwarded_proto: expected http or "
		 "https, got \"ftp\""},
		{"router:\n  forwarded_proto: HTTPS\n", ":2:20: router.forwarded_proto: expected http "
		 "or https, got \"HTTPS\""},
		{"router:\n  forwarded_proto: [http]\n", ":2:20: router.forwarded_proto: expected http "
		 "or https, got a list"},
		{"router:\n  timeouts: [1s]\n", ":2:13: router.timeouts: expected a mapping of "
		 "connect, header, idle, response, body, upstream_idle, tunnel_idle, got a list"},
		{"router:\n  timeouts:\n    read: 1s\n", ":3:5: unknown key \"read\" in router.timeouts "
		 "(expected one of connect, header, idle, response, body, upstream_idle, tunnel_idle)"},
		{"router:\n  timeouts:\n    connect: 0\n", ":3:14: router.timeouts.connect: expected a "
		 "duration of at least 1ms, got \"0\""},
		{"router:\n  timeouts:\n    idle: soon\n", ":3:11: router.timeouts.idle: expected a "
		 "duration like 150ms, 2s or 1m, got \"soon\""},
		{"router:\n  timeouts:\n    response: -5s\n", ":3:15: router.timeouts.response: "
		 "expected a duration like 150ms, 2s or 1m, got \"-5s\""},
		{"router:\n  timeouts:\n    tunnel_idle: 25h\n", ":3:18: router.timeouts.tunnel_idle: "
		 "expected a duration of at most 24h, got \"25h\""},
		{"router:\n  timeouts:\n    header: 1s\n    body: 2x\n", ":4:11: router.timeouts.body: "
		 "expected a duration like 150ms, 2s or 1m, got \"2x\""},
		{"router:\n  error_pages: pages\n", ":2:16: router.error_pages: expected an absolute "
		 "path of a directory (404.html, 502.html, 503.html, 504.html), got \"pages\""},
		{"router:\n  error_pages:\n", ":2:15: router.error_pages: expected an absolute path of "
		 "a directory (404.html, 502.html, 503.html, 504.html), got nothing"},
		{"router:\n  error_pages: @D/missing\n", ":2:16: router.error_pages: \"@D/missing\" "
		 "does not exist"},
		{"router:\n  error_pages: @D/file.html\n", ":2:16: router.error_pages: "
		 "\"@D/file.html\" is not a directory"},
		{"router:\n  error_pages: @D/pages/../pages\n", ":2:16: router.error_pages: expected a "
		 "path without \"..\" components, got \"@D/pages/../pages\""},
		{"router:\n  error_pages: \"@D/pages\\0x\"\n", ":2:16: router.error_pages: must not "
		 "contain NUL bytes"},
		{"router:\n  error_pages: {a: b}\n", ":2:16: router.error_pages: expected an absolute "
		 "path of a directory (404.html, 502.html, 503.html, 504.html), got a mapping"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *in = with_dir(cases[i].in, f->dir);
		put(f, "server.yaml", in);
		free(in);
		if (server_conf_load(path, &c, &e) == 0)
			fail_msg("case %zu loaded, expected: %s", i, cases[i].msg);
		char *want = with_dir(cases[i].msg, f->dir);
		char *msg = xasprintf("%s%s", path, want);
		if (strcmp(e.msg, msg))
			fail_msg("case %zu:\n got: %s\nwant: %s", i, e.msg, msg);
		free(msg);
		free(want);
		assert_int_equal(e.code, ERR_INVALID);
		assert_null(c.profiles);
		assert_null(c.router.error_pages);   /* freed with the rest after a failure */
	}

	/* a path over 4096 bytes is refused before the file system is asked */
	struct buf big = BUF_INIT;
	buf_adds(&big, "router:\n  error_pages: /");
	for (int i = 0; i < 4100; i++)
		buf_adds(&big, "a");
	buf_adds(&big, "\n");
	put(f, "server.yaml", big.p);
	buf_free(&big);
	assert_int_equal(server_conf_load(path, &c, &e), -1);
	char *want = xasprintf("%s:2:16: router.error_pages: expected an absolute path", path);
	if (strncmp(e.msg, want, strlen(want)))
		fail_msg("long error_pages: %s", e.msg);
	free(want);
	free(pages);
	free(path);
}

static void test_parse_size(void **state)
{
	static const struct {
		const char *s;
		int64_t want;
	} ok[] = {
		{"0", 0},
		{"1048576", 1048576},
		{"100b", 100},
		{"100k", 102400},
		{"100K", 102400},
		{"100KiB", 102400},
		{"100KB", 102400},
		{"512M", 512 * MIB},
		{"512MiB", 512 * MIB},
		{"512 MiB", 512 * MIB},
		{"1G", 1024 * MIB},
		{"1.5GiB", 1536 * MIB},
		{"0.5k", 512},
		{"2T", 2 * 1024 * 1024 * MIB},
		{"9223372036854775807", INT64_MAX},
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		int64_t v = -7;
		if (parse_size(ok[i].s, &v) < 0)
			fail_msg("parse_size(\"%s\") failed", ok[i].s);
		if (v != ok[i].want)
			fail_msg("parse_size(\"%s\") = %lld, want %lld", ok[i].s, (long long)v,
				 (long long)ok[i].want);
	}
	static const char *const bad[] = {
		"", "-1", "-1M", "+5", " 5", "5 ", "abc", "5X", "5MX", "5Mi", "5iB", "1.5", ".5M",
		"5.M", "1..5M", "0x10", "1e3", "8191P", "9223372036854775808", "9223372036854775807k",
		"8388608T", "99999999999999999999999", "5 M ", "inf", "nan",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int64_t v = 42;
		if (parse_size(bad[i], &v) != -1)
			fail_msg("parse_size(\"%s\") accepted (%lld)", bad[i], (long long)v);
		assert_int_equal(v, 42);
	}
	int64_t v;
	assert_int_equal(parse_size(NULL, &v), -1);
	assert_int_equal(parse_size("8388607T", &v), 0);
	assert_int_equal(v, 8388607LL << 40);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_yaml),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_yaml_errors),
		cmocka_unit_test(test_yaml_bounds),
		cmocka_unit_test(test_procfile),
		cmocka_unit_test(test_procfile_errors),
		cmocka_unit_test(test_json_roundtrip),
		cmocka_unit_test(test_json_errors),
		cmocka_unit_test(test_name_valid),
		cmocka_unit_test_setup_teardown(test_load_dir, dir_setup, dir_teardown),
		cmocka_unit_test(test_dockerfile_yaml),
		cmocka_unit_test(test_dockerfile_path_valid),
		cmocka_unit_test_setup_teardown(test_load_dir_dockerfile, dir_setup, dir_teardown),
		cmocka_unit_test(test_server_conf_defaults),
		cmocka_unit_test_setup_teardown(test_server_conf_file, dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_server_conf_alerts, dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_server_conf_router, dir_setup, dir_teardown),
		cmocka_unit_test(test_parse_size),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
