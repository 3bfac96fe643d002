/* plan: the reconciler's decision, as a pure function (no I/O, no clock): given what should
 * run for one app and what runs now, which instances to start and which to stop.
 * Rules:
 *  - every wanted (process, slot) gets an instance of the desired release and generation;
 *  - a slot still served by an old instance is replaced surge-style: the new instance starts
 *    while the old keeps serving, and the old one is stopped only once the new one has been
 *    healthy; at most `batch` such replacements are in flight at once;
 *  - a slot with nothing running is started right away (scale-up is not throttled);
 *  - a slot restarted on its own (`restart worker.2`: its slot generation is above the
 *    process's) of a process marked stop_first is stopped before it is started again: the
 *    new instance starts once nothing of the slot runs nor is still stopping;
 *  - slots above the formation, and processes the release does not have, are stopped
 *    (processes dropped by a new release only once the rest has converged);
 *  - a stopped app stops everything. */
#ifndef BERTH_PLAN_H
#define BERTH_PLAN_H
#include <stdbool.h>
#include <stddef.h>

struct plan_proc {
	const char *name;
	int count;             /* wanted instances */
	int gen;               /* wanted restart generation of the whole process */
	const int *slot_gens;  /* slot_gens[s - 1]: the generation slot s was restarted to on its
	                          own (0: never); may be NULL or shorter than count */
	int nslot_gens;
	bool stop_first;       /* such a lone restart stops the old instance before starting the
	                          new one (a process without a port: two copies would not serve,
	                          only do the work twice); otherwise it surges like a rollout */
};

struct plan_inst {
	const char *process;
	int slot, release, gen;
	bool healthy;          /* passing health checks now */
	bool ever_healthy;     /* has passed at least once */
	bool stopping;         /* already told to stop: ignored by the plan */
};

struct plan_input {
	int release;           /* desired release; 0 = nothing should run */
	bool stopped;          /* app stopped by the user */
	const struct plan_proc *procs;
	size_t nprocs;
	const struct plan_inst *insts;
	size_t ninsts;
	int batch;             /* replacements in flight at once (>= 1) */
};

struct plan_start {
	const char *process;   /* points into input procs */
	int slot;
};

struct plan_output {
	struct plan_start *starts;
	size_t nstarts;
	size_t *stops;         /* indexes into input insts */
	size_t nstops;
	bool converged;        /* every wanted slot healthy on the desired release, nothing else runs
	                          (nor is still stopping) */
};

/* The generation slot `slot` of p wants: the larger of the process's and the slot's own. */
int plan_want_gen(const struct plan_proc *p, int slot);
void plan_compute(const struct plan_input *in, struct plan_output *out);
void plan_output_free(struct plan_output *out);
#endif
