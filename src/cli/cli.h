/* cli: the `berth` command line. Every verb except `server` (the daemon) and `_exec` (the
 * instance shim) is a client of the server's HTTP API (docs/API.md); docs/CLI.md is the
 * user's guide. */
#ifndef BERTH_CLI_H
#define BERTH_CLI_H
/* Run `berth` with the process's argv (argv[0] = the program). Returns the exit status:
 * 0 ok, 1 failure reported by the server or the network, 2 usage error. */
int cli_main(int argc, char **argv);
#endif
