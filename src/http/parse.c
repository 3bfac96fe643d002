/* http/parse: berth's HTTP/1.1 request framing, without I/O (the layer the fuzzer drives).
 *
 * Every byte of a request head (and of a chunked trailer section) first goes through a
 * strict scanner of our own that refuses what llhttp's loose build lets through: bare LF,
 * bare CR, obs-fold, whitespace or non-token bytes in names, control bytes in values,
 * doubled spaces in the request line, versions other than 1.0/1.1, and it enforces the
 * size limits (head, header count, target length). llhttp (never lenient) then parses the
 * same bytes for structure: Content-Length, chunked coding, keep-alive. When a head is
 * complete, berth's own framing decisions are made (CL+TE, duplicates, Host, Expect,
 * target form) and the request is built in one arena. In chunked bodies we also check
 * that each chunk's data is followed by exactly CRLF: llhttp 8 takes any two bytes there
 * ("5\r\nhelloXX0\r\n\r\n" would pass), which a peer that reads them differently could
 * use to smuggle a request.
 *
 * Owns the llhttp parser and the head being built; never touches a socket or a file. */
#include "http/parse.h"
#include <llhttp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_METHOD 32        /* longest method token we read (llhttp knows all real ones) */
#define MAX_CHUNK_EXT 4096   /* chunk extension bytes per chunk (we ignore them; bound them) */

/* Byte classes: C_TOKEN = tchar (RFC 9110), C_FIELD = field-value byte (VCHAR, obs-text,
 * SP, HTAB), C_TARGET = request-target byte (VCHAR). */
enum { C_TOKEN = 1, C_FIELD = 2, C_TARGET = 4 };
static const unsigned char ctab[256] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	2, 7, 6, 7, 7, 7, 7, 7, 6, 6, 7, 7, 6, 7, 7, 6,
	7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 6, 6, 6, 6, 6,
	6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
	7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 6, 6, 7, 7,
	7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
	7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 7, 6, 7, 0,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
};

/* --- the head scanner ------------------------------------------------------------------ */

enum scan_state {
	S_START,     /* before the request line (empty lines allowed) */
	S_START_LF,  /* CR of a leading empty line seen */
	S_METHOD, S_TARGET, S_VERSION,
	S_RL_LF,     /* CR after the version seen */
	S_LINE,      /* at the start of a header line, or of the final empty line */
	S_NAME, S_VALUE,
	S_VALUE_LF,  /* CR after a value seen */
	S_END_LF,    /* CR of the final empty line seen */
};

struct scan {
	enum scan_state st;
	size_t bytes;     /* head (or trailer section) bytes so far */
	size_t lines;     /* header lines so far */
	size_t mlen, tlen, vlen;
	char ver[8];
};

static void scan_init(struct scan *s, int trailer)
{
	memset(s, 0, sizeof *s);
	s->st = trailer ? S_LINE : S_START;
}

static int version_status(const struct scan *s)
{
	const char *v = s->ver;
	if (s->vlen != 8 || memcmp(v, "HTTP/", 5) || v[5] < '0' || v[5] > '9' || v[6] != '.' ||
	    v[7] < '0' || v[7] > '9')
		return 400;
	if (v[5] == '1' && (v[7] == '0' || v[7] == '1'))
		return 0;
	return 505;
}

/* Scan up to n bytes of a head. Returns how many bytes are acceptable; *done is set when
 * they end with the head's final CRLF, *status when the byte after them is refused. */
