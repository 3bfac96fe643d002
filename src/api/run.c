/* api/run: `berth run` and `berth exec` on the server. POST .../run starts a one-off of the
 * live release (the environment, config, volumes and profile of a process; no port, not
 * routed); POST .../instances/ID/exec starts a command beside a running instance (its
 * directory, its whole environment, inside its cgroup). Attached, the request upgrades to a
 * berth-attach/1 tunnel (src/util/frame.h): stdin, a terminal's size and signals come in,
 * stdout, stderr and the exit status go out. A dropped connection stops the command. With
 * "detach": true (run only) it runs in the background with its output in the logs.
 * Every run and exec is recorded in the server's log with who asked (the peer and the
 * token's role), what (the program, never its arguments: they may hold secrets) and the exit
 * status. */
#include "api/internal.h"
#include "model/model.h"
#include "oneoff/oneoff.h"
#include "supervise/supervise.h"
#include "build/build.h"
#include "util/frame.h"
#include "util/log.h"
#include "util/envp.h"
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define ATTACH_PROTO "berth-attach/1"
#define MAX_ARGS 1024
#define MAX_COMMAND (256 * 1024)
#define OUT_QUEUE_MAX (16u << 20)     /* a client this far behind is cut off */
#define IN_QUEUE_MAX (1u << 20)       /* stdin not yet taken by the command: pause reading */

struct session {
	struct api *api;
	struct http_tunnel *t;
	struct oneoff *job;
	struct frame_reader fr;
	uv_timer_t resume;             /* polls the command's stdin while reading is paused */
	bool paused, tunnel_gone, job_gone, timer_open;
	char who[96], what[64], id[96], env[64], app[64];
};

static const char *role_name(enum role r)
{
	return r == ROLE_ADMIN ? "admin" : r == ROLE_DEPLOYER ? "deployer" : "viewer";
}

static void session_closed(uv_handle_t *h)
{
	struct session *s = h->data;
	frame_reader_free(&s->fr);
	struct api *a = s->api;
	free(s);
	api_job_done(a);
}

static void session_maybe_free(struct session *s)
{
	if (!s->tunnel_gone || !s->job_gone || !s->timer_open)
		return;
	s->timer_open = false;
	uv_close((uv_handle_t *)&s->resume, session_closed);
}

static void send_frame(struct session *s, int type, const void *p, size_t n)
{
	if (s->tunnel_gone)
		return;
	struct buf b = BUF_INIT;
	const char *d = p;
	do {
		size_t part = n > FRAME_MAX_PAYLOAD ? FRAME_MAX_PAYLOAD : n;
		frame_put(&b, type, d, part);
		d += part;
		n -= part;
	} while (n);
	http_tunnel_write(s->t, b.p, b.len);
	buf_free(&b);
}

static void send_json(struct session *s, int type, json_t *j)
{
	char *txt = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (txt)
		send_frame(s, type, txt, strlen(txt));
	free(txt);
}

static void on_job_output(void *arg, int stream, const char *data, size_t n)
{
	struct session *s = arg;
	if (s->tunnel_gone)
		return;
	send_frame(s, stream == 2 ? FRAME_STDERR : FRAME_STDOUT, data, n);
	if (http_tunnel_queued(s->t) > OUT_QUEUE_MAX && s->job) {
		log_warn("%s/%s %s: the client reads too slowly (%u MiB queued); stopping the command", s->env, s->app,
			 s->id, OUT_QUEUE_MAX >> 20);
		oneoff_stop(s->job, 0);
	}
}

static void on_job_exit(void *arg, const struct oneoff_result *r)
{
	struct session *s = arg;
	s->job = NULL;
	s->job_gone = true;
	log_info("%s/%s %s (%s, by %s) ended: %s", s->env, s->app, s->id, s->what, s->who, r->summary);
	if (!s->tunnel_gone) {
		json_t *j = r->signal ? json_pack("{s:i}", "signal", r->signal) : json_pack("{s:I}", "status", (json_int_t)r->status);
		if (r->signal || r->timed_out || r->oom)
			json_object_set_new(j, "message", json_string(r->summary));
		send_json(s, FRAME_EXIT, j);
		http_tunnel_close(s->t);
		s->tunnel_gone = true;
	}
	session_maybe_free(s);
}

static void on_resume(uv_timer_t *t)
{
	struct session *s = t->data;
	if (!s->paused || s->tunnel_gone)
		return;
	if (!s->job || oneoff_stdin_queued(s->job) < IN_QUEUE_MAX / 2) {
		s->paused = false;
		http_tunnel_pause(s->t, false);
		uv_timer_stop(t);
	}
}

