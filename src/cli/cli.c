/* cli: `berth VERB ...`: the table of verbs, flags in front of the verb, dispatch, and the
 * help a user reads (`berth help`, `berth help VERB`, `berth VERB --help`). `server` and
 * gets its argv untouched (argv[0] = the verb); every other verb gets its command
 * line parsed against the flags it accepts. Heroku's VERB:SUB spellings are rewritten to
 * `VERB SUB` (aliases[]); an unknown verb gets the nearest ones suggested (unknown_verb).
 * Exit codes: 0 ok, 1 failure (server, network), 2 usage error. */
#include "cli/cli.h"
#include <string.h>
#include "cli/cmd.h"
#include "cli/version.h"
#include "server/server.h"

enum verb_group { G_APP, G_ADMIN, G_OTHER, G_HIDDEN };

struct verb {
	const char *name;
	int (*fn)(struct cli_opts *o);   /* NULL: handled in cli_main (server, help, version) */
	cli_flags_t flags;               /* F_* the verb accepts */
	enum verb_group group;
	const char *usage;               /* one or more lines, without "usage: " */
	const char *summary;             /* one line for the overview */
	const char *help;                /* what it does, then examples */
};

static const struct verb verbs[] = {
	{"deploy", cmd_deploy, F_COMMON | F_MESSAGE | F_NO_CACHE | F_CANCEL | F_IMAGE | F_PULL | F_PROCESS, G_APP,
	 "berth deploy [DIR] [--app A] [--env E] [-m TEXT] [--no-cache] [--pull P] [--json]\n"
	 "berth deploy --image REF [--pull missing|always|never] [--process P] [--app A] [--env E]\n"
	 "berth deploy --cancel [--app A] [--env E]",
	 "Pack a directory and roll it out as a new release",
	 "Checks DIR's berth.yaml or Procfile here first (a mistake is reported as file:line:col\n"
	 "before anything is uploaded), packs DIR (default: the current directory; .git/ and\n"
	 ".berth/ are left out) into a tar.gz, uploads it and rolls the new release out: new\n"
	 "instances must pass their health checks before old ones are stopped. The progress is\n"
	 "shown step by step. Exit status 0 when every new instance is healthy; on failure the\n"
	 "reason and the failing instance's last log lines are printed, the exit status is 1,\n"
	 "and the previous release keeps running.\n"
	 "App and env default to app:/env: in DIR/berth.yaml.\n"
	 "Containers: --image REF deploys an image as the app's web process (or --process P);\n"
	 "a berth.yaml may give `image:` to any process. The server pulls an image that is not\n"
	 "on its host (--pull missing, the default; always; never) with the credentials of\n"
	 "`berth registry login`, and pins it by id and digest: a tag that moves later changes\n"
	 "nothing until the next deploy.\n"
	 "\n"
	 "Examples:\n"
	 "  berth deploy                          # the app in the current directory\n"
	 "  berth deploy --image ghcr.io/acme/api:1.4 --app api\n"
	 "  berth deploy examples/web --app web   # another directory\n"
	 "  berth deploy --env staging -m \"try the new cache\"\n"
	 "  berth deploy --json | jq .event       # the raw progress events (NDJSON)\n"},
	{"apps", cmd_apps, F_COMMON | F_CONFIRM | F_VOLUMES | F_PURGE_LOGS, G_APP,
	 "berth apps [--env E] [--json]\n"
	 "berth apps create APP [--env E]\n"
	 "berth apps info [APP] [--env E] [--json]\n"
	 "berth apps destroy APP [--env E] --confirm APP [--volumes] [--purge-logs]",
	 "List, create, show or destroy apps",
	 "Lists every app in every environment (or only in E with --env) with its live release,\n"
	 "its state as it is (new, deploying, starting, running, crashing, degraded, failed,\n"
	 "stopped), running/wanted instances and formation.\n"
	 "`apps create APP` makes an app with no release: config (`berth config set`) and routes\n"
	 "(`berth routes add`) can be set before the first deploy, which takes them.\n"
	 "`apps info APP` shows one app in full.\n"
	 "`apps destroy APP --confirm APP` stops its instances and one-offs and removes its\n"
	 "releases, code, dependency cache, config and routes; volumes only with --volumes, logs\n"
	 "only with --purge-logs.\n"
	 "\n"
	 "Examples:\n"
	 "  berth apps\n"
	 "  berth apps --env staging --json\n"
	 "  berth apps create shop --env staging\n"
	 "  berth apps destroy shop --env staging --confirm shop\n"},
	{"envs", cmd_envs, F_CONN | F_JSON | F_HELP | F_WEBHOOK | F_CLEAR, G_APP,
	 "berth envs [--json]\n"
	 "berth envs alerts ENV [--json]\n"
	 "berth envs alerts ENV --webhook URL [--webhook URL ...]\n"
	 "berth envs alerts ENV --clear",
	 "List environments; show or set an env's alert webhooks",
	 "Lists the environments (namespaces such as production and staging) and how many apps\n"
	 "each holds. An environment comes into being with its first deploy.\n"
	 "`envs alerts ENV` shows the webhooks ENV's alerts go to besides the server-wide ones\n"
	 "(crash loops, failing health checks, failed deploys, recoveries; docs/metrics.md), and\n"
	 "where they come from: set here, from server.yaml's alerts.envs, or none. Webhook URLs\n"
	 "are secrets (a Slack URL is a bearer token), so they are only ever shown as\n"
	 "scheme://host[:port]/….\n"
	 "`--webhook URL` (repeat it, up to 16) replaces ENV's list at once, no restart needed;\n"
	 "`--clear` removes it (server.yaml's list for ENV, if any, applies again). A list set\n"
	 "here wins over server.yaml's for the same env. Setting needs an admin token.\n"
	 "\n"
	 "Examples:\n"
	 "  berth envs\n"
	 "  berth envs alerts staging\n"
	 "  berth envs alerts staging --webhook https://hooks.slack.com/services/T0/B0/XXXX\n"
	 "  berth envs alerts staging --clear\n"},
	{"ps", cmd_ps, F_COMMON, G_APP,
	 "berth ps [--app A] [--env E] [--json]",
	 "Show an app's instances",
	 "Shows each instance of the app: its release, state (starting, running, unhealthy,\n"
	 "backoff, stopping, stopped), pid, port, restart count, uptime and how its last run\n"
	 "ended (\"exit status 1\", \"killed by signal 9\"). A crash loop shows as state backoff\n"
	 "with a growing restart count.\n"
	 "\n"
	 "Examples:\n"
	 "  berth ps\n"
	 "  berth ps --app web --env staging\n"
	 "  berth ps --json | jq '.instances[] | select(.state != \"running\")'\n"},
	{"logs", cmd_logs, F_COMMON | F_FOLLOW | F_LINES | F_PROCESS | F_SINCE | F_ROUTER | F_SOURCE, G_APP,
	 "berth logs [-f] [-n N] [--process P] [--source app|berth] [--since T] [--app A] [--env E] [--json]\n"
	 "berth logs --router [-f] [-n N] [--since T] [--json]",
	 "Show (and follow) an app's logs or the router's access log",
	 "Prints the app's console output, all instances merged in time order, one line each:\n"
	 "  2026-11-24T20:19:13.123Z web.1 v3 | GET / 200\n"
	 "  2026-11-24T20:19:13.500Z worker.1 v3 err| retrying in 5s\n"
	 "(times in UTC; \"err|\" marks lines written to stderr).\n"
	 "With --router, prints the HTTP router's access log instead (no app needed), one line\n"
	 "per request with its route, upstream, status, bytes and duration:\n"
	 "  2026-11-24T20:19:13.130Z router | <the access-log line>\n"
	 "\n"
	 "Examples:\n"
	 "  berth logs -f\n"
	 "  berth logs -n 500 --process worker --since 1h\n"
	 "  berth logs --json | jq -r 'select(.stream == \"err\") | .line'\n"
	 "  berth logs --router -f\n"},
	{"releases", cmd_releases, F_COMMON | F_REVEAL, G_APP,
	 "berth releases [--app A] [--env E] [--json]\n"
	 "berth releases info vN [--reveal] [--app A] [--env E] [--json]",
	 "List an app's releases and what changed in each",
	 "Lists the app's releases, newest first: version, status (pending, active, superseded,\n"
	 "failed), when it was made, its description and what changed from the release before\n"
	 "(code, config keys, formation). Every deploy, config change and rollback makes a new\n"
	 "release (a scale or restart does not); releases never change. The BUILD column says how a release was built\n"
	 "(builder, build time, the dependency hash and whether it was unchanged).\n"
	 "`releases info vN` shows one release in full: its processes and commands, formation,\n"
	 "config keys (values masked unless --reveal), build, release phase,\n"
	 "cron jobs, who made it and when.\n"
	 "\n"
	 "Examples:\n"
	 "  berth releases\n"
	 "  berth releases --json | jq '.releases[0]'\n"},
	{"rollback", cmd_rollback, F_COMMON | F_RUN_RELEASE, G_APP,
	 "berth rollback [vN] [--run-release] [--app A] [--env E] [--json]",
	 "Roll back to an earlier release",
	 "Makes a new release with the code and config of release vN (written v3 or 3; default:\n"
	 "the release before the live one) and rolls it out like a deploy; the app keeps its\n"
	 "current scale. The release phase (release: in berth.yaml) is not run again unless\n"
	 "--run-release.\n"
	 "\n"
	 "Examples:\n"
	 "  berth rollback          # back to the release before the live one\n"
	 "  berth rollback v3\n"},
	{"config", cmd_config, F_COMMON | F_SHELL, G_APP,
	 "berth config [list] [--shell] [--app A] [--env E] [--json]\n"
	 "berth config get KEY\n"
	 "berth config set KEY=VALUE ...\n"
	 "berth config unset KEY ...",
	 "List, get, set or unset an app's config vars",
	 "An app's config is the environment its instances get on top of berth.yaml's config:.\n"
	 "`config` and `config list` show what an instance really gets, each value with its\n"
	 "source: config set, berth.yaml (its config: defaults), build (what the builder adds,\n"
	 "e.g. NODE_ENV and PATH) or berth (BERTH_APP, BERTH_ENV, BERTH_RELEASE; PORT and\n"
	 "BERTH_INSTANCE are per instance). `config --shell` prints KEY='value' lines for\n"
	 "`eval \"$(berth config --shell)\"`. `config get KEY` prints one value alone (for\n"
	 "scripts). `set` and `unset` make a new release and roll it out like a deploy; a change\n"
	 "that changes nothing makes no release. Before the first deploy they are kept for it. A KEY is\n"
	 "letters, digits and '_' (not starting with a digit); a VALUE is everything after the\n"
	 "first '=' and may be empty or contain '='.\n"
	 "\n"
	 "Examples:\n"
	 "  berth config\n"
	 "  eval \"$(berth config --shell)\"\n"
	 "  berth config set GREETING=hello DATABASE_URL=postgres://db/app?sslmode=disable\n"
	 "  berth config unset GREETING\n"
	 "  berth config get DATABASE_URL\n"},
	{"scale", cmd_scale, F_COMMON, G_APP,
	 "berth scale [PROCESS=COUNT ...] [--app A] [--env E] [--json]",
	 "Set how many instances of each process run",
	 "Sets the number of instances of each named process (a non-negative integer; 0 stops a\n"
	 "process) and rolls the change out; it makes no new release. Without\n"
	 "arguments, prints the current formation. A stopped app is not scaled: `berth start` it\n"
	 "first.\n"
	 "\n"
	 "Examples:\n"
	 "  berth scale web=3 worker=2\n"
	 "  berth scale worker=0\n"
	 "  berth scale             # show the formation, e.g. web=3 worker=2\n"},
	{"restart", cmd_restart, F_COMMON, G_APP,
	 "berth restart [PROCESS | PROCESS.N] [--app A] [--env E] [--json]",
	 "Restart an app's instances, one at a time",
	 "Replaces every instance of the app (or only those of PROCESS) with a fresh one of the\n"
	 "same release, one at a time, each new one gated by its health check.\n"
	 "PROCESS.N (as `berth ps` names it, e.g. web.2) restarts that one instance alone: for a\n"
	 "process with a port the new one starts and must be healthy before the old one stops, so\n"
	 "no request is dropped; a process without a port is stopped first, then started again.\n"
	 "A stopped app is left alone: `berth start` it first.\n"
	 "\n"
	 "Examples:\n"
	 "  berth restart\n"
	 "  berth restart worker\n"
	 "  berth restart web.2\n"},
	{"cron", cmd_cron, F_COMMON, G_APP,
	 "berth cron [list] [--app A] [--env E] [--json]\n"
	 "berth cron run NAME [--app A] [--env E]",
	 "List an app's scheduled jobs; run one now",
	 "Lists the cron: jobs of the app's live release (berth.yaml) with their schedule and time\n"
	 "zone, their last run (when, how long, how it ended) and their next run. Each run is a\n"
	 "one-off of the live release with its output in the logs as process cron.NAME\n"
	 "(`berth logs --process cron.NAME`). With concurrency: forbid (the default) a run still\n"
	 "going skips the next. After the server was down, a missed run is made up once.\n"
	 "`cron run NAME` starts the job now.\n"
	 "\n"
	 "Examples:\n"
	 "  berth cron\n"
	 "  berth cron run nightly-report\n"},
	{"stop", cmd_stop, F_COMMON, G_APP,
	 "berth stop [--app A] [--env E] [--json]",
	 "Stop every instance of an app",
	 "Stops every instance of the app (SIGTERM, a grace period, then SIGKILL). The release,\n"
	 "config and formation are kept; `berth start` brings the instances back.\n"
	 "\n"
	 "Examples:\n"
	 "  berth stop --app web --env staging\n"},
	{"start", cmd_start, F_COMMON, G_APP,
	 "berth start [--app A] [--env E] [--json]",
	 "Start a stopped app again",
	 "Starts the instances of a stopped app again, with its live release and formation.\n"
	 "\n"
	 "Examples:\n"
	 "  berth start --app web --env staging\n"},
	{"run", cmd_run, F_TARGET | F_CONN | F_HELP | F_PROCESS | F_SIZE | F_DETACH | F_TTY | F_NO_TTY,
	 G_APP,
	 "berth run [--process P] [--size PROFILE] [-d] [-t|-T] [--app A] [--env E] [--] CMD [ARGS...]",
	 "Run a one-off command in a new instance of the live release",
	 "Starts CMD in a new temporary instance of the app's live release, with the environment,\n"
	 "config, volumes and resource profile of the process P (--size picks another profile);\n"
	 "it gets no port and no route. berth stays attached: stdin goes to CMD, its stdout and\n"
	 "stderr come back, and berth exits with CMD's exit status (128+N when signal N ended it;\n"
	 "255 when the connection to the server was lost, which stops CMD).\n"
	 "CMD gets a terminal when stdin and stdout are terminals (-t forces one, -T gives plain\n"
	 "pipes); Ctrl-C is then a key like any other. With pipes, Ctrl-C sends SIGINT to CMD and\n"
	 "the third Ctrl-C disconnects, which stops CMD. Flags go before CMD: from CMD on, every\n"
	 "word is CMD's own. -d leaves CMD running in the background (its output goes to the\n"
	 "logs) and prints its id.\n"
	 "\n"
	 "Examples:\n"
	 "  berth run -- python manage.py migrate\n"
	 "  berth run sh                            # a shell in the app's environment\n"
	 "  berth run --process worker --size large -- rake reindex\n"
	 "  berth run -- sh -c 'psql \"$DATABASE_URL\"' < report.sql\n"
	 "  berth run -d -- ./scripts/backfill.sh    # prints the id, e.g. run.4\n"},
	{"exec", cmd_exec, F_TARGET | F_CONN | F_HELP | F_TTY | F_NO_TTY, G_APP,
	 "berth exec INSTANCE [-t|-T] [--app A] [--env E] [--] CMD [ARGS...]",
	 "Run a command beside a running instance",
	 "Runs CMD beside the running instance INSTANCE (as `berth ps` names it, e.g. web.1): in\n"
	 "its directory, with its environment, in its cgroup (so it shares the instance's memory\n"
	 "and CPU limits). The instance itself is left alone. berth stays attached as with\n"
	 "`berth run`: a terminal or pipes, Ctrl-C, CMD's exit status; CMD is stopped when berth\n"
	 "disconnects. Flags go before CMD: from CMD on, every word is CMD's own.\n"
	 "\n"
	 "Examples:\n"
	 "  berth exec web.1 -- sh\n"
	 "  berth exec worker.2 -- cat /proc/self/status\n"
	 "  berth exec web.1 --app shop ls -la\n"},
	{"volumes", cmd_volumes, F_COMMON | F_YES, G_APP,
	 "berth volumes [list] [--app A] [--env E] [--json]\n"
	 "berth volumes rm NAME --yes",
	 "List or delete an app's volumes",
	 "A volume is a named directory per (env, app) that outlives releases; processes declare\n"
	 "them in berth.yaml and get the path in an env var. `volumes` lists them with their\n"
	 "size; `volumes rm NAME --yes` deletes one with its data (refused while a running\n"
	 "instance uses it).\n"
	 "\n"
	 "Examples:\n"
	 "  berth volumes\n"
	 "  berth volumes rm uploads --yes\n"},
	{"routes", cmd_routes, F_COMMON | F_PROCESS | F_STRIP | F_BALANCE | F_ERROR_PAGES, G_APP,
	 "berth routes [list] [--json]\n"
	 "berth routes add HOST[/PATH] --app A [--env E] [--process P] [--strip-prefix]\n"
	 "                 [--balance round-robin|least-conn] [--error-pages DIR]\n"
	 "berth routes remove HOST[/PATH]",
	 "List, add or remove the HTTP router's routes",
	 "The router sends a request to the healthy instances of one process of an app, chosen\n"
	 "by the request's Host and the longest matching path prefix (on segment boundaries:\n"
	 "/careers matches /careers and /careers/x, not /careersx). Every app with a web process\n"
	 "also has the default routes APP.ENV.localhost and, in production, APP.localhost.\n"
	 "`routes` lists every route with the number of healthy instances it can reach now.\n"
	 "`routes add` sends HOST (or only PATH under it) to the process P (default web) of the\n"
	 "app A in env E (default: env: in ./berth.yaml, else production), replacing the route\n"
	 "of that HOST[/PATH] if there was one. --strip-prefix removes PATH from the request\n"
	 "path before it reaches the app; --balance picks round-robin (default) or least-conn.\n"
	 "--error-pages DIR replaces the router's own 502/503/504 pages for this route with\n"
	 "DIR/502.html, 503.html, 504.html (each optional; a client asking for JSON still gets\n"
	 "JSON; a 404 has no route, so it comes from server.yaml's router.error_pages, which\n"
	 "routes without a DIR also fall back to). DIR is a directory on the server's machine\n"
	 "and must exist when the route is added; a relative DIR is made absolute from the\n"
	 "current directory here, which is right when the CLI runs on the server's machine\n"
	 "(give a remote server an absolute path).\n"
	 "`routes remove` (or rm) takes a route away; default routes cannot be removed.\n"
	 "Several apps can share one host, split by path.\n"
	 "\n"
	 "Examples:\n"
	 "  berth routes\n"
	 "  berth routes add site.test --app new\n"
	 "  berth routes add site.test/careers --app old --strip-prefix\n"
	 "  berth routes add api.site.test --app api --env staging --balance least-conn\n"
	 "  berth routes add shop.test --app shop --error-pages /srv/shop/errors\n"
	 "  berth routes remove site.test/careers\n"},
	{"maintenance", cmd_maintenance, F_COMMON, G_APP,
	 "berth maintenance [on|off] [--app A] [--env E] [--json]",
	 "Turn an app's maintenance mode on or off",
	 "`maintenance on` makes the router answer every request for the app's hosts (its routes\n"
	 "and its APP.ENV.localhost / APP.localhost) with a 503 maintenance page (Retry-After: 60)\n"
	 "instead of sending it to the app; `maintenance off` sends requests to the app again.\n"
	 "The instances are left alone: they keep running and being health-checked, `berth ps`\n"
	 "does not change, deploys go on, and the mode stays on across deploys and server\n"
	 "restarts until it is turned off. The command returns once the router answers with the\n"
	 "new state. A maintenance.html in the route's --error-pages directory (or in server.yaml's\n"
	 "router.error_pages) replaces the built-in page. Without on or off, shows the state.\n"
	 "\n"
	 "Examples:\n"
	 "  berth maintenance on --app shop\n"
	 "  berth run --app shop -- ./migrate.sh && berth maintenance off --app shop\n"
	 "  berth maintenance --app shop --json\n"},
	{"tokens", cmd_tokens, F_CONN | F_JSON | F_HELP | F_ROLE, G_ADMIN,
	 "berth tokens [list] [--json]\n"
	 "berth tokens create NAME --role admin|deployer|viewer\n"
	 "berth tokens rm NAME",
	 "List, create or revoke API tokens (admin)",
	 "Roles: admin may do everything, deployer every app verb, viewer only reads.\n"
	 "`tokens create` prints the new token once, alone on stdout (the note goes to stderr),\n"
	 "so it can be captured; berth keeps only its hash and cannot show it again.\n"
	 "`tokens rm` revokes a token at once.\n"
	 "\n"
	 "Examples:\n"
	 "  berth tokens\n"
	 "  export BERTH_TOKEN=$(berth tokens create ci --role deployer)\n"
	 "  berth tokens rm ci\n"},
	{"registry", cmd_registry, F_CONN | F_JSON | F_HELP, G_ADMIN,
	 "berth registry [list] [--json]\n"
	 "berth registry login HOST [--username U] [--json]\n"
	 "berth registry logout HOST",
	 "Log in to or out of container registries (admin)",
	 "Keeps the credentials the server uses to pull private container images from HOST (a\n"
	 "registry host with an optional :PORT: ghcr.io, registry.example.com:5000, docker.io).\n"
	 "`registry login HOST` reads the password (or access token) from stdin when stdin is\n"
	 "not a terminal, else asks for it without echo; --username U (or -u U) names the user\n"
	 "(asked for when stdin is a terminal). The server first checks the credentials with\n"
	 "the registry (GET /v2/ and its token handshake, as `docker login` does; plain HTTP\n"
	 "for localhost and 127.0.0.1 and for hosts in server.yaml registries.insecure) and\n"
	 "stores them only if the registry accepts them, encrypted with the data dir's key. A\n"
	 "second login to HOST replaces them.\n"
	 "`registry list` shows the hosts, users, when and by whom, never a password.\n"
	 "`registry logout HOST` removes HOST's credentials.\n"
	 "\n"
	 "Examples:\n"
	 "  berth registry login ghcr.io --username octocat < ~/.ghcr-token\n"
	 "  echo \"$REGISTRY_PASSWORD\" | berth registry login registry.example.com:5000 -u ci\n"
	 "  berth registry\n"
	 "  berth registry logout ghcr.io\n"},
	{"server", NULL, 0, G_ADMIN,
	 "berth server [--data DIR] [--api HOST:PORT] [--config FILE] [FLAGS]",
	 "Run the berth daemon",
	 "Runs the daemon in the foreground until SIGTERM or Ctrl-C. State lives in DIR\n"
	 "(default ./.berth). On first start it creates an admin token in DIR/admin.token\n"
	 "(mode 0600); clients on the same machine can use it with --data DIR.\n"
	 "\n"
	 "Examples:\n"
	 "  berth server\n"
	 "  berth server --data /var/lib/berth --api 127.0.0.1:7070\n"},
	{"help", NULL, F_HELP, G_OTHER,
	 "berth help [VERB]",
	 "Show help for berth or one verb",
	 "Without VERB, lists every verb; with VERB, shows its flags and examples (the same as\n"
	 "`berth VERB --help`).\n"
	 "\n"
	 "Examples:\n"
	 "  berth help logs\n"},
	{"version", NULL, F_HELP, G_OTHER,
	 "berth version",
	 "Print berth's version",
	 "Prints the version of this berth binary (also `berth --version`).\n"},
};
#define NVERBS (sizeof verbs / sizeof verbs[0])

