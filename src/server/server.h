/* server: `berth server`: the daemon's start-up, its loop and orderly shutdown. */
#ifndef BERTH_SERVER_H
#define BERTH_SERVER_H
#include <stdbool.h>
#include <stdio.h>
/* Parse server flags (--data, --api, --config, ...) and run until SIGTERM/SIGINT. Exit status. */
int server_main(int argc, char **argv);
/* Every flag the server takes, one line each with what it does and its default, from the
 * same table the parser reads (for `berth help server`). */
void server_print_flags(FILE *f);
/* Does the command line (argv[0] = "server") ask for help (-h/--help where a flag goes)? */
bool server_wants_help(int argc, char **argv);
#endif
