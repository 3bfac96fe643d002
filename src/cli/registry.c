/* cli/registry: container registry credentials (admin only). `berth registry` (or `registry
 * list`) shows them without the passwords; `registry login HOST [--username U]` reads the
 * password from stdin, or from a prompt without echo when stdin is a terminal, and sends both
 * to the server, which checks them with the registry before it stores them (encrypted);
 * `registry logout HOST` removes them. The password is never put on the command line (where
 * ps and shell history would show it) nor printed.
 * Flag parsing: the verb table hands this verb the words after its subcommand untouched
 * (cli.c, like run's command), so that --username/-u, which only this verb has, is taken
 * here; the rest goes through cli_parse_flags as for any verb. */
#include <errno.h>
#include <signal.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include "cli/cli.h"
#include "cli/cmd.h"
#include "cli/output.h"
#include "registry/registry.h"
#include "util/secret.h"
#include "util/timeutil.h"

#define VERB "registry"

/* ---- reading the password ---- */

static struct termios saved_tio;
static volatile sig_atomic_t echo_off;

static void echo_restore(void)
{
	if (echo_off) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
		echo_off = 0;
	}
}

/* Ctrl-C at the prompt: give the terminal its echo back, then die of the signal. */
static void on_signal(int sig)
{
	echo_restore();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* One line from stdin into out (without its newline), at most max bytes. 0, or -1 with e. */
static int read_line(struct buf *out, size_t max, const char *what, struct err *e)
{
	for (;;) {
		char ch;
		ssize_t r = read(STDIN_FILENO, &ch, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return err_errno(e, errno, "reading the %s", what);
		if (r == 0 || ch == '\n')
			return 0;
		if (out->len >= max)
			return err_set(e, ERR_INVALID, "the %s is longer than %zu bytes", what, max);
		buf_addc(out, ch);
	}
}

/* Prompt on the terminal (stdin) for a line; echo off for a secret. */
static int prompt(const char *text, bool secret, struct buf *out, size_t max, const char *what, struct err *e)
{
	fputs(text, stderr);
	fflush(stderr);
	if (secret) {
		if (tcgetattr(STDIN_FILENO, &saved_tio) < 0)
			return err_errno(e, errno, "cannot read the terminal's settings");
		struct termios t = saved_tio;
		t.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
		signal(SIGINT, on_signal);
		signal(SIGTERM, on_signal);
		signal(SIGHUP, on_signal);
		signal(SIGQUIT, on_signal);
		if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &t) < 0)
			return err_errno(e, errno, "cannot turn the terminal's echo off");
		echo_off = 1;
	}
	buf_grow(out, max + 1);   /* no realloc leaves a copy of a secret behind */
	int rc = read_line(out, max, what, e);
	if (secret) {
		echo_restore();
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		signal(SIGQUIT, SIG_DFL);
		fputc('\n', stderr);
	}
	return rc;
}

/* The whole of stdin (a pipe or file), without one trailing "\n" or "\r\n", as `docker login
 * --password-stdin` takes it. */