static const struct verb *find_verb_n(const char *name, size_t n)
{
	for (size_t i = 0; i < NVERBS; i++)
		if (strlen(verbs[i].name) == n && !strncmp(verbs[i].name, name, n))
			return &verbs[i];
	return NULL;
}

static const struct verb *find_verb(const char *name)
{
	return find_verb_n(name, strlen(name));
}

/* Optimal string alignment distance (an edit: insert, delete, replace, swap two neighbours),
 * for words of up to 31 bytes; longer ones are "far" (99). */
static int edit_distance(const char *a, const char *b)
{
	size_t n = strlen(a), m = strlen(b);
	if (n > 31 || m > 31)
		return 99;
	int d[32][32];
	for (size_t i = 0; i <= n; i++)
		d[i][0] = (int)i;
	for (size_t j = 0; j <= m; j++)
		d[0][j] = (int)j;
	for (size_t i = 1; i <= n; i++)
		for (size_t j = 1; j <= m; j++) {
			int best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
			if (d[i - 1][j] + 1 < best)
				best = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < best)
				best = d[i][j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    d[i - 2][j - 2] + 1 < best)
				best = d[i - 2][j - 2] + 1;
			d[i][j] = best;
		}
	return d[n][m];
}

/* Heroku's spellings. Beyond these renames, VERB:SUB is `VERB SUB` for every verb
 * (config:set, apps:create, releases:info, maintenance:on, ...); `logs --tail` is a flag of
 * its own (args.c). */
