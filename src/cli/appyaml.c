/* cli/appyaml: the app: and env: defaults of a berth.yaml, read with libyaml's event parser.
 * Only those two top-level keys are looked at; everything else is only checked to be YAML, so
 * `logs` or `ps` are not stopped by a mistake elsewhere in the manifest (`deploy` still
 * validates the whole of it), and a berth.yaml naming just the app (processes in a Procfile)
 * works too. Hostile-input code: the file size is bounded, aliases are
 * never expanded (the event parser does not), and nesting is only counted, not stored. */
#include <yaml.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cmd.h"
#include "util/fsutil.h"

#define MAX_YAML_BYTES (1024 * 1024)

static int yaml_fail(const char *path, const yaml_parser_t *p, struct err *e)
{
	return err_set(e, ERR_INVALID, "%s:%zu:%zu: YAML syntax error: %s", path,
		       p->problem_mark.line + 1, p->problem_mark.column + 1,
		       p->problem ? p->problem : "malformed");
}

/* Store a scalar value for key ("app"/"env") in *slot; other node types are errors. */
static int take_value(const char *path, const char *key, const yaml_event_t *ev, char **slot,
		      struct err *e)
{
	if (ev->type != YAML_SCALAR_EVENT || ev->data.scalar.length == 0 ||
	    memchr(ev->data.scalar.value, 0, ev->data.scalar.length))
		return err_set(e, ERR_INVALID, "%s:%zu:%zu: %s: expected a name", path,
			       ev->start_mark.line + 1, ev->start_mark.column + 1, key);
	free(*slot);
	*slot = xstrndup((const char *)ev->data.scalar.value, ev->data.scalar.length);
	return 0;
}

int cli_yaml_defaults(const char *path, char **app, char **env, struct err *e)
{
	*app = *env = NULL;
	if (!fs_exists(path))
		return 0;
	struct buf b = BUF_INIT;
	if (fs_read_file(path, &b, MAX_YAML_BYTES, e)) {
		buf_free(&b);
		return -1;
	}
	yaml_parser_t p;
	yaml_parser_initialize(&p);
	yaml_parser_set_input_string(&p, (const unsigned char *)buf_str(&b), b.len);
	int depth = 0, rc = 0;
	bool is_key = true, done = false;
	char **want = NULL;        /* the slot the next top-level value goes to */
	const char *want_key = NULL;
	while (!done && rc == 0) {
		yaml_event_t ev;
		if (!yaml_parser_parse(&p, &ev)) {
			rc = yaml_fail(path, &p, e);
			break;
		}
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
		case YAML_DOCUMENT_END_EVENT:   /* only the first document counts */
			done = true;
			break;
		case YAML_MAPPING_START_EVENT:
		case YAML_SEQUENCE_START_EVENT:
			if (depth == 0 && ev.type == YAML_SEQUENCE_START_EVENT) {
				rc = err_set(e, ERR_INVALID, "%s:%zu:%zu: expected a mapping at the top", path,
					     ev.start_mark.line + 1, ev.start_mark.column + 1);
				break;
			}
			if (depth == 1) {
				if (!is_key && want)   /* app: or env: given a list or a mapping */
					rc = take_value(path, want_key, &ev, want, e);
				want = NULL;
				is_key = !is_key;
			}
			depth++;
			break;
		case YAML_MAPPING_END_EVENT:
		case YAML_SEQUENCE_END_EVENT:
			depth--;
			if (depth == 0)
				done = true;
			break;
		case YAML_SCALAR_EVENT:
		case YAML_ALIAS_EVENT:
			if (depth == 0) {
				/* An empty or scalar document: no defaults. */
				done = true;
				break;
			}
			if (depth == 1) {
				if (is_key) {
					const char *k = ev.type == YAML_SCALAR_EVENT ?
						(const char *)ev.data.scalar.value : "";
					want = NULL;
					if (!strcmp(k, "app"))
						want = app, want_key = "app";
					else if (!strcmp(k, "env"))
						want = env, want_key = "env";
				} else {
					if (want)
						rc = take_value(path, want_key, &ev, want, e);
					want = NULL;
				}
				is_key = !is_key;
			}
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&p);
	buf_free(&b);
	if (rc) {
		free(*app);
		free(*env);
		*app = *env = NULL;
	}
	return rc;
}
