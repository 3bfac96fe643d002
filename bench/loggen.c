/* loggen: the chatty instance of the log-ingest benchmark. Writes N lines of 51 bytes
 * ("%010lu" sequence number, a space, 39 filler characters, "\n") to stdout as fast as it can,
 * in 64 KiB writes, then either sleeps forever ("sleep", so the instance stays up and nothing
 * is flushed by its exit) or exits ("exit").
 *
 *     loggen N [sleep|exit]
 *
 * Exit status 2 on bad arguments, 1 when a write fails (e.g. the reader went away). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LINE_LEN 51
#define CHUNK (64 * 1024)

static int write_all(const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(1, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const char filler[] = " the-quick-brown-fox-jumps-over-lazy-dog\n";
	static char buf[CHUNK];
	char *end = NULL;
	unsigned long n, i;
	size_t used = 0;

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: loggen N [sleep|exit]\n");
		return 2;
	}
	errno = 0;
	n = strtoul(argv[1], &end, 10);
	if (errno || *end || end == argv[1]) {
		fprintf(stderr, "loggen: bad line count %s\n", argv[1]);
		return 2;
	}
	if (argc == 3 && strcmp(argv[2], "sleep") && strcmp(argv[2], "exit")) {
		fprintf(stderr, "loggen: expected sleep or exit, got %s\n", argv[2]);
		return 2;
	}
	_Static_assert(sizeof filler - 1 == LINE_LEN - 10, "filler length");

	for (i = 1; i <= n; i++) {
		unsigned long v = i;
		char *p;
		int d;

		if (used + LINE_LEN > sizeof buf) {
			if (write_all(buf, used) < 0)
				return 1;
			used = 0;
		}
		p = buf + used;
		for (d = 9; d >= 0; d--) {
			p[d] = (char)('0' + v % 10);
			v /= 10;
		}
		memcpy(p + 10, filler, sizeof filler - 1);
		used += LINE_LEN;
	}
	if (used && write_all(buf, used) < 0)
		return 1;
	if (argc == 3 && !strcmp(argv[2], "exit"))
		return 0;
	for (;;)
		pause();
}