static const struct alias {
	const char *name;
	const char *verb;
	const char *arg;     /* a word put right after the verb; NULL: none */
} aliases[] = {
	{"ps:scale", "scale", NULL},
	{"ps:restart", "restart", NULL},
	{"releases:rollback", "rollback", NULL},
	{"run:detached", "run", "-d"},
};
#define NALIASES (sizeof aliases / sizeof aliases[0])

/* The verb a colon word stands for ("config:set": config, with *next "set"; "ps:scale":
 * scale, *next NULL), or NULL when it stands for none. *next points into word or the table. */
static const struct verb *resolve_colon(const char *word, const char **next)
{
	*next = NULL;
	for (size_t i = 0; i < NALIASES; i++)
		if (!strcmp(aliases[i].name, word)) {
			*next = aliases[i].arg;
			return find_verb(aliases[i].verb);
		}
	const char *colon = strchr(word, ':');
	if (!colon || colon == word || !colon[1])
		return NULL;
	for (size_t i = 0; i < NALIASES; i++)   /* "ps:sacle" is a typo, not `ps sacle` */
		if (edit_distance(aliases[i].name, word) <= 2)
			return NULL;
	const struct verb *v = find_verb_n(word, (size_t)(colon - word));
	if (!v || v->group == G_HIDDEN || !v->fn)
		return NULL;
	*next = colon + 1;
	return v;
}

