// SPDX-License-Identifier: GPL-2.0
/*
 * Resource limits (kmod/limits.c, docs/hardening.md): each one refuses
 * cleanly, with the documented errno, and the system stays usable after.
 *
 *  - capacity above max_capacity needs CAP_SYS_RESOURCE: EPERM;
 *  - user_pages_hard: an unprivileged user's new pair is ENFILE and growing
 *    a ring is EPERM (pipe-user-pages-hard);
 *  - user_pages_soft: past it new pairs get the minimum capacity, and
 *    growing is refused (pipe-user-pages-soft);
 *  - direct engine: pinned pages count in locked_vm against RLIMIT_MEMLOCK
 *    without CAP_IPC_LOCK, and are bounded per request and per channel
 *    (max_pin_pages_req/chan); past any bound a request falls back to the
 *    retry engine (nothing pinned) and still completes correctly;
 *  - every struct copied to user space is fully written: AIOPIPE_IOC_PAIR's
 *    reserved fields are zero on return, and GET_STATS writes exactly the
 *    size the caller asked for (checked with a guard pattern after it).
 *
 * "Unprivileged" is uid/gid 65534 with the saved uid kept at 0
 * (setresuid(65534, 65534, 0)): the effective capabilities are gone, so
 * capable() fails, and the charges go to nobody's user_struct; the
 * teardown takes root back to restore the module parameters it changed.
 */
#include <sys/stat.h>
#include <sys/mman.h>

#include "kselftest_harness.h"
#include "async_util.h"
#include "backend.h"

#define PAGE		4096
#define NOBODY		65534
#define PARAMS		"/sys/module/aiopipe/parameters/"

static const char *const param_names[] = {
	"user_pages_soft", "user_pages_hard", "max_capacity",
	"max_pin_pages_req", "max_pin_pages_chan",
};
#define NPARAMS (sizeof(param_names) / sizeof(param_names[0]))

/* A module parameter as a number; -1 if it cannot be read. */
static long param_get(const char *name)
{
	char path[128], buf[32] = "";
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), PARAMS "%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n > 0 ? strtol(buf, NULL, 10) : -1;
}

static int param_set(const char *name, long val)
{
	char path[128], buf[32];
	int fd, len, ok;

	snprintf(path, sizeof(path), PARAMS "%s", name);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	len = snprintf(buf, sizeof(buf), "%ld", val);
	ok = write(fd, buf, len) == len;
	close(fd);
	return ok ? 0 : -EIO;
}

/* Drop every capability but keep a way back (saved uid 0). */
static int become_nobody(void)
{
	if (setresgid(NOBODY, NOBODY, 0) || setresuid(NOBODY, NOBODY, 0))
		return -errno;
	return 0;
}

static int become_root(void)
{
	if (setresuid(0, 0, 0) || setresgid(0, 0, 0))
		return -errno;
	return 0;
}

