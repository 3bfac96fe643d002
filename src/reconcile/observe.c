/* reconcile/observe: metrics and alerts from what the supervisor reports (see internal.h):
 * restarts, health failures, crash loops, recoveries, and the instances gauge. Reads instance
 * status only; never changes an instance, the store or a waiter. */
#include "reconcile/internal.h"
#include "supervise/supervise.h"
#include "metrics/metrics.h"
#include "alerts/alerts.h"
#include <stdlib.h>
#include <string.h>

void observe_event(struct reconciler *rc, struct instance *inst, enum inst_event ev, const char *detail)
{
	const struct instance_status *s = instance_status(inst);
	const char *labels[] = {s->env, s->app, s->process};
	switch (ev) {
	case IEV_EXITED:
		if (rc->fams)
			metrics_inc(rc->fams->instance_restarts, labels);
		if (rc->alerts && s->crashes == SUPERVISE_CRASH_LOOP && s->state == INST_BACKOFF)
			alerts_emitf(rc->alerts, ALERT_CRASH_LOOP, s->env, s->app, s->process, s->id,
				     "%s (v%d) is crash-looping: %d crashes in a row, last %s", s->id, s->release,
				     s->crashes, s->last_exit);
		break;
	case IEV_UNHEALTHY:
		if (rc->fams)
			metrics_inc(rc->fams->health_failures, labels);
		if (rc->alerts)
			alerts_emitf(rc->alerts, ALERT_HEALTH_FAILING, s->env, s->app, s->process, s->id,
				     "%s (v%d) health check failing: %s", s->id, s->release, detail ? detail : "");
		break;
	case IEV_HEALTHY:
		if (rc->alerts && detail && !strcmp(detail, "recovered"))
			alerts_emitf(rc->alerts, ALERT_RECOVERED, s->env, s->app, s->process, s->id,
				     "%s (v%d) is healthy again", s->id, s->release);
		break;
	default:
		break;
	}
}

static void collect_instances(void *arg, struct metrics_emitter *em)
{
	struct reconciler *rc = arg;
	struct instance **v;
	size_t n = supervisor_list(rc->sv, NULL, NULL, &v);
	for (size_t k = 0; k < n; k++) {
		const struct instance_status *s = instance_status(v[k]);
		const char *labels[] = {s->env, s->app, s->process, inst_state_name(s->state)};
		metrics_emit(em, labels, 1);
	}
	free(v);
}

void reconciler_observe(struct reconciler *rc, struct metrics_families *fams, struct alerts *alerts)
{
	rc->fams = fams;
	rc->alerts = alerts;
	if (fams && fams->instances)
		metrics_family_set_collect(fams->instances, collect_instances, rc);
}
