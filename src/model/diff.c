/* model/diff: what changed between two releases, in words a user reads in `berth releases`:
 * "code 5d6e7f80 -> 1a2b3c4d", "config +GREETING", "config -DEBUG", "config ~DATABASE_URL",
 * "process +clock", "process -cron", "web: command changed". Config values are never shown. */
#include "model/model.h"
#include "util/buf.h"
#include <string.h>

/* Append the phrase a + b (b may be ""). */
static void add2(json_t *out, const char *a, const char *b)
{
	struct buf s = BUF_INIT;
	buf_adds(&s, a);
	buf_adds(&s, b);
	json_array_append_new(out, json_string(buf_str(&s)));
	buf_free(&s);
}

static json_t *procs_of(json_t *rel)
{
	return json_object_get(json_object_get(rel, "manifest"), "processes");
}

static json_t *find_proc(json_t *procs, const char *name)
{
	size_t k;
	json_t *p;
	json_array_foreach(procs, k, p)
		if (!strcmp(model_json_str(p, "name", ""), name))
			return p;
	return NULL;
}

json_t *model_release_changes(json_t *prev, json_t *next)
{
	json_t *out = json_array();
	if (!prev) {
		json_array_append_new(out, json_string("first release"));
		return out;
	}
	const char *c0 = model_json_str(prev, "code", ""), *c1 = model_json_str(next, "code", "");
	if (strcmp(c0, c1)) {
		char a[9] = "", b[9] = "";
		strncat(a, c0, 8);
		strncat(b, c1, 8);
		struct buf cs = BUF_INIT;
		buf_addf(&cs, "code %s -> %s", a, b);
		json_array_append_new(out, json_string(buf_str(&cs)));
		buf_free(&cs);
	}
	json_t *f0 = json_object_get(prev, "config"), *f1 = json_object_get(next, "config");
	const char *k;
	json_t *v;
	json_object_foreach(f1, k, v) {
		json_t *old = json_object_get(f0, k);
		if (!old)
			add2(out, "config +", k);
		else if (!json_equal(old, v))
			add2(out, "config ~", k);
	}
	json_object_foreach(f0, k, v)
		if (!json_object_get(f1, k))
			add2(out, "config -", k);
	json_t *p0 = procs_of(prev), *p1 = procs_of(next);
	size_t i;
	json_t *p;
	json_array_foreach(p1, i, p) {
		const char *name = model_json_str(p, "name", "");
		json_t *old = find_proc(p0, name);
		if (!old)
			add2(out, "process +", name);
		else if (!json_equal(json_object_get(old, "command"), json_object_get(p, "command")))
			add2(out, name, ": command changed");
		else if (!json_equal(old, p))
			add2(out, name, ": settings changed");
	}
	json_array_foreach(p0, i, p) {
		const char *name = model_json_str(p, "name", "");
		if (!find_proc(p1, name))
			add2(out, "process -", name);
	}
	if (json_array_size(out) == 0)
		json_array_append_new(out, json_string("no changes"));
	return out;
}