static int read_stdin_secret(struct buf *out, size_t max, struct err *e)
{
	buf_grow(out, max + 3);
	for (;;) {
		if (out->len > max + 2)
			return err_set(e, ERR_INVALID, "the password on stdin is longer than %zu bytes", max);
		ssize_t r = read(STDIN_FILENO, out->p + out->len, max + 3 - out->len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return err_errno(e, errno, "reading the password from stdin");
		if (r == 0)
			break;
		out->len += (size_t)r;
	}
	if (out->len && out->p[out->len - 1] == '\n')
		out->len--;
	if (out->len && out->p[out->len - 1] == '\r')
		out->len--;
	out->p[out->len] = 0;
	if (out->len > max)
		return err_set(e, ERR_INVALID, "the password on stdin is longer than %zu bytes", max);
	return 0;
}

/* ---- the subcommands ---- */

static void show_list(json_t *regs)
{
	static const char *const head[] = {"HOST", "USERNAME", "ADDED", "BY"};
	struct table *t = table_new(4, head);
	int64_t now = time_now_us();
	size_t i;
	json_t *r;
	json_array_foreach(regs, i, r) {
		struct buf added = BUF_INIT;
		fmt_ago_str(&added, json_string_value(json_object_get(r, "added_at")), now);
		const char *by = json_string_value(json_object_get(r, "added_by"));
		const char *row[] = {json_string_value(json_object_get(r, "host")),
				     json_string_value(json_object_get(r, "username")), added.p,
				     by && *by ? by : NULL};
		table_add(t, row);
		buf_free(&added);
	}
	table_print(t, stdout);
	table_free(t);
}

static int list(struct cli_opts *o, struct client *c)
{
	return cli_list(o, c, "/v1/registries", "registries", "No registry credentials. Add some with `berth registry login HOST`.", show_list);
}

static int login(struct cli_opts *o, struct client *c, const char *host, const char *user, const char *password)
{
	json_t *doc = NULL;
	struct err e = ERR_INIT;
	json_t *pw = json_string(password);
	json_t *body = pw ? json_pack("{s:s, s:s, s:O}", "host", host, "username", user, "password", pw) : NULL;
	int rc;
	if (!body) {
		err_set(&e, ERR_INVALID, "the username or password is not valid UTF-8");
		rc = cli_fail(&e);
	} else if (client_json(c, "POST", "/v1/registries", body, &doc, &e)) {
		rc = cli_fail(&e);
	} else if (o->json) {
		rc = cli_print_json(doc);
	} else {
		const char *warning = json_string_value(json_object_get(doc, "warning"));
		printf("Logged in to %s as %s: the registry accepted the credentials and the server keeps "
		       "them encrypted.\n", json_string_value(json_object_get(doc, "host")), user);
		if (warning)
			fprintf(stderr, "warning: %s\n", warning);
		rc = cli_flush() ? EXIT_FAIL : EXIT_OK;
	}
	if (pw)
		sodium_memzero((char *)json_string_value(pw), json_string_length(pw));
	json_decref(pw);
	json_decref(body);
	json_decref(doc);
	return rc;
}

static int logout(struct cli_opts *o, struct client *c, const char *host)
{
	struct buf path = BUF_INIT;
	buf_adds(&path, "/v1/registries/");
	client_escape(&path, host);
	char norm[REGISTRY_HOST_MAX];
	struct err ne = ERR_INIT;
	char *done = xasprintf("Logged out of %s: its credentials are removed from the server.",
			       registry_host_normalize(host, norm, &ne) == 0 ? norm : host);   /* as the server keeps it */
	int rc = cli_delete(o, c, path.p, done);
	free(done);
	buf_free(&path);
	return rc;
}

/* ---- the command line ---- */

/* Take --username U / --username=U / -u U out of the words after the subcommand and parse
 * the rest as this verb's flags and positional args, into o (o->pos replaced). The username
 * goes to *user (pointing into argv). Returns 0 or the usage error's exit status. */
static int parse_rest(struct cli_opts *o, size_t n, const char **words, const char **user)
{
	char **rest = xcalloc(n + 1, sizeof *rest);
	int nrest = 0;
	for (size_t i = 0; i < n; i++) {
		const char *w = words[i];
		if (!strcmp(w, "--")) {
			while (i < n)
				rest[nrest++] = (char *)words[i++];
			break;
		}
		if (!strcmp(w, "--username") || !strcmp(w, "-u")) {
			if (i + 1 >= n) {
				free(rest);
				return cli_usage_error(VERB, "flag --username needs a value");
			}
			*user = words[++i];
		} else if (!strncmp(w, "--username=", 11)) {
			*user = w + 11;
		} else {
			rest[nrest++] = (char *)w;
		}
	}
	struct err e = ERR_INIT;
	o->npos = 0;
	int r = cli_parse_flags(nrest, rest, F_CONN | F_JSON | F_HELP, false, o, NULL, &e);
	free(rest);
	if (r < 0)
		return cli_usage_error(VERB, "%s", e.msg);
	return 0;
}

int cmd_registry(struct cli_opts *o)
{
	const char *sub = o->npos ? o->pos[0] : "list", *user = NULL;
	bool is_list = !strcmp(sub, "list"), is_login = !strcmp(sub, "login"),
	     is_logout = !strcmp(sub, "logout");
	if (!is_list && !is_login && !is_logout)
		return cli_usage_error(VERB, "unknown registry command \"%s\" (list, login or logout)", sub);
	size_t nwords = o->npos ? o->npos - 1 : 0;
	const char **words = xcalloc(nwords + 1, sizeof *words);
	if (nwords)
		memcpy(words, o->pos + 1, nwords * sizeof *words);
	int rc = parse_rest(o, nwords, words, &user);
	free(words);
	if (rc)
		return rc;
	if (o->help) {   /* `berth registry login --help` */
		char *av[] = {(char *)"berth", (char *)"help", (char *)VERB, NULL};
		return cli_main(3, av);
	}
	if (is_list && o->npos)
		return cli_usage_error(VERB, "registry list takes no arguments, got \"%s\"", o->pos[0]);
	if (!is_list && o->npos != 1)
		return cli_usage_error(VERB, "registry %s takes exactly one registry host (e.g. ghcr.io)", sub);
	if (!is_login && user)
		return cli_usage_error(VERB, "--username only goes with registry login");
	char host[REGISTRY_HOST_MAX];
	struct err e = ERR_INIT;
	if (!is_list && registry_host_normalize(o->pos[0], host, &e) < 0)
		return cli_usage_error(VERB, "%s", e.msg);
	if (user && !*user)
		return cli_usage_error(VERB, "the username is empty");

	struct buf ubuf = BUF_INIT, pass = BUF_INIT;
	bool tty = isatty(STDIN_FILENO);
	if (is_login) {
		if (!user && !tty) {
			rc = cli_usage_error(VERB, "registry login needs --username U when the password "
					     "comes from stdin");
			goto out;
		}
		if (!user) {
			if (prompt("Username: ", false, &ubuf, REGISTRY_USERNAME_MAX, "username", &e) < 0) {
				rc = cli_fail(&e);
				goto out;
			}
			if (!ubuf.len) {
				rc = cli_usage_error(VERB, "the username is empty");
				goto out;
			}
			user = ubuf.p;
		}
		char text[REGISTRY_HOST_MAX + 300];
		snprintf(text, sizeof text, "Password for %.256s at %s: ", user, host);
		if ((tty ? prompt(text, true, &pass, REGISTRY_PASSWORD_MAX, "password", &e)
			 : read_stdin_secret(&pass, REGISTRY_PASSWORD_MAX, &e)) < 0) {
			rc = cli_fail(&e);
			goto out;
		}
		if (!pass.len) {
			rc = cli_usage_error(VERB, "the password is empty%s", tty ? "" : " (stdin was empty)");
			goto out;
		}
		if (memchr(pass.p, 0, pass.len)) {
			rc = cli_usage_error(VERB, "the password contains a NUL byte");
			goto out;
		}
	}
	struct client c;
	if ((rc = cli_connect(o, &c)))
		goto out;
	if (is_list)
		rc = list(o, &c);
	else if (is_login)
		rc = login(o, &c, host, user, pass.p);
	else
		rc = logout(o, &c, host);
	client_close(&c);
out:
	buf_free(&ubuf);
	secret_buf_wipe(&pass);
	return rc;
}
