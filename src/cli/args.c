/* cli/args: command-line flags and the argument languages of scale/config/rollback/logs/
 * routes (see args.h). Pure: no I/O, no globals besides the constant flag table. */
#include "cli/args.h"
#include <stdlib.h>
#include <string.h>
#include "manifest/manifest.h"
#include "util/buf.h"

struct flag_def {
	cli_flags_t bit;
	const char *lng;   /* spelled --lng */
	char shrt;         /* spelled -s; 0 = none */
	bool value;        /* takes a value */
};

static const struct flag_def flag_defs[] = {
	{F_APP, "app", 0, true},         {F_ENV, "env", 0, true},
	{F_JSON, "json", 0, false},      {F_API, "api", 0, true},
	{F_TOKEN, "token", 0, true},     {F_DATA, "data", 0, true},
	{F_MESSAGE, "message", 'm', true}, {F_FOLLOW, "follow", 'f', false},
	{F_LINES, "lines", 'n', true},   {F_PROCESS, "process", 0, true},
	{F_SINCE, "since", 0, true},     {F_YES, "yes", 'y', false},
	{F_ROLE, "role", 0, true},       {F_HELP, "help", 'h', false},
	{F_VERSION, "version", 0, false}, {F_STRIP, "strip-prefix", 0, false},
	{F_BALANCE, "balance", 0, true}, {F_ROUTER, "router", 0, false},
	{F_ERROR_PAGES, "error-pages", 0, true},
	{F_WEBHOOK, "webhook", 0, true},    {F_CLEAR, "clear", 0, false},
	{F_SIZE, "size", 0, true},       {F_DETACH, "detach", 'd', false},
	{F_NO_CACHE, "no-cache", 0, false}, {F_CANCEL, "cancel", 0, false},
	{F_CONFIRM, "confirm", 0, true}, {F_VOLUMES, "volumes", 0, false},
	{F_PURGE_LOGS, "purge-logs", 0, false}, {F_SHELL, "shell", 0, false},
	{F_RUN_RELEASE, "run-release", 0, false}, {F_TTY, "tty", 't', false},
	{F_NO_TTY, "no-tty", 'T', false}, {F_REVEAL, "reveal", 0, false},
	{F_FORCE, "force", 0, false},    {F_TIMEOUT, "timeout", 0, true},
	{F_SOURCE, "source", 0, true},
	{F_IMAGE, "image", 0, true},     {F_PULL, "pull", 0, true},
	/* Heroku's spelling of --follow (`heroku logs --tail`). */
	{F_FOLLOW, "tail", 0, false},
};
#define NFLAGS (sizeof flag_defs / sizeof flag_defs[0])

const char *cli_flag_name(cli_flags_t flag)
{
	for (size_t i = 0; i < NFLAGS; i++)
		if (flag_defs[i].bit == flag)
			return flag_defs[i].lng;
	return "";
}

static const struct flag_def *find_long(const char *name, size_t len)
{
	for (size_t i = 0; i < NFLAGS; i++)
		if (strlen(flag_defs[i].lng) == len && !memcmp(flag_defs[i].lng, name, len))
			return &flag_defs[i];
	return NULL;
}

static const struct flag_def *find_short(char c)
{
	for (size_t i = 0; i < NFLAGS; i++)
		if (flag_defs[i].shrt && flag_defs[i].shrt == c)
			return &flag_defs[i];
	return NULL;
}