static size_t scan_run(struct scan *s, const unsigned char *d, size_t n, int *done, int *status)
{
	size_t budget = HTTP_MAX_HEAD - s->bytes;
	size_t end = n < budget ? n : budget;
	size_t i;
	*done = 0;
	*status = 0;
	for (i = 0; i < end; i++) {
		unsigned char c = d[i];
		switch (s->st) {
		case S_START:
			if (c == '\r')
				s->st = S_START_LF;
			else if (ctab[c] & C_TOKEN) {
				s->st = S_METHOD;
				s->mlen = 1;
			} else
				goto bad;
			break;
		case S_START_LF:
			if (c != '\n')
				goto bad;
			s->st = S_START;
			break;
		case S_METHOD:
			if (c == ' ') {
				s->st = S_TARGET;
				s->tlen = 0;
			} else if (!(ctab[c] & C_TOKEN) || ++s->mlen > MAX_METHOD)
				goto bad;
			break;
		case S_TARGET:
			if (c == ' ') {
				if (!s->tlen)
					goto bad;
				s->st = S_VERSION;
				s->vlen = 0;
			} else if (ctab[c] & C_TARGET) {
				size_t j = i + 1;
				while (j < end && (ctab[d[j]] & C_TARGET))
					j++;
				if (s->tlen + (j - i) > HTTP_MAX_URL) {
					i += HTTP_MAX_URL - s->tlen;
					*status = 414;
					goto out;
				}
				s->tlen += j - i;
				i = j - 1;
			} else
				goto bad;
			break;
		case S_VERSION:
			/* Decided on the version's last byte, before llhttp sees it (llhttp would
			 * call "HTTP/1.2" a syntax error; for us it is a version we do not speak). */
			if (c == '\r' && s->vlen == sizeof s->ver) {
				s->st = S_RL_LF;
			} else if (c != '\r' && s->vlen < sizeof s->ver) {
				s->ver[s->vlen++] = (char)c;
				if (s->vlen == sizeof s->ver && (*status = version_status(s)))
					goto out;
			} else
				goto bad;
			break;
		case S_RL_LF:
		case S_VALUE_LF:
			if (c != '\n')
				goto bad;
			s->st = S_LINE;
			break;
		case S_LINE:
			if (c == '\r')
				s->st = S_END_LF;
			else if (ctab[c] & C_TOKEN) {     /* SP/HTAB here is obs-fold: refused */
				if (++s->lines > HTTP_MAX_HEADERS) {
					*status = 431;
					goto out;
				}
				s->st = S_NAME;
			} else
				goto bad;
			break;
		case S_NAME:
			if (c == ':')
				s->st = S_VALUE;
			else if (ctab[c] & C_TOKEN) {
				while (i + 1 < end && (ctab[d[i + 1]] & C_TOKEN))
					i++;
			} else
				goto bad;
			break;
		case S_VALUE:
			if (c == '\r')
				s->st = S_VALUE_LF;
			else if (ctab[c] & C_FIELD) {
				while (i + 1 < end && (ctab[d[i + 1]] & C_FIELD))
					i++;
			} else
				goto bad;
			break;
		case S_END_LF:
			if (c != '\n')
				goto bad;
			*done = 1;
			i++;
			goto out;
		}
	}
	if (end < n)
		*status = 431;   /* the head goes on past HTTP_MAX_HEAD */
	goto out;
bad:
	*status = 400;
out:
	s->bytes += i;
	return i;
}

/* --- the parser ------------------------------------------------------------------------ */

enum pstate { P_IDLE, P_HEAD, P_BODY_START, P_BODY, P_TRAILER, P_CLOSED, P_ERROR };

struct http_parse {
	llhttp_t ll;
	enum pstate state;
	struct scan sc;
	int status;               /* P_ERROR: the answer; else set by a callback refusing */
	/* the head being built */
	struct buf arena;
	struct http_hoff *hoff;
	size_t nh, caph;
	size_t url_len, name_off, value_off;
	int in_name;
	struct http_reqx *req;    /* built at the end of the head, until taken */
	/* the body */
	int keep_alive, chunked, has_cl;
	uint64_t cl, max, seen;
	size_t ext;               /* chunk extension bytes of the current chunk */
	uint64_t chunk_left;      /* data bytes of the current chunk not seen yet */
	int tail_active;          /* a chunk's data ended: its CRLF is being checked */
	int tail_seen;            /* bytes of that CRLF checked so far */
	const char *tail_from;    /* where the CRLF starts in the current run (NULL: at its start) */
	const char *span;         /* body bytes found by the last llhttp run */
	size_t span_len;
	/* what the last llhttp run ran into */
	int hc, cc, mc, last;
	int done_pending;         /* EV_BODY given; EV_DONE is next */
};

