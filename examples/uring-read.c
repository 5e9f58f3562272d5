// SPDX-License-Identifier: LGPL-2.1 OR MIT
/*
 * uring-read: io_uring (liburing) on an aiopipe.  A read submitted while
 * the pipe is empty completes when data arrives.
 *
 *   cc $(pkg-config --cflags aiopipe) uring-read.c \
 *      $(pkg-config --libs aiopipe) -luring
 *
 * io_uring needs no queueing from the module: its first, nonblocking try
 * gets -EAGAIN, io_uring arms a poll on the read end and tries again when
 * the end becomes readable.  So the module's "queued" counter stays 0
 * here, unlike with libaio (see queued-read-epoll.c).
 */
#include <errno.h>
#include <error.h>		/* error(): message, strerror(), exit */
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <unistd.h>

#include <libaiopipe.h>

int main(void)
{
	static const char msg[] = "hello, io_uring\n";
	struct __kernel_timespec wait_100ms = { .tv_nsec = 100000000 };
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;
	struct aiopipe_stats st;
	struct io_uring ring;
	char buf[64];
	int fds[2], ret;

	/* Like pipe2(): fds[0] is the read end, fds[1] the write end. */
	ret = aiopipe_pair(fds, O_CLOEXEC);
	if (ret < 0)
		error(1, -ret, "aiopipe_pair (is the module loaded?)");
	/* liburing calls return -errno. */
	ret = io_uring_queue_init(8, &ring, 0);
	if (ret < 0)
		error(1, -ret, "io_uring_queue_init");

	/* One READ of the empty pipe (offset 0: a pipe has no position). */
	sqe = io_uring_get_sqe(&ring);
	io_uring_prep_read(sqe, fds[0], buf, sizeof(buf) - 1, 0);
	io_uring_sqe_set_data64(sqe, 42);	/* comes back in the CQE */
	ret = io_uring_submit(&ring);
	if (ret != 1)
		error(1, ret < 0 ? -ret : EIO, "io_uring_submit");

	/* Nothing to read yet: no completion within 100 ms. */
	ret = io_uring_wait_cqe_timeout(&ring, &cqe, &wait_100ms);
	if (ret != -ETIME)
		error(1, ret < 0 ? -ret : EPROTO, "a completion before any data");
	printf("submitted a read; after 100 ms it still waits for data\n");

	/* The data arrives: the waiting read completes with it. */
	if (write(fds[1], msg, sizeof(msg) - 1) != sizeof(msg) - 1)
		error(1, errno, "write");
	ret = io_uring_wait_cqe(&ring, &cqe);
	if (ret < 0)
		error(1, -ret, "io_uring_wait_cqe");
	if (cqe->res < 0)
		error(1, -cqe->res, "the read");
	buf[cqe->res] = '\0';
	printf("read %llu completed with %d bytes: %s",
	       (unsigned long long)io_uring_cqe_get_data64(cqe), cqe->res, buf);
	io_uring_cqe_seen(&ring, cqe);

	/* The module's counters of this pipe: io_uring never queued in it. */
	if (aiopipe_stats(fds[0], &st) == 0)
		printf("aiopipe counters: async_reads %llu, queued %llu\n",
		       (unsigned long long)st.async_reads,
		       (unsigned long long)st.queued);
	io_uring_queue_exit(&ring);
	return 0;
}
