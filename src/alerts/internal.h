/* alerts internals: the delivery worker (deliver.c) as seen by the main-loop side (alerts.c).
 * Not for other modules. */
#ifndef BERTH_ALERTS_INTERNAL_H
#define BERTH_ALERTS_INTERNAL_H
#include <stdatomic.h>
#include <stdint.h>
#include "alerts/alerts.h"

enum alert_outcome { OUTCOME_SENT, OUTCOME_FAILED, OUTCOME_DROPPED, OUTCOME_SUPPRESSED };

/* Shared by the loop side and the worker; every field is updated atomically. */
struct alert_counters {
	atomic_uint_fast64_t emitted, retries;
	atomic_uint_fast64_t outcome[4];              /* by enum alert_outcome */
	_Atomic(struct metric_family *) family;       /* berth_alerts_total, or NULL */
};

/* Count n alerts/deliveries of kind with an outcome (stats and, when set, the metric). */
void alert_count(struct alert_counters *c, enum alert_kind kind, enum alert_outcome o, uint64_t n);

struct sender_conf {
	int max_attempts;
	int64_t backoff_ms, timeout_ms, shutdown_grace_ms;
	size_t queue_max;
	int max_inflight;
};

struct sender;

/* Start the worker thread. NULL with e set when curl or the thread cannot be started. */
struct sender *sender_new(const struct sender_conf *c, struct alert_counters *ctr, struct err *e);
/* Queue one POST of payload to url (both copied). Any thread; never blocks on the network. */
void sender_push(struct sender *s, enum alert_kind kind, const char *url, const char *payload);
/* Let queued deliveries finish for up to the grace, then stop and join the worker; the rest
 * is dropped. Frees s. */
void sender_free(struct sender *s);
#endif
