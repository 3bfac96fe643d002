/* dns/wire: DNS messages on the wire, written by hand (RFC 1035, 2181, 3597, 6891).
 * Internal to src/dns (and its tests and fuzz harness). Three parts:
 *  - dns_query_parse: a query into a fixed struct, bounded, every malformation named;
 *  - struct dns_msg: a response builder into a caller's buffer with a hard size limit, name
 *    compression, and all-or-nothing records (a record that does not fit is rolled back);
 *  - dns_msg_walk: a strict reader of any message, used to check answers in tests and fuzzing.
 * Nothing here allocates. */
#ifndef BERTH_DNS_WIRE_H
#define BERTH_DNS_WIRE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DNS_HDR 12
#define DNS_NAME_MAX 255         /* wire length of a name, root byte included */
#define DNS_LABEL_MAX 63
#define DNS_LABELS_MAX 127
#define DNS_COMP_MAX 128         /* names remembered for compression in one message */

enum {
	DNS_T_A = 1, DNS_T_NS = 2, DNS_T_SOA = 6, DNS_T_AAAA = 28, DNS_T_SRV = 33, DNS_T_OPT = 41,
	DNS_T_IXFR = 251, DNS_T_AXFR = 252, DNS_T_ANY = 255,
};
enum { DNS_C_IN = 1, DNS_C_ANY = 255 };
enum {
	DNS_R_NOERROR = 0, DNS_R_FORMERR = 1, DNS_R_SERVFAIL = 2, DNS_R_NXDOMAIN = 3,
	DNS_R_NOTIMP = 4, DNS_R_REFUSED = 5, DNS_R_BADVERS = 16,
};
/* Header flag bits (second 16-bit word). */
enum {
	DNS_F_QR = 0x8000, DNS_F_AA = 0x0400, DNS_F_TC = 0x0200, DNS_F_RD = 0x0100,
	DNS_F_RA = 0x0080, DNS_F_AD = 0x0020, DNS_F_CD = 0x0010,
};
#define DNS_OPCODE(flags) (((flags) >> 11) & 0xF)
#define DNS_PARSE_DROP (-1)

struct dns_query {
	uint16_t id, flags;              /* as received */
	bool has_question;               /* the question section parsed */
	uint8_t qname[DNS_NAME_MAX];     /* wire form as received (case kept), root byte included */
	size_t qname_len;
	uint8_t nlabels;                 /* labels before the root */
	uint8_t loff[DNS_LABELS_MAX];    /* offset in qname of each label's length byte */
	uint16_t qtype, qclass;
	bool edns;                       /* an OPT record was present (and well formed) */
	uint16_t edns_size;              /* its UDP payload size, as sent */
	uint8_t edns_version;
	bool edns_do;
	const char *why;                 /* what was malformed (FORMERR), for tests and logs */
};

/* Parse a query. Returns DNS_PARSE_DROP (not to be answered: shorter than a header, or a
 * response), DNS_R_NOTIMP (opcode other than QUERY), DNS_R_FORMERR, or DNS_R_NOERROR for a
 * well-formed query. q is filled as far as parsing got (id and flags whenever n >= 12). */
int dns_query_parse(const uint8_t *p, size_t n, struct dns_query *q);

/* Label i of a parsed question (i < nlabels). */
static inline const uint8_t *dns_query_label(const struct dns_query *q, unsigned i, uint8_t *len)
{
	*len = q->qname[q->loff[i]];
	return q->qname + q->loff[i] + 1;
}

/* ---- building ---- */
enum dns_section { DNS_SEC_QD, DNS_SEC_AN, DNS_SEC_NS, DNS_SEC_AR };

struct dns_msg {
	uint8_t *p;
	size_t len, limit;               /* limit: the message may never grow past it */
	uint16_t count[4];
	bool overflow;                   /* a write did not fit since the last mark */
	uint16_t comp[DNS_COMP_MAX];     /* offsets of names (and suffixes) already in the message */
	uint8_t comp_len[DNS_COMP_MAX];  /* their uncompressed wire length */
	unsigned ncomp;
};

