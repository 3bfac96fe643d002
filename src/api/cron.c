/* api/cron: `berth cron` (the jobs of the live release with their last and next runs) and
 * `berth cron run NAME` (one run now). The schedule itself lives in reconcile/cron.c. With
 * BERTH_TEST_HOOKS=1 in the server's environment, POST /v1/debug/clock {"advance_s": N
 * [, "freeze": true]} (admin) moves the scheduler's clock (and with freeze stops it following
 * real time), so tests need not wait for minutes. */
#include "api/internal.h"
#include "reconcile/cron.h"
#include <stdlib.h>
#include <string.h>

void api_cron_list(struct ctx *c)
{
	if (api_need_app(c) < 0)
		return;
	http_respond_json(c->req, 200, json_pack("{s:o}", "jobs", cron_sched_list(reconciler_cron(c->api->rc), c->env,
									  c->app)));
}

void api_cron_run(struct ctx *c, const char *job)
{
	if (api_need_app(c) < 0)
		return;
	struct err e = ERR_INIT;
	char id[96] = "";
	if (cron_sched_run_now(reconciler_cron(c->api->rc), c->env, c->app, job, id, sizeof id, &e) < 0) {
		api_fail(c->req, &e);
		return;
	}
	char msg[300];
	snprintf(msg, sizeof msg, "started cron.%s now; its output goes to the logs (berth logs --process cron.%s)", job,
		 job);
	http_respond_json(c->req, 200, json_pack("{s:s, s:s}", "id", id, "message", msg));
}

void api_debug_clock(struct ctx *c)
{
	const char *hooks = getenv("BERTH_TEST_HOOKS");
	if (!hooks || strcmp(hooks, "1")) {
		http_respond_error(c->req, 404, "no such API path");
		return;
	}
	json_t *body = api_body_json(c->req);
	if (!body)
		return;
	json_t *adv = json_object_get(body, "advance_s");
	if (!json_is_integer(adv) || json_integer_value(adv) < 0 || json_integer_value(adv) > 10LL * 366 * 86400) {
		json_decref(body);
		http_respond_error(c->req, 400, "expected {\"advance_s\": seconds[, \"freeze\": true]}");
		return;
	}
	cron_sched_advance(reconciler_cron(c->api->rc), json_integer_value(adv), json_is_true(json_object_get(body, "freeze")));
	json_decref(body);
	http_respond_json(c->req, 200, json_pack("{s:b}", "ok", 1));
}
