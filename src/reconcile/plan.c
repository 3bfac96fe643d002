/* plan: pure reconcile decisions for one app (see plan.h). */
#include "reconcile/plan.h"
#include "util/buf.h"
#include <stdlib.h>
#include <string.h>

static void add_start(struct plan_output *o, const char *proc, int slot)
{
	o->starts = xrealloc(o->starts, (o->nstarts + 1) * sizeof *o->starts);
	o->starts[o->nstarts].process = proc;
	o->starts[o->nstarts].slot = slot;
	o->nstarts++;
}

static void add_stop(struct plan_output *o, size_t idx)
{
	for (size_t k = 0; k < o->nstops; k++)
		if (o->stops[k] == idx)
			return;
	o->stops = xrealloc(o->stops, (o->nstops + 1) * sizeof *o->stops);
	o->stops[o->nstops++] = idx;
}

static const struct plan_proc *find_proc(const struct plan_input *in, const char *name)
{
	for (size_t k = 0; k < in->nprocs; k++)
		if (!strcmp(in->procs[k].name, name))
			return &in->procs[k];
	return NULL;
}

int plan_want_gen(const struct plan_proc *p, int slot)
{
	int g = p->gen;
	if (p->slot_gens && slot >= 1 && slot <= p->nslot_gens && p->slot_gens[slot - 1] > g)
		g = p->slot_gens[slot - 1];
	return g;
}

static bool is_current(const struct plan_input *in, const struct plan_inst *x, const struct plan_proc *p)
{
	return x->release == in->release && x->gen == plan_want_gen(p, x->slot);
}

/* Was this slot restarted on its own, and should its old instance go before the new starts? */
static bool stop_first(const struct plan_proc *p, int slot)
{
	return p->stop_first && plan_want_gen(p, slot) > p->gen;
}

void plan_compute(const struct plan_input *in, struct plan_output *out)
{
	memset(out, 0, sizeof *out);
	if (in->release == 0 || in->stopped) {
		for (size_t k = 0; k < in->ninsts; k++)
			if (!in->insts[k].stopping)
				add_stop(out, k);
		out->converged = out->nstops == 0;
		for (size_t k = 0; k < in->ninsts; k++)
			if (in->insts[k].stopping)
				out->converged = false;
		return;
	}
	int batch = in->batch > 0 ? in->batch : 1;
	/* Replacements in flight: current instances not yet healthy whose slot still has an old one. */
	int inflight = 0;
	for (size_t k = 0; k < in->ninsts; k++) {
		const struct plan_inst *x = &in->insts[k];
		const struct plan_proc *p = find_proc(in, x->process);
		if (x->stopping || !p || !is_current(in, x, p) || x->ever_healthy || x->slot > p->count)
			continue;
		for (size_t j = 0; j < in->ninsts; j++) {
			const struct plan_inst *y = &in->insts[j];
			if (!y->stopping && j != k && !strcmp(y->process, x->process) && y->slot == x->slot &&
			    !is_current(in, y, p)) {
				inflight++;
				break;
			}
		}
	}
	bool all_ready = true;
	for (size_t pi = 0; pi < in->nprocs; pi++) {
		const struct plan_proc *p = &in->procs[pi];
		for (int slot = 1; slot <= p->count; slot++) {
			ssize_t cur = -1;
			bool has_old = false, old_is_restart = true, slot_stopping = false;
			for (size_t k = 0; k < in->ninsts; k++) {
				const struct plan_inst *x = &in->insts[k];
				if (strcmp(x->process, p->name) || x->slot != slot)
					continue;
				if (x->stopping) {
					slot_stopping = true;
					continue;
				}
				if (is_current(in, x, p)) {
					if (cur < 0)
						cur = (ssize_t)k;
					else
						add_stop(out, k);   /* a duplicate: never two of one slot */
				} else {
					has_old = true;
					old_is_restart &= x->release == in->release;
				}
			}
			if (cur < 0 && stop_first(p, slot) && (has_old ? old_is_restart : slot_stopping)) {
				/* A lone restart without surge: the old one goes first, then the slot is
				 * started again once nothing of it is left. */
				all_ready = false;
				for (size_t k = 0; k < in->ninsts; k++) {
					const struct plan_inst *x = &in->insts[k];
					if (!x->stopping && !strcmp(x->process, p->name) && x->slot == slot)
						add_stop(out, k);
				}
				continue;
			}
			if (cur < 0) {
				all_ready = false;
				if (!has_old) {
					add_start(out, p->name, slot);
				} else if (inflight < batch) {
					add_start(out, p->name, slot);
					inflight++;
				}
				continue;
			}
			const struct plan_inst *c = &in->insts[cur];
			if (!c->healthy)
				all_ready = false;
			if (c->ever_healthy) {
				for (size_t k = 0; k < in->ninsts; k++) {
					const struct plan_inst *x = &in->insts[k];
					if (!x->stopping && !strcmp(x->process, p->name) && x->slot == slot &&
					    (ssize_t)k != cur)
						add_stop(out, k);
				}
			} else {
				all_ready = false;
			}
		}
	}
	/* Slots above the formation go now; processes the release dropped go once the rest is ready. */
	bool others = false;
	for (size_t k = 0; k < in->ninsts; k++) {
		const struct plan_inst *x = &in->insts[k];
		if (x->stopping) {
			continue;
		}
		const struct plan_proc *p = find_proc(in, x->process);
		if (p && x->slot > p->count) {
			add_stop(out, k);
			others = true;
		} else if (!p) {
			others = true;
			if (all_ready)
				add_stop(out, k);
		}
	}
	/* Old instances still serving a slot also keep us from being converged. */
	for (size_t k = 0; k < in->ninsts; k++) {
		const struct plan_inst *x = &in->insts[k];
		const struct plan_proc *p = find_proc(in, x->process);
		if (!x->stopping && p && !is_current(in, x, p))
			others = true;
	}
	/* Instances still stopping count too: "scale web=0" is done when they are gone. */
	bool stopping = false;
	for (size_t k = 0; k < in->ninsts; k++)
		stopping |= in->insts[k].stopping;
	out->converged = all_ready && !others && !stopping && out->nstarts == 0;
}

void plan_output_free(struct plan_output *out)
{
	free(out->starts);
	free(out->stops);
	memset(out, 0, sizeof *out);
}