/* The names closest to word (by edit distance, at most limit; else, with prefix, those word
 * is a prefix of, from 2 letters): their indexes into best_idx, returning how many. NULL
 * names are skipped. */
static size_t closest(const char *word, const char *const *names, size_t n, int limit, bool prefix,
		      size_t *best_idx)
{
	int best = 99;
	size_t nb = 0, wn = strlen(word);
	for (size_t i = 0; i < n; i++) {
		if (!names[i])
			continue;
		int d = edit_distance(word, names[i]);
		if (d > limit)
			d = prefix && wn >= 2 && !strncmp(names[i], word, wn) ? 50 : 99;
		if (d == 99 || d > best)
			continue;
		if (d < best)
			nb = 0;
		best = d;
		best_idx[nb++] = i;
	}
	return nb;
}

/* "berth: unknown verb "deplyo"; did you mean deploy?" on stderr. For VERB:SUB, the Heroku
 * spellings near it ("ps:sacle": ps:scale), else the verbs near VERB with :SUB kept. Returns
 * EXIT_USAGE. */
static int unknown_verb(const char *word)
{
	const char *names[NVERBS > NALIASES ? NVERBS : NALIASES];
	size_t idx[NVERBS > NALIASES ? NVERBS : NALIASES], nb = 0;
	const char *colon = strchr(word, ':'), *suffix = "";
	if (colon) {
		for (size_t i = 0; i < NALIASES; i++)
			names[i] = aliases[i].name;
		nb = closest(word, names, NALIASES, 2, false, idx);
	}
	if (!nb) {
		char w[32];
		size_t wn = colon ? (size_t)(colon - word) : strlen(word);
		snprintf(w, sizeof w, "%.*s", (int)(wn < sizeof w ? wn : sizeof w - 1), word);
		for (size_t i = 0; i < NVERBS; i++)
			names[i] = verbs[i].group == G_HIDDEN ? NULL : verbs[i].name;
		nb = closest(w, names, NVERBS, strlen(w) >= 5 ? 2 : 1, true, idx);
		suffix = colon ? colon : "";
	}
	fprintf(stderr, "berth: unknown verb \"%s\"", word);
	if (!nb) {
		fprintf(stderr, " (run `berth help` for the list)\n");
		return EXIT_USAGE;
	}
	fprintf(stderr, "; did you mean ");
	for (size_t k = 0; k < nb; k++)
		fprintf(stderr, "%s%s%s", k == 0 ? "" : k + 1 == nb ? " or " : ", ", names[idx[k]], suffix);
	fprintf(stderr, "?\n");
	return EXIT_USAGE;
}