struct dns_mark {
	size_t len;
	unsigned ncomp;
	size_t rdlen_at;                 /* records: where the rdata length goes */
};

/* Start a message in buf (limit bytes, >= DNS_HDR) with a zeroed header. */
void dns_msg_init(struct dns_msg *m, uint8_t *buf, size_t limit);
void dns_msg_set_header(struct dns_msg *m, uint16_t id, uint16_t flags);
/* Change the limit (never below the current length). */
void dns_msg_set_limit(struct dns_msg *m, size_t limit);
/* Remember the current state; dns_msg_rollback returns to it. */
struct dns_mark dns_msg_mark(const struct dns_msg *m);
void dns_msg_rollback(struct dns_msg *m, struct dns_mark k);

/* Raw writes; on overflow they write nothing and set m->overflow. */
void dns_msg_put16(struct dns_msg *m, uint16_t v);
void dns_msg_put32(struct dns_msg *m, uint32_t v);
void dns_msg_put(struct dns_msg *m, const void *d, size_t n);
/* A name in uncompressed wire form (trusted: built by the caller or parsed). compress:
 * replace its longest suffix already in the message (same bytes, case included) by a pointer. Either way its new suffixes
 * are remembered for later names. */
void dns_msg_put_name(struct dns_msg *m, const uint8_t *name, size_t len, bool compress);

/* The question; returns -1 if it does not fit. */
int dns_msg_question(struct dns_msg *m, const uint8_t *name, size_t len, uint16_t qtype, uint16_t qclass);
/* A record: dns_msg_rr_begin writes owner (compressed), type, class, ttl and room for the
 * rdata length; the caller writes rdata; dns_msg_rr_end fills the length and counts the
 * record in sec. If anything overflowed, the record is rolled back and -1 returned. */
struct dns_mark dns_msg_rr_begin(struct dns_msg *m, const uint8_t *owner, size_t olen, uint16_t type,
				 uint16_t rclass, uint32_t ttl);
int dns_msg_rr_end(struct dns_msg *m, struct dns_mark k, enum dns_section sec);
/* Write the section counts into the header; returns the message length. */
size_t dns_msg_finish(struct dns_msg *m);

/* ---- reading any message (strict) ---- */
struct dns_rr {
	uint8_t name[DNS_NAME_MAX];      /* decompressed wire form */
	size_t name_len;
	uint16_t type, rclass;
	uint32_t ttl;
	uint16_t rdlen;
	size_t rdata;                    /* offset of the rdata in the message */
};

/* Read a (possibly compressed) name at *off into out (decompressed wire form) and advance
 * *off past it. Pointers must point strictly below every offset visited so far (no loops, no
 * forward references); the name is at most DNS_NAME_MAX bytes. -1 on any violation. */
int dns_name_read(const uint8_t *p, size_t n, size_t *off, uint8_t *out, size_t *out_len);
/* Walk a whole message: header, question(s), then every record, calling fn for each
 * (section, record); fn returning non-zero stops the walk with that value. Known rdata
 * (A, AAAA, NS, SOA, SRV, OPT) is checked for exact length and valid names. Returns 0 when
 * the message is well formed and fully consumed, -1 otherwise. */
int dns_msg_walk(const uint8_t *p, size_t n,
		 int (*fn)(void *arg, enum dns_section sec, const struct dns_rr *rr, const uint8_t *msg, size_t n),
		 void *arg);

/* Wire-form name from dotted text ("web.new.service.consul", a trailing dot optional).
 * Returns the length, 0 if it is not a valid name. For tests and fixed names. */
size_t dns_name_from_text(const char *text, uint8_t out[DNS_NAME_MAX]);
/* Case-insensitive equality of two uncompressed wire names. */
bool dns_name_eq(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen);
#endif
