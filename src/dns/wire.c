/* dns/wire: parsing queries, building responses, and reading messages back (see wire.h).
 * Hostile-input code: every read is bounds-checked against the packet length, names are
 * limited to 255 bytes, and compression pointers must point strictly below every offset
 * visited so far, so no input can loop or read out of bounds. No allocation. */
#include "dns/wire.h"
#include <string.h>

static inline uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint8_t lc(uint8_t c)
{
	return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c;
}

/* ---- reading names ---- */

int dns_name_read(const uint8_t *p, size_t n, size_t *off, uint8_t *out, size_t *out_len)
{
	size_t pos = *off, low = *off, end = 0, len = 0;
	bool jumped = false;
	for (;;) {
		if (pos >= n)
			return -1;
		uint8_t c = p[pos];
		if ((c & 0xC0) == 0xC0) {
			if (pos + 1 >= n)
				return -1;
			size_t target = (size_t)(c & 0x3F) << 8 | p[pos + 1];
			if (!jumped) {
				end = pos + 2;
				jumped = true;
			}
			/* Strictly below everything visited: each jump lowers `low`, so this ends. */
			if (target >= low || target < DNS_HDR)
				return -1;
			low = pos = target;
			continue;
		}
		if (c & 0xC0)
			return -1;     /* 0x40 / 0x80: extended label types, not supported */
		if (len + 1 + c > DNS_NAME_MAX || pos + 1 + c > n)
			return -1;
		memcpy(out + len, p + pos, 1 + (size_t)c);
		len += 1 + (size_t)c;
		pos += 1 + (size_t)c;
		if (c == 0)
			break;
	}
	*off = jumped ? end : pos;
	*out_len = len;
	return 0;
}

bool dns_name_eq(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	if (alen != blen)
		return false;
	for (size_t i = 0; i < alen; i++)
		if (lc(a[i]) != lc(b[i]))
			return false;
	return true;
}

size_t dns_name_from_text(const char *text, uint8_t out[DNS_NAME_MAX])
{
	size_t len = 0, tl = strlen(text);
	if (tl && text[tl - 1] == '.')
		tl--;
	size_t i = 0;
	while (i < tl) {
		const char *dot = memchr(text + i, '.', tl - i);
		size_t l = dot ? (size_t)(dot - (text + i)) : tl - i;
		if (l == 0 || l > DNS_LABEL_MAX || len + 1 + l + 1 > DNS_NAME_MAX)
			return 0;
		out[len++] = (uint8_t)l;
		memcpy(out + len, text + i, l);
		len += l;
		i += l + 1;
	}
	out[len++] = 0;
	return len;
}

/* ---- parsing a query ---- */

static int formerr(struct dns_query *q, const char *why)
{
	q->why = why;
	return DNS_R_FORMERR;
}

