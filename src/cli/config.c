/* cli/config: `berth config [list] [--shell]`, `config get K`, `config set K=V ...`,
 * `config unset K ...`. The listing shows what an instance really gets, each value with its
 * source (config set, berth.yaml, build, berth).
 * An app's config is the environment its instances get; changing it makes a new release that
 * rolls out like a deploy. Values are shown because that is what this verb is for; they are
 * never part of an error message. */
#include <stdlib.h>
#include <string.h>
#include "cli/cmd.h"
#include "cli/output.h"

static int cmp_var(const void *a, const void *b)
{
	json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	return strcmp(json_string_value(json_object_get(x, "key")), json_string_value(json_object_get(y, "key")));
}

/* The vars an instance gets, sorted by key (borrowed entries; free the array). */
static json_t **sorted_vars(json_t *doc, size_t *n)
{
	json_t *vars = json_object_get(doc, "vars");
	*n = json_array_size(vars);
	json_t **v = xcalloc(*n ? *n : 1, sizeof *v);
	for (size_t i = 0; i < *n; i++)
		v[i] = json_array_get(vars, i);
	qsort(v, *n, sizeof *v, cmp_var);
	return v;
}

/* Is it one of berth's own (BERTH_*), not the app's config? */
static bool berth_own(json_t *var)
{
	return !strcmp(json_string_value(json_object_get(var, "source")), "berth");
}

static void show_list(json_t *doc, const struct cli_target *t)
{
	size_t n, own = 0;
	json_t **v = sorted_vars(doc, &n);
	for (size_t i = 0; i < n; i++)
		own += berth_own(v[i]);
	if (n == own) {
		printf("No config vars for %s in %s. Set one with `berth config set KEY=VALUE`.\n",
		       t->app, t->env);
		free(v);
		return;
	}
	static const char *const head[] = {"KEY", "VALUE", "SOURCE"};
	struct table *tb = table_new(3, head);
	for (size_t i = 0; i < n; i++) {
		const char *src = json_string_value(json_object_get(v[i], "source"));
		if (berth_own(v[i]))
			continue;      /* BERTH_APP, BERTH_ENV, ...: in --json; every app has them */
		const char *row[] = {json_string_value(json_object_get(v[i], "key")),
				     json_string_value(json_object_get(v[i], "value")),
				     !strcmp(src, "config") ? "config set" : src};
		if (!row[1])
			row[1] = "";
		table_add(tb, row);
	}
	table_print(tb, stdout);
	table_free(tb);
	free(v);
}

/* `config --shell`: KEY='value' lines for eval (the app's own vars: not PATH nor BERTH_*). */
static void show_shell(json_t *doc, const struct cli_target *t)
{
	size_t n;
	json_t **v = sorted_vars(doc, &n);
	for (size_t i = 0; i < n; i++) {
		const char *k = json_string_value(json_object_get(v[i], "key"));
		const char *src = json_string_value(json_object_get(v[i], "source"));
		const char *val = json_string_value(json_object_get(v[i], "value"));
		if (!k || !val || !strcmp(src, "berth") || !strcmp(k, "PATH"))
			continue;
		printf("%s='", k);
		for (const char *p = val; *p; p++) {
			if (*p == '\'')
				fputs("'\\''", stdout);
			else
				putchar(*p);
		}
		puts("'");
	}
	free(v);
}

/* `config get K`: the bare value, for scripts. */
static int get_one(struct cli_opts *o, const char *key)
{
	if (!cli_config_key_valid(key))
		return cli_usage_error("config", "\"%s\" is not a config key", key);
	struct cli_target t;
	struct client c;
	int rc = cli_app_open(o, &t, &c);
	if (rc)
		return rc;
	struct buf path = BUF_INIT;
	cli_app_path(&path, &t, "/config");
	json_t *doc = cli_get(&c, path.p);
	rc = EXIT_FAIL;
	if (doc) {
		json_t *v = json_object_get(json_object_get(doc, "config"), key);
		size_t i;
		json_t *it;
		json_array_foreach(json_object_get(doc, "vars"), i, it)
			if (!strcmp(json_string_value(json_object_get(it, "key")), key))
				v = json_object_get(it, "value");
		if (!v) {
			fprintf(stderr, "berth: %s is not set for %s in %s\n", key, t.app, t.env);
		} else if (o->json) {
			rc = cli_print_json(v);
		} else {
			const char *s = json_string_value(v);
			fwrite(s ? s : "", 1, s ? json_string_length(v) : 0, stdout);
			fputc('\n', stdout);
			rc = cli_flush() ? EXIT_FAIL : EXIT_OK;
		}
	}
	json_decref(doc);
	buf_free(&path);
	cli_app_close(&t, &c);
	return rc;
}

static int change(struct cli_opts *o, bool set)
{
	size_t n = o->npos - 1;
	const char *const *args = o->pos + 1;
	if (!n)
		return cli_usage_error("config", set ? "config set needs at least one KEY=VALUE"
						     : "config unset needs at least one KEY");
	json_t *part;
	struct err e = ERR_INIT;
	if ((set ? cli_parse_config_set : cli_parse_config_unset)(n, args, &part, &e))
		return cli_usage_error("config", "%s", e.msg);
	json_t *body = set ? json_pack("{s o s []}", "set", part, "unset")
			   : json_pack("{s {} s o}", "set", "unset", part);
	int rc = cli_app_change(o, "/config", body);
	json_decref(body);
	return rc;
}

int cmd_config(struct cli_opts *o)
{
	const char *sub = o->npos ? o->pos[0] : "list";
	if (!strcmp(sub, "list")) {
		if (o->npos > 1)
			return cli_usage_error("config", "config list takes no arguments, got \"%s\"",
					       o->pos[1]);
		if (o->shell && o->json)
			return cli_usage_error("config", "--shell and --json do not go together");
		return cli_app_get(o, "/config", o->shell ? show_shell : show_list);
	}
	if (!strcmp(sub, "get")) {
		if (o->npos != 2)
			return cli_usage_error("config", "config get takes exactly one KEY");
		return get_one(o, o->pos[1]);
	}
	if (!strcmp(sub, "set"))
		return change(o, true);
	if (!strcmp(sub, "unset"))
		return change(o, false);
	if (strchr(sub, '='))
		return cli_usage_error("config", "to set config, write `berth config set %s`", sub);
	return cli_usage_error("config", "unknown config command \"%s\" (list, get, set or unset)",
			       sub);
}
