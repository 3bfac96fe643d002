/* shim: `berth _exec`, the few lines that run between fork and the instance's command:
 * join the instance's cgroups, reset signal dispositions, close stray fds, then exec
 * /bin/sh -c COMMAND. Internal; not a user verb. */
#ifndef BERTH_SHIM_H
#define BERTH_SHIM_H
int shim_main(int argc, char **argv);
#endif
