// SPDX-License-Identifier: GPL-2.0
/*
 * aiopipe's tracepoints (docs/async.md, "Tracepoints"): every stage of an
 * asynchronous request is in the kernel's event trace, and one request
 * keeps one name (chan= and req=, its number in the channel, from 1) from
 * aiopipe_queue to aiopipe_complete.
 *
 * Each test records into a tracefs instance of its own
 * (instances/aiopipe-selftest-PID) with only the aiopipe events enabled,
 * so nothing else on the machine mixes in, and removes it afterwards.
 */
#include <limits.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "kselftest_harness.h"
#include "async_util.h"
#include "backend.h"

#define PAGE		4096
#define MAX_EVENTS	64
#define TRACE_BYTES	(256 * 1024)

struct trace_event {
	char name[32];		/* "queue", "wake", "retry", "cancel", "complete" */
	char args[224];		/* what TP_printk() printed */
};

FIXTURE(trace) {
	int fds[2];
	io_context_t ctx;
	bool direct;
	bool filtered;
	char inst[256];
	struct trace_event ev[MAX_EVENTS];
	int nr;
};

FIXTURE_VARIANT(trace) {
	unsigned int engine;
	unsigned int filter;
};

AP_ENGINE_FILTER_VARIANTS(trace);

/* tracefs, mounted where the kernel documents it if nobody did yet */
static const char *tracefs_root(void)
{
	static const char *const dirs[] = {
		"/sys/kernel/tracing", "/sys/kernel/debug/tracing",
	};

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		char p[PATH_MAX];

		snprintf(p, sizeof(p), "%s/instances", dirs[i]);
		if (!access(p, F_OK))
			return dirs[i];
	}
	if (!mount("nodev", dirs[0], "tracefs", 0, NULL))
		return dirs[0];
	return NULL;
}

static int inst_write(const char *inst, const char *file, const char *val)
{
	char p[PATH_MAX];
	int fd, ret = 0;

	snprintf(p, sizeof(p), "%s/%s", inst, file);
	fd = open(p, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, val, strlen(val)) != (ssize_t)strlen(val))
		ret = -errno;
	close(fd);
	return ret;
}

FIXTURE_SETUP(trace)
{
	const char *root = tracefs_root();
	char p[PATH_MAX];

	self->fds[0] = self->fds[1] = -1;
	if (!root)
		SKIP(return, "no tracefs: a kernel without CONFIG_TRACING");
	snprintf(self->inst, sizeof(self->inst),
		 "%s/instances/aiopipe-selftest-%d", root, getpid());
	ASSERT_EQ(0, mkdir(self->inst, 0700)) TH_LOG("mkdir %s: %s",
						     self->inst, strerror(errno));
	snprintf(p, sizeof(p), "%s/events/aiopipe", self->inst);
	ASSERT_EQ(0, access(p, F_OK)) TH_LOG("%s: the module has no tracepoints",
					     p);
	ASSERT_EQ(0, inst_write(self->inst, "events/aiopipe/enable", "1"));
	ASSERT_EQ(0, ap_pair(self->fds, 0, 0, variant->engine,
			     variant->filter));
	ASSERT_EQ(0, io_setup(16, &self->ctx));
	self->direct = ap_is_direct(variant->engine);
	self->filtered = variant->filter == AIOPIPE_FILTER_ON;
}

FIXTURE_TEARDOWN(trace)
{
	if (self->ctx)
		io_destroy(self->ctx);
	backend_close(self->fds);
	if (self->inst[0]) {
		inst_write(self->inst, "events/aiopipe/enable", "0");
		rmdir(self->inst);
	}
}

/* One "  task-pid [cpu] flags ts: aiopipe_NAME: ARGS" line into @ev. */
static bool parse_line(char *line, struct trace_event *ev)
{
	char *name = strstr(line, ": aiopipe_"), *args;

	if (!name)
		return false;
	name += strlen(": aiopipe_");
	args = strstr(name, ": ");
	if (!args)
		return false;
	*args = '\0';
	snprintf(ev->name, sizeof(ev->name), "%s", name);
	snprintf(ev->args, sizeof(ev->args), "%s", args + 2);
	return true;
}

