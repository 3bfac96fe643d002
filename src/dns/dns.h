/* dns: berth's service-discovery DNS server (Consul-compatible names), answering from the
 * endpoints snapshot of healthy instances. Authoritative for two zones, `consul.` and `berth.`:
 *
 *   PROCESS.APP.service.ENV.consul   healthy instances of one process   (A, SRV)
 *   APP.service.ENV.consul           every healthy instance of the app  (A, SRV)
 *   APP.service.consul, PROCESS.APP.service.consul         same, env "production"
 *   _APP._PROCESS.service[.ENV].consul, _APP._tcp.service[.ENV].consul   RFC 2782 forms
 *   PROCESS.APP.ENV.berth            healthy instances of one process   (A, SRV)
 *   INSTANCE.APP.ENV.node.berth      one instance ("web.1" -> "web-1"), the SRV targets (A)
 *   consul., berth.                  zone apexes (SOA, NS); ns.consul., ns.berth. (A)
 *
 * A answers carry each distinct address once (every instance is 127.0.0.1 today); SRV answers
 * one record per instance (priority 1, weight 1, the instance port) with the targets' A records
 * in the additional section. A name with no healthy instance does not exist (NXDOMAIN, as in
 * Consul); a name that exists without records of the asked type is NODATA. Negative answers
 * carry the zone's SOA. Names outside both zones: REFUSED. Malformed queries: FORMERR;
 * opcodes other than QUERY: NOTIMP; responses (QR=1) and packets shorter than a header are
 * never answered. EDNS0 is honoured (buffer size, DO bit, BADVERS); UDP answers that do not
 * fit are cut at a record boundary with TC set, TCP answers are complete. docs/dns.md has the
 * details and the reasons.
 *
 * Two layers: dns_answer() is a pure function (bytes in, bytes out, no allocation, no I/O)
 * that the server, the tests and the fuzz harness call; struct dns_server puts it on a libuv
 * loop (UDP with recvmmsg, TCP with length-prefixed messages). Main loop only. */
#ifndef BERTH_DNS_H
#define BERTH_DNS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "endpoints/endpoints.h"
#include "util/err.h"

#define DNS_PORT_DEFAULT 8600
#define DNS_UDP_MIN 512          /* answer size for clients without EDNS, and the EDNS floor */
#define DNS_UDP_MAX_DEFAULT 1232 /* default cap on UDP answers (DNS flag day 2020) */
#define DNS_UDP_MAX_LIMIT 4096   /* largest udp_max accepted */
#define DNS_TCP_MAX 65535        /* a DNS message over TCP */

struct dns_opts {
	uint32_t ttl;            /* TTL of A/SRV/NS answers, seconds; default 0 (Consul's default) */
	uint32_t neg_ttl;        /* SOA TTL and MINIMUM, i.e. negative caching; default 0 */
	uint16_t udp_max;        /* cap on UDP answers to EDNS clients, 512..4096; default 1232 */
	uint32_t ns_ipv4;        /* address of ns.consul./ns.berth., host order; default 127.0.0.1 */
	uint64_t tcp_idle_ms;    /* server: close a TCP connection idle this long; default 10000 */
	size_t tcp_max_conns;    /* server: connections above it are closed at once; default 1000 */
};

/* Fill o with the defaults above. */
void dns_opts_default(struct dns_opts *o);

enum dns_transport { DNS_UDP, DNS_TCP };

/* What dns_answer did, for counting. */
struct dns_result {
	bool answered;           /* false: the packet was dropped (no response) */
	bool has_question;       /* the question parsed: qtype is meaningful */
	uint16_t qtype;
	int rcode;               /* full (extended) rcode: 0..5, 16 = BADVERS */
	bool truncated;          /* TC was set */
};

/* Answer one query from the snapshot (NULL: no instances at all). q/n: the query as received
 * (without the TCP length prefix). The response is written to out (cap bytes; give at least
 * DNS_UDP_MAX_LIMIT for UDP, DNS_TCP_MAX for TCP; under 512 nothing is answered) and is never
 * longer than what the transport allows: UDP 512 without EDNS, else the client's size clamped
 * to [512, o->udp_max]; TCP 65535. o NULL: defaults. Returns the response length, 0 when
 * nothing must be sent. res may be NULL. No allocation. */