int dns_query_parse(const uint8_t *p, size_t n, struct dns_query *q)
{
	q->has_question = false;
	q->qname_len = 0;
	q->nlabels = 0;
	q->qtype = q->qclass = 0;
	q->edns = false;
	q->edns_size = 0;
	q->edns_version = 0;
	q->edns_do = false;
	q->why = NULL;
	q->id = q->flags = 0;
	if (n < DNS_HDR)
		return DNS_PARSE_DROP;
	q->id = rd16(p);
	q->flags = rd16(p + 2);
	if (q->flags & DNS_F_QR)
		return DNS_PARSE_DROP;   /* never answer a response: no reflection loops */
	if (DNS_OPCODE(q->flags) != 0)
		return DNS_R_NOTIMP;
	uint16_t qd = rd16(p + 4), an = rd16(p + 6), ns = rd16(p + 8), ar = rd16(p + 10);
	if (qd != 1)
		return formerr(q, "question count is not 1");
	if (an || ns)
		return formerr(q, "answer or authority records in a query");
	size_t off = DNS_HDR;
	for (;;) {
		if (off >= n)
			return formerr(q, "question name cut short");
		uint8_t c = p[off];
		if ((c & 0xC0) == 0xC0)
			return formerr(q, "compression pointer in the question");
		if (c & 0xC0)
			return formerr(q, "unknown label type in the question");
		if (q->qname_len + 1 + c > DNS_NAME_MAX)
			return formerr(q, "question name longer than 255 bytes");
		if (off + 1 + c > n)
			return formerr(q, "question name cut short");
		if (c == 0) {
			q->qname[q->qname_len++] = 0;
			off++;
			break;
		}
		/* Each label takes at least 2 of the 254 bytes before the root: at most 127. */
		q->loff[q->nlabels++] = (uint8_t)q->qname_len;
		memcpy(q->qname + q->qname_len, p + off, 1 + (size_t)c);
		q->qname_len += 1 + (size_t)c;
		off += 1 + (size_t)c;
	}
	if (off + 4 > n)
		return formerr(q, "question type or class cut short");
	q->qtype = rd16(p + off);
	q->qclass = rd16(p + off + 2);
	off += 4;
	q->has_question = true;
	/* The additional section: EDNS0's OPT, anything else is checked for shape and ignored.
	 * Each record takes at least 11 bytes, so a lying count runs out of packet quickly. */
	for (unsigned i = 0; i < ar; i++) {
		uint8_t owner[DNS_NAME_MAX];
		size_t olen;
		if (dns_name_read(p, n, &off, owner, &olen) < 0)
			return formerr(q, "bad owner name in the additional section");
		if (off + 10 > n)
			return formerr(q, "additional record cut short");
		uint16_t type = rd16(p + off), rclass = rd16(p + off + 2);
		uint32_t ttl = rd32(p + off + 4);
		uint16_t rdlen = rd16(p + off + 8);
		off += 10;
		if (off + rdlen > n)
			return formerr(q, "additional record data cut short");
		if (type == DNS_T_OPT) {
			if (q->edns)
				return formerr(q, "more than one OPT record");
			if (olen != 1)
				return formerr(q, "OPT record not owned by the root");
			size_t o = off, end = off + rdlen;
			while (o < end) {
				if (o + 4 > end || o + 4 + rd16(p + o + 2) > end)
					return formerr(q, "EDNS option overruns the OPT record");
				o += 4 + (size_t)rd16(p + o + 2);
			}
			q->edns = true;
			q->edns_size = rclass;
			q->edns_version = (uint8_t)(ttl >> 16);
			q->edns_do = (ttl & 0x8000) != 0;
		}
		off += rdlen;
	}
	if (off != n)
		return formerr(q, "trailing bytes after the last record");
	return DNS_R_NOERROR;
}

/* ---- building ---- */

void dns_msg_init(struct dns_msg *m, uint8_t *buf, size_t limit)
{
	m->p = buf;
	m->limit = limit;
	memset(buf, 0, DNS_HDR);
	m->len = DNS_HDR;
	memset(m->count, 0, sizeof m->count);
	m->overflow = false;
	m->ncomp = 0;
}

void dns_msg_set_header(struct dns_msg *m, uint16_t id, uint16_t flags)
{
	m->p[0] = (uint8_t)(id >> 8);
	m->p[1] = (uint8_t)id;
	m->p[2] = (uint8_t)(flags >> 8);
	m->p[3] = (uint8_t)flags;
}

void dns_msg_set_limit(struct dns_msg *m, size_t limit)
{
	m->limit = limit < m->len ? m->len : limit;
}

struct dns_mark dns_msg_mark(const struct dns_msg *m)
{
	return (struct dns_mark){.len = m->len, .ncomp = m->ncomp};
}

void dns_msg_rollback(struct dns_msg *m, struct dns_mark k)
{
	m->len = k.len;
	m->ncomp = k.ncomp;
	m->overflow = false;
}

void dns_msg_put(struct dns_msg *m, const void *d, size_t n)
{
	if (m->overflow || n > m->limit - m->len) {
		m->overflow = true;
		return;
	}
	memcpy(m->p + m->len, d, n);
	m->len += n;
}