/* Read the instance's buffer into self->ev; returns how many events. */
static int read_events(FIXTURE_DATA(trace) *self)
{
	static char text[TRACE_BYTES];
	char p[PATH_MAX], *line, *save;
	ssize_t len;
	int fd;

	snprintf(p, sizeof(p), "%s/trace", self->inst);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	len = ap_read_full(fd, text, sizeof(text) - 1);
	close(fd);
	if (len < 0)
		return -EIO;
	text[len] = '\0';
	self->nr = 0;
	for (line = strtok_r(text, "\n", &save); line && self->nr < MAX_EVENTS;
	     line = strtok_r(NULL, "\n", &save)) {
		if (line[0] != '#' && parse_line(line, &self->ev[self->nr]))
			self->nr++;
	}
	return self->nr;
}

/* The value of "key=" in @args, as a string (up to the next space). */
static const char *field(const char *args, const char *key, char *out,
			 size_t size)
{
	const char *v = strstr(args, key);
	size_t n;

	if (!v)
		return "";
	v += strlen(key);
	n = strcspn(v, " ");
	snprintf(out, size, "%.*s", (int)(n < size ? n : size - 1), v);
	return out;
}

/* Index of the first event @name of request @req at or after @from, or -1. */
static int find(FIXTURE_DATA(trace) *self, int from, const char *name,
		const char *req)
{
	char v[64];

	for (int i = from; i < self->nr; i++) {
		if (strcmp(self->ev[i].name, name))
			continue;
		if (!strcmp(field(self->ev[i].args, "req=", v, sizeof(v)), req))
			return i;
	}
	return -1;
}

static int count(FIXTURE_DATA(trace) *self, const char *name)
{
	int n = 0;

	for (int i = 0; i < self->nr; i++)
		n += !strcmp(self->ev[i].name, name);
	return n;
}

static void log_events(struct __test_metadata *_metadata,
		       FIXTURE_DATA(trace) *self)
{
	for (int i = 0; i < self->nr; i++)
		TH_LOG("  aiopipe_%s: %s", self->ev[i].name, self->ev[i].args);
}

/*
 *   io_submit(PREAD 16) --> aiopipe_queue   read engine=E count=16
 *   write("hello") -------> retry:  aiopipe_wake kicked,
 *                                   aiopipe_retry moved=5 finished=1
 *                           direct: the writer copies; no wake, no retry
 *   reap ----------------> aiopipe_complete res=5, the same req=
 */
