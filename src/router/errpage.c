/* router/errpage: the pages the router answers with when it cannot proxy (404 unmatched
 * host, 503 no healthy instance, 502 upstream failure, 504 upstream timeout, and the
 * 4xx framing refusals) or must not (503 for an app in maintenance mode). A route's
 * error_dir, then the global one, may hold NNN.html (maintenance.html for maintenance mode)
 * replacing the built-in page (sent as is); a client whose Accept prefers JSON gets
 * {"error","status","request_id"} instead.
 *
 * Override files are read by the router threads themselves, at most once per file every
 * ERRPAGE_RECHECK_MS (a small file in the page cache; never on the normal request path),
 * and kept in a cache shared by the threads under a mutex. */
#include "router/internal.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ERRPAGE_MAX (64 * 1024)
#define ERRPAGE_RECHECK_MS 2000

struct epage {
	struct epage *next;
	char *dir;
	const char *file; /* a page_file() name (static) */
	char *body;       /* NULL: no such file (or unreadable) */
	size_t len;
	uint64_t checked_ms;
};

struct errpages {
	uv_mutex_t mu;
	char *global_dir;
	struct epage *pages;
};

struct errpages *errpages_new(const char *global_dir)
{
	struct errpages *ep = xcalloc(1, sizeof *ep);
	uv_mutex_init(&ep->mu);
	ep->global_dir = global_dir && *global_dir ? xstrdup(global_dir) : NULL;
	return ep;
}

void errpages_free(struct errpages *ep)
{
	if (!ep)
		return;
	while (ep->pages) {
		struct epage *p = ep->pages;
		ep->pages = p->next;
		free(p->dir);
		free(p->body);
		free(p);
	}
	free(ep->global_dir);
	uv_mutex_destroy(&ep->mu);
	free(ep);
}

static const char *title(int status)
{
	return http_status_text(status);
}

const char *errpage_message(int status)
{
	switch (status) {
	case 400: return "bad request";
	case 404: return "no app is served at this address";
	case 408: return "the request took too long to arrive";
	case 413: return "request body too large";
	case 414: return "request target too long";
	case 417: return "expectation not supported";
	case 431: return "request header fields too large";
	case 501: return "method not implemented";
	case 502: return "the app did not answer properly";
	case 503: return "no healthy instance of this app is running";
	case 504: return "the app took too long to answer";
	case 505: return "HTTP version not supported";
	default: return "error";
	}
}

static const char *explain(int status)
{
	switch (status) {
	case 404: return "No app is served at this address. Check the host name and path.";
	case 502: return "The app behind this address did not answer properly. Try again in a moment.";
	case 503: return "No healthy instance of this app is running right now. Try again in a moment.";
	case 504: return "The app behind this address took too long to answer.";
	case 408: return "The request took too long to arrive.";
	default: return "The request could not be handled.";
	}
}

const char *errpage_file(int status, bool maintenance)
{
	if (maintenance)
		return "maintenance.html";
	switch (status) {
	case 404: return "404.html";
	case 502: return "502.html";
	case 503: return "503.html";
	case 504: return "504.html";
	default: return NULL;
	}
}

size_t errpage_sources(const char *route_dir, const char *global_dir, int status, bool maintenance,
		       struct errpage_src out[2])
{
	const char *file = errpage_file(status, maintenance);
	size_t n = 0;
	if (!file)
		return 0;
	if (route_dir && *route_dir)
		out[n++] = (struct errpage_src){route_dir, file};
	if (global_dir && *global_dir)
		out[n++] = (struct errpage_src){global_dir, file};
	return n;
}

/* Read dir/file (bounded). Returns a malloc'd body or NULL. */
static char *load(const char *dir, const char *file, size_t *len)
{
	char path[4096];
	int n = snprintf(path, sizeof path, "%s/%s", dir, file);
	if (n < 0 || (size_t)n >= sizeof path)
		return NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return NULL;
	struct stat st;
	char *body = NULL;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size <= ERRPAGE_MAX) {
		size_t want = (size_t)st.st_size, got = 0;
		body = xmalloc(want + 1);
		while (got < want) {
			ssize_t r = read(fd, body + got, want - got);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				break;
			got += (size_t)r;
		}
		*len = got;
	}
	close(fd);
	return body;
}

