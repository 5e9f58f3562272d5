// SPDX-License-Identifier: LGPL-2.1 OR MIT
/*
 * disk-to-pipe FILE: disk and pipe I/O in one completion loop.  libaio
 * reads FILE (O_DIRECT where the file system allows it) into an aiopipe,
 * a libaio read drains the other end, one io_getevents() loop reaps it
 * all.  On a kernel pipe, io_submit() of that read would sleep until data
 * came, and the data comes from this very loop (aiocopy: the full tool).
 *
 *   cc $(pkg-config --cflags aiopipe) disk-to-pipe.c \
 *      $(pkg-config --libs aiopipe) -laio
 */
#define _GNU_SOURCE		/* O_DIRECT */
#include <errno.h>
#include <error.h>		/* error(): message, strerror(), exit */
#include <fcntl.h>
#include <libaio.h>
#include <stdio.h>
#include <unistd.h>

#include <libaiopipe.h>

#define CHUNK	(64 * 1024)	/* a multiple of any block size */

static int pending;		/* requests submitted, not yet reaped */

/* Queue one request. */
static void submit(io_context_t ctx, struct iocb *cb)
{
	int ret = io_submit(ctx, 1, &cb);

	if (ret != 1)
		error(1, ret < 0 ? -ret : EIO, "io_submit");
	pending++;
}

int main(int argc, char **argv)
{
	struct iocb disk, pw, pr;	/* disk read, pipe write, pipe read */
	struct io_event ev[3];
	io_context_t ctx = 0;		/* io_setup() wants it zeroed */
	long long off = 0, got = 0;
	int in, fds[2], i, n, last = 0;
	/* O_DIRECT wants buffers aligned to the logical block size. */
	static char dbuf[CHUNK] __attribute__((aligned(4096))), rbuf[CHUNK];

	if (argc != 2) {
		fprintf(stderr, "usage: disk-to-pipe FILE\n");
		return 2;
	}
	/* O_DIRECT skips the page cache; tmpfs, for one, refuses it. */
	in = open(argv[1], O_RDONLY | O_DIRECT);
	if (in < 0 && errno == EINVAL)
		in = open(argv[1], O_RDONLY);	/* then buffered reads */
	if (in < 0)
		error(1, errno, "%s", argv[1]);
	n = aiopipe_pair(fds, O_CLOEXEC);
	if (n < 0)
		error(1, -n, "aiopipe_pair (is the module loaded?)");
	n = io_setup(8, &ctx);			/* libaio returns -errno */
	if (n < 0)
		error(1, -n, "io_setup");

	/* The first disk read, and a pipe read that is queued at once. */
	io_prep_pread(&disk, in, dbuf, CHUNK, 0);
	io_prep_pread(&pr, fds[0], rbuf, CHUNK, 0);
	submit(ctx, &disk);
	submit(ctx, &pr);
	while (pending > 0) {
		n = io_getevents(ctx, 1, 3, ev, NULL);	/* sleeps for >= 1 */
		if (n < 0)
			error(1, -n, "io_getevents");
		for (i = 0, pending -= n; i < n; i++) {
			struct iocb *cb = ev[i].obj;	/* which request */
			long res = (long)ev[i].res;	/* bytes, or -errno */

			if (res < 0)
				error(1, -res, "%s", cb == &disk ? "disk read" : "pipe I/O");
			if (cb == &disk && res > 0) {	/* a chunk: into the pipe */
				last = res < CHUNK;	/* short: end of file */
				off += res;
				io_prep_pwrite(&pw, fds[1], dbuf, res, 0);
				submit(ctx, &pw);
			} else if (cb == &pw && !last) {	/* dbuf is free again */
				io_prep_pread(&disk, in, dbuf, CHUNK, off);
				submit(ctx, &disk);
			} else if (cb == &pr && res > 0) {	/* the reader got some */
				got += res;
				submit(ctx, &pr);	/* the same request again */
			}
			/* All of the file is in the pipe: EOF for the reader. */
			if ((cb == &disk && res == 0) || (cb == &pw && last))
				close(fds[1]);
		}
	}
	printf("%lld bytes read from %s (%s), %lld through the aiopipe\n", off,
	       argv[1], fcntl(in, F_GETFL) & O_DIRECT ? "O_DIRECT" : "buffered", got);
	io_destroy(ctx);
	return off == got ? 0 : 1;
}