#define PARSER(ll) ((struct http_parse *)(ll)->data)

static int cb_url(llhttp_t *ll, const char *at, size_t n)
{
	buf_add(&PARSER(ll)->arena, at, n);
	return 0;
}

static int cb_url_complete(llhttp_t *ll)
{
	struct http_parse *p = PARSER(ll);
	p->url_len = p->arena.len;
	buf_addc(&p->arena, 0);
	return 0;
}

static int cb_field(llhttp_t *ll, const char *at, size_t n)
{
	struct http_parse *p = PARSER(ll);
	if (p->state != P_HEAD)
		return 0;     /* trailer fields are checked by the scanner and dropped */
	if (!p->in_name) {
		p->in_name = 1;
		p->name_off = p->arena.len;
	}
	buf_add(&p->arena, at, n);
	return 0;
}

static int cb_field_complete(llhttp_t *ll)
{
	struct http_parse *p = PARSER(ll);
	if (p->state != P_HEAD)
		return 0;
	if (!p->in_name)
		p->name_off = p->arena.len;
	p->in_name = 0;
	buf_addc(&p->arena, 0);
	p->value_off = p->arena.len;
	return 0;
}

static int cb_value(llhttp_t *ll, const char *at, size_t n)
{
	struct http_parse *p = PARSER(ll);
	if (p->state == P_HEAD)
		buf_add(&p->arena, at, n);
	return 0;
}

static int cb_value_complete(llhttp_t *ll)
{
	struct http_parse *p = PARSER(ll);
	if (p->state != P_HEAD)
		return 0;
	http_hoff_push(&p->arena, &p->hoff, &p->nh, &p->caph, p->name_off, p->value_off);
	return 0;
}

/* The head is complete: berth's framing decisions, then the request is built from the
 * arena. Returns 0 or the status to refuse with. */
static int head_finish(struct http_parse *p)
{
	llhttp_t *ll = &p->ll;
	const char *a = p->arena.p;
	size_t nhost = 0, ncl = 0, nte = 0, nexpect = 0;
	const char *te = NULL, *expect = NULL, *cl = NULL;
	for (size_t i = 0; i < p->nh; i++) {
		const char *name = a + p->hoff[i].name, *value = a + p->hoff[i].value;
		if (!strcasecmp(name, "host"))
			nhost++;
		else if (!strcasecmp(name, "content-length")) {
			ncl++;
			cl = value;
		} else if (!strcasecmp(name, "transfer-encoding")) {
			nte++;
			te = value;
		} else if (!strcasecmp(name, "expect")) {
			nexpect++;
			expect = value;
		}
	}
	int minor = ll->http_minor;   /* the scanner let through HTTP/1.0 and HTTP/1.1 only */
	if (ll->method == HTTP_CONNECT)
		return 501;
	if (ncl > 1 || (ncl && !http_digits_only(cl)))
		return 400;
	if (nte && (nte > 1 || ncl || minor == 0 || strcasecmp(te, "chunked")))
		return 400;
	if (minor == 1 ? nhost != 1 : nhost > 1)
		return 400;
	if (minor == 1 && nexpect && (nexpect > 1 || strcasecmp(expect, "100-continue")))
		return 417;
	if (!!(ll->flags & F_CHUNKED) != !!nte || !!(ll->flags & F_CONTENT_LENGTH) != !!ncl)
		return 400;   /* llhttp and we disagree on the framing: refuse */

	size_t path_off, query_off;
	int st = http_target_split(&p->arena, 0, p->url_len, &path_off, &query_off);
	if (st)
		return st;
	size_t method_off = p->arena.len;
	buf_adds(&p->arena, llhttp_method_name((llhttp_method_t)ll->method));
	buf_addc(&p->arena, 0);

	struct http_reqx *rx = xcalloc(1, sizeof *rx);
	rx->arena = buf_detach(&p->arena);
	struct http_req *r = &rx->pub;
	r->method = rx->arena + method_off;
	r->target = rx->arena;
	r->path = rx->arena + path_off;
	r->query = rx->arena + query_off;
	r->headers = xcalloc(p->nh ? p->nh : 1, sizeof *r->headers);
	for (size_t i = 0; i < p->nh; i++) {
		r->headers[i].name = rx->arena + p->hoff[i].name;
		r->headers[i].value = rx->arena + p->hoff[i].value;
	}
	r->nheaders = p->nh;
	free(p->hoff);
	p->hoff = NULL;
	p->nh = p->caph = 0;

	rx->http_minor = (unsigned)minor;
	rx->upgrade = ll->upgrade ? 1 : 0;
	rx->keep_alive = llhttp_should_keep_alive(ll) && !ll->upgrade;
	rx->expect_continue = minor == 1 && nexpect;
	rx->head_method = ll->method == HTTP_HEAD;
	rx->chunked = nte ? 1 : 0;
	rx->has_length = ncl ? 1 : 0;
	rx->content_length = ncl ? ll->content_length : 0;

	http_req_free(p->req ? &p->req->pub : NULL);
	p->req = rx;
	p->keep_alive = rx->keep_alive;
	p->chunked = rx->chunked;
	p->has_cl = rx->has_length;
	p->cl = rx->content_length;
	p->max = HTTP_DEFAULT_BODY_MAX;
	p->seen = 0;
	p->chunk_left = 0;
	p->tail_active = p->tail_seen = 0;
	return 0;
}