void dns_msg_put16(struct dns_msg *m, uint16_t v)
{
	uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
	dns_msg_put(m, b, 2);
}

void dns_msg_put32(struct dns_msg *m, uint32_t v)
{
	uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
	dns_msg_put(m, b, 4);
}

/* Does the name at off in the message (our own, so pointers are sane) equal s, byte for byte?
 * Exact, not case-insensitive: a pointer never changes the case of a name, so answers keep the
 * asker's case in what echoes the question and berth's lower case in its own names. */
static bool msg_name_eq(const struct dns_msg *m, size_t off, const uint8_t *s)
{
	for (unsigned hops = 0; hops < DNS_LABELS_MAX + 1;) {
		uint8_t c = m->p[off];
		if ((c & 0xC0) == 0xC0) {
			off = (size_t)(c & 0x3F) << 8 | m->p[off + 1];
			hops++;
			continue;
		}
		if (c != *s)
			return false;
		if (c == 0)
			return true;
		if (memcmp(m->p + off + 1, s + 1, c))
			return false;
		off += 1 + (size_t)c;
		s += 1 + (size_t)c;
	}
	return false;
}

static int comp_find(const struct dns_msg *m, const uint8_t *s, size_t slen)
{
	for (unsigned e = 0; e < m->ncomp; e++)
		if (m->comp_len[e] == slen && msg_name_eq(m, m->comp[e], s))
			return (int)e;
	return -1;
}

void dns_msg_put_name(struct dns_msg *m, const uint8_t *name, size_t len, bool compress)
{
	uint8_t lo[DNS_LABELS_MAX];
	unsigned nl = 0;
	for (size_t i = 0; i < len && name[i] && nl < DNS_LABELS_MAX; i += 1 + (size_t)name[i])
		lo[nl++] = (uint8_t)i;
	/* The longest suffix already in the message (the root alone never counts). */
	unsigned match = nl;
	uint16_t match_off = 0;
	for (unsigned k = 0; k < nl; k++) {
		int e = comp_find(m, name + lo[k], len - lo[k]);
		if (e >= 0) {
			match = k;
			match_off = m->comp[e];
			break;
		}
	}
	unsigned stop = compress ? match : nl;
	for (unsigned k = 0; k < stop; k++) {
		size_t pos = m->len;
		dns_msg_put(m, name + lo[k], 1 + (size_t)name[lo[k]]);
		if (m->overflow)
			return;
		if (k < match && pos < 0x4000 && m->ncomp < DNS_COMP_MAX) {
			m->comp[m->ncomp] = (uint16_t)pos;
			m->comp_len[m->ncomp] = (uint8_t)(len - lo[k]);
			m->ncomp++;
		}
	}
	if (compress && match < nl)
		dns_msg_put16(m, (uint16_t)(0xC000 | match_off));
	else
		dns_msg_put(m, "", 1);
}

int dns_msg_question(struct dns_msg *m, const uint8_t *name, size_t len, uint16_t qtype, uint16_t qclass)
{
	struct dns_mark k = dns_msg_mark(m);
	dns_msg_put_name(m, name, len, false);
	dns_msg_put16(m, qtype);
	dns_msg_put16(m, qclass);
	if (m->overflow) {
		dns_msg_rollback(m, k);
		return -1;
	}
	m->count[DNS_SEC_QD]++;
	return 0;
}

struct dns_mark dns_msg_rr_begin(struct dns_msg *m, const uint8_t *owner, size_t olen, uint16_t type,
				 uint16_t rclass, uint32_t ttl)
{
	struct dns_mark k = dns_msg_mark(m);
	dns_msg_put_name(m, owner, olen, true);
	dns_msg_put16(m, type);
	dns_msg_put16(m, rclass);
	dns_msg_put32(m, ttl);
	k.rdlen_at = m->len;
	dns_msg_put16(m, 0);
	return k;
}

