// SPDX-License-Identifier: LGPL-2.1 OR MIT
/*
 * queued-read-epoll: a libaio read on an empty aiopipe is queued, and its
 * completion wakes an epoll loop through an eventfd.
 *
 *   cc $(pkg-config --cflags aiopipe) queued-read-epoll.c \
 *      $(pkg-config --libs aiopipe) -laio
 *
 * On a kernel pipe, io_submit() of this read would sleep inside the system
 * call until a writer came.  On an aiopipe it returns at once; the read
 * completes later, and io_set_eventfd() makes the completion bump an
 * eventfd, which any poll/epoll loop can watch next to its other fds.
 */
#include <errno.h>
#include <error.h>		/* error(): message, strerror(), exit */
#include <fcntl.h>
#include <libaio.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/wait.h>

#include <libaiopipe.h>

static double ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1e3 + (t.tv_nsec - t0->tv_nsec) / 1e6;
}

int main(void)
{
	static const char msg[] = "hello from the child\n";
	struct epoll_event ev = { .events = EPOLLIN };
	struct timespec t0, zero = { 0, 0 };
	struct iocb cb, *cbs[1] = { &cb };
	struct io_event done;
	io_context_t ctx = 0;	/* io_setup() wants it zeroed */
	char buf[64];
	uint64_t count;
	double ms;
	int fds[2], efd, ep, ret;

	/* Like pipe2(): fds[0] is the read end, fds[1] the write end. */
	ret = aiopipe_pair(fds, O_CLOEXEC);
	if (ret < 0)
		error(1, -ret, "aiopipe_pair (is the module loaded?)");
	ret = io_setup(8, &ctx);		/* libaio returns -errno */
	if (ret < 0)
		error(1, -ret, "io_setup");
	/* The eventfd counts completions; epoll watches the eventfd. */
	efd = eventfd(0, EFD_CLOEXEC);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (efd < 0 || ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev))
		error(1, errno, "eventfd/epoll");

	/* A read of the still empty pipe, reported on efd when it completes. */
	io_prep_pread(&cb, fds[0], buf, sizeof(buf) - 1, 0);
	io_set_eventfd(&cb, efd);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ret = io_submit(ctx, 1, cbs);
	if (ret != 1)
		error(1, ret < 0 ? -ret : EIO, "io_submit");
	ms = ms_since(&t0);
	ret = io_getevents(ctx, 0, 1, &done, &zero);	/* never waits */
	printf("io_submit returned after %.2f ms, %d completion(s): queued\n",
	       ms, ret);

	/* The writer: a child, 200 ms later. */
	if (fork() == 0) {
		usleep(200000);
		_exit(write(fds[1], msg, sizeof(msg) - 1) < 0);
	}
	close(fds[1]);

	/* The event loop: one fd here, but it could watch any number. */
	ret = epoll_wait(ep, &ev, 1, 5000);
	if (ret != 1)
		error(1, ret < 0 ? errno : ETIMEDOUT, "epoll_wait: no completion within 5 s");
	if (read(efd, &count, sizeof(count)) != sizeof(count))
		error(1, errno, "read(eventfd)");
	/* The eventfd said "count completions": reaping them never blocks. */
	ret = io_getevents(ctx, 1, 1, &done, &zero);
	if (ret != 1)
		error(1, ret < 0 ? -ret : EIO, "io_getevents");
	if ((long)done.res < 0)
		error(1, -(long)done.res, "the queued read");
	buf[done.res] = '\0';
	printf("epoll woke after %.2f ms (eventfd %llu); read %lu bytes: %s",
	       ms_since(&t0), (unsigned long long)count, done.res, buf);
	wait(NULL);
	io_destroy(ctx);
	return 0;
}