static void set_flag(struct cli_opts *o, cli_flags_t bit, const char *v)
{
	o->set |= bit;
	switch (bit) {
	case F_APP: o->app = v; break;
	case F_ENV: o->env = v; break;
	case F_JSON: o->json = true; break;
	case F_API: o->api = v; break;
	case F_TOKEN: o->token = v; break;
	case F_DATA: o->data = v; break;
	case F_MESSAGE: o->message = v; break;
	case F_FOLLOW: o->follow = true; break;
	case F_LINES: o->lines = v; break;
	case F_PROCESS: o->process = v; break;
	case F_SINCE: o->since = v; break;
	case F_YES: o->yes = true; break;
	case F_ROLE: o->role = v; break;
	case F_HELP: o->help = true; break;
	case F_STRIP: o->strip_prefix = true; break;
	case F_BALANCE: o->balance = v; break;
	case F_ROUTER: o->router = true; break;
	case F_ERROR_PAGES: o->error_pages = v; break;
	case F_WEBHOOK:
		o->webhooks = xrealloc(o->webhooks, (o->nwebhooks + 1) * sizeof *o->webhooks);
		o->webhooks[o->nwebhooks++] = v;
		break;
	case F_CLEAR: o->clear = true; break;
	case F_SIZE: o->size = v; break;
	case F_DETACH: o->detach = true; break;
	case F_NO_CACHE: o->no_cache = true; break;
	case F_CANCEL: o->cancel = true; break;
	case F_CONFIRM: o->confirm = v; break;
	case F_VOLUMES: o->volumes = true; break;
	case F_PURGE_LOGS: o->purge_logs = true; break;
	case F_SHELL: o->shell = true; break;
	case F_RUN_RELEASE: o->run_release = true; break;
	case F_TTY: o->tty = true; break;
	case F_NO_TTY: o->no_tty = true; break;
	case F_REVEAL: o->reveal = true; break;
	case F_FORCE: o->force = true; break;
	case F_TIMEOUT: o->timeout = v; break;
	case F_SOURCE: o->source = v; break;
	case F_IMAGE: o->image = v; break;
	case F_PULL: o->pull = v; break;
	default: break;
	}
}

static void add_pos(struct cli_opts *o, const char *a)
{
	o->pos = xrealloc(o->pos, (o->npos + 1) * sizeof *o->pos);
	o->pos[o->npos++] = a;
}

static int not_allowed(const struct flag_def *d, struct err *e)
{
	return err_set(e, ERR_INVALID, "flag --%s does not apply to this verb", d->lng);
}

/* One "--name[=value]" arg at argv[*i]; advances *i past a separate value. */
static int parse_long(int argc, char **argv, int *i, cli_flags_t allowed, struct cli_opts *o,
		      struct err *e)
{
	const char *name = argv[*i] + 2;
	const char *eq = strchr(name, '=');
	size_t len = eq ? (size_t)(eq - name) : strlen(name);
	const struct flag_def *d = find_long(name, len);
	if (!d)
		return err_set(e, ERR_INVALID, "unknown flag --%.*s", (int)len, name);
	if (!(allowed & d->bit))
		return not_allowed(d, e);
	if (!d->value) {
		if (eq)
			return err_set(e, ERR_INVALID, "flag --%s takes no value", d->lng);
		set_flag(o, d->bit, NULL);
		return 0;
	}
	if (eq) {
		set_flag(o, d->bit, eq + 1);
		return 0;
	}
	if (*i + 1 >= argc)
		return err_set(e, ERR_INVALID, "flag --%s needs a value", d->lng);
	(*i)++;
	set_flag(o, d->bit, argv[*i]);
	return 0;
}

/* A cluster of short flags "-fy", "-n5", "-n 5" at argv[*i]. */
static int parse_short(int argc, char **argv, int *i, cli_flags_t allowed, struct cli_opts *o,
		       struct err *e)
{
	for (const char *p = argv[*i] + 1; *p; p++) {
		const struct flag_def *d = find_short(*p);
		if (!d)
			return err_set(e, ERR_INVALID, "unknown flag -%c", *p);
		if (!(allowed & d->bit))
			return not_allowed(d, e);
		if (!d->value) {
			set_flag(o, d->bit, NULL);
			continue;
		}
		if (p[1]) {
			set_flag(o, d->bit, p + 1);
			return 0;
		}
		if (*i + 1 >= argc)
			return err_set(e, ERR_INVALID, "flag -%c (--%s) needs a value", d->shrt, d->lng);
		(*i)++;
		set_flag(o, d->bit, argv[*i]);
		return 0;
	}
	return 0;
}