static int cb_headers_complete(llhttp_t *ll)
{
	struct http_parse *p = PARSER(ll);
	int st = head_finish(p);
	if (st) {
		p->status = st;
		return -1;
	}
	p->hc = 1;
	return HPE_PAUSED;
}

static int cb_body(llhttp_t *ll, const char *at, size_t n)
{
	struct http_parse *p = PARSER(ll);
	if (!n)
		return 0;     /* llhttp may flush an empty span at the end of a run */
	if (!p->span) {
		p->span = at;
		p->span_len = n;
	} else if (p->span + p->span_len == at) {
		p->span_len += n;
	} else {
		p->status = 400;   /* two body pieces in one run: cannot happen, refuse if it does */
		return -1;
	}
	p->seen += n;
	if (p->seen > p->max) {
		p->status = 413;
		return -1;
	}
	if (p->chunked) {
		p->chunk_left = n < p->chunk_left ? p->chunk_left - n : 0;
		if (!p->chunk_left) {
			p->tail_active = 1;
			p->tail_seen = 0;
			p->tail_from = at + n;
		}
	}
	return 0;
}

static int cb_chunk_header(llhttp_t *ll)
{
	struct http_parse *p = PARSER(ll);
	if (p->seen > p->max || ll->content_length > p->max - p->seen) {
		p->status = 413;
		return -1;
	}
	p->ext = 0;
	p->chunk_left = ll->content_length;
	if (ll->content_length == 0) {
		p->last = 1;     /* the trailer section follows: pause so the scanner sees it */
		return HPE_PAUSED;
	}
	return 0;
}

static int cb_chunk_ext(llhttp_t *ll, const char *at, size_t n)
{
	struct http_parse *p = PARSER(ll);
	p->ext += n;
	if (p->ext > MAX_CHUNK_EXT) {
		p->status = 400;
		return -1;
	}
	return 0;
}

static int cb_chunk_complete(llhttp_t *ll)
{
	PARSER(ll)->cc = 1;
	return HPE_PAUSED;
}

/* Also where an Upgrade request stops: llhttp reads its body like any other (strict mode
 * only skips it when there is none) and would report HPE_PAUSED_UPGRADE only after this
 * callback; our pause comes first, and as an upgrade never keeps the connection alive the
 * parser then stops (P_CLOSED). The bytes after the body are left to the connection: the
 * tunnel's if the handler switches to one. */
