/* dns/stats: counting answered queries by type and rcode, and the labels for /metrics. */
#include "dns/dns.h"
#include "dns/wire.h"

static const char *const QTYPE_NAMES[DNS_STAT_NQTYPE] = {"A", "AAAA", "SRV", "SOA", "NS", "ANY", "other", "none"};
static const char *const RCODE_NAMES[DNS_STAT_NRCODE] = {"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN",
							 "NOTIMP", "REFUSED", "BADVERS"};

const char *dns_stat_qtype_name(int i)
{
	return i >= 0 && i < DNS_STAT_NQTYPE ? QTYPE_NAMES[i] : "?";
}

const char *dns_stat_rcode_name(int i)
{
	return i >= 0 && i < DNS_STAT_NRCODE ? RCODE_NAMES[i] : "?";
}

static int qtype_index(const struct dns_result *r)
{
	if (!r->has_question)
		return DNS_STAT_NONE;
	switch (r->qtype) {
	case DNS_T_A: return DNS_STAT_A;
	case DNS_T_AAAA: return DNS_STAT_AAAA;
	case DNS_T_SRV: return DNS_STAT_SRV;
	case DNS_T_SOA: return DNS_STAT_SOA;
	case DNS_T_NS: return DNS_STAT_NS;
	case DNS_T_ANY: return DNS_STAT_ANY;
	default: return DNS_STAT_OTHER;
	}
}

static int rcode_index(int rcode)
{
	switch (rcode) {
	case DNS_R_NOERROR: return DNS_STAT_NOERROR;
	case DNS_R_FORMERR: return DNS_STAT_FORMERR;
	case DNS_R_NXDOMAIN: return DNS_STAT_NXDOMAIN;
	case DNS_R_NOTIMP: return DNS_STAT_NOTIMP;
	case DNS_R_REFUSED: return DNS_STAT_REFUSED;
	case DNS_R_BADVERS: return DNS_STAT_BADVERS;
	default: return DNS_STAT_SERVFAIL;
	}
}

void dns_stats_count(struct dns_stats *st, const struct dns_result *r, enum dns_transport t)
{
	if (!r->answered) {
		st->dropped++;
		return;
	}
	st->queries[qtype_index(r)][rcode_index(r->rcode)]++;
	if (t == DNS_TCP)
		st->tcp++;
	else
		st->udp++;
	if (r->truncated && t == DNS_UDP)
		st->truncated++;
}