static int on_frame(int type, const void *p, size_t n, void *ud)
{
	struct session *s = ud;
	if (!s->job)
		return 0;
	switch (type) {
	case FRAME_STDIN:
		oneoff_write(s->job, p, n);
		if (oneoff_stdin_queued(s->job) > IN_QUEUE_MAX && !s->paused) {
			s->paused = true;
			http_tunnel_pause(s->t, true);
			uv_timer_start(&s->resume, on_resume, 5, 5);
		}
		break;
	case FRAME_STDIN_EOF:
		oneoff_close_stdin(s->job);
		break;
	case FRAME_RESIZE: {
		unsigned rows, cols;
		frame_get_resize(p, &rows, &cols);
		oneoff_resize(s->job, (int)rows, (int)cols);
		break;
	}
	case FRAME_SIGNAL: {
		int sig = *(const unsigned char *)p;
		if (sig == SIGHUP || sig == SIGINT || sig == SIGQUIT || sig == SIGKILL || sig == SIGTERM)
			oneoff_signal(s->job, sig);
		break;
	}
	default:
		break;     /* server-to-client types from a client: ignored */
	}
	return 0;
}

static void on_tunnel_data(void *arg, const char *data, size_t n)
{
	struct session *s = arg;
	struct err e = ERR_INIT;
	if (frame_reader_feed(&s->fr, data, n, on_frame, s, &e) < 0) {
		log_warn("%s/%s %s: %s from %s; stopping the command", s->env, s->app, s->id, e.msg, s->who);
		send_json(s, FRAME_EXIT, json_pack("{s:i, s:s}", "status", 255, "message", "protocol error"));
		http_tunnel_close(s->t);
		s->tunnel_gone = true;
		if (s->job)
			oneoff_detach(s->job, true);
		s->job = NULL;
		s->job_gone = true;
		session_maybe_free(s);
	}
}

static void on_tunnel_close(void *arg)
{
	struct session *s = arg;
	s->tunnel_gone = true;
	if (s->job) {
		log_info("%s/%s %s: the client went away; stopping the command", s->env, s->app, s->id);
		oneoff_detach(s->job, true);
		s->job = NULL;
		s->job_gone = true;
	}
	session_maybe_free(s);
}

/* The command to run: "argv" (a list of strings, run without a shell's interpretation) or
 * "command" (one shell command line). Owned string into *out, or -1 with a message. */
static int body_command(json_t *body, char **out, const char **what, char *msg, size_t len)
{
	json_t *argv = json_object_get(body, "argv"), *cmd = json_object_get(body, "command");
	if (json_is_string(cmd) && !argv) {
		const char *c = json_string_value(cmd);
		if (!*c || strlen(c) != json_string_length(cmd) || strlen(c) > MAX_COMMAND) {
			snprintf(msg, len, "\"command\" must be a non-empty shell command without NUL bytes");
			return -1;
		}
		*out = xstrdup(c);
		*what = "a shell command";
		return 0;
	}
	if (!json_is_array(argv) || !json_array_size(argv) || json_array_size(argv) > MAX_ARGS) {
		snprintf(msg, len, "give the command as \"argv\": [\"program\", \"arg\", ...] (1 to %d strings)", MAX_ARGS);
		return -1;
	}
	struct buf b = BUF_INIT;
	buf_adds(&b, "exec");
	size_t i;
	json_t *a;
	json_array_foreach(argv, i, a) {
		if (!json_is_string(a) || strlen(json_string_value(a)) != json_string_length(a) ||
		    (i == 0 && !*json_string_value(a))) {
			buf_free(&b);
			snprintf(msg, len, "argv[%zu] must be a string without NUL bytes%s", i, i ? "" : " (not empty)");
			return -1;
		}
		buf_addc(&b, ' ');
		build_sh_quote(&b, json_string_value(a));
		if (b.len > MAX_COMMAND) {
			buf_free(&b);
			snprintf(msg, len, "the command is longer than %d KiB", MAX_COMMAND >> 10);
			return -1;
		}
	}
	*out = buf_detach(&b);
	*what = json_string_value(json_array_get(argv, 0));
	return 0;
}

/* Terminal or pipes, and the first window size. The client's TERM, when it looks like one,
 * goes into term (a 64-byte buffer; "" otherwise). */