TEST_F(trace, queued_read_is_traced_from_queue_to_complete)
{
	char buf[16], req[64], want[96];
	struct io_event ev;
	struct iocb cb;
	int q, c;

	io_prep_pread(&cb, self->fds[0], buf, sizeof(buf), 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	ASSERT_EQ(5, write(self->fds[1], "hello", 5));
	ASSERT_EQ(5, ap_reap1(self->ctx, &ev));
	ASSERT_LT(0, read_events(self));
	log_events(_metadata, self);

	EXPECT_STREQ("queue", self->ev[0].name);
	field(self->ev[0].args, "req=", req, sizeof(req));
	EXPECT_STREQ("1", req);		/* the channel's first request */
	snprintf(want, sizeof(want), "read engine=%s count=16 done=0",
		 self->direct ? "direct" : "retry");
	EXPECT_NE(NULL, strstr(self->ev[0].args, want));
	q = find(self, 0, "queue", req);
	c = find(self, 0, "complete", req);
	EXPECT_EQ(0, q);
	ASSERT_LT(q, c);
	EXPECT_NE(NULL, strstr(self->ev[c].args, " res=5"));
	EXPECT_EQ(1, count(self, "complete"));
	if (self->direct) {
		EXPECT_EQ(0, count(self, "wake"));
		EXPECT_EQ(0, count(self, "retry"));
	} else {
		int w = find(self, q, "wake", req);
		int r = find(self, q, "retry", req);

		EXPECT_LT(q, w);
		EXPECT_LT(w, r);
		EXPECT_LT(r, c);
		if (w >= 0)
			EXPECT_NE(NULL, strstr(self->ev[w].args, "kicked"));
		if (r >= 0)
			EXPECT_NE(NULL, strstr(self->ev[r].args,
					       "moved=5 done=5 finished=1 futile=0"));
	}
}

/* io_cancel: aiopipe_cancel of the idle request, then res=-ECANCELED. */
TEST_F(trace, cancelled_read_is_traced_as_cancel_then_ecanceled)
{
	char buf[16], req[64], want[32];
	struct io_event ev;
	struct iocb cb;
	int q, x, c;

	io_prep_pread(&cb, self->fds[0], buf, sizeof(buf), 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	EXPECT_EQ(-EINPROGRESS, io_cancel(self->ctx, &cb, &ev));
	ASSERT_EQ(-ECANCELED, ap_reap1(self->ctx, &ev));
	ASSERT_LT(0, read_events(self));
	log_events(_metadata, self);

	field(self->ev[0].args, "req=", req, sizeof(req));
	q = find(self, 0, "queue", req);
	x = find(self, 0, "cancel", req);
	c = find(self, 0, "complete", req);
	EXPECT_EQ(0, q);
	EXPECT_LT(q, x);
	ASSERT_LT(x, c);
	if (x >= 0)
		EXPECT_NE(NULL, strstr(self->ev[x].args, "done=0 state=queued"));
	snprintf(want, sizeof(want), " res=%d", -ECANCELED);
	EXPECT_NE(NULL, strstr(self->ev[c].args, want));
}

/*
 * A wakeup of the other direction (a capacity change wakes writers) while
 * a read waits: retry filtered -> aiopipe_wake filtered, no retry; retry
 * unfiltered -> aiopipe_wake kicked and a futile aiopipe_retry; direct ->
 * the request is not on the wait queue, no aiopipe_wake at all.
 */
TEST_F(trace, other_direction_wakeup_is_traced_as_filtered_or_futile)
{
	char buf[AP_PINNED_READ], req[64];
	struct io_event ev;
	struct iocb cb;
	int w;

	io_prep_pread(&cb, self->fds[0], buf, sizeof(buf), 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	ASSERT_EQ(8 * PAGE, aiopipe_set_capacity(self->fds[1], 8 * PAGE));
	if (!self->direct && !self->filtered)
		ASSERT_EQ(1, AP_WAIT_STAT(self->fds[0], retries, 1, 2000));
	ASSERT_LT(0, read_events(self));
	log_events(_metadata, self);

	field(self->ev[0].args, "req=", req, sizeof(req));
	w = find(self, 0, "wake", req);
	if (self->direct) {
		EXPECT_EQ(0, count(self, "wake"));
	} else if (self->filtered) {
		ASSERT_LT(0, w);
		EXPECT_NE(NULL, strstr(self->ev[w].args, " filtered"));
		EXPECT_EQ(0, count(self, "retry"));
	} else {
		int r = find(self, w, "retry", req);

		ASSERT_LT(0, w);
		EXPECT_NE(NULL, strstr(self->ev[w].args, " kicked"));
		ASSERT_LT(w, r);
		EXPECT_NE(NULL, strstr(self->ev[r].args,
				       "moved=0 done=0 finished=0 futile=1"));
	}
	EXPECT_EQ(0, count(self, "complete"));
	ASSERT_EQ(1, write(self->fds[1], "x", 1));
	ASSERT_EQ(1, ap_reap1(self->ctx, &ev));
}

TEST_HARNESS_MAIN