size_t dns_answer(const struct ep_snapshot *snap, const struct dns_opts *o, const uint8_t *q, size_t n,
		  uint8_t *out, size_t cap, enum dns_transport t, struct dns_result *res);

/* ---- counters (for /metrics) ---- */
enum dns_stat_qtype {
	DNS_STAT_A, DNS_STAT_AAAA, DNS_STAT_SRV, DNS_STAT_SOA, DNS_STAT_NS, DNS_STAT_ANY,
	DNS_STAT_OTHER,          /* any other type */
	DNS_STAT_NONE,           /* no parsable question (FORMERR, NOTIMP) */
	DNS_STAT_NQTYPE
};
enum dns_stat_rcode {
	DNS_STAT_NOERROR, DNS_STAT_FORMERR, DNS_STAT_SERVFAIL, DNS_STAT_NXDOMAIN, DNS_STAT_NOTIMP,
	DNS_STAT_REFUSED, DNS_STAT_BADVERS, DNS_STAT_NRCODE
};

/* Plain counters: the server runs on the main loop, read them there. */
struct dns_stats {
	uint64_t queries[DNS_STAT_NQTYPE][DNS_STAT_NRCODE]; /* answered queries by qtype, rcode */
	uint64_t udp, tcp;       /* answered queries by transport */
	uint64_t truncated;      /* UDP answers sent with TC */
	uint64_t dropped;        /* packets not answered: responses, runts, a datagram cut short */
	uint64_t send_errors;    /* UDP answers that could not be sent (buffer full, error) */
	uint64_t tcp_conns;      /* TCP connections accepted */
	uint64_t tcp_refused;    /* TCP connections closed at once (over tcp_max_conns) */
};

/* Label for a counter index: "A", "AAAA", "SRV", "SOA", "NS", "ANY", "other", "none";
 * "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "BADVERS". */
const char *dns_stat_qtype_name(int i);
const char *dns_stat_rcode_name(int i);
/* Count one dns_answer result (what the server does for each packet). */
void dns_stats_count(struct dns_stats *st, const struct dns_result *r, enum dns_transport t);

/* ---- the server ---- */
struct dns_server;

/* Listen on host:port ("127.0.0.1" or an IPv6 literal; port 0 picks a free port, the same
 * for UDP and TCP) and answer from the table's snapshots (the server registers itself as a
 * reader of table and reports each snapshot it adopts). o NULL: defaults. NULL on failure
 * with err set ("dns: bind 127.0.0.1:8600/udp: address already in use"). */
struct dns_server *dns_server_new(uv_loop_t *loop, struct endpoints *table, const char *host, int port,
				  const struct dns_opts *o, struct err *err);
/* The same on sockets a predecessor handed over (an in-place upgrade): a bound UDP socket
 * and a listening TCP one of the same address. The server owns both from here on, even on
 * failure. */
struct dns_server *dns_server_new_fds(uv_loop_t *loop, struct endpoints *table, int udp_fd, int tcp_fd,
				      const struct dns_opts *o, struct err *err);
/* For a successor: duplicates (close-on-exec, the caller owns them) of the UDP and TCP
 * sockets, taken before dns_server_close; queries the kernel queues meanwhile stay for
 * the successor. 0, or -1 when they cannot be duplicated (nothing is returned then). */
int dns_server_take_fds(struct dns_server *s, int *udp_fd, int *tcp_fd);
/* The bound port. */
int dns_server_port(const struct dns_server *s);
/* Counters since start (borrowed, valid until the server is freed). */
const struct dns_stats *dns_stats(const struct dns_server *s);
/* Stop listening, close every connection, drop the snapshot. cb (may be NULL) runs from the
 * loop once every handle is closed; s is freed after it. The table may outlive the server and
 * keep publishing: a closed server no longer holds back endpoints_drained(). */
void dns_server_close(struct dns_server *s, void (*cb)(void *), void *arg);
#endif
