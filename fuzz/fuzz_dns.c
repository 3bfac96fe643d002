/* fuzz_dns: libFuzzer harness for berth's DNS query path (src/dns: wire.c's parser and
 * builder, answer.c's name resolution), without any I/O.
 *
 * The input is one datagram as a client would send it. It is answered twice from a fixed
 * snapshot (a few apps, envs and processes, one app with 30 instances so that answers get
 * truncated): once as UDP, once as TCP. The server's UDP size (512..4096) comes from a hash
 * of the input, so the corpus stays plain DNS packets. Invariants checked:
 *  - nothing is answered for a runt or a response (QR=1); UDP and TCP agree on answering;
 *  - an answer parses back strictly (dns_msg_walk), has QR set, the query's ID and opcode,
 *    at most one question, which is the query's question byte for byte;
 *  - the UDP answer is never larger than allowed: 512 without EDNS, else the client's size
 *    clamped to [512, udp_max]; TCP never over 65535;
 *  - UDP and TCP give the same rcode; a UDP answer without TC has the TCP one's answer and
 *    authority records (additional ones may be left out; with all of them it is identical);
 *    with TC it holds no more answer records and no additional ones;
 *  - answer records are owned by the question name; at most one OPT, only when the query
 *    had one; NXDOMAIN and NODATA carry exactly one SOA in the authority section. */
#include "dns/dns.h"
#include "dns/wire.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                       \
	do {                                                                              \
		if (!(cond)) {                                                            \
			fprintf(stderr, "fuzz_dns: %s:%d: check failed: %s\n", __FILE__,      \
				__LINE__, #cond);                                                 \
			abort();                                                          \
		}                                                                         \
	} while (0)

static uv_loop_t loop;
static struct endpoints *table;
static const struct ep_snapshot *snap;

static void init(void)
{
	uv_loop_init(&loop);
	table = endpoints_new(&loop);
	endpoints_put(table, "production", "new", "web", "web.1", 1, 3, 5001);
	endpoints_put(table, "production", "new", "web", "web.2", 2, 3, 5002);
	endpoints_put(table, "production", "new", "worker", "worker.1", 1, 3, 5003);
	endpoints_put(table, "production", "new", "web", "web.1", 1, 4, 5011);   /* a rollout: same slot */
	endpoints_put(table, "staging", "new", "web", "web.1", 1, 1, 6001);
	endpoints_put(table, "production", "blog", "web", "web.1", 1, 2, 7001);
	char inst[32];
	for (int i = 1; i <= 30; i++) {
		snprintf(inst, sizeof inst, "web.%d", i);
		endpoints_put(table, "production", "big", "web", inst, i, 1, 8000 + i);
	}
	snap = endpoints_current(table);
}

static uint64_t fnv(const uint8_t *d, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ d[i]) * 1099511628211ull;
	return h;
}

static inline uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

struct seen {
	const struct dns_query *q;
	unsigned opt, soa_ns, an, ar;
};

static int on_rr(void *arg, enum dns_section sec, const struct dns_rr *rr, const uint8_t *msg, size_t n)
{
	struct seen *s = arg;
	if (sec == DNS_SEC_QD) {
		CHECK(s->q->has_question);
		CHECK(dns_name_eq(rr->name, rr->name_len, s->q->qname, s->q->qname_len));
		CHECK(!memcmp(rr->name, s->q->qname, rr->name_len));     /* case kept */
		CHECK(rr->type == s->q->qtype && rr->rclass == s->q->qclass);
	} else if (sec == DNS_SEC_AN) {
		CHECK(dns_name_eq(rr->name, rr->name_len, s->q->qname, s->q->qname_len));
		CHECK(rr->rclass == DNS_C_IN);
		s->an++;
	} else if (sec == DNS_SEC_NS) {
		CHECK(rr->type == DNS_T_SOA);
		s->soa_ns++;
	} else if (rr->type == DNS_T_OPT) {
		s->opt++;
	} else {
		CHECK(rr->type == DNS_T_A);
		s->ar++;
	}
	return 0;
}

