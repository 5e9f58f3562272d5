/* SPDX-License-Identifier: GPL-2.0 */
/*
 * pipetest: token passing over N pipes (LaHaise, "An AIO Implementation and
 * its Behaviour", OLS 2002, section 3).  Pipe i's output feeds pipe
 * (i + 1) mod N: one pass reads a token from pipe i and writes it to pipe
 * i + 1.  The I/O model decides how the program learns that pipe i holds a
 * token.  See docs/benchmark.md.
 */
#ifndef PIPETEST_H
#define PIPETEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum pt_backend {
	PT_PIPE,		/* pipe2() */
	PT_RETRY,		/* aiopipe, retry engine, filtered wakeups */
	PT_DIRECT,		/* aiopipe, direct (single-copy) engine */
	PT_RETRY_NOFILTER,	/* aiopipe, retry engine, filtering off */
	PT_NR_BACKENDS
};

enum pt_model {
	PT_POLL,
	PT_SELECT,
	PT_EPOLL,
	PT_AIO_POLL,
	PT_AIO_READ,
	PT_URING_READ,
	PT_URING_POLL,
	PT_THREADS,
	PT_AIO_RW,
	PT_EPOLL_ET,
	PT_URING_MSHOT,
	PT_RING,
	PT_NR_MODELS
};

/* Exit codes. */
#define PT_EXIT_FAIL		1	/* a check or a system call failed */
#define PT_EXIT_UNSUPPORTED	2	/* this combination cannot run */
#define PT_EXIT_STALL		3	/* no pass for --stall seconds */

#define PT_THREADS_MAX		1024	/* the threads model's bound on N */
#define PT_HDR			12	/* id, hop, checksum: the 12-byte token */

struct pt_token_hdr {
	uint32_t id;
	uint32_t hop;
	uint32_t csum;
};

struct pt {
	/* options */
	unsigned int pipes;
	unsigned int tokens;
	unsigned int size;
	unsigned int depth;		/* reads queued (aio), buffers (mshot) per pipe */
	unsigned int rearm_batch;	/* aio-read: re-arms held back, sent together */
	unsigned int capacity;		/* 0: chosen from tokens * size */
	unsigned long long passes_max;	/* 0: run for seconds */
	unsigned long long warmup;	/* passes not timed */
	double seconds;
	unsigned int stall;		/* watchdog, seconds */
	unsigned long long inject;	/* test: corrupt the token of this pass */
	enum pt_backend backend;
	enum pt_model model;
	bool nonblock;			/* kernel pipes opened O_NONBLOCK */
	bool drain_waiter;		/* poll every write end for the drain once */
	bool full_verify;		/* checksum the whole message (default) */
	bool header;			/* print the CSV header */
	bool verbose;

	/* pipes */
	int *rfd;
	int *wfd;

	/* tokens: the expected route of each, and its payload checksum */
	unsigned int *start;		/* pipe the token was seeded on */
	uint32_t *next_hop;		/* hop expected at the next receive */
	uint64_t *paysum;		/* checksum of the bytes after the header */

	/* run state, read by the watchdog thread */
	unsigned long long passes;	/* relaxed atomic */
	int stop;			/* relaxed atomic: time is up */
	unsigned long long t0_ns;	/* start of the timed window */
	unsigned long long passes0;
	unsigned long long t1_ns;	/* end of the timed window */
	unsigned long long passes1;
};

extern const char *const pt_model_names[PT_NR_MODELS];

/* pipetest.c: shared by the models */
__attribute__((noreturn, format(printf, 2, 3)))
void pt_die(int code, const char *fmt, ...);
__attribute__((noreturn, format(printf, 1, 2)))
void pt_fail_errno(const char *fmt, ...);
unsigned long long pt_now_ns(void);
void pt_read_rest(struct pt *pt, unsigned int i, char *buf, size_t have);
bool pt_read_token(struct pt *pt, unsigned int i, char *buf);
void pt_pass(struct pt *pt, unsigned int i, char *buf);
void pt_pass_nowrite(struct pt *pt, unsigned int i, char *buf);
void pt_forward(struct pt *pt, unsigned int i, const char *buf);
void pt_pass_mt(struct pt *pt, unsigned int i, char *buf);
bool pt_mt_done(struct pt *pt);

/*
 * One pass done by the single-threaded models: count it, open the timed
 * window after the warm-up, and tell the loop whether to go on.
 */
static inline bool pt_running(struct pt *pt)
{
	if (__atomic_load_n(&pt->stop, __ATOMIC_RELAXED))
		return false;
	if (pt->passes_max && pt->passes >= pt->passes_max + pt->warmup)
		return false;
	return true;
}

/* models.c */
void pt_run_poll(struct pt *pt);
void pt_run_select(struct pt *pt);
void pt_run_epoll(struct pt *pt);
void pt_run_aio_poll(struct pt *pt);
void pt_run_aio_read(struct pt *pt);
void pt_run_uring_read(struct pt *pt);
void pt_run_uring_poll(struct pt *pt);
void pt_run_threads(struct pt *pt);
void pt_run_aio_rw(struct pt *pt);
void pt_run_epoll_et(struct pt *pt);
void pt_run_uring_mshot(struct pt *pt);
void pt_run_ring(struct pt *pt);

/*
 * Called by every model once all its reads or polls are armed: seeds the
 * tokens and opens the timed window (at once, or after the warm-up).
 */
void pt_start(struct pt *pt);
/* Called by every model when its loop ends: closes the timed window. */
void pt_finish(struct pt *pt);

#endif /* PIPETEST_H */
