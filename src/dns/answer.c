/* dns/answer: one query in, one response out (dns_answer in dns.h), from an endpoints snapshot.
 *
 * Order of decisions: drop responses and runts; NOTIMP for other opcodes; FORMERR for
 * malformed queries (the question echoed when it parsed); BADVERS for EDNS versions above 0;
 * REFUSED for other classes, names outside consul./berth., and zone transfers; then the name
 * is resolved against the snapshot to an apex, ns host, service, node, an empty non-terminal
 * (a name that only exists because names below it do: NODATA, RFC 8020), or nothing
 * (NXDOMAIN). Negative answers carry the zone SOA (RFC 2308); every in-zone answer has AA.
 *
 * Size: records are all-or-nothing (wire.c rolls back one that does not fit). A record of the
 * answer that does not fit sets TC and ends the message (plus OPT); additional records that
 * do not fit are just left out (RFC 2181 section 9). OPT's 11 bytes are reserved up front.
 * No allocation: the builder writes into the caller's buffer. */
#include "dns/dns.h"
#include "dns/wire.h"
#include <string.h>

#define OPT_LEN 11
#define MAX_ADDRS (DNS_TCP_MAX / 16 + 1)   /* an A record takes at least 16 bytes */

static const uint8_t ZONE_WIRE[2][8] = {"\6consul", "\5berth"};
static const size_t ZONE_WIRE_LEN[2] = {8, 7};
static const char *const ZONE_TEXT[2] = {"consul", "berth"};

enum zone { Z_CONSUL, Z_BERTH };
enum kind { K_NONE, K_APEX, K_NSHOST, K_SERVICE, K_NODE, K_ENT };

struct lbl {
	const uint8_t *p;
	uint8_t n;
};

struct target {
	enum kind kind;
	enum zone zone;
	size_t g0, g1;       /* K_SERVICE, K_NODE: groups [g0, g1) of the snapshot */
	struct lbl node;     /* K_NODE: the instance label asked for */
};

/* Everything one answer needs, so helpers take one pointer. */
struct ctx {
	const struct ep_snapshot *snap;
	const struct dns_opts *o;
	const struct dns_query *q;
	struct dns_msg *m;
	struct target tg;
	bool truncated;
	uint32_t addrs[MAX_ADDRS];   /* addresses already answered (A answers are distinct) */
	size_t naddrs;
};

void dns_opts_default(struct dns_opts *o)
{
	memset(o, 0, sizeof *o);
	o->ttl = 0;
	o->neg_ttl = 0;
	o->udp_max = DNS_UDP_MAX_DEFAULT;
	o->ns_ipv4 = 0x7f000001u;
	o->tcp_idle_ms = 10000;
	o->tcp_max_conns = 1000;
}

static inline uint8_t lc(uint8_t c)
{
	return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c;
}

