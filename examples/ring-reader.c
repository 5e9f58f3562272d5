// SPDX-License-Identifier: LGPL-2.1 OR MIT
/*
 * ring-reader: ring mode.  One mapped ring receives the bytes of two
 * aiopipes, written by a child process; the reader makes no read(2) at
 * all while the kernel finds free buffers.
 *
 *   cc $(pkg-config --cflags aiopipe) ring-reader.c \
 *      $(pkg-config --libs aiopipe)
 *
 * A writer that finds a free buffer copies its bytes there and posts a
 * DATA event: the reader finds them in the mapping and hands the buffer
 * back.  When no buffer (or no event slot) is free, the bytes stay in the
 * pipe and a READ event says how many to read(2), in order.  The last
 * writer's close posts EOF.  Every byte is checked against the pattern the
 * child wrote, so loss, duplication and reordering would show.
 */
#include <errno.h>
#include <error.h>		/* error(): message, strerror(), exit */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/wait.h>

#include <libaiopipe.h>

#define NPIPES		2
#define WRITES		400	/* per pipe */

struct pipe_state {
	int rfd, wfd;
	unsigned long long off;		/* stream bytes seen so far */
	unsigned long data_events, read_events;
	int eof;
};

/* Byte @off of pipe @i's stream. */
static unsigned char pattern(int i, unsigned long long off)
{
	return (unsigned char)('a' + (off + (unsigned long long)i * 7) % 26);
}

/* The child: writes of 1 .. 9000 bytes to each pipe, then exits. */
static void writer(struct pipe_state *p)
{
	static unsigned char buf[9000];
	unsigned long long off[NPIPES] = { 0 };
	unsigned int k, n;
	int i;

	srand(1);
	for (k = 0; k < WRITES; k++) {
		for (i = 0; i < NPIPES; i++) {
			n = 1 + (unsigned int)rand() % sizeof(buf);
			for (unsigned int j = 0; j < n; j++)
				buf[j] = pattern(i, off[i] + j);
			if (write(p[i].wfd, buf, n) != (ssize_t)n)
				error(1, errno, "child: write of %u bytes to pipe %d", n, i);
			off[i] += n;
		}
	}
	_exit(0);
}

/* Check @n bytes of pipe @i's stream and count them. */
static void consume(struct pipe_state *p, int i, const unsigned char *b, size_t n)
{
	for (size_t j = 0; j < n; j++)
		if (b[j] != pattern(i, p[i].off + j))
			error(1, 0, "pipe %d: wrong byte at offset %llu", i, p[i].off + j);
	p[i].off += n;
}

/* READ event: exactly @len bytes are in the pipe; take them now, in order. */
static void read_exactly(struct pipe_state *p, int i, size_t len)
{
	unsigned char buf[16384];

	while (len) {
		ssize_t n = read(p[i].rfd, buf, len < sizeof(buf) ? len : sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			error(1, n ? errno : EPROTO, "pipe %d: read of an announced %zu bytes", i, len);
		consume(p, i, buf, (size_t)n);
		len -= (size_t)n;
	}
}

/* Handle one event; returns 1 when it was an EOF. */
static int handle(struct aiopipe_ring *r, struct pipe_state *p,
		  const struct aiopipe_ring_event *ev)
{
	int i = (int)ev->user_data;

	if (i < 0 || i >= NPIPES)
		error(1, 0, "event for unknown user_data %llu", (unsigned long long)ev->user_data);
	switch (ev->type) {
	case AIOPIPE_EV_DATA:
		/* the buffer is ours until handed back */
		consume(p, i, aiopipe_ring_buf(r, ev->buf), ev->len);
		aiopipe_ring_give_back(r, ev->buf);
		p[i].data_events++;
		return 0;
	case AIOPIPE_EV_READ:
		read_exactly(p, i, ev->len);
		p[i].read_events++;
		return 0;
	case AIOPIPE_EV_EOF:
		p[i].eof = 1;
		return 1;
	default:
		error(1, 0, "unknown event type %u", ev->type);
		return 0;
	}
}

int main(void)
{
	struct pipe_state p[NPIPES];
	struct aiopipe_ring r;
	int i, ret, eofs = 0, status;
	pid_t pid;

	/* 64 event slots, 8 buffers of 4 KiB: small, so that some bytes spill */
	ret = aiopipe_ring_setup(&r, 64, 8, 4096, O_CLOEXEC);
	if (ret < 0)
		error(1, -ret, "aiopipe_ring_setup (is the module loaded?)");
	for (i = 0; i < NPIPES; i++) {
		int fds[2];

		ret = aiopipe_pair(fds, O_CLOEXEC);
		if (ret < 0)
			error(1, -ret, "aiopipe_pair");
		p[i] = (struct pipe_state){ .rfd = fds[0], .wfd = fds[1] };
		/* the user_data comes back in every event of this pipe */
		ret = aiopipe_ring_attach(&r, p[i].rfd, (unsigned long long)i);
		if (ret < 0)
			error(1, -ret, "aiopipe_ring_attach of pipe %d", i);
	}

	pid = fork();
	if (pid < 0)
		error(1, errno, "fork");
	if (pid == 0)
		writer(p);
	/* the child holds the write ends now: EOF comes when it exits */
	for (i = 0; i < NPIPES; i++)
		close(p[i].wfd);

	while (eofs < NPIPES) {
		struct aiopipe_ring_event *ev;

		ret = aiopipe_ring_wait(&r, 1, -1);
		if (ret == -EINTR)
			continue;
		if (ret < 0)
			error(1, -ret, "aiopipe_ring_wait");
		/* reap in order: a pipe's events are its byte order */
		while ((ev = aiopipe_ring_peek(&r))) {
			eofs += handle(&r, p, ev);
			aiopipe_ring_advance(&r, 1);
		}
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status))
		error(1, 0, "the writer failed");

	for (i = 0; i < NPIPES; i++) {
		struct aiopipe_stats st;

		printf("pipe %d: %llu bytes in order, %lu DATA events, %lu READ events, EOF\n",
		       i, p[i].off, p[i].data_events, p[i].read_events);
		if (aiopipe_stats(p[i].rfd, &st) == 0)
			printf("pipe %d counters: ring_bytes %llu, ring_spilled %llu, ring_owed %llu\n",
			       i, (unsigned long long)st.ring_bytes,
			       (unsigned long long)st.ring_spilled,
			       (unsigned long long)st.ring_owed);
		close(p[i].rfd);
	}
	aiopipe_ring_exit(&r);
	return 0;
}