static int cb_message_complete(llhttp_t *ll)
{
	PARSER(ll)->mc = 1;
	return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
	.on_url = cb_url,
	.on_url_complete = cb_url_complete,
	.on_header_field = cb_field,
	.on_header_field_complete = cb_field_complete,
	.on_header_value = cb_value,
	.on_header_value_complete = cb_value_complete,
	.on_headers_complete = cb_headers_complete,
	.on_body = cb_body,
	.on_chunk_header = cb_chunk_header,
	.on_chunk_extension_name = cb_chunk_ext,
	.on_chunk_extension_value = cb_chunk_ext,
	.on_chunk_complete = cb_chunk_complete,
	.on_message_complete = cb_message_complete,
};

struct http_parse *http_parse_new(void)
{
	struct http_parse *p = xcalloc(1, sizeof *p);
	llhttp_init(&p->ll, HTTP_REQUEST, &settings);
	p->ll.data = p;
	p->state = P_IDLE;
	p->max = HTTP_DEFAULT_BODY_MAX;
	scan_init(&p->sc, 0);
	return p;
}

void http_parse_free(struct http_parse *p)
{
	if (!p)
		return;
	http_req_free(p->req ? &p->req->pub : NULL);
	buf_free(&p->arena);
	free(p->hoff);
	free(p);
}

/* Run llhttp over d[0..n). Returns the bytes it consumed; a pause is resumed at once. */
static size_t run(struct http_parse *p, const char *d, size_t n, llhttp_errno_t *e)
{
	*e = llhttp_execute(&p->ll, d, n);
	if (*e == HPE_PAUSED) {
		const char *at = llhttp_get_error_pos(&p->ll);
		llhttp_resume(&p->ll);
		return (size_t)(at - d);
	}
	return n;
}

static size_t fail(struct http_parse *p, enum http_parse_event *ev, int *status, size_t off, int st)
{
	p->state = P_ERROR;
	p->status = st;
	*ev = HTTP_EV_ERROR;
	*status = st;
	return off;
}

/* The bytes llhttp consumed after a chunk's data (d[0..c) of the last run, from
 * tail_from on) must be "\r\n", and exactly that once the chunk is complete. */
static int chunk_tail_check(struct http_parse *p, const char *d, size_t c)
{
	const char *from = p->tail_from ? p->tail_from : d;
	for (; from < d + c; from++) {
		if (p->tail_seen >= 2 || *from != "\r\n"[p->tail_seen])
			return -1;
		p->tail_seen++;
	}
	p->tail_from = NULL;
	if (p->cc) {
		if (p->tail_seen != 2)
			return -1;
		p->tail_active = 0;
	}
	return 0;
}

/* A request ended: get ready for the next one (or for none). */
static void message_end(struct http_parse *p)
{
	p->state = p->keep_alive ? P_IDLE : P_CLOSED;
	scan_init(&p->sc, 0);
}