static void body_tty(json_t *body, struct oneoff_spec *spec, char *term)
{
	term[0] = 0;
	const char *t = json_string_value(json_object_get(body, "term"));
	if (t && *t && strlen(t) < 64 && strspn(t, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.+_") == strlen(t))
		snprintf(term, 64, "%s", t);
	spec->stdin_mode = json_is_true(json_object_get(body, "tty")) ? DRIVER_STDIN_TTY : DRIVER_STDIN_PIPE;
	json_t *rows = json_object_get(body, "rows"), *cols = json_object_get(body, "cols");
	if (json_is_integer(rows) && json_integer_value(rows) > 0 && json_integer_value(rows) < 10000)
		spec->rows = (int)json_integer_value(rows);
	if (json_is_integer(cols) && json_integer_value(cols) > 0 && json_integer_value(cols) < 10000)
		spec->cols = (int)json_integer_value(cols);
}

/* vars plus TERM=term (when term is set and a terminal was asked for): a new array. */
static char **with_term(char *const *vars, const char *term)
{
	struct envp e = {0};
	envp_put_all(&e, vars);
	if (*term)
		envp_put(&e, "TERM", term);
	if (!e.v)
		e.v = xcalloc(1, sizeof *e.v);
	return envp_detach(&e);
}

static void free_vars(char **v)
{
	envp_free_array(v);
}

/* Start the one-off described by spec and attach the request to it (or, detached, answer
 * with its id). Takes nothing; on failure the request is answered. */
static void start_session(struct ctx *c, struct oneoff_spec *spec, bool detach, const char *what)
{
	struct api *a = c->api;
	struct http_req *r = c->req;
	struct err e = ERR_INIT;
	char who[96];
	snprintf(who, sizeof who, "%s (%s) from %s", c->who[0] ? c->who : "a token", role_name(c->role), r->peer);
	if (detach) {
		spec->log = true;
		spec->stdin_mode = DRIVER_STDIN_NULL;
		struct oneoff *o = oneoff_start(reconciler_oneoffs(a->rc), spec, NULL, &e);
		if (!o) {
			api_fail(r, &e);
			return;
		}
		log_info("%s/%s %s (%s, by %s) started in the background", c->env, c->app, oneoff_id(o), what, who);
		char msg[300];
		snprintf(msg, sizeof msg, "running %s in the background as %s; its output goes to the logs "
			 "(berth logs --process %s)", what, oneoff_id(o), spec->kind);
		http_respond_json(r, 200, json_pack("{s:s, s:i, s:s}", "id", oneoff_id(o), "pid", oneoff_pid(o), "message",
						    msg));
		return;
	}
	if (!http_req_wants_upgrade(r, ATTACH_PROTO)) {
		http_respond_error(r, 400, "an attached run needs an Upgrade: " ATTACH_PROTO " connection (berth run does "
				   "that), or \"detach\": true");
		return;
	}
	struct session *s = xcalloc(1, sizeof *s);
	s->api = a;
	snprintf(s->who, sizeof s->who, "%s", who);
	snprintf(s->what, sizeof s->what, "%s", what);
	snprintf(s->env, sizeof s->env, "%s", c->env);
	snprintf(s->app, sizeof s->app, "%s", c->app);
	frame_reader_init(&s->fr);
	struct oneoff_events ev = {.on_output = on_job_output, .on_exit = on_job_exit, .arg = s};
	s->job = oneoff_start(reconciler_oneoffs(a->rc), spec, &ev, &e);
	if (!s->job) {
		frame_reader_free(&s->fr);
		free(s);
		api_fail(r, &e);
		return;
	}
	snprintf(s->id, sizeof s->id, "%s", oneoff_id(s->job));
	struct http_tunnel_events tev = {.on_data = on_tunnel_data, .on_close = on_tunnel_close, .arg = s};
	char hdr[160];
	snprintf(hdr, sizeof hdr, "Berth-Instance: %s\r\n", s->id);
	a->jobs++;
	uv_timer_init(a->loop, &s->resume);
	s->resume.data = s;
	s->timer_open = true;
	s->t = http_req_upgrade(r, ATTACH_PROTO, hdr, &tev);
	if (!s->t) {
		/* Cannot happen after wants_upgrade; be safe: stop the command and answer. */
		s->tunnel_gone = true;
		oneoff_detach(s->job, true);
		s->job = NULL;
		s->job_gone = true;
		http_respond_error(r, 500, "could not switch the connection to " ATTACH_PROTO);
		session_maybe_free(s);
		return;
	}
	log_info("%s/%s %s (%s, by %s) started, attached", s->env, s->app, s->id, what, who);
	char msg[200];
	snprintf(msg, sizeof msg, "{\"message\":\"running as %s\"}", s->id);
	send_frame(s, FRAME_INFO, msg, strlen(msg));
}

/* The request's JSON body and its command (owned, into *command) with the program's name for
 * the log (into what); NULL after answering 400. */
static json_t *read_request(struct ctx *c, char **command, char what[64])
{
	json_t *body = api_body_json(c->req);
	if (!body)
		return NULL;
	const char *prog = NULL;
	char msg[200];
	if (body_command(body, command, &prog, msg, sizeof msg) < 0) {
		json_decref(body);
		http_respond_error(c->req, 400, msg);
		return NULL;
	}
	snprintf(what, 64, "%s", prog);
	return body;
}

void api_run(struct ctx *c)
{
	struct err e = ERR_INIT;
	char *command = NULL, whatbuf[64];
	json_t *body = read_request(c, &command, whatbuf);
	if (!body)
		return;
	json_t *app = api_app_doc(c->api, c->env, c->app, NULL, &e);
	if (!app) {
		free(command);
		json_decref(body);
		api_fail(c->req, &e);
		return;
	}
	json_decref(app);
	const char *process = json_string_value(json_object_get(body, "process"));
	const char *size = json_string_value(json_object_get(body, "size"));
	struct rc_oneoff env;
	if (reconciler_oneoff_env(c->api->rc, c->env, c->app, process, &env, &e) < 0) {
		free(command);
		json_decref(body);
		api_fail(c->req, &e);
		return;
	}
	const struct profile *prof = env.profile;
	if (size && *size) {
		prof = server_conf_profile(c->api->conf, size);
		if (!prof) {
			struct buf names = BUF_INIT;
			for (size_t j = 0; j < c->api->conf->nprofiles; j++)
				buf_addf(&names, "%s%s", j ? ", " : "", c->api->conf->profiles[j].name);
			err_set(&e, ERR_INVALID, "no resource profile \"%.64s\" (the server has: %s)", size, buf_str(&names));
			buf_free(&names);
			rc_oneoff_free(&env);
			free(command);
			json_decref(body);
			api_fail(c->req, &e);
			return;
		}
	}
	struct oneoff_spec spec = {
		.env = c->env, .app = c->app, .kind = "run", .release = env.release, .command = command,
		.cwd = env.image ? NULL : env.cwd, .env_vars = env.vars, .profile = prof, .image = env.image,
		.volumes = env.volumes, .nvolumes = env.nvolumes,
	};
	char term[64];
	body_tty(body, &spec, term);
	bool detach = json_is_true(json_object_get(body, "detach"));
	json_decref(body);
	char **vars = with_term(env.vars, term);
	spec.env_vars = vars;
	start_session(c, &spec, detach, whatbuf);
	free_vars(vars);
	rc_oneoff_free(&env);
	free(command);
}

void api_exec(struct ctx *c, const char *id)
{
	struct err e = ERR_INIT;
	char *command = NULL, whatbuf[64];
	json_t *body = read_request(c, &command, whatbuf);
	if (!body)
		return;
	struct instance *inst = reconciler_instance(c->api->rc, c->env, c->app, id);
	const struct instance_status *st = inst ? instance_status(inst) : NULL;
	struct driver *drv = NULL;
	struct driver_proc *proc = NULL;
	const char *cwd = NULL, *image = NULL;
	char *const *envp = NULL;
	if (inst)
		instance_exec_info(inst, &drv, &proc, &cwd, &envp, &image);
	if (!inst || !proc) {
		if (inst)
			err_set(&e, ERR_CONFLICT, "%s of %s/%s is not running now (%s)", st->id, c->env, c->app,
				inst_state_name(st->state));
		else
			err_set(&e, ERR_NOTFOUND, "%s/%s has no running instance \"%.64s\" (see berth ps)", c->env, c->app, id);
		free(command);
		json_decref(body);
		api_fail(c->req, &e);
		return;
	}
	struct oneoff_spec spec = {
		.env = c->env, .app = c->app, .kind = "exec", .release = st->release, .command = command, .cwd = cwd,
		.env_vars = envp, .full_env = true, .image = image, .beside_driver = drv, .beside = proc,
	};
	char term[64];
	body_tty(body, &spec, term);
	json_decref(body);
	char **vars = with_term(envp, term);
	spec.env_vars = vars;
	start_session(c, &spec, false, whatbuf);
	free_vars(vars);
	free(command);
}
