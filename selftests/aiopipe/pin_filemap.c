// SPDX-License-Identifier: GPL-2.0
/*
 * The direct engine never pins pages of a shared file mapping on a disk
 * file system for the life of a request (docs/async.md, "Direct engine").
 *
 * A long-term writable pin of page-cache pages lets the peer write into
 * them outside the file system's page_mkwrite and writeback control.  A
 * request whose buffer is a MAP_SHARED mapping of such a file therefore
 * goes to the retry engine: it is pending as "retry" and the channel's
 * pinned_pages counter stays 0, for a PREAD into the mapping as for a
 * PWRITE out of it, and the request still completes with every byte.
 * Anonymous memory and shmem (a memfd) are pinned as before ("direct",
 * pinned_pages 2 for 8192 bytes): they are the controls.
 *
 * The file is given by AIOPIPE_FILEMAP, a path on a disk file system
 * (pin_filemap.sh makes an ext2 file system on the VM's scratch disk);
 * without it the file cases are skipped and only the controls run.
 */
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include "kselftest_harness.h"
#include "async_util.h"
#include "backend.h"

#define PAGE		4096
#define LEN		8192
#define CAP		(4 * PAGE)	/* one write of LEN fits: a retry moves it all */
#define MAP_LEN		(4 * PAGE)
#define TMPFS_MAGIC	0x01021994
#define RAMFS_MAGIC	0x858458f6

enum mem { MEM_FILE_SHARED, MEM_ANON_PRIVATE, MEM_MEMFD_SHARED };

FIXTURE(pin) {
	int fds[2];
	int backing;	/* the file or memfd behind the buffer, or -1 */
	io_context_t ctx;
	char *map;
};

FIXTURE_VARIANT(pin) {
	enum mem mem;
	bool pinned;		/* the request is pinned (direct) */
};

FIXTURE_VARIANT_ADD(pin, file_shared) {
	.mem = MEM_FILE_SHARED, .pinned = false,
};
FIXTURE_VARIANT_ADD(pin, anon_private) {
	.mem = MEM_ANON_PRIVATE, .pinned = true,
};
FIXTURE_VARIANT_ADD(pin, memfd_shared) {
	.mem = MEM_MEMFD_SHARED, .pinned = true,
};