int dns_msg_rr_end(struct dns_msg *m, struct dns_mark k, enum dns_section sec)
{
	if (m->overflow || m->count[sec] == 0xFFFF) {
		dns_msg_rollback(m, k);
		return -1;
	}
	size_t rdlen = m->len - k.rdlen_at - 2;
	m->p[k.rdlen_at] = (uint8_t)(rdlen >> 8);
	m->p[k.rdlen_at + 1] = (uint8_t)rdlen;
	m->count[sec]++;
	return 0;
}

size_t dns_msg_finish(struct dns_msg *m)
{
	for (int i = 0; i < 4; i++) {
		m->p[4 + 2 * i] = (uint8_t)(m->count[i] >> 8);
		m->p[5 + 2 * i] = (uint8_t)m->count[i];
	}
	return m->len;
}

/* ---- reading any message ---- */

/* A name that must end exactly at end (inside rdata). */
static int rdata_name(const uint8_t *p, size_t n, size_t *o, size_t end)
{
	uint8_t tmp[DNS_NAME_MAX];
	size_t tl;
	if (dns_name_read(p, end < n ? end : n, o, tmp, &tl) < 0)
		return -1;
	return *o <= end ? 0 : -1;
}

static int rdata_check(const uint8_t *p, size_t n, const struct dns_rr *rr)
{
	size_t o = rr->rdata, end = rr->rdata + rr->rdlen;
	switch (rr->type) {
	case DNS_T_A:
		return rr->rdlen == 4 ? 0 : -1;
	case DNS_T_AAAA:
		return rr->rdlen == 16 ? 0 : -1;
	case DNS_T_NS:
		if (rdata_name(p, n, &o, end) < 0)
			return -1;
		return o == end ? 0 : -1;
	case DNS_T_SOA:
		if (rdata_name(p, n, &o, end) < 0 || rdata_name(p, n, &o, end) < 0)
			return -1;
		return o + 20 == end ? 0 : -1;
	case DNS_T_SRV:
		if (rr->rdlen < 7)
			return -1;
		o += 6;
		if (rdata_name(p, n, &o, end) < 0)
			return -1;
		return o == end ? 0 : -1;
	case DNS_T_OPT:
		if (rr->name_len != 1)
			return -1;
		while (o < end) {
			if (o + 4 > end || o + 4 + rd16(p + o + 2) > end)
				return -1;
			o += 4 + (size_t)rd16(p + o + 2);
		}
		return 0;
	default:
		return 0;
	}
}

int dns_msg_walk(const uint8_t *p, size_t n,
		 int (*fn)(void *arg, enum dns_section sec, const struct dns_rr *rr, const uint8_t *msg, size_t n),
		 void *arg)
{
	if (n < DNS_HDR)
		return -1;
	size_t off = DNS_HDR;
	struct dns_rr rr;
	for (int sec = DNS_SEC_QD; sec <= DNS_SEC_AR; sec++) {
		unsigned count = rd16(p + 4 + 2 * sec);
		for (unsigned i = 0; i < count; i++) {
			if (dns_name_read(p, n, &off, rr.name, &rr.name_len) < 0)
				return -1;
			size_t fixed = sec == DNS_SEC_QD ? 4 : 10;
			if (off + fixed > n)
				return -1;
			rr.type = rd16(p + off);
			rr.rclass = rd16(p + off + 2);
			rr.ttl = 0;
			rr.rdlen = 0;
			if (sec != DNS_SEC_QD) {
				rr.ttl = rd32(p + off + 4);
				rr.rdlen = rd16(p + off + 8);
			}
			off += fixed;
			rr.rdata = off;
			if (off + rr.rdlen > n)
				return -1;
			if (sec != DNS_SEC_QD && rdata_check(p, n, &rr) < 0)
				return -1;
			off += rr.rdlen;
			if (fn) {
				int r = fn(arg, (enum dns_section)sec, &rr, p, n);
				if (r)
					return r;
			}
		}
	}
	return off == n ? 0 : -1;
}