/* One line per flag the verb accepts, for its help page. */
static void print_flags(FILE *f, const struct verb *v)
{
	static const struct {
		cli_flags_t bit;
		const char *text;
	} lines[] = {
		{F_APP, "  --app NAME        the app (default: app: in ./berth.yaml)"},
		{F_ENV, "  --env NAME        the environment (default: env: in ./berth.yaml, else "
			"production)"},
		{F_MESSAGE, "  -m, --message TEXT  the release's description"},
		{F_FOLLOW, "  -f, --follow      keep the stream open and print new lines as they come "
			   "(Ctrl-C ends)"},
		{F_LINES, "  -n, --lines N     how many past lines to show first (default 100)"},
		{F_PROCESS, "  --process NAME    only the instances of this process"},
		{F_SINCE, "  --since T         only lines since T: a time (2026-11-24T20:00:00Z) or a\n"
			  "                    duration back from now (10m, 2h)"},
		{F_YES, "  -y, --yes         confirm a deletion"},
		{F_ROLE, "  --role ROLE       the new token's role: admin, deployer or viewer"},
		{F_ROUTER, "  --router          the router's access log instead of an app's logs (no\n"
			   "                    --app, --env or --process)"},
		{F_STRIP, "  --strip-prefix    remove the route's PATH from the request path before "
			  "it\n                    reaches the app"},
		{F_BALANCE, "  --balance B       how requests are spread over the instances: "
			    "round-robin\n                    (default) or least-conn"},
		{F_ERROR_PAGES, "  --error-pages DIR the route's own 502.html/503.html/504.html "
				"(a directory on\n                    the server's machine; a relative "
				"DIR is resolved here)"},
		{F_WEBHOOK, "  --webhook URL     an http(s) webhook for the env's alerts (repeat for "
			    "more;\n                    replaces the env's list)"},
		{F_CLEAR, "  --clear           remove the env's own webhooks"},
		{F_SIZE, "  --size PROFILE    the resource profile of the one-off (default: the\n"
			 "                    process's own)"},
		{F_DETACH, "  -d, --detach      run in the background; the output goes to the logs"},
		{F_TTY, "  -t, --tty         give the command a terminal even when stdin is not one"},
		{F_NO_TTY, "  -T, --no-tty      plain pipes even when stdin is a terminal"},
		{F_NO_CACHE, "  --no-cache        build from scratch: do not reuse installed dependencies"},
		{F_CANCEL, "  --cancel          stop the rollout in progress; the live release stays"},
		{F_CONFIRM, "  --confirm NAME    the app's name again, to confirm"},
		{F_VOLUMES, "  --volumes         also delete the app's volumes and their data"},
		{F_PURGE_LOGS, "  --purge-logs      also delete the app's logs"},
		{F_SHELL, "  --shell           print KEY='value' lines for eval in a shell"},
		{F_RUN_RELEASE, "  --run-release     run the release phase (release: in berth.yaml) for\n"
				"                    the rollback too"},
		{F_REVEAL, "  --reveal          show config values (masked otherwise)"},
		{F_FORCE, "  --force           do it even though a safety check says no"},
		{F_TIMEOUT, "  --timeout D       give up after D (30s, 10m, 1h)"},
		{F_SOURCE, "  --source S        app: only the app's own output; berth: only berth's lines\n"
			   "                    about the instances (started, healthy, crashed, ...); all\n"
			   "                    (default): both"},
		{F_JSON, "  --json            print JSON (stable fields, see docs/API.md) instead of "
			 "text"},
		{F_API, "  --api URL         the berth server (default: $BERTH_API, else "
			CLIENT_DEFAULT_API ")"},
		{F_TOKEN, "  --token TOKEN     the API token (default: $BERTH_TOKEN)"},
		{F_DATA, "  --data DIR        the server's data directory on this machine: use "
			 "DIR/admin.token"},
	};
	/* Where a flag means something else for one verb. */
	static const struct {
		const char *verb;
		cli_flags_t bit;
		const char *text;
	} special[] = {
		{"apps", F_ENV, "  --env NAME        the environment (listing: only the apps in it; default:\n"
			"                    all; create/info/destroy: default production)"},
		{"routes", F_APP, "  --app NAME        the app the route sends to (routes add; required)"},
		{"routes", F_ENV, "  --env NAME        the app's environment (default: env: in "
			"./berth.yaml, else\n                    production)"},
		{"routes", F_PROCESS, "  --process NAME    the process the route sends to (default "
			"web)"},
		{"run", F_PROCESS, "  --process NAME    the process whose environment, volumes and profile "
			"CMD gets\n                    (default web)"},
	};
	if (!(v->flags & ~F_HELP))
		return;
	fputs("\nFlags:\n", f);
	for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
		if (!(v->flags & lines[i].bit))
			continue;
		const char *text = lines[i].text;
		for (size_t k = 0; k < sizeof special / sizeof special[0]; k++)
			if (special[k].bit == lines[i].bit && !strcmp(special[k].verb, v->name))
				text = special[k].text;
		fprintf(f, "%s\n", text);
	}
}