static struct epage *find_page(struct errpages *ep, const char *dir, const char *file)
{
	struct epage *p;
	for (p = ep->pages; p; p = p->next)
		if (!strcmp(p->file, file) && !strcmp(p->dir, dir))
			break;
	return p;
}

/* Copy the page dir/file into out; false when there is none. */
static bool lookup(struct errpages *ep, const char *dir, const char *file, struct buf *out)
{
	uint64_t now = uv_hrtime() / 1000000;
	uv_mutex_lock(&ep->mu);
	struct epage *p = find_page(ep, dir, file);
	if (p && now - p->checked_ms < ERRPAGE_RECHECK_MS) {
		bool found = p->body != NULL;
		if (found)
			buf_add(out, p->body, p->len);
		uv_mutex_unlock(&ep->mu);
		return found;
	}
	uv_mutex_unlock(&ep->mu);

	size_t len = 0;
	char *body = load(dir, file, &len);

	uv_mutex_lock(&ep->mu);
	p = find_page(ep, dir, file);
	if (!p) {
		p = xcalloc(1, sizeof *p);
		p->dir = xstrdup(dir);
		p->file = file;
		p->next = ep->pages;
		ep->pages = p;
	}
	free(p->body);
	p->body = body;
	p->len = len;
	p->checked_ms = now;
	if (body)
		buf_add(out, body, len);
	uv_mutex_unlock(&ep->mu);
	return body != NULL;
}

/* The built-in page: berth's brand around a status, a title and one sentence. */
static void builtin(struct buf *body, int status, const char *head, const char *text, const char *id)
{
	buf_addf(body,
		 "<!doctype html>\n"
		 "<html lang=\"en\"><head><meta charset=\"utf-8\">"
		 "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
		 "<title>%d %s &middot; berth</title>\n"
		 "<style>body{margin:0;min-height:100vh;display:flex;align-items:center;"
		 "justify-content:center;font:16px/1.5 system-ui,-apple-system,sans-serif;"
		 "background:#0f1c2e;color:#e6edf5}main{max-width:34rem;padding:2rem}"
		 "h1{margin:0;font-size:3.5rem;color:#4fb3d9}h2{margin:0 0 1rem;font-weight:500}"
		 "p{margin:.5rem 0;color:#b8c4d3}code{color:#8fa1b7;font-size:.85rem}"
		 "footer{margin-top:2rem;color:#5f7590;font-size:.8rem;letter-spacing:.1em}</style>"
		 "</head>\n<body><main><h1>%d</h1><h2>%s</h2><p>%s</p>"
		 "<p><code>request id %s</code></p><footer>BERTH</footer></main></body></html>\n",
		 status, head, status, head, text, id);
}

void errpage_build(struct errpages *ep, const struct route *rt, int status, bool maintenance, bool json,
		   const char *id, struct buf *body, const char **ctype)
{
	if (maintenance)
		status = 503;
	if (json) {
		/* the id is checked (reqid_ok) or ours: no byte needs escaping */
		buf_addf(body, "{\"error\": \"%s\", \"status\": %d, \"request_id\": \"%s\"}\n",
			 maintenance ? ERRPAGE_MAINTENANCE_MSG : errpage_message(status), status, id);
		*ctype = "application/json";
		return;
	}
	*ctype = "text/html; charset=utf-8";
	struct errpage_src src[2];
	size_t n = errpage_sources(rt ? rt->error_dir : NULL, ep->global_dir, status, maintenance, src);
	for (size_t k = 0; k < n; k++)
		if (lookup(ep, src[k].dir, src[k].file, body))
			return;
	if (maintenance)
		builtin(body, 503, "Down for maintenance",
			"This app is down for maintenance right now. It will be back shortly; please "
			"try again in a few minutes.", id);
	else
		builtin(body, status, title(status), explain(status), id);
}
