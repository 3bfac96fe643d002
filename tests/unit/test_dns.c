/* test_dns: the DNS module. First the wire layer and dns_answer() as pure functions against a
 * snapshot built with the real endpoints table (every malformed query and its rcode, each
 * name form, NXDOMAIN vs NODATA, EDNS, truncation, compression, case); then the server on a
 * loopback port, its loop running in a second thread, checked with raw sockets (garbage,
 * pipelined TCP, idle timeout), with dig and kdig, and through dnsmasq forwarding `consul.`
 * to it as Consul's docs set it up. Tests needing a missing tool are skipped with a reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "dns/dns.h"
#include "dns/wire.h"
#include "util/buf.h"

extern char **environ;

/* ======================================================================================
 * Helpers: queries, decoded answers
 * ====================================================================================== */

static size_t put16(uint8_t *p, size_t o, uint16_t v)
{
	p[o] = (uint8_t)(v >> 8);
	p[o + 1] = (uint8_t)v;
	return o + 2;
}

/* A query: edns < 0 means no OPT record. */
static size_t mkq_full(uint8_t *p, uint16_t id, uint16_t flags, const char *name, uint16_t qtype, uint16_t qclass,
		       int edns, uint8_t version, bool dobit)
{
	memset(p, 0, DNS_HDR);
	put16(p, 0, id);
	put16(p, 2, flags);
	put16(p, 4, 1);
	put16(p, 10, edns >= 0 ? 1 : 0);
	size_t nl = dns_name_from_text(name, p + DNS_HDR);
	assert_true(nl > 0);
	size_t o = DNS_HDR + nl;
	o = put16(p, o, qtype);
	o = put16(p, o, qclass);
	if (edns >= 0) {
		p[o++] = 0;
		o = put16(p, o, DNS_T_OPT);
		o = put16(p, o, (uint16_t)edns);
		p[o++] = 0;
		p[o++] = version;
		o = put16(p, o, dobit ? 0x8000 : 0);
		o = put16(p, o, 0);
	}
	return o;
}

static size_t mkq(uint8_t *p, const char *name, uint16_t qtype, int edns)
{
	return mkq_full(p, 0x1234, DNS_F_RD, name, qtype, DNS_C_IN, edns, 0, false);
}