size_t http_parse_feed(struct http_parse *p, const char *data, size_t n, enum http_parse_event *ev, int *status)
{
	size_t off = 0;
	*ev = HTTP_EV_NONE;
	*status = 0;
	if (!data) {
		data = "";
		n = 0;
	}
	if (p->done_pending) {
		p->done_pending = 0;
		*ev = HTTP_EV_DONE;
		return 0;
	}
	/* Each turn consumes bytes or changes state; a handful of turns is all a call needs. */
	for (int turn = 0; turn < 16; turn++) {
		const char *d = data + off;
		size_t m = n - off;
		llhttp_errno_t e;
		size_t c;
		switch (p->state) {
		case P_ERROR:
			*ev = HTTP_EV_ERROR;
			*status = p->status;
			return off;
		case P_CLOSED:
			return n;
		case P_IDLE:
			if (!m)
				return off;
			http_req_free(p->req ? &p->req->pub : NULL);   /* never taken */
			p->req = NULL;
			buf_free(&p->arena);
			buf_grow(&p->arena, 1024);   /* most heads fit: no regrowth on the way */
			p->nh = 0;
			p->in_name = 0;
			p->state = P_HEAD;
			/* fallthrough */
		case P_HEAD:
		case P_TRAILER: {
			if (!m)
				return off;
			int done, st;
			size_t lim = scan_run(&p->sc, (const unsigned char *)d, m, &done, &st);
			e = HPE_OK;
			c = lim ? run(p, d, lim, &e) : 0;
			if (e != HPE_OK && e != HPE_PAUSED)
				return fail(p, ev, status, off, p->status ? p->status : 400);
			if (!done) {
				if (e == HPE_PAUSED)   /* llhttp saw an end of head that we did not */
					return fail(p, ev, status, off, 400);
				off += lim;
				if (st)
					return fail(p, ev, status, off, st);
				return off;
			}
			if (e != HPE_PAUSED || c != lim)
				return fail(p, ev, status, off, 400);
			off += lim;
			if (p->state == P_HEAD) {
				if (!p->hc)
					return fail(p, ev, status, off, 400);
				p->hc = 0;
				p->state = P_BODY_START;
				*ev = HTTP_EV_HEAD;
				return off;
			}
			if (!p->cc)
				return fail(p, ev, status, off, 400);
			p->cc = 0;
			p->state = P_BODY;   /* the message completes next */
			break;
		}
		case P_BODY_START:
			if (p->has_cl && p->cl > p->max)
				return fail(p, ev, status, off, 413);
			p->state = P_BODY;
			break;
		case P_BODY:
			p->span = NULL;
			p->span_len = 0;
			p->cc = p->mc = p->last = 0;
			p->tail_from = NULL;
			c = run(p, d, m, &e);
			if (e != HPE_OK && e != HPE_PAUSED)
				return fail(p, ev, status, off, p->status ? p->status : 400);
			if (p->tail_active && chunk_tail_check(p, d, c))
				return fail(p, ev, status, off, 400);
			off += c;
			if (p->mc) {
				message_end(p);
				if (p->span) {
					p->done_pending = 1;
					*ev = HTTP_EV_BODY;
				} else
					*ev = HTTP_EV_DONE;
				return off;
			}
			if (p->last) {
				p->state = P_TRAILER;
				scan_init(&p->sc, 1);
			}
			if (p->span) {
				*ev = HTTP_EV_BODY;
				return off;
			}
			if (e == HPE_OK)
				return off;
			break;
		}
	}
	return fail(p, ev, status, off, 400);
}

enum http_parse_phase http_parse_phase(const struct http_parse *p)
{
	if (p->done_pending)
		return HTTP_PHASE_BODY;
	switch (p->state) {
	case P_IDLE:
		return HTTP_PHASE_IDLE;
	case P_HEAD:
		return HTTP_PHASE_HEAD;
	case P_BODY_START:
	case P_BODY:
	case P_TRAILER:
		return HTTP_PHASE_BODY;
	default:
		return HTTP_PHASE_CLOSED;
	}
}

struct http_req *http_parse_take_req(struct http_parse *p)
{
	struct http_reqx *rx = p->req;
	p->req = NULL;
	return rx ? &rx->pub : NULL;
}

void http_parse_set_body_max(struct http_parse *p, uint64_t max)
{
	p->max = max;
}

void http_parse_body(const struct http_parse *p, const char **data, size_t *n)
{
	*data = p->span ? p->span : "";
	*n = p->span_len;
}

uint64_t http_parse_body_seen(const struct http_parse *p)
{
	return p->seen;
}

void http_hoff_push(struct buf *arena, struct http_hoff **v, size_t *n, size_t *cap, size_t name_off,
		    size_t value_off)
{
	while (arena->len > value_off && (arena->p[arena->len - 1] == ' ' || arena->p[arena->len - 1] == '\t'))
		arena->len--;
	buf_addc(arena, 0);
	if (*n == *cap) {
		*cap = *cap ? 2 * *cap : 16;
		*v = xrealloc(*v, *cap * sizeof **v);
	}
	(*v)[*n].name = name_off;
	(*v)[*n].value = value_off;
	(*n)++;
}

int http_digits_only(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}
