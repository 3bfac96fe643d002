/* logs_int: what the files of the logs module share and nobody else sees: the hub, the
 * refcounted open files, the sinks, the subscribers, and the line parser and file readers used
 * by logs_read. Single-threaded: everything except logs_read runs on the daemon's loop. */
#ifndef BERTH_LOGS_INT_H
#define BERTH_LOGS_INT_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "logs/logs.h"
#include "util/buf.h"

#define LOGS_LINE_MAX (16 * 1024)      /* text bytes per stored line; longer lines are cut */
#define LOGS_TS_LEN 27                 /* "2026-11-24T20:19:13.123456Z" */
#define LOGS_SCRATCH_KEEP (4 * 1024 * 1024) /* a bigger write buffer is freed after use */

/* One open <process>.<slot>.log, shared by every sink of that slot (refs). Rotation happens
 * here, once, and every sink follows because they all write through fd. */
struct log_file {
	struct logs *l;
	char *env, *app, *process;
	int slot;
	char *dir, *path;       /* root/env/app and root/env/app/process.slot.log */
	int fd;                 /* -1 after a failed reopen (retried) or once gone */
	int64_t size;           /* bytes in the current file */
	int64_t rotate_at;      /* size that triggers rotation (pushed on when a rename fails) */
	int64_t retry_ms;       /* monotonic time before which a failed open is not retried */
	int refs;
	int gone;               /* app removed: writes are dropped, never recreate the dir */
	int failing;            /* last write failed: warn once per failure run */
	struct log_file *next;  /* in l->files while not gone */
};

struct log_sink {
	struct logs *l;
	struct log_file *f;
	int release;
	struct buf partial[3];  /* stdout, stderr, berth's own: bytes after the last newline, raw */
	struct log_sink *prev, *next;
};

struct logs_sub {
	struct logs *l;
	char *env, *app, *process;   /* process NULL = every process */
	logs_line_fn fn;
	void *arg;
	int dead;                    /* unsubscribed during delivery; freed by the sweep */
	struct logs_sub *next;
};

struct logs {
	char *root;
	int64_t rotate_bytes;
	int keep;
	struct log_file *files;
	struct log_sink *sinks;
	struct logs_sub *subs;
	int delivering;              /* depth of subscriber delivery in progress */
	int dead_subs;               /* subs marked dead, waiting for the sweep */
	uint64_t lines_total;        /* lines written to files */
	uint64_t lines_dropped;      /* lines lost to write errors or a removed app */
	struct buf scratch;          /* output buffer reused by writes (borrowed, see sink.c) */
};

/* logs.c: hand the lines in out (formatted, prefix plen bytes each) to matching subscribers. */
void logs_deliver(struct logs *l, const struct log_file *f, int release, int stream,
		  int64_t ts_us, const char *out, size_t n, size_t plen);
/* Names used in paths: non-empty, no '/', no leading '.', no control bytes. */
int logs_name_ok(const char *s);
/* sink.c: close and forget the open files of (env, app); their sinks drop further writes. */
void logs_files_forget_app(struct logs *l, const char *env, const char *app);
void logs_sink_free_all(struct logs *l);

/* parse.c: one stored line (without its '\n'). 0 and the fields (text points into p), or -1
 * when the line is not in the written format. */
struct logs_parsed {
	int64_t ts_us;
	int release;
	int stream;
	const char *text;
	size_t len;
};
int logs_parse_line(const char *p, size_t n, struct logs_parsed *out);
/* "<process>.<slot>.log" (rot 0) or "<process>.<slot>.log.<N>" (rot N >= 1). 0 on a match;
 * *plen is the length of the process part. */
int logs_parse_name(const char *name, size_t *plen, int *slot, int *rot);

/* scan.c: line readers over one file. A line is handed out without its '\n' and stays valid
 * until the next call on the same reader. Lines longer than LOGS_SCAN_MAX are skipped. */
#define LOGS_SCAN_MAX (LOGS_LINE_MAX + 256)
#define LOGS_BLOCK (64 * 1024)
struct logs_fwd {
	int fd;
	struct buf b;      /* read data; lines start at pos */
	size_t pos;
	int eof, skipping;
};
struct logs_bwd {
	int fd;
	off_t lo;          /* file offset of b.p[0] */
	struct buf b;      /* bytes [lo, lo + end) not yet handed out */
	size_t end;
	int skipping;
};
void logs_fwd_init(struct logs_fwd *r, int fd);          /* takes fd */
int logs_fwd_next(struct logs_fwd *r, const char **line, size_t *len);  /* 1 line, 0 end, -1 error */
void logs_fwd_close(struct logs_fwd *r);
int logs_bwd_init(struct logs_bwd *r, int fd);           /* takes fd; -1 when fstat fails */
int logs_bwd_prev(struct logs_bwd *r, const char **line, size_t *len);  /* 1 line, 0 start, -1 error */
void logs_bwd_close(struct logs_bwd *r);
#endif