/* Label equals s (s lower case), ignoring case. */
static bool lbl_is(struct lbl l, const char *s)
{
	size_t n = strlen(s);
	if (l.n != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (lc(l.p[i]) != (uint8_t)s[i])
			return false;
	return true;
}

/* Label equals "_" + s. */
static bool lbl_is_us(struct lbl l, const char *s)
{
	return l.n >= 2 && l.p[0] == '_' && lbl_is((struct lbl){l.p + 1, (uint8_t)(l.n - 1)}, s);
}

/* A label as a lookup key: lower case, NUL-terminated; false unless [a-z0-9-]{1,63} (names
 * berth accepts), so a label with a NUL or a dot can never match by accident. */
static bool lbl_key(struct lbl l, char out[64])
{
	if (l.n == 0 || l.n > DNS_LABEL_MAX)
		return false;
	for (size_t i = 0; i < l.n; i++) {
		uint8_t c = lc(l.p[i]);
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return false;
		out[i] = (char)c;
	}
	out[l.n] = 0;
	return true;
}

/* The DNS label of an instance ("web.1" -> "web-1"): lower case, bytes outside [a-z0-9-]
 * become '-'; over 63 bytes, the head is cut and the ".slot" tail kept. */
static size_t node_label(const char *inst, uint8_t out[DNS_LABEL_MAX])
{
	size_t n = strnlen(inst, sizeof ((struct endpoint *)0)->instance);
	if (n == 0) {
		out[0] = '-';
		return 1;
	}
	size_t head = n, tail_at = n;
	if (n > DNS_LABEL_MAX) {
		const char *dot = memrchr(inst, '.', n);
		size_t tail = dot ? n - (size_t)(dot - inst) : 0;
		if (tail >= DNS_LABEL_MAX)
			tail = 0;
		head = DNS_LABEL_MAX - tail;
		tail_at = n - tail;
	}
	size_t len = 0;
	for (size_t i = 0; i < n; i++) {
		if (i >= head && i < tail_at)
			continue;
		uint8_t c = lc((uint8_t)inst[i]);
		out[len++] = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ? c : '-';
	}
	return len;
}

/* Append a label made of a C string (at most 63 bytes; empty becomes "-"). */
static size_t put_label(uint8_t *name, size_t len, const char *s)
{
	size_t n = strnlen(s, DNS_LABEL_MAX);
	if (n == 0) {
		name[len] = 1;
		name[len + 1] = '-';
		return len + 2;
	}
	name[len] = (uint8_t)n;
	memcpy(name + len + 1, s, n);
	return len + 1 + n;
}

/* INSTANCE.APP.ENV.node.berth. for an endpoint: at most 64 * 3 + 5 + 6 + 1 bytes. */
static size_t node_name(const struct endpoint *e, uint8_t name[DNS_NAME_MAX])
{
	uint8_t lab[DNS_LABEL_MAX];
	size_t ll = node_label(e->instance, lab);
	name[0] = (uint8_t)ll;
	memcpy(name + 1, lab, ll);
	size_t len = 1 + ll;
	len = put_label(name, len, e->app);
	len = put_label(name, len, e->env);
	memcpy(name + len, "\4node\5berth", 12);
	return len + 12;
}

/* ---- resolving a name ---- */

static int group_cmp2(const struct ep_group *g, const char *env, const char *app)
{
	int c = strcmp(g->env, env);
	return c ? c : strcmp(g->app, app);
}

/* Groups of (env, app), or of one process of it, with at least one instance. */
static bool find_service(const struct ep_snapshot *s, struct lbl env, struct lbl app, const struct lbl *proc,
			 size_t *g0, size_t *g1)
{
	char e[64], a[64], p[64];
	if (!s || !lbl_key(env, e) || !lbl_key(app, a))
		return false;
	if (proc) {
		if (!lbl_key(*proc, p))
			return false;
		const struct ep_group *g = ep_snapshot_group(s, e, a, p);
		if (!g || !g->n)
			return false;
		*g0 = (size_t)(g - s->groups);
		*g1 = *g0 + 1;
		return true;
	}
	size_t lo = 0, hi = s->ngroups;   /* lower bound of (env, app): groups are sorted */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (group_cmp2(&s->groups[mid], e, a) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	size_t j = lo, total = 0;
	while (j < s->ngroups && !group_cmp2(&s->groups[j], e, a))
		total += s->groups[j++].n;
	if (!total)
		return false;
	*g0 = lo;
	*g1 = j;
	return true;
}

/* Is the name (labels L[0..k) under the zone) a proper ancestor of a name that exists? */
static bool is_ent(const struct ep_snapshot *s, enum zone z, const struct lbl *L, size_t k)
{
	if (!s || k == 0 || k > 3)
		return false;
	for (size_t i = 0; i < s->ngroups; i++) {
		const struct ep_group *g = &s->groups[i];
		if (!g->n)
			continue;
		bool prod = !strcmp(g->env, "production");
		if (z == Z_CONSUL) {
			/* Names: [P, A, service, E], [_A, _P|_tcp, service, E]; for production
			 * also [P, A, service], [_A, _P|_tcp, service]. */
			if (k == 1 && (lbl_is(L[0], g->env) || (prod && lbl_is(L[0], "service"))))
				return true;
			if (k == 2 && lbl_is(L[0], "service") && lbl_is(L[1], g->env))
				return true;
			if (k == 2 && prod && lbl_is(L[1], "service") &&
			    (lbl_is(L[0], g->app) || lbl_is(L[0], "_tcp") || lbl_is_us(L[0], g->process)))
				return true;
			if (k == 3 && lbl_is(L[1], "service") && lbl_is(L[2], g->env) &&
			    (lbl_is(L[0], g->app) || lbl_is(L[0], "_tcp") || lbl_is_us(L[0], g->process)))
				return true;
		} else {
			/* Names: [P, A, E] and [I, A, E, node]. */
			if (k == 1 && (lbl_is(L[0], g->env) || lbl_is(L[0], "node")))
				return true;
			if (k == 2 && ((lbl_is(L[0], g->app) && lbl_is(L[1], g->env)) ||
				       (lbl_is(L[0], g->env) && lbl_is(L[1], "node"))))
				return true;
			if (k == 3 && lbl_is(L[0], g->app) && lbl_is(L[1], g->env) && lbl_is(L[2], "node"))
				return true;
		}
	}
	return false;
}

static const struct lbl PRODUCTION = {(const uint8_t *)"production", 10};

/* Consul's grammar, read as Consul does: the rightmost "service" label splits the name into
 * [tag.]service on its left and an optional datacenter (env) on its right. */
static bool resolve_consul(const struct ep_snapshot *s, const struct lbl *L, size_t k, struct target *t)
{
	int si = -1;
	for (size_t i = k; i-- > 0;)
		if (lbl_is(L[i], "service")) {
			si = (int)i;
			break;
		}
	if (si < 1 || si > 2 || k - (size_t)si - 1 > 1)
		return false;
	struct lbl env = k - (size_t)si - 1 ? L[si + 1] : PRODUCTION;
	if (si == 1)
		return find_service(s, env, L[0], NULL, &t->g0, &t->g1);
	if (L[0].n >= 2 && L[0].p[0] == '_' && L[1].n >= 2 && L[1].p[0] == '_') {
		/* RFC 2782 form: _APP._PROCESS or _APP._tcp (all processes). */
		struct lbl app = {L[0].p + 1, (uint8_t)(L[0].n - 1)}, tag = {L[1].p + 1, (uint8_t)(L[1].n - 1)};
		return find_service(s, env, app, lbl_is(tag, "tcp") ? NULL : &tag, &t->g0, &t->g1);
	}
	return find_service(s, env, L[1], &L[0], &t->g0, &t->g1);
}

static bool resolve_node(const struct ep_snapshot *s, const struct lbl *L, struct target *t)
{
	if (!find_service(s, L[2], L[1], NULL, &t->g0, &t->g1))
		return false;
	for (size_t g = t->g0; g < t->g1; g++)
		for (size_t j = 0; j < s->groups[g].n; j++) {
			uint8_t lab[DNS_LABEL_MAX];
			size_t ll = node_label(s->groups[g].eps[j]->instance, lab);
			if (dns_name_eq(lab, ll, L[0].p, L[0].n)) {
				t->node = L[0];
				return true;
			}
		}
	return false;
}

static void resolve(const struct ep_snapshot *s, const struct dns_query *q, enum zone z, struct target *t)
{
	struct lbl L[DNS_LABELS_MAX];
	size_t k = (size_t)q->nlabels - 1;   /* labels under the zone */
	for (size_t i = 0; i < k; i++)
		L[i].p = dns_query_label(q, (unsigned)i, &L[i].n);
	t->zone = z;
	t->kind = K_NONE;
	if (k == 0) {
		t->kind = K_APEX;
		return;
	}
	if (k == 1 && lbl_is(L[0], "ns")) {
		t->kind = K_NSHOST;
		return;
	}
	if (z == Z_CONSUL && resolve_consul(s, L, k, t)) {
		t->kind = K_SERVICE;
		return;
	}
	if (z == Z_BERTH && k == 3 && find_service(s, L[2], L[1], &L[0], &t->g0, &t->g1)) {
		t->kind = K_SERVICE;
		return;
	}
	if (z == Z_BERTH && k == 4 && lbl_is(L[3], "node") && resolve_node(s, L, t)) {
		t->kind = K_NODE;
		return;
	}
	if (is_ent(s, z, L, k))
		t->kind = K_ENT;
}

/* ---- records ---- */

static int rr_a(struct ctx *c, const uint8_t *owner, size_t olen, uint32_t ipv4, enum dns_section sec)
{
	struct dns_mark k = dns_msg_rr_begin(c->m, owner, olen, DNS_T_A, DNS_C_IN, c->o->ttl);
	dns_msg_put32(c->m, ipv4);
	return dns_msg_rr_end(c->m, k, sec);
}

/* ns.ZONE. */
static size_t ns_name(enum zone z, uint8_t name[DNS_NAME_MAX])
{
	memcpy(name, "\2ns", 3);
	memcpy(name + 3, ZONE_WIRE[z], ZONE_WIRE_LEN[z]);
	return 3 + ZONE_WIRE_LEN[z];
}

static int rr_soa(struct ctx *c, const uint8_t *owner, size_t olen, enum dns_section sec)
{
	enum zone z = c->tg.zone;
	uint8_t mname[DNS_NAME_MAX], rname[DNS_NAME_MAX];
	size_t ml = ns_name(z, mname);
	memcpy(rname, "\12hostmaster", 11);
	memcpy(rname + 11, ZONE_WIRE[z], ZONE_WIRE_LEN[z]);
	struct dns_mark k = dns_msg_rr_begin(c->m, owner, olen, DNS_T_SOA, DNS_C_IN, c->o->neg_ttl);
	dns_msg_put_name(c->m, mname, ml, true);
	dns_msg_put_name(c->m, rname, 11 + ZONE_WIRE_LEN[z], true);
	dns_msg_put32(c->m, c->snap ? (uint32_t)c->snap->version : 0);   /* serial */
	dns_msg_put32(c->m, 3600);     /* refresh */
	dns_msg_put32(c->m, 600);      /* retry */
	dns_msg_put32(c->m, 86400);    /* expire */
	dns_msg_put32(c->m, c->o->neg_ttl);   /* minimum: negative-caching TTL */
	return dns_msg_rr_end(c->m, k, sec);
}

static int rr_ns(struct ctx *c)
{
	uint8_t ns[DNS_NAME_MAX];
	size_t nl = ns_name(c->tg.zone, ns);
	struct dns_mark k = dns_msg_rr_begin(c->m, c->q->qname, c->q->qname_len, DNS_T_NS, DNS_C_IN, c->o->ttl);
	dns_msg_put_name(c->m, ns, nl, true);
	return dns_msg_rr_end(c->m, k, DNS_SEC_AN);
}

/* An answer record that does not fit ends the message with TC. */
static bool answer_failed(struct ctx *c, int r)
{
	if (r < 0)
		c->truncated = true;
	return r < 0;
}

static bool addr_seen(struct ctx *c, uint32_t a)
{
	for (size_t i = 0; i < c->naddrs; i++)
		if (c->addrs[i] == a)
			return true;
	if (c->naddrs < MAX_ADDRS)
		c->addrs[c->naddrs++] = a;
	return false;
}

/* A records of the service's (or node's) instances, each distinct address once. */
static void answer_a(struct ctx *c)
{
	const struct ep_snapshot *s = c->snap;
	for (size_t g = c->tg.g0; g < c->tg.g1; g++)
		for (size_t j = 0; j < s->groups[g].n; j++) {
			const struct endpoint *e = s->groups[g].eps[j];
			if (c->tg.kind == K_NODE) {
				uint8_t lab[DNS_LABEL_MAX];
				size_t ll = node_label(e->instance, lab);
				if (!dns_name_eq(lab, ll, c->tg.node.p, c->tg.node.n))
					continue;
			}
			if (addr_seen(c, e->ipv4))
				continue;
			if (answer_failed(c, rr_a(c, c->q->qname, c->q->qname_len, e->ipv4, DNS_SEC_AN)))
				return;
		}
}

/* SRV records, one per instance; the target name is not compressed (RFC 2782). */
static void answer_srv(struct ctx *c)
{
	const struct ep_snapshot *s = c->snap;
	for (size_t g = c->tg.g0; g < c->tg.g1; g++)
		for (size_t j = 0; j < s->groups[g].n; j++) {
			const struct endpoint *e = s->groups[g].eps[j];
			uint8_t target[DNS_NAME_MAX];
			size_t tl = node_name(e, target);
			struct dns_mark k = dns_msg_rr_begin(c->m, c->q->qname, c->q->qname_len, DNS_T_SRV,
							     DNS_C_IN, c->o->ttl);
			dns_msg_put16(c->m, 1);                     /* priority */
			dns_msg_put16(c->m, 1);                     /* weight */
			dns_msg_put16(c->m, (uint16_t)e->port);
			dns_msg_put_name(c->m, target, tl, false);
			if (answer_failed(c, dns_msg_rr_end(c->m, k, DNS_SEC_AN)))
				return;
		}
}

/* The SRV targets' A records; two instances with the same name (the old and new release of a
 * slot during a rollout) are next to each other in a group and get one record per address. */
static void additional_srv(struct ctx *c)
{
	const struct ep_snapshot *s = c->snap;
	uint8_t prev[DNS_NAME_MAX];
	size_t pl = 0;
	uint32_t prev_addr = 0;
	for (size_t g = c->tg.g0; g < c->tg.g1; g++)
		for (size_t j = 0; j < s->groups[g].n; j++) {
			const struct endpoint *e = s->groups[g].eps[j];
			uint8_t target[DNS_NAME_MAX];
			size_t tl = node_name(e, target);
			if (pl && prev_addr == e->ipv4 && dns_name_eq(prev, pl, target, tl))
				continue;
			if (rr_a(c, target, tl, e->ipv4, DNS_SEC_AR) < 0)
				return;    /* additional data is optional: no TC */
			memcpy(prev, target, tl);
			pl = tl;
			prev_addr = e->ipv4;
		}
}

/* Answer and additional sections for a name that exists. */
static void answer_records(struct ctx *c)
{
	uint16_t t = c->q->qtype;
	bool any = t == DNS_T_ANY;
	switch (c->tg.kind) {
	case K_APEX:
		if ((t == DNS_T_SOA || any) &&
		    answer_failed(c, rr_soa(c, c->q->qname, c->q->qname_len, DNS_SEC_AN)))
			return;
		if (t == DNS_T_NS || any) {
			if (answer_failed(c, rr_ns(c)))
				return;
			uint8_t ns[DNS_NAME_MAX];
			size_t nl = ns_name(c->tg.zone, ns);
			rr_a(c, ns, nl, c->o->ns_ipv4, DNS_SEC_AR);
		}
		return;
	case K_NSHOST:
		if (t == DNS_T_A || any)
			answer_failed(c, rr_a(c, c->q->qname, c->q->qname_len, c->o->ns_ipv4, DNS_SEC_AN));
		return;
	case K_NODE:
		if (t == DNS_T_A || any)
			answer_a(c);
		return;
	case K_SERVICE:
		if (t == DNS_T_A || any)
			answer_a(c);
		if (!c->truncated && (t == DNS_T_SRV || any)) {
			answer_srv(c);
			if (!c->truncated)
				additional_srv(c);
		}
		return;
	default:
		return;   /* K_ENT: NODATA */
	}
}

static int zone_of(const struct dns_query *q)
{
	if (q->nlabels == 0)
		return -1;
	uint8_t n;
	const uint8_t *p = dns_query_label(q, q->nlabels - 1u, &n);
	for (int z = 0; z < 2; z++)
		if (lbl_is((struct lbl){p, n}, ZONE_TEXT[z]))
			return z;
	return -1;
}

/* ---- the whole answer ---- */

static size_t answer_size(const struct dns_query *q, int rc, const struct dns_opts *o, size_t cap,
			  enum dns_transport t)
{
	size_t limit = DNS_UDP_MIN;
	if (t == DNS_TCP) {
		limit = DNS_TCP_MAX;
	} else if (rc == DNS_R_NOERROR && q->edns) {
		size_t ours = o->udp_max < DNS_UDP_MIN ? DNS_UDP_MIN
			      : o->udp_max > DNS_UDP_MAX_LIMIT ? DNS_UDP_MAX_LIMIT : o->udp_max;
		limit = q->edns_size < DNS_UDP_MIN ? DNS_UDP_MIN : q->edns_size;
		if (limit > ours)
			limit = ours;
	}
	return limit < cap ? limit : cap;
}

size_t dns_answer(const struct ep_snapshot *snap, const struct dns_opts *o, const uint8_t *q, size_t n,
		  uint8_t *out, size_t cap, enum dns_transport t, struct dns_result *res)
{
	struct dns_opts def;
	struct dns_result scratch;
	if (!o) {
		dns_opts_default(&def);
		o = &def;
	}
	if (!res)
		res = &scratch;
	memset(res, 0, sizeof *res);
	struct ctx c;
	struct dns_query qq;
	struct dns_msg m;
	int rc = dns_query_parse(q, n, &qq);
	if (rc == DNS_PARSE_DROP || cap < DNS_UDP_MIN)
		return 0;
	size_t limit = answer_size(&qq, rc, o, cap, t);
	dns_msg_init(&m, out, limit);
	uint16_t flags = DNS_F_QR | (qq.flags & (0x7800 | DNS_F_RD | DNS_F_CD));   /* opcode, RD, CD */
	res->answered = true;
	if (rc == DNS_R_NOTIMP) {
		res->rcode = rc;
		dns_msg_set_header(&m, qq.id, (uint16_t)(flags | DNS_R_NOTIMP));
		return dns_msg_finish(&m);
	}
	/* The question always fits: 12 + 255 + 4 < 512. */
	if (qq.has_question)
		dns_msg_question(&m, qq.qname, qq.qname_len, qq.qtype, qq.qclass);
	if (rc == DNS_R_FORMERR) {
		res->rcode = rc;
		dns_msg_set_header(&m, qq.id, (uint16_t)(flags | DNS_R_FORMERR));
		return dns_msg_finish(&m);
	}
	res->has_question = true;
	res->qtype = qq.qtype;
	if (qq.edns)
		dns_msg_set_limit(&m, limit - OPT_LEN);
	int zone = zone_of(&qq);
	if (qq.edns && qq.edns_version > 0) {
		rc = DNS_R_BADVERS;
	} else if (qq.qtype == DNS_T_OPT) {
		rc = DNS_R_FORMERR;
	} else if ((qq.qclass != DNS_C_IN && qq.qclass != DNS_C_ANY) || zone < 0 ||
		   qq.qtype == DNS_T_AXFR || qq.qtype == DNS_T_IXFR) {
		rc = DNS_R_REFUSED;
	} else {
		memset(&c.tg, 0, sizeof c.tg);
		c.snap = snap;
		c.o = o;
		c.q = &qq;
		c.m = &m;
		c.truncated = false;
		c.naddrs = 0;
		resolve(snap, &qq, (enum zone)zone, &c.tg);
		flags |= DNS_F_AA;
		if (c.tg.kind == K_NONE)
			rc = DNS_R_NXDOMAIN;
		else
			answer_records(&c);
		/* Negative answers (NXDOMAIN, NODATA) carry the SOA for negative caching. */
		if (!c.truncated && m.count[DNS_SEC_AN] == 0 &&
		    rr_soa(&c, ZONE_WIRE[zone], ZONE_WIRE_LEN[zone], DNS_SEC_NS) < 0)
			c.truncated = true;
		if (c.truncated) {
			flags |= DNS_F_TC;
			res->truncated = true;
		}
	}
	res->rcode = rc;
	if (qq.edns) {
		/* OPT: our UDP size, the upper 8 bits of the rcode, version 0, the DO bit copied. */
		dns_msg_set_limit(&m, limit);
		static const uint8_t root = 0;
		uint32_t ttl = (uint32_t)(rc >> 4) << 24 | (qq.edns_do ? 0x8000u : 0);
		uint16_t ours = o->udp_max < DNS_UDP_MIN ? DNS_UDP_MIN
				: o->udp_max > DNS_UDP_MAX_LIMIT ? DNS_UDP_MAX_LIMIT : o->udp_max;
		struct dns_mark k = dns_msg_rr_begin(&m, &root, 1, DNS_T_OPT, ours, ttl);
		dns_msg_rr_end(&m, k, DNS_SEC_AR);
	}
	dns_msg_set_header(&m, qq.id, (uint16_t)(flags | (rc & 0xF)));
	return dns_msg_finish(&m);
}