int cli_parse_flags(int argc, char **argv, cli_flags_t allowed, bool stop_at_positional,
		    struct cli_opts *o, int *next, struct err *e)
{
	int i;
	for (i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--")) {
			if (stop_at_positional) {
				i++;
				break;
			}
			for (i++; i < argc; i++)
				add_pos(o, argv[i]);
			break;
		}
		if (a[0] != '-' || a[1] == 0) {
			if (stop_at_positional)
				break;
			add_pos(o, a);
			continue;
		}
		int rc = a[1] == '-' ? parse_long(argc, argv, &i, allowed, o, e)
				     : parse_short(argc, argv, &i, allowed, o, e);
		if (rc)
			return -1;
	}
	if (next)
		*next = i;
	return 0;
}

void cli_opts_free(struct cli_opts *o)
{
	free(o->pos);
	o->pos = NULL;
	o->npos = 0;
	free(o->webhooks);
	o->webhooks = NULL;
	o->nwebhooks = 0;
}

int cli_parse_count(const char *s, int64_t max, int64_t *out)
{
	if (!s || !*s)
		return -1;
	int64_t v = 0;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (*p - '0');
		if (v > max)
			return -1;
	}
	*out = v;
	return 0;
}

int cli_parse_scale(size_t n, const char *const *args, json_t **out, struct err *e)
{
	json_t *f = json_object();
	for (size_t i = 0; i < n; i++) {
		const char *a = args[i];
		const char *eq = strchr(a, '=');
		if (!eq) {
			err_set(e, ERR_INVALID, "expected PROCESS=COUNT, got \"%s\"", a);
			goto fail;
		}
		char *name = xstrndup(a, (size_t)(eq - a));
		int64_t count;
		if (!name_valid(name)) {
			err_set(e, ERR_INVALID,
				"\"%s\": \"%s\" is not a process name (lowercase letters, digits and '-', "
				"at most 63)", a, name);
			free(name);
			goto fail;
		}
		if (cli_parse_count(eq + 1, 10000, &count)) {
			err_set(e, ERR_INVALID,
				"\"%s\": the count must be a non-negative integer (at most 10000)", a);
			free(name);
			goto fail;
		}
		if (json_object_get(f, name)) {
			err_set(e, ERR_INVALID, "\"%s\": process %s is given twice", a, name);
			free(name);
			goto fail;
		}
		json_object_set_new(f, name, json_integer(count));
		free(name);
	}
	*out = f;
	return 0;
fail:
	json_decref(f);
	return -1;
}

