/* cli/attach: the client side of berth-attach/1, shared by `berth run` and `berth exec`.
 * One HTTP/1.1 POST that upgrades (101) to a framed byte stream (src/util/frame.h): our
 * stdin goes up as STDIN frames, the command's stdout/stderr come down and are written to
 * fd 1 and 2 in the order they came, and the EXIT frame gives our exit status.
 *
 * The connection is libcurl in CONNECT_ONLY mode (http and https alike) driven by poll()
 * over stdin, the socket and a self-pipe for signals. In terminal mode the local terminal
 * is raw for the whole session (Ctrl-C is a byte the remote pty turns into SIGINT) and is
 * restored on every way out; window changes go up as RESIZE frames. In pipe mode local EOF
 * sends STDIN_EOF once, SIGINT/TERM/HUP/QUIT go up as SIGNAL frames, and the third of them
 * gives up: the connection is closed (the server stops the command) and we exit 128+sig.
 * Backpressure both ways: no socket reads while local output is pending, no stdin reads
 * while frames wait to be sent. The token never appears in a message. */
#ifndef BERTH_CLI_ATTACH_H
#define BERTH_CLI_ATTACH_H
#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>
#include "cli/args.h"
#include "cli/client.h"
#include "util/err.h"

/* Exit statuses of the session itself (a command's own status is 0..255 too). */
#define ATTACH_EXIT_LOST 255        /* the connection broke before the EXIT frame */
#define ATTACH_EXIT_STDOUT_GONE 141 /* our stdout is a closed pipe: 128 + SIGPIPE */

/* -t, -T, else whether stdin and stdout are both terminals. Both flags: a usage error
 * (printed for verb, returns -1). */
int attach_want_tty(const struct cli_opts *o, const char *verb, bool *tty);
/* The words of the command as a JSON array of strings (new reference), or NULL with e
 * naming the word that is not valid UTF-8. */
json_t *attach_argv(size_t n, const char *const *words, struct err *e);

/* POST body (a JSON object; "tty", and in terminal mode "rows", "cols" and "term", are added
 * here) to path ("/v1/envs/E/apps/A/run", already escaped) as an upgrade to berth-attach/1,
 * then carry the session to its end. Returns the exit status having printed everything:
 * the command's status (a signal S as 128+S), 1 when the server refused (its message as
 * "berth: MSG"), ATTACH_EXIT_LOST, ATTACH_EXIT_STDOUT_GONE, or 128+sig after giving up. */
int attach_run(struct client *c, const char *path, json_t *body, bool tty);

#endif
