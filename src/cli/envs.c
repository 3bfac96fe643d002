/* cli/envs: `berth envs`: the environments and how many apps each holds; `envs alerts ENV`
 * shows, sets (--webhook URL ...) or clears (--clear) the webhooks an env's alerts go to.
 * Webhook URLs are secrets: this file never prints one; it shows the server's redacted
 * form (scheme://host[:port]/…), and a URL the user typed is checked here (usage error,
 * nothing sent) with messages that do not quote it. */
#include <inttypes.h>
#include <string.h>
#include "alerts/alerts.h"
#include "cli/cmd.h"
#include "cli/output.h"
#include "manifest/manifest.h"

/* "apps" may be a count or the list of app names; show a count either way. */
static void count_apps(struct buf *b, json_t *apps)
{
	if (json_is_array(apps))
		buf_addf(b, "%zu", json_array_size(apps));
	else if (json_is_integer(apps))
		buf_addf(b, "%" PRId64, (int64_t)json_integer_value(apps));
	else
		buf_adds(b, "-");
}

static int list(struct cli_opts *o, struct client *c)
{
	json_t *doc = cli_get(c, "/v1/envs");
	int rc = EXIT_FAIL;
	if (doc && o->json) {
		rc = cli_print_json(doc);
	} else if (doc) {
		json_t *envs = json_object_get(doc, "envs");
		if (!json_array_size(envs)) {
			printf("No environments yet: the first deploy creates one (default \"%s\").\n",
			       DEFAULT_ENV);
		} else {
			static const char *const head[] = {"ENV", "APPS"};
			struct table *t = table_new(2, head);
			size_t i;
			json_t *env;
			json_array_foreach(envs, i, env) {
				struct buf n = BUF_INIT;
				count_apps(&n, json_object_get(env, "apps"));
				const char *row[] = {json_string_value(json_object_get(env, "name")), n.p};
				table_add(t, row);
				buf_free(&n);
			}
			table_print(t, stdout);
			table_free(t);
		}
		rc = cli_flush() ? EXIT_FAIL : EXIT_OK;
	}
	json_decref(doc);
	return rc;
}

/* One server string on a line of its own, control characters escaped. */
static void print_escaped(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)(s ? s : "-"); *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			printf("\\x%02x", *p);
		else
			putchar(*p);
	}
	putchar('\n');
}

/* The answer of GET or PUT /v1/envs/E/alerts, for a person. changed: after --webhook or
 * --clear (the lead says what happened rather than what is). */
static void show(json_t *doc, const char *env, bool changed)
{
	json_t *hooks = json_object_get(doc, "webhooks");
	const char *source = json_string_value(json_object_get(doc, "source"));
	size_t n = json_array_size(hooks);
	const char *s = n == 1 ? "" : "s";
	if (!n || !source || !strcmp(source, "none")) {
		printf("%s %s no webhooks of its own: its alerts go only to the server-wide webhooks "
		       "(server.yaml), if any.\n", env, changed ? "now has" : "has");
	} else if (!strcmp(source, "api")) {
		printf("%s's alerts %s to %zu webhook%s of its own (and to the server-wide ones):\n", env,
		       changed ? "now go" : "go", n, s);
	} else {
		printf("%s%s's alerts go to %zu webhook%s of its own from server.yaml (and to the "
		       "server-wide ones):\n", changed ? "Its own list was cleared; " : "", env, n, s);
	}
	size_t i;
	json_t *u;
	json_array_foreach(hooks, i, u) {
		printf("  ");
		print_escaped(json_string_value(u));
	}
}

/* The --webhook values checked as the server will (so a typo costs no round trip). Builds
 * {"webhooks": [...]} in *body, or returns the usage error's exit status. */
static int set_body(const struct cli_opts *o, json_t **body)
{
	*body = NULL;
	if (o->nwebhooks && o->clear)
		return cli_usage_error("envs", "--webhook and --clear do not go together (--webhook "
				       "already replaces the list)");
	if (o->nwebhooks > ALERTS_MAX_WEBHOOKS)
		return cli_usage_error("envs", "at most %d --webhook URLs, got %zu", ALERTS_MAX_WEBHOOKS,
				       o->nwebhooks);
	json_t *arr = json_array();
	for (size_t i = 0; i < o->nwebhooks; i++) {
		struct err e = ERR_INIT;
		if (alerts_url_check(o->webhooks[i], &e) < 0) {
			json_decref(arr);
			return cli_usage_error("envs", "--webhook #%zu: %s", i + 1, e.msg);
		}
		for (size_t j = 0; j < i; j++)
			if (!strcmp(o->webhooks[i], o->webhooks[j])) {
				json_decref(arr);
				return cli_usage_error("envs", "--webhook #%zu repeats --webhook #%zu", i + 1, j + 1);
			}
		json_array_append_new(arr, json_string(o->webhooks[i]));
	}
	*body = json_pack("{s:o}", "webhooks", arr);
	return 0;
}

static int alerts(struct cli_opts *o, struct client *c, const char *env)
{
	bool set = o->nwebhooks || o->clear;
	json_t *body = NULL;
	int rc;
	if (set && (rc = set_body(o, &body)))
		return rc;
	struct buf path = BUF_INIT;
	buf_adds(&path, "/v1/envs/");
	client_escape(&path, env);
	buf_adds(&path, "/alerts");
	json_t *doc = NULL;
	struct err e = ERR_INIT;
	if (client_json(c, set ? "PUT" : "GET", path.p, body, &doc, &e)) {
		rc = cli_fail(&e);
	} else if (o->json) {
		rc = cli_print_json(doc);
	} else {
		show(doc, env, set);
		rc = cli_flush() ? EXIT_FAIL : EXIT_OK;
	}
	json_decref(doc);
	json_decref(body);
	buf_free(&path);
	return rc;
}

int cmd_envs(struct cli_opts *o)
{
	bool is_alerts = o->npos && !strcmp(o->pos[0], "alerts");
	if (o->npos && !is_alerts)
		return cli_usage_error("envs", "envs takes no arguments but `alerts ENV`, got \"%s\"", o->pos[0]);
	if (!is_alerts && (o->nwebhooks || o->clear))
		return cli_usage_error("envs", "--%s goes with `berth envs alerts ENV`",
				       o->nwebhooks ? "webhook" : "clear");
	if (is_alerts && o->npos < 2)
		return cli_usage_error("envs", "envs alerts needs the env: `berth envs alerts ENV`");
	if (is_alerts && o->npos > 2)
		return cli_usage_error("envs", "envs alerts takes one env, got \"%s\" too", o->pos[2]);
	if (is_alerts && !name_valid(o->pos[1]))
		return cli_usage_error("envs", "\"%s\" is not an env name ([a-z0-9][a-z0-9-]*, at most 63)",
				       o->pos[1]);
	struct client c;
	int rc = cli_connect(o, &c);
	if (rc)
		return rc;
	rc = is_alerts ? alerts(o, &c, o->pos[1]) : list(o, &c);
	client_close(&c);
	return rc;
}