bool cli_config_key_valid(const char *k)
{
	if (!k || !((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') || *k == '_'))
		return false;
	for (const char *p = k + 1; *p; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		      (*p >= '0' && *p <= '9') || *p == '_'))
			return false;
	return true;
}

static int bad_key(const char *arg, const char *key, struct err *e)
{
	return err_set(e, ERR_INVALID,
		       "\"%s\": \"%s\" is not a config key (letters, digits and '_', not starting "
		       "with a digit)", arg, key);
}

int cli_parse_config_set(size_t n, const char *const *args, json_t **out, struct err *e)
{
	json_t *set = json_object();
	for (size_t i = 0; i < n; i++) {
		const char *a = args[i];
		const char *eq = strchr(a, '=');
		if (!eq) {
			err_set(e, ERR_INVALID, "expected KEY=VALUE, got \"%s\"", a);
			goto fail;
		}
		char *key = xstrndup(a, (size_t)(eq - a));
		if (!cli_config_key_valid(key)) {
			bad_key(a, key, e);
			free(key);
			goto fail;
		}
		json_t *v = json_string(eq + 1);
		if (!v) {
			err_set(e, ERR_INVALID, "the value of %s is not valid UTF-8", key);
			free(key);
			goto fail;
		}
		json_object_set_new(set, key, v);
		free(key);
	}
	*out = set;
	return 0;
fail:
	json_decref(set);
	return -1;
}

int cli_parse_config_unset(size_t n, const char *const *args, json_t **out, struct err *e)
{
	json_t *keys = json_array();
	for (size_t i = 0; i < n; i++) {
		if (!cli_config_key_valid(args[i])) {
			bad_key(args[i], args[i], e);
			json_decref(keys);
			return -1;
		}
		bool dup = false;
		for (size_t j = 0; j < i; j++)
			dup = dup || !strcmp(args[j], args[i]);
		if (!dup)
			json_array_append_new(keys, json_string(args[i]));
	}
	*out = keys;
	return 0;
}

int cli_parse_version(const char *s, int64_t *out, struct err *e)
{
	const char *d = (s[0] == 'v' || s[0] == 'V') ? s + 1 : s;
	int64_t v;
	if (cli_parse_count(d, 2147483647, &v) || v < 1)
		return err_set(e, ERR_INVALID, "\"%s\" is not a release: expected vN or N, e.g. v3", s);
	*out = v;
	return 0;
}

#define ROUTE_HOST_MAX 253
#define ROUTE_PATH_MAX 1024

static bool host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_';
}

/* Why host (len bytes, not NUL-terminated) is not a route host, or NULL when it is one. */
static const char *host_problem(const char *h, size_t len)
{
	if (len > ROUTE_HOST_MAX)
		return "is longer than 253 characters";
	if (memchr(h, ':', len))
		return "has a port: a route matches the Host header without one";
	for (size_t i = 0; i < len; i++)
		if (!host_char(h[i]))
			return "is not a host name (letters, digits, '-', '.' and '_')";
	if (h[0] == '-' || h[0] == '.' || h[len - 1] == '.')
		return "is not a host name (it starts with '-' or '.', or ends with '.')";
	for (size_t i = 0; i + 1 < len; i++)
		if (h[i] == '.' && h[i + 1] == '.')
			return "is not a host name (an empty label between dots)";
	return NULL;
}

/* Why path (starting with '/') is not a route path, or NULL when it is one. */
static const char *path_problem(const char *p)
{
	if (strlen(p) > ROUTE_PATH_MAX)
		return "is longer than 1024 characters";
	for (const char *c = p; *c; c++)
		if ((unsigned char)*c <= 0x20 || *c == 0x7f || *c == '?' || *c == '#' || *c == '%')
			return "holds a space, a control character, '?', '#' or '%'";
	for (const char *seg = p; seg; seg = strchr(seg + 1, '/')) {
		size_t n = strcspn(seg + 1, "/");
		if (n == 0 && seg[1] == '/')
			return "holds an empty segment (\"//\")";
		if ((n == 1 && seg[1] == '.') || (n == 2 && seg[1] == '.' && seg[2] == '.'))
			return "holds a \".\" or \"..\" segment";
	}
	return NULL;
}

int cli_parse_route_addr(const char *arg, char **host, char **path, struct err *e)
{
	*host = *path = NULL;
	if (strstr(arg, "://"))
		return err_set(e, ERR_INVALID, "\"%s\": give HOST[/PATH] without a scheme, e.g. "
			       "site.test/careers", arg);
	const char *slash = strchr(arg, '/');
	size_t hlen = slash ? (size_t)(slash - arg) : strlen(arg);
	if (!hlen)
		return err_set(e, ERR_INVALID, "\"%s\": a route starts with its host, e.g. "
			       "site.test/careers", arg);
	const char *why = host_problem(arg, hlen);
	if (why && !slash)
		return err_set(e, ERR_INVALID, "\"%s\" %s", arg, why);
	if (why)
		return err_set(e, ERR_INVALID, "\"%s\": the host \"%.*s\" %s", arg,
			       (int)(hlen > 300 ? 300 : hlen), arg, why);
	const char *p = slash ? slash : "/";
	if ((why = path_problem(p)))
		return err_set(e, ERR_INVALID, "\"%s\": the path %s", arg, why);
	size_t plen = strlen(p);
	while (plen > 1 && p[plen - 1] == '/')
		plen--;
	char *h = xstrndup(arg, hlen);
	for (char *c = h; *c; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
	*host = h;
	*path = xstrndup(p, plen);
	return 0;
}

bool cli_balance_valid(const char *s)
{
	return s && (!strcmp(s, "round-robin") || !strcmp(s, "least-conn"));
}