void cli_print_usage(FILE *f, const char *verb)
{
	const struct verb *v = find_verb(verb);
	if (!v)
		return;
	const char *p = v->usage;
	const char *lead = "usage: ";
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		fprintf(f, "%s%.*s\n", lead, (int)n, p);
		lead = "       ";
		p += n + (nl ? 1 : 0);
	}
	if (f == stderr)
		fprintf(f, "Run `berth help %s` for details.\n", verb);
}

static void print_verb_help(const struct verb *v)
{
	cli_print_usage(stdout, v->name);
	printf("\n%s.\n\n%s", v->summary, v->help);
	if (!strcmp(v->name, "server")) {   /* its flags are the server's own (server.c) */
		fputs("\nFlags:\n", stdout);
		server_print_flags(stdout);
	} else {
		print_flags(stdout, v);
	}
}

static void print_overview(FILE *f)
{
	static const char *const titles[] = {"Apps", "Admin", "Other"};
	fputs("berth: deploy, supervise and watch apps on your own machines.\n\n"
	      "usage: berth VERB [ARGS] [FLAGS]\n", f);
	for (int g = G_APP; g <= G_OTHER; g++) {
		fprintf(f, "\n%s:\n", titles[g]);
		for (size_t i = 0; i < NVERBS; i++)
			if ((int)verbs[i].group == g)
				fprintf(f, "  %-10s %s\n", verbs[i].name, verbs[i].summary);
	}
	fputs("\nHeroku's spellings work too:\n"
	      "  VERB:SUB            VERB SUB (config:set, config:get, config:unset, apps:create,\n"
	      "                      apps:info, apps:destroy, releases:info, maintenance:on, ...)\n", f);
	for (size_t i = 0; i < NALIASES; i++)
		fprintf(f, "  %-19s %s%s%s\n", aliases[i].name, aliases[i].verb, aliases[i].arg ? " " : "",
			aliases[i].arg ? aliases[i].arg : "");
	fprintf(f, "  %-19s %s\n", "logs --tail", "logs -f");
	fputs("\nApp and env come from --app/--env or from app:/env: in ./berth.yaml (env defaults\n"
	      "to production). The server is --api or $BERTH_API (default " CLIENT_DEFAULT_API ");\n"
	      "the token is --token or $BERTH_TOKEN, or DIR/admin.token with --data DIR.\n"
	      "Exit status: 0 ok, 1 failed, 2 usage error.\n"
	      "Run `berth help VERB` (or `berth VERB --help`) for a verb's flags and examples.\n", f);
}

