/* watch.c: store watchers and the queue of committed changes waiting to reach them.
 * Callbacks run synchronously on the committing thread, after COMMIT. A callback may commit
 * (its changes are queued and delivered after the current ones, so every watcher sees
 * revisions in increasing order; the nested commit returns before its own watchers ran),
 * may add watchers (they hear only of revisions committed after they were added) and may
 * unwatch anyone including itself (the slot is only marked while a dispatch runs and reaped
 * when it ends, so indexes stay valid). store_close must not be called from a callback. */
#include "store/store_int.h"
#include <stdlib.h>
#include <string.h>
#include "util/buf.h"

int store_watch(struct store *s, const char *prefix, store_watch_fn fn, void *arg)
{
	if (!fn)
		return -1;
	if (!prefix)
		prefix = "";
	if (s->nw == s->capw) {
		s->capw = s->capw ? s->capw * 2 : 8;
		s->w = xrealloc(s->w, s->capw * sizeof *s->w);
	}
	int id = ++s->next_watch_id;
	s->w[s->nw++] = (struct store_watcher){
		.id = id,
		.prefix = xstrdup(prefix),
		.prefix_len = strlen(prefix),
		.fn = fn,
		.arg = arg,
		.since = s->rev,
	};
	return id;
}

static void reap(struct store *s)
{
	size_t j = 0;
	for (size_t i = 0; i < s->nw; i++) {
		if (s->w[i].removed)
			free(s->w[i].prefix);
		else
			s->w[j++] = s->w[i];
	}
	s->nw = j;
}

void store_unwatch(struct store *s, int id)
{
	for (size_t i = 0; i < s->nw; i++)
		if (s->w[i].id == id)
			s->w[i].removed = 1;
	if (!s->dispatching)
		reap(s);
}

static void deliver(struct store *s, const struct store_event *ev)
{
	/* s->w may be reallocated and s->nw may grow inside fn: index afresh each time. */
	for (size_t i = 0; i < s->nw; i++) {
		const struct store_watcher *w = &s->w[i];
		if (w->removed || ev->rev <= w->since || strncmp(ev->key, w->prefix, w->prefix_len))
			continue;
		store_watch_fn fn = w->fn;
		fn(w->arg, ev->key, ev->value, ev->rev);
	}
}

void store_events_publish(struct store *s, struct store_event *ev, size_t n)
{
	if (n > 0) {
		if (s->nq + n > s->capq) {
			while (s->nq + n > s->capq)
				s->capq = s->capq ? s->capq * 2 : 16;
			s->q = xrealloc(s->q, s->capq * sizeof *s->q);
		}
		memcpy(s->q + s->nq, ev, n * sizeof *ev);
		s->nq += n;
	}
	if (s->dispatching)
		return;
	s->dispatching = 1;
	while (s->qhead < s->nq) {
		struct store_event cur = s->q[s->qhead++];
		deliver(s, &cur);
		free(cur.key);
		free(cur.value);
	}
	s->qhead = s->nq = 0;
	s->dispatching = 0;
	reap(s);
}

void store_watch_free_all(struct store *s)
{
	for (size_t i = 0; i < s->nw; i++)
		free(s->w[i].prefix);
	free(s->w);
	for (size_t i = s->qhead; i < s->nq; i++) {
		free(s->q[i].key);
		free(s->q[i].value);
	}
	free(s->q);
	s->w = NULL;
	s->q = NULL;
	s->nw = s->capw = s->nq = s->qhead = s->capq = 0;
}
