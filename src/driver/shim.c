/* shim: `berth _exec --cgroup NAME [--tag TAG] -- PROG ARGS...`: join the instance's cgroup,
 * then exec PROG. Runs in the child between the daemon's fork and the instance's command, so
 * the instance and everything it ever forks are accounted to its group. Errors go to stderr,
 * which is the instance's log. */
#include "driver/shim.h"
#include "supervise/cgroup.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int shim_main(int argc, char **argv)
{
	const char *cg = NULL;
	const char *tag = getenv("BERTH_OWNER");
	int i = 1;
	for (; i < argc; i++) {
		if (!strcmp(argv[i], "--cgroup") && i + 1 < argc)
			cg = argv[++i];
		else if (!strcmp(argv[i], "--tag") && i + 1 < argc)
			tag = argv[++i];
		else if (!strcmp(argv[i], "--")) {
			i++;
			break;
		} else {
			fprintf(stderr, "berth _exec: unexpected argument %s\n", argv[i]);
			return 127;
		}
	}
	if (i >= argc) {
		fprintf(stderr, "berth _exec: no command\n");
		return 127;
	}
	if (cg) {
		struct err e = ERR_INIT;
		if (cgroup_init(tag ? tag : "default", &e) < 0 || cgroup_enter(cg, getpid(), &e) < 0) {
			fprintf(stderr, "berth: cannot place instance in cgroup %s: %s\n", cg, e.msg);
			return 127;
		}
	}
	/* Start the command with default signal handling and an empty mask. */
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	execv(argv[i], argv + i);
	fprintf(stderr, "berth: exec %s: %m\n", argv[i]);
	return 127;
}