static int print_version(void)
{
	printf("berth %s\n", BERTH_VERSION);
	return cli_flush() ? EXIT_FAIL : EXIT_OK;
}

static int cmd_help(struct cli_opts *o)
{
	if (o->npos > 1)
		return cli_usage_error("help", "help takes at most one verb");
	if (!o->npos) {
		print_overview(stdout);
		return cli_flush() ? EXIT_FAIL : EXIT_OK;
	}
	const char *next;
	const struct verb *v = find_verb(o->pos[0]);
	if (!v)
		v = resolve_colon(o->pos[0], &next);
	if (!v || v->group == G_HIDDEN)
		return unknown_verb(o->pos[0]);
	print_verb_help(v);
	return cli_flush() ? EXIT_FAIL : EXIT_OK;
}

/* The flags in front of the verb must be ones the verb takes. */
static int check_front_flags(const struct verb *v, cli_flags_t front)
{
	for (cli_flags_t bit = 1; bit && bit <= front; bit <<= 1)
		if ((front & bit) && !(v->flags & bit))
			return cli_usage_error(v->name, "flag --%s does not apply to `berth %s`",
					       cli_flag_name(bit), v->name);
	return 0;
}

/* run and exec end with a command of its own: their flags stop at the command's first word
 * (exec's INSTANCE comes before it), so `berth run ls -la` hands -la to ls. */
