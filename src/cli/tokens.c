/* cli/tokens: API tokens (admin only): `berth tokens` lists them (names, roles, never the
 * secrets), `tokens create NAME --role R` makes one and prints it this one time, `tokens rm
 * NAME` revokes one. The new token goes alone on stdout so scripts can capture it; the
 * note around it goes to stderr. */
#include <string.h>
#include "cli/cmd.h"
#include "cli/output.h"
#include "util/timeutil.h"

static const char *const roles[] = {"admin", "deployer", "viewer"};

static bool role_valid(const char *r)
{
	for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++)
		if (!strcmp(r, roles[i]))
			return true;
	return false;
}

static void show_list(json_t *tokens)
{
	static const char *const head[] = {"NAME", "ROLE", "CREATED"};
	struct table *t = table_new(3, head);
	int64_t now = time_now_us();
	size_t i;
	json_t *tk;
	json_array_foreach(tokens, i, tk) {
		struct buf created = BUF_INIT;
		fmt_ago_str(&created, json_string_value(json_object_get(tk, "created_at")), now);
		const char *row[] = {json_string_value(json_object_get(tk, "name")),
				     json_string_value(json_object_get(tk, "role")), created.p};
		table_add(t, row);
		buf_free(&created);
	}
	table_print(t, stdout);
	table_free(t);
}

static int list(struct cli_opts *o, struct client *c)
{
	return cli_list(o, c, "/v1/tokens", "tokens", "No tokens.", show_list);
}

static int create(struct cli_opts *o, struct client *c, const char *name)
{
	json_t *body = json_pack("{s:s, s:s}", "name", name, "role", o->role);
	json_t *doc = NULL;
	struct err e = ERR_INIT;
	int rc;
	if (!body) {
		err_set(&e, ERR_INVALID, "the token name is not valid UTF-8");
		return cli_fail(&e);
	}
	if (client_json(c, "POST", "/v1/tokens", body, &doc, &e)) {
		rc = cli_fail(&e);
	} else if (o->json) {
		rc = cli_print_json(doc);
	} else {
		const char *token = json_string_value(json_object_get(doc, "token"));
		if (!token) {
			err_set(&e, ERR_INTERNAL, "the server's answer has no token");
			rc = cli_fail(&e);
		} else {
			fprintf(stderr, "Created token %s (role %s). It is shown only this once; store it "
				"now (e.g. as BERTH_TOKEN):\n", name, o->role);
			printf("%s\n", token);
			rc = cli_flush() ? EXIT_FAIL : EXIT_OK;
		}
	}
	json_decref(body);
	json_decref(doc);
	return rc;
}

static int rm(struct cli_opts *o, struct client *c, const char *name)
{
	struct buf path = BUF_INIT;
	buf_adds(&path, "/v1/tokens/");
	client_escape(&path, name);
	char *done = xasprintf("Deleted token %s: it no longer works.", name);
	int rc = cli_delete(o, c, path.p, done);
	free(done);
	buf_free(&path);
	return rc;
}

int cmd_tokens(struct cli_opts *o)
{
	const char *sub = o->npos ? o->pos[0] : "list";
	bool is_list = !strcmp(sub, "list"), is_create = !strcmp(sub, "create"),
	     is_rm = !strcmp(sub, "rm");
	if (!is_list && !is_create && !is_rm)
		return cli_usage_error("tokens", "unknown tokens command \"%s\" (list, create or rm)",
				       sub);
	if (is_list && o->npos > 1)
		return cli_usage_error("tokens", "tokens list takes no arguments, got \"%s\"",
				       o->pos[1]);
	if (!is_list && o->npos != 2)
		return cli_usage_error("tokens", "tokens %s takes exactly one token name", sub);
	if (is_create && !o->role)
		return cli_usage_error("tokens", "tokens create needs --role (admin, deployer or "
				       "viewer)");
	if (is_create && !role_valid(o->role))
		return cli_usage_error("tokens", "unknown role \"%s\" (admin, deployer or viewer)",
				       o->role);
	if (!is_create && o->role)
		return cli_usage_error("tokens", "--role only goes with tokens create");
	if (is_create && !*o->pos[1])
		return cli_usage_error("tokens", "the token name is empty");
	struct client c;
	int rc = cli_connect(o, &c);
	if (rc)
		return rc;
	if (is_list)
		rc = list(o, &c);
	else if (is_create)
		rc = create(o, &c, o->pos[1]);
	else
		rc = rm(o, &c, o->pos[1]);
	client_close(&c);
	return rc;
}