/* Check one answer; returns what it held. */
static struct seen check_answer(const uint8_t *a, size_t n, const uint8_t *query, size_t qn, const struct dns_query *q,
			     int parse_rc, const struct dns_result *res)
{
	CHECK(n >= DNS_HDR);
	CHECK(rd16(a) == rd16(query));                        /* ID */
	uint16_t flags = rd16(a + 2);
	CHECK(flags & DNS_F_QR);
	CHECK((flags & 0x7800) == (rd16(query + 2) & 0x7800)); /* opcode */
	CHECK(rd16(a + 4) <= 1);
	CHECK((flags & 0xF) == (res->rcode & 0xF));
	CHECK(!!(flags & DNS_F_TC) == res->truncated);
	struct seen s = {.q = q};
	CHECK(dns_msg_walk(a, n, on_rr, &s) == 0);
	CHECK(s.opt <= 1);
	if (s.opt)
		CHECK(q->edns && parse_rc == DNS_R_NOERROR);
	if (parse_rc == DNS_R_NOERROR && q->edns)
		CHECK(s.opt == 1);
	if (res->rcode == DNS_R_NXDOMAIN && !res->truncated)
		CHECK(s.an == 0 && s.soa_ns == 1);
	if (res->rcode == DNS_R_NOERROR && s.an == 0 && !res->truncated && (flags & DNS_F_AA))
		CHECK(s.soa_ns == 1);
	if (res->rcode != DNS_R_NOERROR && res->rcode != DNS_R_NXDOMAIN)
		CHECK(s.an == 0 && s.soa_ns == 0 && !(flags & DNS_F_AA));
	(void)qn;
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t udp[DNS_UDP_MAX_LIMIT], tcp[DNS_TCP_MAX];
	if (!table)
		init();
	struct dns_opts o;
	dns_opts_default(&o);
	o.udp_max = (uint16_t)(DNS_UDP_MIN + fnv(data, size) % (DNS_UDP_MAX_LIMIT - DNS_UDP_MIN + 1));
	struct dns_result ru, rt;
	size_t nu = dns_answer(snap, &o, data, size, udp, sizeof udp, DNS_UDP, &ru);
	size_t nt = dns_answer(snap, &o, data, size, tcp, sizeof tcp, DNS_TCP, &rt);
	CHECK((nu == 0) == (nt == 0));
	CHECK(ru.answered == (nu > 0) && rt.answered == (nt > 0));
	if (size < DNS_HDR || (data[2] & 0x80))
		CHECK(nu == 0);
	if (!nu)
		return 0;
	struct dns_query q;
	int rc = dns_query_parse(data, size, &q);
	size_t limit = DNS_UDP_MIN;
	if (rc == DNS_R_NOERROR && q.edns) {
		limit = q.edns_size < DNS_UDP_MIN ? DNS_UDP_MIN : q.edns_size;
		if (limit > o.udp_max)
			limit = o.udp_max;
	}
	CHECK(nu <= limit);
	CHECK(nt <= DNS_TCP_MAX);
	CHECK(ru.rcode == rt.rcode && ru.qtype == rt.qtype && ru.has_question == rt.has_question);
	struct seen su = check_answer(udp, nu, data, size, &q, rc, &ru);
	struct seen st = check_answer(tcp, nt, data, size, &q, rc, &rt);
	CHECK(!rt.truncated);   /* nothing in this snapshot comes near 64 KiB */
	if (ru.truncated) {
		CHECK(su.an <= st.an && su.ar == 0);
	} else {
		/* Only additional records may be left out without TC. */
		CHECK(su.an == st.an && su.soa_ns == st.soa_ns && su.ar <= st.ar);
		if (su.ar == st.ar)
			CHECK(nu == nt && !memcmp(udp, tcp, nu));
	}
	return 0;
}