static int parse_command_line(const struct verb *v, int argc, char **argv, struct cli_opts *o,
			      struct err *e)
{
	int i = 0, next;
	int lead = v->fn == cmd_exec;   /* positional words before the command */
	for (;;) {
		if (cli_parse_flags(argc - i, argv + i, v->flags, true, o, &next, e))
			return -1;
		i += next;
		bool dashdash = next > 0 && !strcmp(argv[i - 1], "--");
		if (i >= argc || dashdash || lead == 0)
			break;
		o->pos = xrealloc(o->pos, (o->npos + 1) * sizeof *o->pos);
		o->pos[o->npos++] = argv[i++];
		lead--;
	}
	o->pos = xrealloc(o->pos, (o->npos + (size_t)(argc - i)) * sizeof *o->pos);
	while (i < argc)
		o->pos[o->npos++] = argv[i++];
	return 0;
}

int cli_main(int argc, char **argv)
{
	struct cli_opts o = {0};
	struct err e = ERR_INIT;
	int next = 0, rc;
	if (argc < 2) {
		print_overview(stdout);
		return EXIT_OK;
	}
	/* Flags in front of the verb: `berth --api URL ps`. */
	if (cli_parse_flags(argc - 1, argv + 1, ~(cli_flags_t)0, true, &o, &next, &e)) {
		fprintf(stderr, "berth: %s (run `berth help` for the list of verbs and flags)\n", e.msg);
		return EXIT_USAGE;
	}
	int vi = next + 1;   /* index of the verb in argv */
	cli_flags_t front = o.set;
	if (vi >= argc) {
		cli_opts_free(&o);
		if (front & F_VERSION)
			return print_version();
		if (front & F_HELP) {
			print_overview(stdout);
			return EXIT_OK;
		}
		fprintf(stderr, "berth: no verb given (run `berth help` for the list)\n");
		return EXIT_USAGE;
	}
	const struct verb *v = find_verb(argv[vi]);
	if (!v) {
		cli_opts_free(&o);
		const char *word;
		if (!(v = resolve_colon(argv[vi], &word)))
			return unknown_verb(argv[vi]);
		/* `berth ps:scale web=2` is `berth scale web=2`: the same line with the words
		 * of the Heroku spelling replaced. */
		char **av = xcalloc((size_t)argc + 2, sizeof *av);
		int n = 0;
		for (int i = 0; i < vi; i++)
			av[n++] = argv[i];
		av[n++] = (char *)v->name;
		if (word)
			av[n++] = (char *)word;
		for (int i = vi + 1; i < argc; i++)
			av[n++] = argv[i];
		rc = cli_main(n, av);
		free(av);
		return rc;
	}
	if (front & F_VERSION) {
		cli_opts_free(&o);
		fprintf(stderr, "berth: --version goes alone: `berth --version`\n");
		return EXIT_USAGE;
	}
	if (!strcmp(v->name, "server")) {
		cli_opts_free(&o);
		if ((front == F_HELP || (!front && server_wants_help(argc - vi, argv + vi))) &&
		    v->group != G_HIDDEN) {   /* `berth --help server`, `berth server --help` */
			print_verb_help(v);
			return cli_flush() ? EXIT_FAIL : EXIT_OK;
		}
		if (front) {
			fprintf(stderr, "berth: put the flags of `berth %s` after the verb, e.g. "
				"`berth server --data DIR`\n", v->name);
			return EXIT_USAGE;
		}
		return server_main(argc - vi, argv + vi);
	}
	if ((rc = check_front_flags(v, front & ~F_HELP))) {
		cli_opts_free(&o);
		return rc;
	}
	if (v->fn == cmd_run || v->fn == cmd_exec || v->fn == cmd_registry   /* registry: --username */
		    ? parse_command_line(v, argc - vi - 1, argv + vi + 1, &o, &e)
		    : cli_parse_flags(argc - vi - 1, argv + vi + 1, v->flags, false, &o, NULL, &e)) {
		cli_opts_free(&o);
		return cli_usage_error(v->name, "%s", e.msg);
	}
	if (o.help && strcmp(v->name, "help")) {
		print_verb_help(v);
		rc = cli_flush() ? EXIT_FAIL : EXIT_OK;
	} else if (!strcmp(v->name, "help")) {
		rc = cmd_help(&o);
	} else if (!strcmp(v->name, "version")) {
		rc = o.npos ? cli_usage_error("version", "version takes no arguments") : print_version();
	} else {
		rc = v->fn(&o);
	}
	cli_opts_free(&o);
	return rc;
}