static void *pages(size_t n)
{
	void *p = mmap(NULL, n * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	memset(p, 0, n * PAGE);
	return p;
}

FIXTURE(limits) {
	long saved[NPARAMS];
	int fds[16][2];
	io_context_t ctx;
};

FIXTURE_SETUP(limits)
{
	unsigned int i;

	for (i = 0; i < 16; i++)
		self->fds[i][0] = self->fds[i][1] = -1;
	for (i = 0; i < NPARAMS; i++) {
		self->saved[i] = param_get(param_names[i]);
		ASSERT_LE(0, self->saved[i]) TH_LOG("%s", param_names[i]);
	}
	ASSERT_EQ(0, (int)getuid()) TH_LOG("these tests change module parameters: run as root");
}

FIXTURE_TEARDOWN(limits)
{
	unsigned int i;

	EXPECT_EQ(0, become_root());
	if (self->ctx)
		io_destroy(self->ctx);
	for (i = 0; i < 16; i++)
		backend_close(self->fds[i]);
	for (i = 0; i < NPARAMS; i++)
		EXPECT_EQ(0, param_set(param_names[i], self->saved[i]));
}

/* The pair still moves bytes both ways: the system stayed usable. */
static bool pair_works(int fds[2])
{
	char buf[8];

	return write(fds[1], "usable", 6) == 6 && read(fds[0], buf, sizeof(buf)) == 6 &&
	       !memcmp(buf, "usable", 6);
}

TEST_F(limits, capacity_above_max_needs_cap_sys_resource)
{
	int fds[2];

	/* root (CAP_SYS_RESOURCE) may go past max_capacity ... */
	ASSERT_EQ(0, aiopipe_pair_ex(self->fds[0], 0, 2 << 20, AIOPIPE_ENGINE_RETRY));
	EXPECT_EQ(2 << 20, aiopipe_get_capacity(self->fds[0][0]));
	ASSERT_EQ(0, aiopipe_pair_ex(self->fds[1], 0, 0, AIOPIPE_ENGINE_RETRY));
	ASSERT_EQ(0, become_nobody());
	/* ... an unprivileged user may not, at creation or later */
	EXPECT_EQ(-EPERM, aiopipe_pair_ex(fds, 0, 2 << 20, AIOPIPE_ENGINE_RETRY));
	EXPECT_EQ(-EPERM, aiopipe_set_capacity(self->fds[1][1], 2 << 20));
	EXPECT_EQ(65536, aiopipe_get_capacity(self->fds[1][1]));
	/* up to the maximum is fine; a shrink of a big ring too */
	EXPECT_EQ(1 << 20, aiopipe_set_capacity(self->fds[1][1], 1 << 20));
	EXPECT_EQ(PAGE, aiopipe_set_capacity(self->fds[0][0], PAGE));
	EXPECT_TRUE(pair_works(self->fds[0]));
	EXPECT_TRUE(pair_works(self->fds[1]));
	ASSERT_EQ(0, aiopipe_pair_ex(self->fds[2], 0, 1 << 20, AIOPIPE_ENGINE_DIRECT));
	EXPECT_TRUE(pair_works(self->fds[2]));
}

/*
 * user_pages_hard 64 pages, no soft limit: four 16-page pairs fit, the
 * fifth is ENFILE; growing is EPERM, shrinking and closing make room.
 */
TEST_F(limits, user_pages_hard_refuses_new_pairs_and_growth)
{
	int fds[2], i, made = 0, ret = 0;
	struct stat node;

	ASSERT_EQ(0, param_set("user_pages_soft", 0));
	ASSERT_EQ(0, param_set("user_pages_hard", 64));
	/* named FIFOs are root's by default: open one to nobody for a while */
	ASSERT_EQ(0, stat("/dev/aiopipe0", &node));
	ASSERT_EQ(0, chmod("/dev/aiopipe0", 0666));
	ASSERT_EQ(0, become_nobody());
	for (i = 0; i < 8; i++) {
		ret = aiopipe_pair_ex(self->fds[i], 0, 0, AIOPIPE_ENGINE_DEFAULT);
		if (ret)
			break;
		made++;
	}
	EXPECT_EQ(4, made);
	EXPECT_EQ(-ENFILE, ret);
	ASSERT_LE(1, made);
	EXPECT_EQ(-EPERM, aiopipe_set_capacity(self->fds[0][0], 131072));
	EXPECT_EQ(65536, aiopipe_get_capacity(self->fds[0][0]));
	/* a named FIFO's channel is charged the same way */
	EXPECT_EQ(-ENFILE, open("/dev/aiopipe0", O_RDWR) < 0 ? -errno : 0);
	/* shrinking gives 15 pages back: still not room for 16 more */
	EXPECT_EQ(PAGE, aiopipe_set_capacity(self->fds[0][0], PAGE));
	EXPECT_EQ(-ENFILE, aiopipe_pair_ex(fds, 0, 0, AIOPIPE_ENGINE_DEFAULT));
	/* closing a 16-page pair does make room */
	backend_close(self->fds[1]);
	EXPECT_EQ(0, aiopipe_pair_ex(self->fds[1], 0, 0, AIOPIPE_ENGINE_DEFAULT));
	for (i = 0; i < made; i++)
		EXPECT_TRUE(pair_works(self->fds[i]));
	/* CAP_SYS_RESOURCE is exempt */
	ASSERT_EQ(0, become_root());
	EXPECT_EQ(0, chmod("/dev/aiopipe0", node.st_mode & 07777));
	EXPECT_EQ(0, aiopipe_pair_ex(self->fds[8], 0, 0, AIOPIPE_ENGINE_DEFAULT));
}

/*
 * user_pages_soft 16 pages: the first default pair gets 64 KiB (16
 * pages), every later one the minimum, PAGE_SIZE, as pipe() does.
 */
TEST_F(limits, user_pages_soft_gives_minimum_capacity)
{
	struct aiopipe_pair p = { .flags = O_CLOEXEC };
	int dev;

	ASSERT_EQ(0, param_set("user_pages_hard", 0));
	ASSERT_EQ(0, param_set("user_pages_soft", 16));
	ASSERT_EQ(0, become_nobody());
	ASSERT_EQ(0, aiopipe_pair_ex(self->fds[0], 0, 0, AIOPIPE_ENGINE_DEFAULT));
	EXPECT_EQ(65536, aiopipe_get_capacity(self->fds[0][0]));
	dev = open(AIOPIPE_DEV_FACTORY, O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, dev);
	ASSERT_EQ(0, ioctl(dev, AIOPIPE_IOC_PAIR, &p));
	close(dev);
	self->fds[1][0] = p.fds[0];
	self->fds[1][1] = p.fds[1];
	EXPECT_EQ(PAGE, (int)p.capacity);
	EXPECT_EQ(PAGE, aiopipe_get_capacity(self->fds[1][0]));
	EXPECT_TRUE(pair_works(self->fds[0]));
	EXPECT_TRUE(pair_works(self->fds[1]));
}

/*
 * Over the soft limit an unprivileged user cannot grow a ring, as
 * F_SETPIPE_SZ answers EPERM over pipe-user-pages-soft; nor get a bigger
 * ring by asking for a capacity at creation (refused, or the minimum).
 */
TEST_F(limits, user_pages_soft_refuses_growth)
{
	int ret;

	ASSERT_EQ(0, param_set("user_pages_hard", 0));
	ASSERT_EQ(0, param_set("user_pages_soft", 16));
	ASSERT_EQ(0, become_nobody());
	ASSERT_EQ(0, aiopipe_pair_ex(self->fds[0], 0, 0, AIOPIPE_ENGINE_DEFAULT));
	ASSERT_EQ(0, aiopipe_pair_ex(self->fds[1], 0, 0, AIOPIPE_ENGINE_DEFAULT));
	ASSERT_EQ(PAGE, aiopipe_get_capacity(self->fds[1][0]));
	EXPECT_EQ(-EPERM, aiopipe_set_capacity(self->fds[1][0], 65536));
	EXPECT_EQ(PAGE, aiopipe_get_capacity(self->fds[1][0]));
	ret = aiopipe_pair_ex(self->fds[2], 0, 1 << 20, AIOPIPE_ENGINE_DEFAULT);
	if (!ret) {
		EXPECT_EQ(PAGE, aiopipe_get_capacity(self->fds[2][0])) {
			TH_LOG("an explicit capacity went past the soft limit");
		}
	} else {
		EXPECT_EQ(-EPERM, ret);
	}
	EXPECT_TRUE(pair_works(self->fds[1]));
}

/*
 * RLIMIT_MEMLOCK 16 KiB without CAP_IPC_LOCK: a queued direct read of
 * 2 pages is pinned; one of 64 pages is over the limit, falls back to the
 * retry engine (nothing pinned) and still completes with the right bytes.
 */
TEST_F(limits, memlock_limit_falls_back_to_retry)
{
	struct rlimit rl = { 4 * PAGE, 4 * PAGE };
	unsigned char *small = pages(2), *big = pages(64), *src = pages(64);
	struct iocb cb[2], *cbp;
	struct io_event ev;
	int *fds = self->fds[0];

	ASSERT_NE(NULL, small);
	ASSERT_NE(NULL, big);
	ASSERT_NE(NULL, src);
	ASSERT_EQ(0, setrlimit(RLIMIT_MEMLOCK, &rl));
	ASSERT_EQ(0, become_nobody());
	ASSERT_EQ(0, aiopipe_pair_ex(fds, 0, 0, AIOPIPE_ENGINE_DIRECT));
	ASSERT_EQ(0, io_setup(8, &self->ctx));

	io_prep_pread(&cb[0], fds[0], small, 2 * PAGE, 0);
	cbp = &cb[0];
	ASSERT_EQ(1, io_submit(self->ctx, 1, &cbp));
	EXPECT_EQ(2, AP_STAT(fds[0], pinned_pages));
	ap_fill(src, 2 * PAGE, 0);
	ASSERT_EQ(2 * PAGE, write(fds[1], src, 2 * PAGE));
	ASSERT_EQ(2 * PAGE, ap_reap1(self->ctx, &ev));
	EXPECT_EQ(-1, ap_check(small, 2 * PAGE, 0));
	EXPECT_EQ(0, AP_STAT(fds[0], pinned_pages));

	io_prep_pread(&cb[1], fds[0], big, 64 * PAGE, 0);
	cbp = &cb[1];
	ASSERT_EQ(1, io_submit(self->ctx, 1, &cbp));
	EXPECT_TRUE(ap_no_event(self->ctx));
	EXPECT_EQ(1, AP_STAT(fds[0], pending_reads));
	EXPECT_EQ(0, AP_STAT(fds[0], pinned_pages));
	EXPECT_EQ(2, AP_STAT(fds[0], pinned_pages_peak));
	ap_fill(src, 5000, 2 * PAGE);
	ASSERT_EQ(5000, write(fds[1], src, 5000));
	ASSERT_EQ(5000, ap_reap1(self->ctx, &ev));
	EXPECT_EQ(-1, ap_check(big, 5000, 2 * PAGE));
	AP_EXPECT_IDLE(fds[0]);
	EXPECT_TRUE(pair_works(fds));
}

/* The mm's pinned_vm, as /proc/self/status shows it (VmPin, in kB). */
static long vm_pin_kb(void)
{
	char line[128];
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmPin: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/*
 * Pinned pages are charged to the submitter's mm as well as to its user,
 * as io_uring charges registered buffers: VmPin grows while a direct read
 * is pending and comes back when it completes.
 */
TEST_F(limits, direct_pins_count_in_vmpin)
{
	unsigned char *buf = pages(4), *src = pages(4);
	int *fds = self->fds[0];
	struct iocb cb, *cbp = &cb;
	struct io_event ev;
	long before;

	ASSERT_NE(NULL, buf);
	ASSERT_NE(NULL, src);
	ASSERT_EQ(0, aiopipe_pair_ex(fds, 0, 0, AIOPIPE_ENGINE_DIRECT));
	ASSERT_EQ(0, io_setup(8, &self->ctx));
	before = vm_pin_kb();
	ASSERT_LE(0, before);
	io_prep_pread(&cb, fds[0], buf, 4 * PAGE, 0);
	ASSERT_EQ(1, io_submit(self->ctx, 1, &cbp));
	EXPECT_EQ(4, AP_STAT(fds[0], pinned_pages));
	EXPECT_EQ(before + 4 * PAGE / 1024, vm_pin_kb());
	ap_fill(src, 4 * PAGE, 0);
	ASSERT_EQ(4 * PAGE, write(fds[1], src, 4 * PAGE));
	ASSERT_EQ(4 * PAGE, ap_reap1(self->ctx, &ev));
	EXPECT_EQ(-1, ap_check(buf, 4 * PAGE, 0));
	EXPECT_EQ(before, vm_pin_kb());
	AP_EXPECT_IDLE(fds[0]);
}

/*
 * The same limit with CAP_IPC_LOCK (root): the 64-page read is pinned
 * anyway, as io_uring pins registered buffers past RLIMIT_MEMLOCK for a
 * privileged caller, and its pages are released when it completes.
 */
TEST_F(limits, cap_ipc_lock_pins_past_memlock_limit)
{
	struct rlimit rl = { 4 * PAGE, 4 * PAGE };
	unsigned char *big = pages(64), *src = pages(64);
	struct iocb cb, *cbp = &cb;
	struct io_event ev;
	int *fds = self->fds[0];

	ASSERT_NE(NULL, big);
	ASSERT_NE(NULL, src);
	ASSERT_EQ(0, setrlimit(RLIMIT_MEMLOCK, &rl));
	ASSERT_EQ(0, aiopipe_pair_ex(fds, 0, 0, AIOPIPE_ENGINE_DIRECT));
	ASSERT_EQ(0, io_setup(8, &self->ctx));

	io_prep_pread(&cb, fds[0], big, 64 * PAGE, 0);
	ASSERT_EQ(1, io_submit(self->ctx, 1, &cbp));
	EXPECT_EQ(64, AP_STAT(fds[0], pinned_pages));
	ap_fill(src, 5000, 0);
	ASSERT_EQ(5000, write(fds[1], src, 5000));
	ASSERT_EQ(5000, ap_reap1(self->ctx, &ev));
	EXPECT_EQ(-1, ap_check(big, 5000, 0));
	AP_EXPECT_IDLE(fds[0]);
}

/* max_pin_pages_req 4: an 8-page direct read is not pinned, a 4-page one is. */
TEST_F(limits, pin_bound_per_request_falls_back_to_retry)
{
	unsigned char *a = pages(8), *b = pages(4), *src = pages(8);
	struct iocb cb[2], *cbp;
	struct io_event ev;
	int *fds = self->fds[0];

	ASSERT_NE(NULL, a);
	ASSERT_NE(NULL, b);
	ASSERT_NE(NULL, src);
	ASSERT_EQ(0, param_set("max_pin_pages_req", 4));
	ASSERT_EQ(0, aiopipe_pair_ex(fds, 0, 0, AIOPIPE_ENGINE_DIRECT));
	ASSERT_EQ(0, io_setup(8, &self->ctx));

	io_prep_pread(&cb[0], fds[0], a, 8 * PAGE, 0);
	cbp = &cb[0];
	ASSERT_EQ(1, io_submit(self->ctx, 1, &cbp));
	EXPECT_EQ(0, AP_STAT(fds[0], pinned_pages));
	ap_fill(src, 6000, 0);
	ASSERT_EQ(6000, write(fds[1], src, 6000));
	ASSERT_EQ(6000, ap_reap1(self->ctx, &ev));
	EXPECT_EQ(-1, ap_check(a, 6000, 0));
	EXPECT_EQ(0, AP_STAT(fds[0], bytes_single_copy));

	io_prep_pread(&cb[1], fds[0], b, 4 * PAGE, 0);
	cbp = &cb[1];
	ASSERT_EQ(1, io_submit(self->ctx, 1, &cbp));
	EXPECT_EQ(4, AP_STAT(fds[0], pinned_pages));
	ap_fill(src, 3000, 6000);
	ASSERT_EQ(3000, write(fds[1], src, 3000));
	ASSERT_EQ(3000, ap_reap1(self->ctx, &ev));
	EXPECT_EQ(-1, ap_check(b, 3000, 6000));
	EXPECT_EQ(3000, AP_STAT(fds[0], bytes_single_copy));
	AP_EXPECT_IDLE(fds[0]);
}

/*
 * max_pin_pages_chan 8: of two 6-page direct reads on one channel only the
 * first is pinned; both complete, in order, with the right bytes.
 */
TEST_F(limits, pin_bound_per_channel_falls_back_to_retry)
{
	unsigned char *a = pages(6), *b = pages(6), *src = pages(2);
	struct iocb cb[2], *cbs[2] = { &cb[0], &cb[1] };
	struct io_event ev;
	int *fds = self->fds[0];

	ASSERT_NE(NULL, a);
	ASSERT_NE(NULL, b);
	ASSERT_NE(NULL, src);
	ASSERT_EQ(0, param_set("max_pin_pages_chan", 8));
	ASSERT_EQ(0, aiopipe_pair_ex(fds, 0, 0, AIOPIPE_ENGINE_DIRECT));
	ASSERT_EQ(0, io_setup(8, &self->ctx));
	io_prep_pread(&cb[0], fds[0], a, 6 * PAGE, 0);
	io_prep_pread(&cb[1], fds[0], b, 6 * PAGE, 0);
	ASSERT_EQ(2, io_submit(self->ctx, 2, cbs));
	EXPECT_EQ(6, AP_STAT(fds[0], pinned_pages));
	EXPECT_EQ(2, AP_STAT(fds[0], pending_reads));

	ap_fill(src, 100, 0);
	ASSERT_EQ(100, write(fds[1], src, 100));
	ASSERT_EQ(100, ap_reap1(self->ctx, &ev));
	EXPECT_EQ(&cb[0], ev.obj);
	EXPECT_EQ(-1, ap_check(a, 100, 0));
	ap_fill(src, 50, 100);
	ASSERT_EQ(50, write(fds[1], src, 50));
	ASSERT_EQ(50, ap_reap1(self->ctx, &ev));
	EXPECT_EQ(&cb[1], ev.obj);
	EXPECT_EQ(-1, ap_check(b, 50, 100));
	AP_EXPECT_IDLE(fds[0]);
	EXPECT_TRUE(pair_works(fds));
}

/* AIOPIPE_IOC_PAIR: what comes back is fully defined; a refusal writes nothing. */
TEST_F(limits, pair_struct_fully_initialised)
{
	struct aiopipe_pair p, guard;
	int dev = open(AIOPIPE_DEV_FACTORY, O_RDONLY | O_CLOEXEC);

	ASSERT_LE(0, dev);
	memset(&p, 0, sizeof(p));
	p.fds[0] = p.fds[1] = 0x5a5a5a5a;
	p.capacity = 5000;
	ASSERT_EQ(0, ioctl(dev, AIOPIPE_IOC_PAIR, &p));
	self->fds[0][0] = p.fds[0];
	self->fds[0][1] = p.fds[1];
	EXPECT_EQ(8192, (int)p.capacity);
	EXPECT_EQ(0, (int)p.flags);
	EXPECT_EQ(0, (int)p.engine);
	EXPECT_EQ(0, (int)p.reserved[0]);
	EXPECT_EQ(0, (int)p.reserved[1]);
	EXPECT_EQ(0, (int)p.reserved[2]);
	EXPECT_TRUE(pair_works(self->fds[0]));

	memset(&p, 0, sizeof(p));
	p.engine = 7;
	p.fds[0] = p.fds[1] = 0x5a5a5a5a;
	guard = p;
	EXPECT_EQ(-1, ioctl(dev, AIOPIPE_IOC_PAIR, &p));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(0, memcmp(&guard, &p, sizeof(p)));
	close(dev);
}

/*
 * GET_STATS honours the caller's size: it writes exactly that many bytes
 * (guard bytes after them stay), reports the size it filled, and the
 * reserved words of a full struct are zero.  On an end and on the factory.
 */
static void check_stats_sizes(struct __test_metadata *_metadata, int fd)
{
	static const unsigned int sizes[] = { 8, 16, 24, 100, 200, 248, 256, 300, 1000 };
	unsigned char buf[1024];
	struct aiopipe_stats *st = (struct aiopipe_stats *)buf;
	unsigned int i, k;

	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		unsigned int want = sizes[i] < sizeof(*st) ? sizes[i] : sizeof(*st);

		memset(buf, 0xa5, sizeof(buf));
		st->size = sizes[i];
		st->flags = 0;
		ASSERT_EQ(0, ioctl(fd, AIOPIPE_IOC_GET_STATS, buf)) TH_LOG("size %u", sizes[i]);
		EXPECT_EQ(want, st->size);
		EXPECT_EQ(0, (int)st->flags);
		for (k = want; k < sizeof(buf); k++)
			if (buf[k] != 0xa5)
				break;
		EXPECT_EQ((unsigned int)sizeof(buf), k) TH_LOG("size %u: byte %u written", sizes[i], k);
		if (want == sizeof(*st))
			for (k = 0; k < sizeof(st->reserved) / sizeof(st->reserved[0]); k++)
				EXPECT_EQ(0, (long long)st->reserved[k]) TH_LOG("reserved[%u]", k);
	}
	/* too small for the header, or unknown flags: refused, nothing written */
	memset(buf, 0xa5, sizeof(buf));
	st->size = 4;
	st->flags = 0;
	EXPECT_EQ(-1, ioctl(fd, AIOPIPE_IOC_GET_STATS, buf));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(0xa5, buf[8]);
	st->size = sizeof(*st);
	st->flags = 1;
	EXPECT_EQ(-1, ioctl(fd, AIOPIPE_IOC_GET_STATS, buf));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(0xa5, buf[8]);
}

TEST_F(limits, stats_struct_size_honoured_reserved_zero)
{
	int dev = open(AIOPIPE_DEV_FACTORY, O_RDONLY | O_CLOEXEC);

	ASSERT_LE(0, dev);
	ASSERT_EQ(0, aiopipe_pair(self->fds[0], 0));
	check_stats_sizes(_metadata, self->fds[0][0]);
	check_stats_sizes(_metadata, self->fds[0][1]);
	check_stats_sizes(_metadata, dev);
	close(dev);
}

TEST_HARNESS_MAIN