static void name_text(const uint8_t *n, struct buf *b)
{
	if (!n[0]) {
		buf_addc(b, '.');
		return;
	}
	while (n[0]) {
		buf_add(b, n + 1, n[0]);
		buf_addc(b, '.');
		n += 1 + n[0];
	}
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* An answer, decoded: one line per record "AN name TYPE rdata ttl=N". */
struct resp {
	size_t len;
	uint16_t id, flags;
	int rcode;                 /* with the OPT's extended bits */
	unsigned count[4];
	bool opt, opt_do;
	uint16_t opt_size;
	uint32_t soa_serial;
	struct buf text;
};

static const char *SEC[4] = {"QD", "AN", "NS", "AR"};

static int on_rr(void *arg, enum dns_section sec, const struct dns_rr *rr, const uint8_t *msg, size_t n)
{
	struct resp *r = arg;
	struct buf *b = &r->text;
	if (rr->type == DNS_T_OPT && sec == DNS_SEC_AR) {
		r->opt = true;
		r->opt_size = rr->rclass;
		r->opt_do = (rr->ttl & 0x8000) != 0;
		r->rcode |= (int)(rr->ttl >> 24) << 4;
		assert_int_equal((rr->ttl >> 16) & 0xFF, 0);   /* version 0 */
		return 0;
	}
	buf_addf(b, "%s ", SEC[sec]);
	name_text(rr->name, b);
	if (sec == DNS_SEC_QD) {
		buf_addf(b, " TYPE%u\n", rr->type);
		return 0;
	}
	const uint8_t *d = msg + rr->rdata;
	uint8_t nm[DNS_NAME_MAX];
	size_t nl, o;
	switch (rr->type) {
	case DNS_T_A:
		buf_addf(b, " A %u.%u.%u.%u", d[0], d[1], d[2], d[3]);
		break;
	case DNS_T_SRV:
		o = rr->rdata + 6;
		assert_int_equal(dns_name_read(msg, n, &o, nm, &nl), 0);
		buf_addf(b, " SRV %u %u %u ", rd16(d), rd16(d + 2), rd16(d + 4));
		name_text(nm, b);
		break;
	case DNS_T_NS:
		o = rr->rdata;
		assert_int_equal(dns_name_read(msg, n, &o, nm, &nl), 0);
		buf_adds(b, " NS ");
		name_text(nm, b);
		break;
	case DNS_T_SOA:
		o = rr->rdata;
		assert_int_equal(dns_name_read(msg, n, &o, nm, &nl), 0);
		buf_adds(b, " SOA ");
		name_text(nm, b);
		buf_addc(b, ' ');
		assert_int_equal(dns_name_read(msg, n, &o, nm, &nl), 0);
		name_text(nm, b);
		r->soa_serial = rd32(msg + o);
		buf_addf(b, " %u %u %u %u", rd32(msg + o + 4), rd32(msg + o + 8), rd32(msg + o + 12), rd32(msg + o + 16));
		break;
	default:
		buf_addf(b, " TYPE%u", rr->type);
	}
	buf_addf(b, " ttl=%u\n", rr->ttl);
	return 0;
}

/* Decode (and check the shape of) an answer to the query q. */
static void decode(const uint8_t *a, size_t n, struct resp *r)
{
	memset(r, 0, sizeof *r);
	r->len = n;
	assert_true(n >= DNS_HDR);
	r->id = rd16(a);
	r->flags = rd16(a + 2);
	r->rcode = r->flags & 0xF;
	for (int i = 0; i < 4; i++)
		r->count[i] = rd16(a + 4 + 2 * i);
	assert_int_equal(dns_msg_walk(a, n, on_rr, r), 0);
	assert_true(r->flags & DNS_F_QR);
	buf_adds(&r->text, "");
}

static void resp_free(struct resp *r)
{
	buf_free(&r->text);
}

static bool has_line(const struct resp *r, const char *line)
{
	const char *t = buf_str(&r->text);
	size_t l = strlen(line);
	for (const char *p = t; (p = strstr(p, line)); p++)
		if ((p == t || p[-1] == '\n') && (p[l] == '\n' || p[l] == ' '))
			return true;
	return false;
}

#define assert_line(r, l)                                                                         \
	do {                                                                                      \
		if (!has_line((r), (l)))                                                          \
			fail_msg("no line \"%s\" in:\n%s", (l), buf_str(&(r)->text));            \
	} while (0)

static struct ep_snapshot *g_snap;   /* the snapshot the pure tests answer from */

/* Ask: answer q over the transport, decode into r; returns the answer length. */
static size_t ask_raw(const uint8_t *q, size_t qn, enum dns_transport t, const struct dns_opts *o, struct resp *r,
		      struct dns_result *res)
{
	static uint8_t out[DNS_TCP_MAX];
	size_t n = dns_answer(g_snap, o, q, qn, out, sizeof out, t, res);
	if (r) {
		if (n)
			decode(out, n, r);
		else
			memset(r, 0, sizeof *r);
	}
	return n;
}

static void ask(const char *name, uint16_t qtype, int edns, struct resp *r)
{
	uint8_t q[512];
	size_t qn = mkq(q, name, qtype, edns);
	size_t n = ask_raw(q, qn, DNS_UDP, NULL, r, NULL);
	assert_true(n > 0);
	assert_int_equal(r->id, 0x1234);
	assert_true(n <= (edns < 0 ? 512 : 1232));
}

/* ======================================================================================
 * The table the pure tests answer from
 * ====================================================================================== */

static uv_loop_t g_loop;
static struct endpoints *g_table;

static void fill_table(struct endpoints *t)
{
	endpoints_put(t, "production", "new", "web", "web.1", 1, 3, 5001);
	endpoints_put(t, "production", "new", "web", "web.2", 2, 3, 5002);
	endpoints_put(t, "production", "new", "worker", "worker.1", 1, 3, 5003);
	endpoints_put(t, "staging", "new", "web", "web.1", 1, 1, 6001);
	endpoints_put(t, "production", "blog", "web", "web.1", 1, 2, 7001);
	char inst[32];
	for (int i = 1; i <= 40; i++) {
		snprintf(inst, sizeof inst, "web.%d", i);
		endpoints_put(t, "production", "big", "web", inst, i, 1, 8000 + i);
	}
	/* A process name long enough that "NAME.1" is longer than a DNS label. */
	endpoints_put(t, "staging", "long", "p123456789012345678901234567890123456789012345678901234567890",
		      "p123456789012345678901234567890123456789012345678901234567890.12", 12, 1, 9012);
}

static int setup_table(void **state)
{
	uv_loop_init(&g_loop);
	g_table = endpoints_new(&g_loop);
	fill_table(g_table);
	g_snap = endpoints_current(g_table);
	return 0;
}

static int teardown_table(void **state)
{
	endpoints_free(g_table);
	uv_loop_close(&g_loop);
	g_snap = NULL;
	return 0;
}

/* ======================================================================================
 * Wire: parsing queries and reading names
 * ====================================================================================== */

static size_t unhex(const char *s, uint8_t *out)
{
	size_t n = 0;
	while (*s) {
		if (*s == ' ') {
			s++;
			continue;
		}
		unsigned v;
		assert_int_equal(sscanf(s, "%2x", &v), 1);
		out[n++] = (uint8_t)v;
		s += 2;
	}
	return n;
}

#define HDR(flags, qd, an, ns, ar) "abcd " flags " " qd " " an " " ns " " ar " "
#define QWWW "03777777 06636f6e73756c 00 0001 0001 "   /* www.consul. A IN */
#define OPT0 "00 0029 04d0 00000000 0000 "             /* OPT, 1232, version 0 */

struct bad_case {
	const char *hex;
	int rcode;          /* DNS_PARSE_DROP: no answer */
	const char *why;    /* substring of the reason (FORMERR) */
	int qd;             /* question echoed in the answer */
};

static const struct bad_case BAD[] = {
	{"", DNS_PARSE_DROP, NULL, 0},
	{"abcd 0100 0001 0000 0000 00", DNS_PARSE_DROP, NULL, 0},            /* 11 bytes */
	{HDR("8100", "0001", "0000", "0000", "0000") QWWW, DNS_PARSE_DROP, NULL, 0},   /* a response */
	{HDR("8500", "0001", "0001", "0000", "0000") QWWW, DNS_PARSE_DROP, NULL, 0},
	{HDR("1100", "0001", "0000", "0000", "0000") QWWW, DNS_R_NOTIMP, NULL, 0},     /* STATUS */
	{HDR("2000", "0001", "0000", "0000", "0000") QWWW, DNS_R_NOTIMP, NULL, 0},     /* NOTIFY */
	{HDR("2800", "0001", "0000", "0000", "0000") QWWW, DNS_R_NOTIMP, NULL, 0},     /* UPDATE */
	{HDR("0100", "0000", "0000", "0000", "0000"), DNS_R_FORMERR, "question count", 0},
	{HDR("0100", "0002", "0000", "0000", "0000") QWWW QWWW, DNS_R_FORMERR, "question count", 0},
	{HDR("0100", "0001", "0001", "0000", "0000") QWWW, DNS_R_FORMERR, "answer or authority", 0},
	{HDR("0100", "0001", "0000", "0001", "0000") QWWW, DNS_R_FORMERR, "answer or authority", 0},
	{HDR("0100", "0001", "0000", "0000", "0000"), DNS_R_FORMERR, "name cut short", 0},
	{HDR("0100", "0001", "0000", "0000", "0000") "03 7777", DNS_R_FORMERR, "name cut short", 0},
	{HDR("0100", "0001", "0000", "0000", "0000") "03 777777", DNS_R_FORMERR, "name cut short", 0},
	{HDR("0100", "0001", "0000", "0000", "0000") "03 777777 00 0001", DNS_R_FORMERR, "type or class", 0},
	{HDR("0100", "0001", "0000", "0000", "0000") "41 777777 00 0001 0001", DNS_R_FORMERR, "label type", 0},
	{HDR("0100", "0001", "0000", "0000", "0000") "81 77 00 0001 0001", DNS_R_FORMERR, "label type", 0},
	{HDR("0100", "0001", "0000", "0000", "0000") "c00c 0001 0001", DNS_R_FORMERR, "compression pointer", 0},
	{HDR("0100", "0001", "0000", "0000", "0000") "03777777 c00c 0001 0001", DNS_R_FORMERR, "compression pointer", 0},
	{HDR("0100", "0001", "0000", "0000", "0000") QWWW "00", DNS_R_FORMERR, "trailing", 1},
	{HDR("0100", "0001", "0000", "0000", "0001") QWWW, DNS_R_FORMERR, "owner name", 1},
	{HDR("0100", "0001", "0000", "0000", "0001") QWWW "00 0029 04d0 0000", DNS_R_FORMERR, "cut short", 1},
	{HDR("0100", "0001", "0000", "0000", "0001") QWWW "00 0029 04d0 00000000 0004 0001", DNS_R_FORMERR, "cut short", 1},
	{HDR("0100", "0001", "0000", "0000", "0002") QWWW OPT0 OPT0, DNS_R_FORMERR, "more than one OPT", 1},
	{HDR("0100", "0001", "0000", "0000", "0001") QWWW "01 61 00 0029 04d0 00000000 0000", DNS_R_FORMERR, "root", 1},
	{HDR("0100", "0001", "0000", "0000", "0001") QWWW "c00c 0029 04d0 00000000 0000", DNS_R_FORMERR, "root", 1},
	/* An option claiming 8 bytes in 6 bytes of rdata; then a 3-byte stub of an option. */
	{HDR("0100", "0001", "0000", "0000", "0001") QWWW "00 0029 04d0 00000000 0006 000a 0008 0102", DNS_R_FORMERR, "overruns", 1},
	{HDR("0100", "0001", "0000", "0000", "0001") QWWW "00 0029 04d0 00000000 0003 000a 00", DNS_R_FORMERR, "overruns", 1},
	/* Names in the additional section (it starts at 0x1c): a pointer to itself, forward,
	 * into the header; a label followed by a pointer back to it (a loop). */
	{HDR("0100", "0001", "0000", "0000", "0001") QWWW "c01c 0010 0001 00000000 0000", DNS_R_FORMERR, "owner name", 1},
	{HDR("0100", "0001", "0000", "0000", "0001") QWWW "c01f 0010 0001 00000000 0000", DNS_R_FORMERR, "owner name", 1},
	{HDR("0100", "0001", "0000", "0000", "0001") QWWW "c002 0010 0001 00000000 0000", DNS_R_FORMERR, "owner name", 1},
	{HDR("0100", "0001", "0000", "0000", "0001") QWWW "01 61 c01c 0010 0001 00000000 0000", DNS_R_FORMERR, "owner name", 1},
};

static void test_parse_malformed(void **state)
{
	for (size_t i = 0; i < sizeof BAD / sizeof *BAD; i++) {
		uint8_t q[1024];
		size_t n = unhex(BAD[i].hex, q);
		struct dns_query qq;
		int rc = dns_query_parse(q, n, &qq);
		if (rc != BAD[i].rcode)
			fail_msg("case %zu: rcode %d, want %d (%s)", i, rc, BAD[i].rcode, qq.why ? qq.why : "");
		if (BAD[i].why && (!qq.why || !strstr(qq.why, BAD[i].why)))
			fail_msg("case %zu: reason \"%s\", want \"%s\"", i, qq.why ? qq.why : "(none)", BAD[i].why);
		struct resp r;
		struct dns_result res;
		size_t an = ask_raw(q, n, DNS_UDP, NULL, &r, &res);
		if (BAD[i].rcode == DNS_PARSE_DROP) {
			assert_int_equal(an, 0);
			assert_false(res.answered);
			continue;
		}
		assert_true(res.answered);
		assert_int_equal(r.id, 0xabcd);
		assert_int_equal(r.rcode, BAD[i].rcode);
		assert_int_equal(res.rcode, BAD[i].rcode);
		assert_int_equal(r.count[DNS_SEC_QD], BAD[i].qd);
		assert_int_equal(r.count[DNS_SEC_AN] + r.count[DNS_SEC_NS], 0);
		assert_int_equal(r.flags & 0x7800, rd16(q + 2) & 0x7800);   /* opcode echoed */
		assert_false(r.flags & DNS_F_AA);
		assert_false(r.opt);
		resp_free(&r);
	}
}

static void test_parse_valid(void **state)
{
	uint8_t q[1024];
	/* The additional section may hold other records, with names compressed against the
	 * question: they are checked for shape and ignored. */
	size_t n = unhex(HDR("0100", "0001", "0000", "0000", "0002") QWWW "c00c 0010 0001 00000000 0002 0161 "
			 "00 0029 1000 00018000 0008 000a 0004 01020304", q);
	struct dns_query qq;
	assert_int_equal(dns_query_parse(q, n, &qq), DNS_R_NOERROR);
	assert_true(qq.edns);
	assert_int_equal(qq.edns_size, 4096);
	assert_int_equal(qq.edns_version, 1);
	assert_true(qq.edns_do);
	assert_int_equal(qq.nlabels, 2);
	assert_int_equal(qq.qtype, DNS_T_A);
	uint8_t l;
	const uint8_t *lp = dns_query_label(&qq, 1, &l);
	assert_int_equal(l, 6);
	assert_memory_equal(lp, "consul", 6);

	/* The longest name there is: 255 bytes. One more byte is FORMERR. */
	char name[300];
	struct buf b = BUF_INIT;
	for (int i = 0; i < 3; i++)
		buf_adds(&b, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.");
	buf_adds(&b, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");   /* 61 */
	snprintf(name, sizeof name, "%s", buf_str(&b));
	buf_free(&b);
	n = mkq(q, name, DNS_T_A, -1);
	assert_int_equal(n, DNS_HDR + 255 + 4);
	assert_int_equal(dns_query_parse(q, n, &qq), DNS_R_NOERROR);
	assert_int_equal(qq.nlabels, 4);
	assert_int_equal(qq.qname_len, 255);
	/* Make the last label one byte longer, in place. */
	memmove(q + DNS_HDR + 193, q + DNS_HDR + 192, n - DNS_HDR - 192);
	q[DNS_HDR + 192] = 62;
	q[DNS_HDR + 193] = 'a';
	assert_int_equal(dns_query_parse(q, n + 1, &qq), DNS_R_FORMERR);
	assert_non_null(strstr(qq.why, "255"));
}

static void test_name_read(void **state)
{
	uint8_t m[64], out[DNS_NAME_MAX];
	size_t o, ol;
	memset(m, 0, sizeof m);
	/* At 12: "a" + root; at 15: "b" + pointer to 12; at 19: pointer to 15. */
	memcpy(m + 12, "\1a\0\1b\xc0\x0c\xc0\x0f", 10);
	o = 19;
	assert_int_equal(dns_name_read(m, 21, &o, out, &ol), 0);
	assert_int_equal(o, 21);
	assert_int_equal(ol, 5);
	assert_memory_equal(out, "\1b\1a\0", 5);
	/* A pointer to a later offset, to itself, to a name that points back to it. */
	memcpy(m + 30, "\xc0\x20\0\0", 4);
	o = 30;
	assert_int_equal(dns_name_read(m, 34, &o, out, &ol), -1);
	memcpy(m + 30, "\xc0\x1e", 2);
	o = 30;
	assert_int_equal(dns_name_read(m, 34, &o, out, &ol), -1);
	memcpy(m + 40, "\1x\xc0\x2a\1y\xc0\x28", 8);   /* 40: x -> 42 (not below 40), 44: y -> 40 */
	o = 44;
	assert_int_equal(dns_name_read(m, 48, &o, out, &ol), -1);
	/* Cut short: a label past the end, a half pointer. */
	o = 12;
	assert_int_equal(dns_name_read(m, 13, &o, out, &ol), -1);
	o = 19;
	assert_int_equal(dns_name_read(m, 20, &o, out, &ol), -1);
	/* Text to wire. */
	assert_int_equal(dns_name_from_text(".", out), 1);
	assert_int_equal(dns_name_from_text("a.b.", out), 5);
	assert_int_equal(dns_name_from_text("a..b", out), 0);
	assert_true(dns_name_eq((const uint8_t *)"\3WeB\0", 5, (const uint8_t *)"\3web\0", 5));
}

/* ======================================================================================
 * Answers for each name form
 * ====================================================================================== */

static void test_answer_service_a(void **state)
{
	struct resp r;
	ask("web.new.service.production.consul", DNS_T_A, 1232, &r);
	assert_int_equal(r.rcode, DNS_R_NOERROR);
	assert_true(r.flags & DNS_F_AA);
	assert_true(r.flags & DNS_F_RD);      /* copied */
	assert_false(r.flags & DNS_F_RA);     /* no recursion here */
	/* Two instances, both 127.0.0.1: one record. */
	assert_int_equal(r.count[DNS_SEC_AN], 1);
	assert_line(&r, "AN web.new.service.production.consul. A 127.0.0.1 ttl=0");
	assert_int_equal(r.count[DNS_SEC_NS], 0);
	assert_true(r.opt);
	resp_free(&r);

	/* The same in every spelling of the name. */
	const char *same[] = {"new.service.production.consul", "new.service.consul", "web.new.service.consul",
			      "web.new.production.berth", "_new._tcp.service.consul", "_new._web.service.production.consul",
			      "worker.new.service.consul", "web.new.service.staging.consul", "web.new.staging.berth"};
	for (size_t i = 0; i < sizeof same / sizeof *same; i++) {
		ask(same[i], DNS_T_A, -1, &r);
		if (r.rcode != DNS_R_NOERROR || r.count[DNS_SEC_AN] != 1)
			fail_msg("%s: rcode %d, %u answers", same[i], r.rcode, r.count[DNS_SEC_AN]);
		assert_false(r.opt);
		resp_free(&r);
	}
}

static void test_answer_service_srv(void **state)
{
	struct resp r;
	ask("new.service.consul", DNS_T_SRV, 1232, &r);
	assert_int_equal(r.rcode, DNS_R_NOERROR);
	assert_int_equal(r.count[DNS_SEC_AN], 3);
	assert_line(&r, "AN new.service.consul. SRV 1 1 5001 web-1.new.production.node.berth. ttl=0");
	assert_line(&r, "AN new.service.consul. SRV 1 1 5002 web-2.new.production.node.berth. ttl=0");
	assert_line(&r, "AN new.service.consul. SRV 1 1 5003 worker-1.new.production.node.berth. ttl=0");
	assert_int_equal(r.count[DNS_SEC_AR], 4);   /* 3 A + OPT */
	assert_line(&r, "AR web-1.new.production.node.berth. A 127.0.0.1 ttl=0");
	assert_line(&r, "AR web-2.new.production.node.berth. A 127.0.0.1 ttl=0");
	assert_line(&r, "AR worker-1.new.production.node.berth. A 127.0.0.1 ttl=0");
	resp_free(&r);

	ask("web.new.staging.berth", DNS_T_SRV, -1, &r);
	assert_int_equal(r.count[DNS_SEC_AN], 1);
	assert_line(&r, "AN web.new.staging.berth. SRV 1 1 6001 web-1.new.staging.node.berth.");
	assert_line(&r, "AR web-1.new.staging.node.berth. A 127.0.0.1");
	resp_free(&r);

	ask("_new._worker.service.consul", DNS_T_SRV, -1, &r);
	assert_int_equal(r.count[DNS_SEC_AN], 1);
	assert_line(&r, "AN _new._worker.service.consul. SRV 1 1 5003 worker-1.new.production.node.berth.");
	resp_free(&r);

	/* ANY: A and SRV together. */
	ask("web.new.service.consul", DNS_T_ANY, -1, &r);
	assert_int_equal(r.count[DNS_SEC_AN], 3);
	assert_line(&r, "AN web.new.service.consul. A 127.0.0.1");
	assert_line(&r, "AN web.new.service.consul. SRV 1 1 5002 web-2.new.production.node.berth.");
	assert_int_equal(r.count[DNS_SEC_AR], 2);
	resp_free(&r);

	/* The SRV targets resolve; a node has no SRV (NODATA). */
	ask("web-2.new.production.node.berth", DNS_T_A, -1, &r);
	assert_int_equal(r.rcode, DNS_R_NOERROR);
	assert_true(r.flags & DNS_F_AA);
	assert_line(&r, "AN web-2.new.production.node.berth. A 127.0.0.1");
	resp_free(&r);
	ask("web-2.new.production.node.berth", DNS_T_SRV, -1, &r);
	assert_int_equal(r.rcode, DNS_R_NOERROR);
	assert_int_equal(r.count[DNS_SEC_AN], 0);
	assert_line(&r, "NS berth. SOA ns.berth. hostmaster.berth. 3600 600 86400 0");
	resp_free(&r);
	ask("web-9.new.production.node.berth", DNS_T_A, -1, &r);
	assert_int_equal(r.rcode, DNS_R_NXDOMAIN);
	resp_free(&r);
}

static void test_answer_long_instance(void **state)
{
	struct resp r;
	/* The instance is "p1234...890.12" (64 bytes): its label is cut to 63, the slot kept. */
	ask("_long._tcp.service.staging.consul", DNS_T_SRV, -1, &r);
	assert_int_equal(r.count[DNS_SEC_AN], 1);
	const char *t = buf_str(&r.text);
	const char *srv = strstr(t, " SRV 1 1 9012 ");
	assert_non_null(srv);
	const char *lab = srv + strlen(" SRV 1 1 9012 ");
	const char *dot = strchr(lab, '.');
	assert_int_equal(dot - lab, 63);
	assert_memory_equal(dot - 3, "-12", 3);
	assert_memory_equal(lab, "p12345678901234567890", 21);
	char node[128];
	snprintf(node, sizeof node, "%.*s.long.staging.node.berth", (int)(dot - lab), lab);
	resp_free(&r);
	ask(node, DNS_T_A, -1, &r);
	assert_int_equal(r.rcode, DNS_R_NOERROR);
	assert_int_equal(r.count[DNS_SEC_AN], 1);
	resp_free(&r);
}

static void test_answer_apex(void **state)
{
	struct resp r;
	ask("consul", DNS_T_SOA, -1, &r);
	assert_int_equal(r.rcode, DNS_R_NOERROR);
	assert_true(r.flags & DNS_F_AA);
	assert_line(&r, "AN consul. SOA ns.consul. hostmaster.consul. 3600 600 86400 0 ttl=0");
	assert_int_equal(r.soa_serial, (uint32_t)g_snap->version);
	resp_free(&r);
	ask("berth.", DNS_T_NS, -1, &r);
	assert_line(&r, "AN berth. NS ns.berth.");
	assert_line(&r, "AR ns.berth. A 127.0.0.1");
	resp_free(&r);
	ask("BERTH", DNS_T_ANY, -1, &r);
	assert_int_equal(r.count[DNS_SEC_AN], 2);
	assert_line(&r, "AN BERTH. SOA ns.berth. hostmaster.berth. 3600 600 86400 0");
	assert_line(&r, "AN BERTH. NS ns.berth.");
	resp_free(&r);
	ask("ns.consul", DNS_T_A, -1, &r);
	assert_line(&r, "AN ns.consul. A 127.0.0.1");
	resp_free(&r);
	/* The apex has no A: NODATA. */
	ask("consul", DNS_T_A, -1, &r);
	assert_int_equal(r.rcode, DNS_R_NOERROR);
	assert_int_equal(r.count[DNS_SEC_AN], 0);
	assert_line(&r, "NS consul. SOA ns.consul. hostmaster.consul. 3600 600 86400 0");
	resp_free(&r);
	/* Options: TTLs and the ns address. */
	struct dns_opts o;
	dns_opts_default(&o);
	o.ttl = 5;
	o.neg_ttl = 30;
	o.ns_ipv4 = 0x0a000001;
	uint8_t q[512];
	size_t qn = mkq(q, "berth", DNS_T_NS, -1);
	ask_raw(q, qn, DNS_UDP, &o, &r, NULL);
	assert_line(&r, "AN berth. NS ns.berth. ttl=5");
	assert_line(&r, "AR ns.berth. A 10.0.0.1 ttl=5");
	resp_free(&r);
	qn = mkq(q, "nope.berth", DNS_T_A, -1);
	ask_raw(q, qn, DNS_UDP, &o, &r, NULL);
	assert_line(&r, "NS berth. SOA ns.berth. hostmaster.berth. 3600 600 86400 30 ttl=30");
	resp_free(&r);
}

static void test_answer_negative(void **state)
{
	struct resp r;
	/* NXDOMAIN for names that do not exist, with the SOA. */
	const char *nx[] = {"nope.service.consul", "web.nope.service.consul", "nope.new.service.consul",
			    "new.service.nope.consul", "web.new.service.staging.dc2.consul", "a.b.web.new.service.consul",
			    "web.new.nope.berth", "nope.new.production.berth", "x.web.new.production.berth",
			    "node.consul", "web.node.consul", "service.service.service.consul", "new.service.x.y.consul",
			    "worker.new.staging.berth", "web_1.new.service.consul", "_new._udp.service.consul",
			    "_new.service.consul"};
	for (size_t i = 0; i < sizeof nx / sizeof *nx; i++) {
		ask(nx[i], DNS_T_A, -1, &r);
		if (r.rcode != DNS_R_NXDOMAIN)
			fail_msg("%s: rcode %d, want NXDOMAIN", nx[i], r.rcode);
		assert_true(r.flags & DNS_F_AA);
		assert_int_equal(r.count[DNS_SEC_AN], 0);
		assert_int_equal(r.count[DNS_SEC_NS], 1);
		bool berth = strstr(nx[i], ".berth") != NULL;
		assert_line(&r, berth ? "NS berth. SOA ns.berth. hostmaster.berth. 3600 600 86400 0"
				      : "NS consul. SOA ns.consul. hostmaster.consul. 3600 600 86400 0");
		resp_free(&r);
	}
	/* NODATA: the name exists, not with this type; and empty non-terminals (RFC 8020). */
	struct {
		const char *name;
		uint16_t type;
	} nodata[] = {{"web.new.service.consul", DNS_T_AAAA}, {"web.new.production.berth", DNS_T_AAAA},
		      {"web.new.service.consul", 16 /* TXT */}, {"web.new.service.consul", DNS_T_SOA},
		      {"web.new.service.consul", DNS_T_NS}, {"service.production.consul", DNS_T_A},
		      {"service.consul", DNS_T_A}, {"production.consul", DNS_T_A}, {"staging.consul", DNS_T_SRV},
		      {"_tcp.service.consul", DNS_T_SRV}, {"_web.service.staging.consul", DNS_T_SRV},
		      {"new.production.berth", DNS_T_A}, {"production.berth", DNS_T_A}, {"node.berth", DNS_T_A},
		      {"production.node.berth", DNS_T_A}, {"new.production.node.berth", DNS_T_A},
		      {"ns.berth", DNS_T_AAAA}, {"web-1.new.production.node.berth", DNS_T_AAAA}};
	for (size_t i = 0; i < sizeof nodata / sizeof *nodata; i++) {
		ask(nodata[i].name, nodata[i].type, -1, &r);
		if (r.rcode != DNS_R_NOERROR || r.count[DNS_SEC_AN] != 0 || r.count[DNS_SEC_NS] != 1)
			fail_msg("%s type %u: rcode %d, %u answers, %u authority; want NODATA", nodata[i].name,
				 nodata[i].type, r.rcode, r.count[DNS_SEC_AN], r.count[DNS_SEC_NS]);
		assert_true(r.flags & DNS_F_AA);
		resp_free(&r);
	}
}

/* An app whose last healthy instance goes away does not exist any more: NXDOMAIN. */
static void test_answer_after_remove(void **state)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct endpoints *t = endpoints_new(&loop);
	endpoints_put(t, "production", "solo", "web", "web.1", 1, 1, 5001);
	struct ep_snapshot *saved = g_snap;
	g_snap = endpoints_current(t);
	struct resp r;
	ask("solo.service.consul", DNS_T_A, -1, &r);
	assert_int_equal(r.rcode, DNS_R_NOERROR);
	uint64_t v1 = g_snap->version;
	resp_free(&r);
	endpoint_unref(endpoints_remove(t, "production", "solo", "web.1", 1));
	g_snap = endpoints_current(t);
	ask("solo.service.consul", DNS_T_A, -1, &r);
	assert_int_equal(r.rcode, DNS_R_NXDOMAIN);
	assert_true(r.soa_serial > v1);   /* the serial follows the snapshot version */
	resp_free(&r);
	/* No snapshot at all: everything in the zones is NXDOMAIN, the apex still answers. */
	g_snap = NULL;
	ask("solo.service.consul", DNS_T_A, -1, &r);
	assert_int_equal(r.rcode, DNS_R_NXDOMAIN);
	resp_free(&r);
	ask("consul", DNS_T_SOA, -1, &r);
	assert_int_equal(r.rcode, DNS_R_NOERROR);
	assert_int_equal(r.count[DNS_SEC_AN], 1);
	resp_free(&r);
	g_snap = saved;
	endpoints_free(t);
	uv_loop_close(&loop);
}

static void test_answer_refused(void **state)
{
	struct resp r;
	const char *out[] = {"example.com", ".", "com", "consul.example.com", "berth.local", "consulx"};
	for (size_t i = 0; i < sizeof out / sizeof *out; i++) {
		ask(out[i], DNS_T_A, 1232, &r);
		if (r.rcode != DNS_R_REFUSED)
			fail_msg("%s: rcode %d, want REFUSED", out[i], r.rcode);
		assert_false(r.flags & DNS_F_AA);
		assert_int_equal(r.count[DNS_SEC_QD], 1);
		assert_int_equal(r.count[DNS_SEC_AN] + r.count[DNS_SEC_NS], 0);
		assert_true(r.opt);
		resp_free(&r);
	}
	uint8_t q[512];
	/* Class CHAOS (version.bind), zone transfers. */
	size_t qn = mkq_full(q, 7, 0, "version.bind", 16, 3, -1, 0, false);
	ask_raw(q, qn, DNS_UDP, NULL, &r, NULL);
	assert_int_equal(r.rcode, DNS_R_REFUSED);
	resp_free(&r);
	qn = mkq_full(q, 7, 0, "consul", DNS_T_AXFR, DNS_C_IN, -1, 0, false);
	ask_raw(q, qn, DNS_TCP, NULL, &r, NULL);
	assert_int_equal(r.rcode, DNS_R_REFUSED);
	resp_free(&r);
	/* Class ANY is answered like IN. */
	qn = mkq_full(q, 7, 0, "new.service.consul", DNS_T_A, DNS_C_ANY, -1, 0, false);
	ask_raw(q, qn, DNS_UDP, NULL, &r, NULL);
	assert_int_equal(r.rcode, DNS_R_NOERROR);
	assert_int_equal(r.count[DNS_SEC_AN], 1);
	resp_free(&r);
	/* qtype OPT in the question: FORMERR, question echoed. */
	qn = mkq_full(q, 7, 0, "consul", DNS_T_OPT, DNS_C_IN, -1, 0, false);
	ask_raw(q, qn, DNS_UDP, NULL, &r, NULL);
	assert_int_equal(r.rcode, DNS_R_FORMERR);
	assert_int_equal(r.count[DNS_SEC_QD], 1);
	resp_free(&r);
}

static void test_answer_case(void **state)
{
	struct resp r;
	ask("WeB.NeW.SeRvIcE.PrOdUcTiOn.CoNsUl", DNS_T_A, -1, &r);
	assert_int_equal(r.rcode, DNS_R_NOERROR);
	/* The question and the owner keep the asker's case (resolvers check it: 0x20). */
	assert_line(&r, "QD WeB.NeW.SeRvIcE.PrOdUcTiOn.CoNsUl. TYPE1");
	assert_line(&r, "AN WeB.NeW.SeRvIcE.PrOdUcTiOn.CoNsUl. A 127.0.0.1");
	resp_free(&r);
	ask("WEB-1.NEW.PRODUCTION.NODE.BERTH", DNS_T_A, -1, &r);
	assert_int_equal(r.count[DNS_SEC_AN], 1);
	resp_free(&r);
	ask("_NEW._WEB.SERVICE.CONSUL", DNS_T_SRV, -1, &r);
	assert_int_equal(r.count[DNS_SEC_AN], 2);
	resp_free(&r);
}

static void test_edns(void **state)
{
	uint8_t q[512];
	struct resp r;
	/* Echo: our size, DO copied, version 0. */
	size_t qn = mkq_full(q, 9, 0, "web.new.service.consul", DNS_T_A, DNS_C_IN, 4096, 0, true);
	ask_raw(q, qn, DNS_UDP, NULL, &r, NULL);
	assert_true(r.opt);
	assert_int_equal(r.opt_size, 1232);
	assert_true(r.opt_do);
	assert_false(r.flags & DNS_F_AD);
	resp_free(&r);
	qn = mkq_full(q, 9, 0, "web.new.service.consul", DNS_T_A, DNS_C_IN, 4096, 0, false);
	ask_raw(q, qn, DNS_UDP, NULL, &r, NULL);
	assert_false(r.opt_do);
	resp_free(&r);
	/* BADVERS: version 1; the extended rcode is 16, the header's low bits 0. */
	qn = mkq_full(q, 9, 0, "web.new.service.consul", DNS_T_A, DNS_C_IN, 1232, 1, false);
	struct dns_result res;
	ask_raw(q, qn, DNS_UDP, NULL, &r, &res);
	assert_int_equal(r.flags & 0xF, 0);
	assert_int_equal(r.rcode, DNS_R_BADVERS);
	assert_int_equal(res.rcode, DNS_R_BADVERS);
	assert_int_equal(r.count[DNS_SEC_AN], 0);
	assert_true(r.opt);
	resp_free(&r);
	/* No EDNS in the query, none in the answer. */
	ask("web.new.service.consul", DNS_T_A, -1, &r);
	assert_false(r.opt);
	resp_free(&r);
}

/* How many SRV records fit, and the size, for a given transport and EDNS size. */
static void big_srv(enum dns_transport t, int edns, const struct dns_opts *o, struct resp *r, struct dns_result *res)
{
	uint8_t q[512];
	size_t qn = mkq(q, "big.service.consul", DNS_T_SRV, edns);
	assert_true(ask_raw(q, qn, t, o, r, res) > 0);
}

static void test_truncation(void **state)
{
	struct resp r;
	struct dns_result res;
	/* No EDNS: 512 bytes, cut at a record boundary (the walk checked every record), TC. */
	big_srv(DNS_UDP, -1, NULL, &r, &res);
	assert_true(r.len <= 512);
	assert_true(r.flags & DNS_F_TC);
	assert_true(res.truncated);
	assert_true(r.count[DNS_SEC_AN] > 5 && r.count[DNS_SEC_AN] < 40);
	assert_int_equal(r.count[DNS_SEC_AR], 0);
	unsigned n512 = r.count[DNS_SEC_AN];
	resp_free(&r);
	/* EDNS under 512 counts as 512. */
	big_srv(DNS_UDP, 100, NULL, &r, &res);
	assert_true(r.len <= 512);
	assert_true(r.flags & DNS_F_TC);
	assert_true(r.opt);
	assert_int_equal(r.count[DNS_SEC_AR], 1);    /* only the OPT */
	resp_free(&r);
	/* EDNS 1232 and 65000 (capped at 1232): more records, still TC. */
	big_srv(DNS_UDP, 1232, NULL, &r, &res);
	assert_true(r.len <= 1232 && r.len > 1000);
	assert_true(r.flags & DNS_F_TC);
	assert_true(r.count[DNS_SEC_AN] > n512);
	unsigned n1232 = r.count[DNS_SEC_AN];
	resp_free(&r);
	big_srv(DNS_UDP, 65000, NULL, &r, &res);
	assert_true(r.len <= 1232);
	assert_int_equal(r.count[DNS_SEC_AN], n1232);
	resp_free(&r);
	/* A server allowing 4096: all 40 SRV fit, additional A records only partly (no TC). */
	struct dns_opts o;
	dns_opts_default(&o);
	o.udp_max = 4096;
	big_srv(DNS_UDP, 4096, &o, &r, &res);
	assert_true(r.len <= 4096);
	assert_false(r.flags & DNS_F_TC);
	assert_int_equal(r.count[DNS_SEC_AN], 40);
	resp_free(&r);
	o.udp_max = 1500;
	big_srv(DNS_UDP, 4096, &o, &r, &res);
	assert_true(r.len <= 1500);
	assert_int_equal(r.opt_size, 1500);
	resp_free(&r);
	/* TCP: everything. */
	big_srv(DNS_TCP, -1, NULL, &r, &res);
	assert_false(r.flags & DNS_F_TC);
	assert_false(res.truncated);
	assert_int_equal(r.count[DNS_SEC_AN], 40);
	assert_int_equal(r.count[DNS_SEC_AR], 40);
	assert_line(&r, "AN big.service.consul. SRV 1 1 8040 web-40.big.production.node.berth.");
	assert_line(&r, "AR web-40.big.production.node.berth. A 127.0.0.1");
	resp_free(&r);
}

/* Names are compressed: owners point at the question, SOA names at the zone, additional
 * owners at the SRV targets. */
static void test_compression(void **state)
{
	uint8_t q[512], out[DNS_TCP_MAX];
	size_t qn = mkq(q, "big.service.consul", DNS_T_SRV, -1);
	size_t n = dns_answer(g_snap, NULL, q, qn, out, sizeof out, DNS_TCP, NULL);
	size_t qend = qn;
	assert_int_equal(out[qend], 0xC0);        /* first answer owner: pointer to 12 */
	assert_int_equal(out[qend + 1], 0x0C);
	/* 40 SRV: 2 (owner) + 10 + 6 + target (uncompressed, ~32) each; 40 A: 2 + 10 + 4 each. */
	assert_true(n < qend + 40 * (18 + 34) + 40 * 16 + 1);
	struct resp r;
	decode(out, n, &r);
	resp_free(&r);
	/* SOA in a negative answer: owner is a pointer into the question. */
	qn = mkq(q, "nope.service.consul", DNS_T_A, -1);
	n = dns_answer(g_snap, NULL, q, qn, out, sizeof out, DNS_UDP, NULL);
	assert_int_equal(out[qn], 0xC0);
	assert_true(n < qn + 2 + 10 + 5 + 13 + 20 + 1);
}

static void test_stats(void **state)
{
	struct dns_stats st;
	memset(&st, 0, sizeof st);
	uint8_t q[512];
	struct dns_result res;
	size_t qn = mkq(q, "new.service.consul", DNS_T_SRV, -1);
	ask_raw(q, qn, DNS_UDP, NULL, NULL, &res);
	dns_stats_count(&st, &res, DNS_UDP);
	qn = mkq(q, "nope.service.consul", DNS_T_AAAA, -1);
	ask_raw(q, qn, DNS_TCP, NULL, NULL, &res);
	dns_stats_count(&st, &res, DNS_TCP);
	qn = mkq(q, "big.service.consul", DNS_T_SRV, -1);
	ask_raw(q, qn, DNS_UDP, NULL, NULL, &res);
	dns_stats_count(&st, &res, DNS_UDP);
	ask_raw(q, 5, DNS_UDP, NULL, NULL, &res);     /* runt: dropped */
	dns_stats_count(&st, &res, DNS_UDP);
	q[4] = 9;                                      /* qdcount 2305: FORMERR, no question */
	ask_raw(q, qn, DNS_UDP, NULL, NULL, &res);
	dns_stats_count(&st, &res, DNS_UDP);
	assert_int_equal(st.queries[DNS_STAT_SRV][DNS_STAT_NOERROR], 2);
	assert_int_equal(st.queries[DNS_STAT_AAAA][DNS_STAT_NXDOMAIN], 1);
	assert_int_equal(st.queries[DNS_STAT_NONE][DNS_STAT_FORMERR], 1);
	assert_int_equal(st.udp, 3);
	assert_int_equal(st.tcp, 1);
	assert_int_equal(st.truncated, 1);
	assert_int_equal(st.dropped, 1);
	assert_string_equal(dns_stat_qtype_name(DNS_STAT_AAAA), "AAAA");
	assert_string_equal(dns_stat_qtype_name(DNS_STAT_NONE), "none");
	assert_string_equal(dns_stat_rcode_name(DNS_STAT_NXDOMAIN), "NXDOMAIN");
	assert_string_equal(dns_stat_rcode_name(DNS_STAT_BADVERS), "BADVERS");
	assert_string_equal(dns_stat_rcode_name(99), "?");
}

/* ======================================================================================
 * The server on a loopback port: loop in a thread, clients in the test thread
 * ====================================================================================== */

struct srv {
	uv_loop_t loop;
	uv_async_t stop;
	struct endpoints *table;
	struct dns_server *dns;
	pthread_t th;
	int port;
	struct dns_stats stats;    /* copied at stop, on the loop thread */
};

static void srv_on_stop(uv_async_t *a)
{
	struct srv *s = a->data;
	s->stats = *dns_stats(s->dns);
	dns_server_close(s->dns, NULL, NULL);
	uv_close((uv_handle_t *)a, NULL);
}

static void *srv_thread(void *arg)
{
	struct srv *s = arg;
	uv_run(&s->loop, UV_RUN_DEFAULT);
	return NULL;
}

static void srv_start(struct srv *s, const struct dns_opts *o)
{
	memset(s, 0, sizeof *s);
	uv_loop_init(&s->loop);
	s->table = endpoints_new(&s->loop);
	fill_table(s->table);
	struct err e = ERR_INIT;
	s->dns = dns_server_new(&s->loop, s->table, "127.0.0.1", 0, o, &e);
	if (!s->dns)
		fail_msg("%s", e.msg);
	s->port = dns_server_port(s->dns);
	assert_true(s->port > 0);
	uv_async_init(&s->loop, &s->stop, srv_on_stop);
	s->stop.data = s;
	assert_int_equal(pthread_create(&s->th, NULL, srv_thread, s), 0);
}

static void srv_stop(struct srv *s)
{
	uv_async_send(&s->stop);
	pthread_join(s->th, NULL);
	endpoints_free(s->table);
	assert_int_equal(uv_loop_close(&s->loop), 0);
}

static int udp_client(int port, int timeout_ms)
{
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	return fd;
}

static int tcp_client(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
	struct timeval tv = {3, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	return fd;
}

static ssize_t read_full(int fd, uint8_t *p, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = recv(fd, p + got, n - got, 0);
		if (r <= 0)
			return r;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

/* One length-prefixed answer from a TCP connection into r; false at EOF. */
static bool tcp_answer(int fd, struct resp *r)
{
	static uint8_t buf[DNS_TCP_MAX];
	uint8_t l[2];
	if (read_full(fd, l, 2) != 2)
		return false;
	size_t n = rd16(l);
	assert_int_equal(read_full(fd, buf, n), (ssize_t)n);
	decode(buf, n, r);
	return true;
}

static void test_server_udp_tcp(void **state)
{
	struct srv s;
	srv_start(&s, NULL);
	uint8_t q[600], a[4096];
	struct resp r;
	int fd = udp_client(s.port, 500);

	/* Garbage, a runt, a response: the first gets FORMERR, the others nothing; the server
	 * keeps answering. */
	memset(q, 0xff, 40);
	q[0] = 0x42, q[1] = 0x43, q[2] = 0x01;
	send(fd, q, 40, 0);
	ssize_t n = recv(fd, a, sizeof a, 0);
	assert_true(n >= DNS_HDR);
	decode(a, (size_t)n, &r);
	assert_int_equal(r.id, 0x4243);
	assert_int_equal(r.rcode, DNS_R_FORMERR);
	resp_free(&r);
	send(fd, q, 5, 0);
	size_t qn = mkq(q, "new.service.consul", DNS_T_A, -1);
	q[2] |= 0x80;
	send(fd, q, qn, 0);
	assert_true(recv(fd, a, sizeof a, 0) < 0);    /* nothing came back */
	q[2] &= 0x7f;
	send(fd, q, qn, 0);
	n = recv(fd, a, sizeof a, 0);
	assert_true(n > 0);
	decode(a, (size_t)n, &r);
	assert_line(&r, "AN new.service.consul. A 127.0.0.1");
	resp_free(&r);
	/* A burst (several datagrams per recvmmsg batch), all answered with their ids. */
	for (int i = 0; i < 50; i++) {
		qn = mkq_full(q, (uint16_t)(1000 + i), 0, "web.new.production.berth", DNS_T_SRV, DNS_C_IN, 1232, 0, false);
		send(fd, q, qn, 0);
	}
	int seen = 0;
	for (int i = 0; i < 50; i++) {
		n = recv(fd, a, sizeof a, 0);
		assert_true(n > 0);
		decode(a, (size_t)n, &r);
		assert_true(r.id >= 1000 && r.id < 1050);
		assert_int_equal(r.count[DNS_SEC_AN], 2);
		seen++;
		resp_free(&r);
	}
	assert_int_equal(seen, 50);
	close(fd);

	/* TCP: three queries in one write, then one sent a byte at a time; answers in order. */
	fd = tcp_client(s.port);
	size_t off = 0;
	const char *names[] = {"big.service.consul", "nope.service.consul", "example.com"};
	for (int i = 0; i < 3; i++) {
		qn = mkq_full(q + off + 2, (uint16_t)(7 + i), 0, names[i], DNS_T_SRV, DNS_C_IN, -1, 0, false);
		put16(q, off, (uint16_t)qn);
		off += 2 + qn;
	}
	assert_int_equal(send(fd, q, off, 0), (ssize_t)off);
	assert_true(tcp_answer(fd, &r));
	assert_int_equal(r.id, 7);
	assert_int_equal(r.count[DNS_SEC_AN], 40);    /* the full answer over TCP */
	assert_false(r.flags & DNS_F_TC);
	resp_free(&r);
	assert_true(tcp_answer(fd, &r));
	assert_int_equal(r.id, 8);
	assert_int_equal(r.rcode, DNS_R_NXDOMAIN);
	resp_free(&r);
	assert_true(tcp_answer(fd, &r));
	assert_int_equal(r.id, 9);
	assert_int_equal(r.rcode, DNS_R_REFUSED);
	resp_free(&r);
	qn = mkq_full(q + 2, 10, 0, "web-1.new.staging.node.berth", DNS_T_A, DNS_C_IN, -1, 0, false);
	put16(q, 0, (uint16_t)qn);
	for (size_t i = 0; i < qn + 2; i++) {
		assert_int_equal(send(fd, q + i, 1, 0), 1);
		usleep(1000);
	}
	assert_true(tcp_answer(fd, &r));
	assert_int_equal(r.id, 10);
	assert_line(&r, "AN web-1.new.staging.node.berth. A 127.0.0.1");
	resp_free(&r);
	/* A response and a runt over TCP are not answered; the connection goes on. */
	qn = mkq_full(q + 2, 11, DNS_F_QR, "consul", DNS_T_SOA, DNS_C_IN, -1, 0, false);
	put16(q, 0, (uint16_t)qn);
	size_t l2 = qn + 2;
	put16(q, l2, 3);
	memset(q + l2 + 2, 0, 3);
	l2 += 5;
	qn = mkq_full(q + l2 + 2, 12, 0, "consul", DNS_T_SOA, DNS_C_IN, -1, 0, false);
	put16(q, l2, (uint16_t)qn);
	l2 += 2 + qn;
	assert_int_equal(send(fd, q, l2, 0), (ssize_t)l2);
	assert_true(tcp_answer(fd, &r));
	assert_int_equal(r.id, 12);
	resp_free(&r);
	close(fd);

	srv_stop(&s);
	assert_int_equal(s.stats.udp, 52);
	assert_int_equal(s.stats.tcp, 5);
	assert_int_equal(s.stats.dropped, 4);
	assert_int_equal(s.stats.queries[DNS_STAT_NONE][DNS_STAT_FORMERR], 1);
	assert_int_equal(s.stats.tcp_conns, 1);
}

static void test_server_tcp_limits(void **state)
{
	struct dns_opts o;
	dns_opts_default(&o);
	o.tcp_idle_ms = 200;
	o.tcp_max_conns = 2;
	struct srv s;
	srv_start(&s, &o);
	int a = tcp_client(s.port), b = tcp_client(s.port), c = tcp_client(s.port);
	uint8_t x;
	/* The third connection is over the limit: closed at once. */
	assert_int_equal(recv(c, &x, 1, 0), 0);
	close(c);
	/* An idle connection is closed after tcp_idle_ms; one in use stays open meanwhile. */
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	uint8_t q[300];
	size_t qn = mkq_full(q + 2, 1, 0, "consul", DNS_T_SOA, DNS_C_IN, -1, 0, false);
	put16(q, 0, (uint16_t)qn);
	struct resp r;
	for (int i = 0; i < 3; i++) {
		usleep(120 * 1000);
		assert_int_equal(send(b, q, qn + 2, 0), (ssize_t)qn + 2);
		assert_true(tcp_answer(b, &r));
		resp_free(&r);
	}
	assert_int_equal(recv(a, &x, 1, 0), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	assert_true(ms >= 150 && ms < 2000);
	close(a);
	close(b);
	srv_stop(&s);
	assert_int_equal(s.stats.tcp_refused, 1);
	assert_int_equal(s.stats.tcp_conns, 2);
}

/* A client that sends many queries and never reads: the server stops reading from it and
 * keeps serving others; closing the connection cleans everything up. */
static void test_server_tcp_backpressure(void **state)
{
	struct srv s;
	srv_start(&s, NULL);
	int hog = tcp_client(s.port);
	int sz = 4096;
	setsockopt(hog, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
	uint8_t q[300];
	size_t qn = mkq_full(q + 2, 1, 0, "big.service.consul", DNS_T_SRV, DNS_C_IN, -1, 0, false);
	put16(q, 0, (uint16_t)qn);
	for (int i = 0; i < 3000; i++)
		if (send(hog, q, qn + 2, MSG_DONTWAIT) < 0)
			break;
	int fd = udp_client(s.port, 2000);
	size_t un = mkq(q, "web.new.service.consul", DNS_T_A, -1);
	send(fd, q, un, 0);
	uint8_t a[600];
	ssize_t n = recv(fd, a, sizeof a, 0);
	assert_true(n > 0);
	close(fd);
	close(hog);
	srv_stop(&s);
}

/* ---- dig, kdig, dnsmasq ---- */

static bool have(const char *tool)
{
	char cmd[256];
	snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1 || test -x /usr/sbin/%s", tool, tool);
	return system(cmd) == 0;
}

/* Run a shell command; its output (stdout and stderr), blanks squeezed. Caller frees. */
static char *run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *run(const char *fmt, ...)
{
	struct buf cmd = BUF_INIT, out = BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	buf_vaddf(&cmd, fmt, ap);
	va_end(ap);
	buf_adds(&cmd, " 2>&1");
	FILE *f = popen(cmd.p, "r");
	assert_non_null(f);
	char chunk[4096];
	size_t k;
	/* Runs of blanks (dig aligns columns with tabs) become one space. */
	while ((k = fread(chunk, 1, sizeof chunk, f)) > 0)
		for (size_t i = 0; i < k; i++) {
			char c = chunk[i] == '\t' ? ' ' : chunk[i];
			if (c != ' ' || !out.len || out.p[out.len - 1] != ' ')
				buf_addc(&out, c);
		}
	pclose(f);
	buf_free(&cmd);
	buf_adds(&out, "");
	return buf_detach(&out);
}

#define assert_has(text, needle)                                                              \
	do {                                                                                  \
		if (!strstr((text), (needle)))                                                \
			fail_msg("\"%s\" not in:\n%s", (needle), (text));                     \
	} while (0)

static void test_server_dig(void **state)
{
	if (!have("dig")) {
		print_message("skipped: dig not installed (apt-get install dnsutils)\n");
		skip();
	}
	struct srv s;
	srv_start(&s, NULL);
	char d[128];
	snprintf(d, sizeof d, "dig @127.0.0.1 -p %d +time=2 +tries=1", s.port);
	char *o;

	o = run("%s web.new.service.production.consul A", d);
	assert_has(o, "status: NOERROR");
	assert_has(o, "flags: qr aa rd;");
	assert_has(o, "ANSWER: 1,");
	assert_has(o, "web.new.service.production.consul. 0 IN A 127.0.0.1");
	assert_has(o, "; EDNS: version: 0, flags:; udp: 1232");   /* echoed */
	free(o);

	o = run("%s new.service.consul SRV", d);
	assert_has(o, "ANSWER: 3, AUTHORITY: 0, ADDITIONAL: 4");
	assert_has(o, "new.service.consul. 0 IN SRV 1 1 5001 web-1.new.production.node.berth.");
	assert_has(o, "worker-1.new.production.node.berth. 0 IN A 127.0.0.1");
	free(o);

	o = run("%s nope.service.consul A", d);
	assert_has(o, "status: NXDOMAIN");
	assert_has(o, "flags: qr aa rd;");
	assert_has(o, "consul. 0 IN SOA ns.consul. hostmaster.consul.");
	free(o);

	o = run("%s web.new.service.consul AAAA", d);
	assert_has(o, "status: NOERROR");
	assert_has(o, "ANSWER: 0, AUTHORITY: 1");
	assert_has(o, "IN SOA ns.consul.");
	free(o);

	o = run("%s example.com A", d);
	assert_has(o, "status: REFUSED");
	free(o);

	/* A small EDNS size: TC (dig +ignore keeps the truncated answer); TCP: all of it. */
	o = run("%s +bufsize=512 +ignore big.service.consul SRV", d);
	assert_has(o, "flags: qr aa tc rd;");
	assert_has(o, "udp: 1232");
	free(o);
	o = run("%s +bufsize=512 big.service.consul SRV", d);   /* dig retries over TCP itself */
	assert_has(o, "ANSWER: 40, AUTHORITY: 0, ADDITIONAL: 41");
	assert_has(o, "(TCP)");
	free(o);
	o = run("%s +tcp big.service.consul SRV", d);
	assert_has(o, "ANSWER: 40, AUTHORITY: 0, ADDITIONAL: 41");
	assert_has(o, "web-40.big.production.node.berth. 0 IN A 127.0.0.1");
	free(o);

	o = run("%s WeB.NeW.SeRvIcE.PrOdUcTiOn.CoNsUl A", d);
	assert_has(o, "WeB.NeW.SeRvIcE.PrOdUcTiOn.CoNsUl. 0 IN A 127.0.0.1");
	free(o);

	o = run("%s +edns=1 +noednsnegotiation consul SOA", d);
	assert_has(o, "status: BADVERS");
	free(o);
	o = run("%s +noedns +dnssec web.new.production.berth A", d);
	assert_has(o, "status: NOERROR");
	free(o);
	o = run("%s +dnssec web.new.production.berth A", d);
	assert_has(o, "flags: do; udp: 1232");
	free(o);
	o = run("%s +opcode=status consul SOA", d);
	assert_has(o, "status: NOTIMP");
	free(o);

	if (have("kdig")) {
		char k[128];
		snprintf(k, sizeof k, "kdig @127.0.0.1 -p %d +time=2 +retry=0", s.port);
		o = run("%s web.new.production.berth SRV", k);
		assert_has(o, "status: NOERROR");
		assert_has(o, "web.new.production.berth. 0 IN SRV 1 1 5002 web-2.new.production.node.berth.");
		assert_has(o, "web-2.new.production.node.berth. 0 IN A 127.0.0.1");
		free(o);
		o = run("%s +bufsize=512 +ignore big.service.consul SRV", k);
		assert_has(o, "Flags: qr aa tc");
		free(o);
		o = run("%s +tcp big.service.consul SRV", k);
		assert_has(o, "ANSWER: 40; AUTHORITY: 0; ADDITIONAL: 40");   /* kdig leaves OPT out */
		free(o);
		o = run("%s nope.production.berth A", k);
		assert_has(o, "status: NXDOMAIN");
		assert_has(o, "berth. 0 IN SOA ns.berth. hostmaster.berth.");
		free(o);
		o = run("%s +edns=1 consul SOA", k);
		assert_has(o, "status: BADVERS");
		free(o);
		o = run("%s +nsid berth NS", k);
		assert_has(o, "berth. 0 IN NS ns.berth.");
		assert_has(o, "UDP size: 1232 B");
		free(o);
		o = run("%s example.com A", k);
		assert_has(o, "status: REFUSED");
		free(o);
	} else {
		print_message("kdig checks skipped: kdig not installed (apt-get install knot-dnsutils)\n");
	}
	srv_stop(&s);
}

/* A port free for both TCP and UDP on 127.0.0.1 (dnsmasq binds both). */
static int free_port(void)
{
	for (;;) {
		int t = socket(AF_INET, SOCK_STREAM, 0), u = socket(AF_INET, SOCK_DGRAM, 0);
		struct sockaddr_in a = {.sin_family = AF_INET};
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		assert_int_equal(bind(t, (struct sockaddr *)&a, sizeof a), 0);
		socklen_t l = sizeof a;
		getsockname(t, (struct sockaddr *)&a, &l);
		int ok = bind(u, (struct sockaddr *)&a, sizeof a) == 0;
		close(t);
		close(u);
		if (ok)
			return ntohs(a.sin_port);
	}
}

/* Start dnsmasq forwarding consul. to port; returns its pid and listening port in *p2. */
static pid_t dnsmasq_start(const char *bin, int port, int *p2)
{
	for (int attempt = 0; attempt < 5; attempt++) {
		*p2 = free_port();
		char server[64], listen[32];
		snprintf(server, sizeof server, "--server=/consul/127.0.0.1#%d", port);
		snprintf(listen, sizeof listen, "--port=%d", *p2);
		char *argv[] = {(char *)bin, "--no-resolv", "--no-hosts", "--conf-file=/dev/null", server, listen,
				"--no-daemon", "--listen-address=127.0.0.1", "--bind-interfaces", "--pid-file=",
				"--log-facility=-", NULL};
		posix_spawn_file_actions_t fa;
		posix_spawn_file_actions_init(&fa);
		posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
		pid_t pid;
		assert_int_equal(posix_spawn(&pid, bin, &fa, NULL, argv, environ), 0);
		posix_spawn_file_actions_destroy(&fa);
		/* Ready when it answers; gone if its port was taken in the meantime. */
		for (int i = 0; i < 50; i++) {
			int st;
			if (waitpid(pid, &st, WNOHANG) == pid)
				break;
			char *o = run("dig @127.0.0.1 -p %d +time=1 +tries=1 consul SOA", *p2);
			bool up = strstr(o, "status: NOERROR") != NULL;
			free(o);
			if (up)
				return pid;
			usleep(100 * 1000);
		}
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	fail_msg("dnsmasq did not start");
	return -1;
}

/* A real forwarder, set up the way Consul's docs set up dnsmasq: `server=/consul/IP#PORT`. */
static void test_server_dnsmasq(void **state)
{
	const char *bin = access("/usr/sbin/dnsmasq", X_OK) == 0 ? "/usr/sbin/dnsmasq" : "dnsmasq";
	if (!have("dnsmasq") || !have("dig")) {
		print_message("skipped: dnsmasq or dig not installed (apt-get install dnsmasq-base dnsutils)\n");
		skip();
	}
	struct srv s;
	srv_start(&s, NULL);
	int p2;
	pid_t pid = dnsmasq_start(bin, s.port, &p2);
	char *o = run("dig @127.0.0.1 -p %d +time=2 +tries=1 web.new.service.production.consul A", p2);
	assert_has(o, "status: NOERROR");
	assert_has(o, "web.new.service.production.consul. 0 IN A 127.0.0.1");
	assert_has(o, "flags: qr aa rd ra;");   /* dnsmasq adds RA, keeps our AA */
	free(o);
	o = run("dig @127.0.0.1 -p %d +time=2 +tries=1 new.service.consul SRV", p2);
	assert_has(o, "new.service.consul. 0 IN SRV 1 1 5003 worker-1.new.production.node.berth.");
	free(o);
	o = run("dig @127.0.0.1 -p %d +time=2 +tries=1 nope.service.consul A", p2);
	assert_has(o, "status: NXDOMAIN");
	free(o);
	kill(pid, SIGTERM);
	int st;
	waitpid(pid, &st, 0);
	srv_stop(&s);
	assert_true(s.stats.udp >= 3);
}

static void test_server_listen_error(void **state)
{
	struct srv s;
	srv_start(&s, NULL);
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct endpoints *t = endpoints_new(&loop);
	struct err e = ERR_INIT;
	assert_null(dns_server_new(&loop, t, "127.0.0.1", s.port, NULL, &e));
	assert_non_null(strstr(e.msg, "address already in use"));
	assert_non_null(strstr(e.msg, "dns: listen on 127.0.0.1:"));
	assert_null(dns_server_new(&loop, t, "nowhere", 53, NULL, &e));
	assert_non_null(strstr(e.msg, "bad listen address nowhere"));
	uv_run(&loop, UV_RUN_DEFAULT);   /* the failed server's handles close */
	endpoints_free(t);
	assert_int_equal(uv_loop_close(&loop), 0);
	srv_stop(&s);
}

/* A closed server must not hold back draining, nor receive snapshots afterwards. */
static void test_server_close_reader(void **state)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct endpoints *t = endpoints_new(&loop);
	struct err e = ERR_INIT;
	struct dns_server *d = dns_server_new(&loop, t, "127.0.0.1", 0, NULL, &e);
	assert_non_null(d);
	struct endpoint *ep = endpoints_put(t, "production", "x", "web", "web.1", 1, 1, 5000);
	(void)ep;
	dns_server_close(d, NULL, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	struct endpoint *gone = endpoints_remove(t, "production", "x", "web.1", 1);   /* publishes */
	assert_non_null(gone);
	assert_true(endpoints_drained(t, gone));
	endpoint_unref(gone);
	endpoints_free(t);
	assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_read),
		cmocka_unit_test_setup_teardown(test_parse_malformed, setup_table, teardown_table),
		cmocka_unit_test(test_parse_valid),
		cmocka_unit_test_setup_teardown(test_answer_service_a, setup_table, teardown_table),
		cmocka_unit_test_setup_teardown(test_answer_service_srv, setup_table, teardown_table),
		cmocka_unit_test_setup_teardown(test_answer_long_instance, setup_table, teardown_table),
		cmocka_unit_test_setup_teardown(test_answer_apex, setup_table, teardown_table),
		cmocka_unit_test_setup_teardown(test_answer_negative, setup_table, teardown_table),
		cmocka_unit_test_setup_teardown(test_answer_after_remove, setup_table, teardown_table),
		cmocka_unit_test_setup_teardown(test_answer_refused, setup_table, teardown_table),
		cmocka_unit_test_setup_teardown(test_answer_case, setup_table, teardown_table),
		cmocka_unit_test_setup_teardown(test_edns, setup_table, teardown_table),
		cmocka_unit_test_setup_teardown(test_truncation, setup_table, teardown_table),
		cmocka_unit_test_setup_teardown(test_compression, setup_table, teardown_table),
		cmocka_unit_test_setup_teardown(test_stats, setup_table, teardown_table),
		cmocka_unit_test(test_server_udp_tcp),
		cmocka_unit_test(test_server_tcp_limits),
		cmocka_unit_test(test_server_tcp_backpressure),
		cmocka_unit_test(test_server_dig),
		cmocka_unit_test(test_server_dnsmasq),
		cmocka_unit_test(test_server_listen_error),
		cmocka_unit_test(test_server_close_reader),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