FIXTURE_SETUP(pin)
{
	const char *path = getenv("AIOPIPE_FILEMAP");
	struct statfs sfs;
	struct stat st;

	self->fds[0] = self->fds[1] = self->backing = -1;
	self->map = MAP_FAILED;
	switch (variant->mem) {
	case MEM_FILE_SHARED:
		if (!path || !*path)
			SKIP(return, "AIOPIPE_FILEMAP unset: %s",
			     "no file on a disk file system (pin_filemap.sh)");
		self->backing = open(path, O_RDWR);
		ASSERT_LE(0, self->backing) TH_LOG("%s: %s", path, strerror(errno));
		ASSERT_EQ(0, fstatfs(self->backing, &sfs));
		if (sfs.f_type == TMPFS_MAGIC || sfs.f_type == RAMFS_MAGIC)
			SKIP(return, "%s is on tmpfs/ramfs, not a disk file system",
			     path);
		ASSERT_EQ(0, fstat(self->backing, &st));
		ASSERT_LE(MAP_LEN, st.st_size)
			TH_LOG("%s is smaller than %d bytes", path, MAP_LEN);
		self->map = mmap(NULL, MAP_LEN, PROT_READ | PROT_WRITE,
				 MAP_SHARED, self->backing, 0);
		break;
	case MEM_ANON_PRIVATE:
		self->map = mmap(NULL, MAP_LEN, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		break;
	case MEM_MEMFD_SHARED:
		self->backing = memfd_create("aiopipe-pin", MFD_CLOEXEC);
		ASSERT_LE(0, self->backing);
		ASSERT_EQ(0, ftruncate(self->backing, MAP_LEN));
		self->map = mmap(NULL, MAP_LEN, PROT_READ | PROT_WRITE,
				 MAP_SHARED, self->backing, 0);
		break;
	}
	ASSERT_NE(MAP_FAILED, self->map) TH_LOG("mmap: %s", strerror(errno));
	memset(self->map, '.', MAP_LEN);
	ASSERT_EQ(0, ap_pair(self->fds, 0, CAP, AIOPIPE_ENGINE_DIRECT,
			     AIOPIPE_FILTER_ON));
	ASSERT_EQ(CAP, aiopipe_get_capacity(self->fds[0]));
	ASSERT_EQ(0, io_setup(4, &self->ctx));
}

FIXTURE_TEARDOWN(pin)
{
	if (self->ctx)
		io_destroy(self->ctx);
	backend_close(self->fds);
	if (self->map != MAP_FAILED)
		munmap(self->map, MAP_LEN);
	if (self->backing >= 0)
		close(self->backing);
}

/*
 * The first "read:" or "write:" line of /proc/self/fdinfo/@fd (an end lists
 * the channel's pending requests) into @line; false if there is none.
 */
static bool pending_line(int fd, const char *dir, char *line, size_t len)
{
	char path[64], buf[4096], key[16];
	ssize_t n;
	char *p, *e;
	int f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = open(path, O_RDONLY);
	if (f < 0)
		return false;
	n = read(f, buf, sizeof(buf) - 1);
	close(f);
	if (n <= 0)
		return false;
	buf[n] = 0;
	snprintf(key, sizeof(key), "%s:\t", dir);
	p = strstr(buf, key);
	if (!p)
		return false;
	e = strchrnul(p, '\n');
	snprintf(line, len, "%.*s", (int)(e - p), p);
	return true;
}

static const char *mem_name(enum mem mem)
{
	switch (mem) {
	case MEM_FILE_SHARED:
		return "a MAP_SHARED file mapping";
	case MEM_ANON_PRIVATE:
		return "anonymous MAP_PRIVATE memory";
	default:
		return "a MAP_SHARED memfd";
	}
}

/*
 *   test                                   aiopipe (direct engine)
 *   PREAD 8192 into the buffer ----------> ring empty: queued; pinned
 *                                          (anon, memfd) or not (file)
 *   fdinfo "read: queued direct|retry"; pinned_pages 2 or 0
 *   write 8192 bytes ---------------------> into the request (direct) or
 *                                          the ring (room for all of it),
 *                                          then a retry moves them at once
 *   the event: 8192; the buffer (and the file) hold the bytes; nothing
 *   pinned or pending
 */
TEST_F(pin, pread_into_the_buffer)
{
	const char *eng = variant->pinned ? "direct" : "retry";
	char line[256], want[64], src[LEN], back[LEN];
	struct io_event ev;
	struct iocb cb;
	long res;

	if (_metadata->skip)
		return;
	io_prep_pread(&cb, self->fds[0], self->map, LEN, 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	ASSERT_TRUE(pending_line(self->fds[0], "read", line, sizeof(line)))
		TH_LOG("the read is not pending");
	snprintf(want, sizeof(want), " queued %s done 0 left %d", eng, LEN);
	EXPECT_NE(NULL, strstr(line, want))
		TH_LOG("a read into %s: fdinfo \"%s\", expected \"%s\"",
		       mem_name(variant->mem), line, want);
	EXPECT_EQ(variant->pinned ? LEN / PAGE : 0,
		  AP_STAT(self->fds[0], pinned_pages))
		TH_LOG("pinned pages of a read into %s", mem_name(variant->mem));

	ap_fill(src, LEN, 0);
	ASSERT_EQ(LEN, ap_write_full(self->fds[1], src, LEN));
	res = ap_reap1(self->ctx, &ev);
	EXPECT_EQ(LEN, res);
	EXPECT_EQ(-1, ap_check(self->map, LEN, 0));
	EXPECT_EQ('.', self->map[LEN]);
	if (variant->mem != MEM_ANON_PRIVATE) {
		ASSERT_EQ(LEN, pread(self->backing, back, LEN, 0));
		EXPECT_EQ(-1, ap_check(back, LEN, 0))
			TH_LOG("the file does not hold the bytes read");
	}
	AP_EXPECT_IDLE(self->fds[0]);
}

/*
 *   test                                   aiopipe (direct engine)
 *   write 16384: the ring is full
 *   PWRITE 8192 out of the buffer -------> queued; pinned (anon, memfd)
 *                                          or not (file)
 *   fdinfo "write: queued direct|retry"; pinned_pages 2 or 0
 *   read 16384 + 8192 --------------------> the filler, then the buffer
 *   the event: 8192; nothing pinned or pending
 */
TEST_F(pin, pwrite_out_of_the_buffer)
{
	const char *eng = variant->pinned ? "direct" : "retry";
	char line[256], want[64], fill[CAP], got[CAP + LEN];
	struct io_event ev;
	struct iocb cb;
	ssize_t n;
	long res;

	if (_metadata->skip)
		return;
	ap_fill(fill, CAP, 0);
	ASSERT_EQ(CAP, write(self->fds[1], fill, CAP));
	ap_fill(self->map, LEN, CAP);
	io_prep_pwrite(&cb, self->fds[1], self->map, LEN, 0);
	ASSERT_EQ(1, ap_submit1(self->ctx, &cb));
	ASSERT_TRUE(pending_line(self->fds[1], "write", line, sizeof(line)))
		TH_LOG("the write is not pending");
	snprintf(want, sizeof(want), " queued %s done 0 left %d", eng, LEN);
	EXPECT_NE(NULL, strstr(line, want))
		TH_LOG("a write out of %s: fdinfo \"%s\", expected \"%s\"",
		       mem_name(variant->mem), line, want);
	EXPECT_EQ(variant->pinned ? LEN / PAGE : 0,
		  AP_STAT(self->fds[0], pinned_pages))
		TH_LOG("pinned pages of a write out of %s",
		       mem_name(variant->mem));

	n = ap_read_full(self->fds[0], got, sizeof(got));
	EXPECT_EQ((ssize_t)sizeof(got), n);
	EXPECT_EQ(-1, ap_check(got, sizeof(got), 0));
	res = ap_reap1(self->ctx, &ev);
	EXPECT_EQ(LEN, res);
	AP_EXPECT_IDLE(self->fds[0]);
}

TEST_HARNESS_MAIN
