/* logs: the hub. Owns struct logs (root, rotation settings, counters), the live subscribers
 * and their delivery, and removing an app's logs. Writing lives in sink.c, reading in read.c.
 * A subscriber callback may unsubscribe itself or others (they are marked dead and swept once
 * no delivery is running); it must not close the sink whose line it is being handed. */
#include "logs/logs_int.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "util/fsutil.h"

int logs_name_ok(const char *s)
{
	if (!s || !*s || *s == '.' || strlen(s) > 255)
		return 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p == '/' || *p < 0x20 || *p == 0x7f)
			return 0;
	return 1;
}

struct logs *logs_new(const char *root, int64_t rotate_bytes, int keep, struct err *e)
{
	if (!root || !*root) {
		err_set(e, ERR_INVALID, "logs: no directory given");
		return NULL;
	}
	if (fs_mkdir_p(root, 0750, e) < 0) {
		err_prefix(e, "logs");
		return NULL;
	}
	struct logs *l = xcalloc(1, sizeof *l);
	l->root = xstrdup(root);
	l->rotate_bytes = rotate_bytes > 0 ? rotate_bytes : 0;
	l->keep = keep > 0 ? keep : 0;
	return l;
}

static void sub_free(struct logs_sub *s)
{
	free(s->env);
	free(s->app);
	free(s->process);
	free(s);
}

void logs_free(struct logs *l)
{
	if (!l)
		return;
	logs_sink_free_all(l);     /* flushes partial lines, which subscribers still see */
	while (l->subs) {
		struct logs_sub *s = l->subs;
		l->subs = s->next;
		sub_free(s);
	}
	buf_free(&l->scratch);
	free(l->root);
	free(l);
}

uint64_t logs_lines_total(struct logs *l)
{
	return l ? l->lines_total : 0;
}

struct logs_sub *logs_subscribe(struct logs *l, const char *env, const char *app,
				const char *process, logs_line_fn fn, void *arg)
{
	if (!l || !env || !app || !fn)
		return NULL;
	struct logs_sub *s = xcalloc(1, sizeof *s);
	s->l = l;
	s->env = xstrdup(env);
	s->app = xstrdup(app);
	s->process = process && *process ? xstrdup(process) : NULL;
	s->fn = fn;
	s->arg = arg;
	/* At the head: a delivery in progress walks from the head it saw and skips it. */
	s->next = l->subs;
	l->subs = s;
	return s;
}

static void sweep(struct logs *l)
{
	struct logs_sub **pp = &l->subs;
	while (*pp) {
		struct logs_sub *s = *pp;
		if (s->dead) {
			*pp = s->next;
			sub_free(s);
		} else {
			pp = &s->next;
		}
	}
	l->dead_subs = 0;
}

void logs_unsubscribe(struct logs_sub *s)
{
	if (!s)
		return;
	struct logs *l = s->l;
	if (l->delivering) {
		if (!s->dead) {
			s->dead = 1;
			l->dead_subs++;
		}
		return;
	}
	struct logs_sub **pp = &l->subs;
	while (*pp && *pp != s)
		pp = &(*pp)->next;
	if (*pp)
		*pp = s->next;
	sub_free(s);
}

static int sub_matches(const struct logs_sub *s, const struct log_file *f)
{
	return !strcmp(s->app, f->app) && !strcmp(s->env, f->env) &&
	       (!s->process || !strcmp(s->process, f->process));
}

void logs_deliver(struct logs *l, const struct log_file *f, int release, int stream,
		  int64_t ts_us, const char *out, size_t n, size_t plen)
{
	struct log_line ln = {
		.ts_us = ts_us, .env = f->env, .app = f->app, .process = f->process,
		.slot = f->slot, .release = release, .stream = stream,
	};
	l->delivering++;
	for (struct logs_sub *s = l->subs; s; s = s->next) {
		if (s->dead || !sub_matches(s, f))
			continue;
		/* Every line of out is prefix (plen bytes) + text + '\n'. */
		const char *p = out, *end = out + n;
		while (p < end && !s->dead) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			if (!nl)
				break;
			ln.text = p + plen;
			ln.len = (size_t)(nl - p) - plen;
			s->fn(s->arg, &ln);
			p = nl + 1;
		}
	}
	if (--l->delivering == 0 && l->dead_subs)
		sweep(l);
}

int logs_remove_app(struct logs *l, const char *env, const char *app, struct err *e)
{
	if (!logs_name_ok(env) || !logs_name_ok(app))
		return err_set(e, ERR_INVALID, "remove logs: invalid app name");
	logs_files_forget_app(l, env, app);
	char *dir = xasprintf("%s/%s/%s", l->root, env, app);
	int r = fs_rm_rf(dir, e);
	free(dir);
	if (r < 0)
		return err_prefix(e, "remove logs of %s/%s", env, app);
	char *envdir = xasprintf("%s/%s", l->root, env);
	rmdir(envdir);             /* only when it was the env's last app; ENOTEMPTY is fine */
	free(envdir);
	return 0;
}
