/* server: `berth server`: the daemon's start-up, its loop and orderly shutdown. */
#ifndef BERTH_SERVER_H
#define BERTH_SERVER_H
/* Parse server flags (--data, --api, --config, ...) and run until SIGTERM/SIGINT. Exit status. */
int server_main(int argc, char **argv);
#endif
