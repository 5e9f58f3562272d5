// SPDX-License-Identifier: GPL-2.0
/*
 * Loading the module (kmod/main.c): a parameter out of range is EINVAL,
 * said by the parameter's setter or by aiopipe_init()'s own check before
 * anything is created, and leaves nothing loaded.
 *
 * It unloads the module, so it runs only where the module file is at hand
 * and nothing else holds the module: in scripts/vm-run's guest (AIOPIPE_KO,
 * default /lib/aiopipe/aiopipe.ko), never against a host's loaded module.
 * Each test's teardown loads the module back with the parameters it had.
 *
 * Not here: an allocation failing inside aiopipe_init(). /proc/self/fail-nth
 * cannot aim at it alone: counting from the load, it fails the module
 * loader's own allocations first, and on 6.1 one of those (the tracepoint
 * fields, event_define_fields()) is a WARN_ON_ONCE in the kernel
 * (docs/hardening.md, "Coverage").
 */
#include <dirent.h>
#include <sys/syscall.h>

#include "kselftest_harness.h"
#include "backend.h"

#define MODULE_DIR	"/sys/module/aiopipe"
#define PARAMS_DIR	MODULE_DIR "/parameters"

static bool module_loaded(void)
{
	return access(MODULE_DIR, F_OK) == 0;
}

static int load(const char *ko, const char *params)
{
	int fd = open(ko, O_RDONLY | O_CLOEXEC);
	int ret;

	if (fd < 0)
		return -errno;
	ret = syscall(SYS_finit_module, fd, params, 0) ? -errno : 0;
	close(fd);
	return ret;
}

static int unload(void)
{
	return syscall(SYS_delete_module, "aiopipe", O_NONBLOCK) ? -errno : 0;
}

static int read_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

/* The parameters it was loaded with, "name=value ..." from sysfs. */
static int saved_params(char *buf, size_t size)
{
	DIR *d = opendir(PARAMS_DIR);
	struct dirent *e;
	char path[512], val[128];
	size_t len = 0;

	if (!d)
		return -errno;
	buf[0] = '\0';
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), PARAMS_DIR "/%s", e->d_name);
		if (read_file(path, val, sizeof(val)))
			continue;
		len += snprintf(buf + len, size - len, "%s=%s ", e->d_name, val);
		if (len >= size) {
			closedir(d);
			return -ENOSPC;
		}
	}
	closedir(d);
	return 0;
}

/* What every test needs: the module file, unloaded, its parameters kept. */
struct modload {
	const char *ko;
	char params[1024];
};

/* 0, or a reason to skip */
static const char *modload_unload(struct __test_metadata *_metadata,
				  struct modload *m)
{
	static char why[128];
	char refcnt[32] = "";

	m->ko = getenv("AIOPIPE_KO") ?: "/lib/aiopipe/aiopipe.ko";
	if (access(m->ko, R_OK)) {
		snprintf(why, sizeof(why), "no module file to reload at %s (AIOPIPE_KO)", m->ko);
		return why;
	}
	if (read_file(MODULE_DIR "/refcnt", refcnt, sizeof(refcnt)) || strcmp(refcnt, "0")) {
		snprintf(why, sizeof(why), "the module is in use (refcnt %s)", refcnt);
		return why;
	}
	ASSERT_EQ(0, saved_params(m->params, sizeof(m->params)));
	ASSERT_EQ(0, unload());
	ASSERT_FALSE(module_loaded());
	return NULL;
}

/* Back as it was, whatever the test did. */
static void modload_reload(struct __test_metadata *_metadata, struct modload *m)
{
	if (!m->ko || access(m->ko, R_OK))
		return;
	if (!module_loaded())
		EXPECT_EQ(0, load(m->ko, m->params));
	EXPECT_EQ(0, access(AIOPIPE_DEV_FACTORY, F_OK));
}

FIXTURE(bad_param) {
	struct modload m;
};

/*
 * Refused by the parameter's setter (engine, filter, capacity) or by the
 * init's own check (fifos, fifo_mode), before anything is created.
 */
FIXTURE_VARIANT(bad_param) {
	const char *param;
};

FIXTURE_VARIANT_ADD(bad_param, fifos_over_64) { .param = "fifos=65" };
FIXTURE_VARIANT_ADD(bad_param, fifo_mode_not_a_mode) { .param = "fifo_mode=01000" };
FIXTURE_VARIANT_ADD(bad_param, capacity_over_max) { .param = "capacity=4294967295" };
FIXTURE_VARIANT_ADD(bad_param, engine_unknown) { .param = "engine=3" };
FIXTURE_VARIANT_ADD(bad_param, filter_unknown) { .param = "filter=2" };

FIXTURE_SETUP(bad_param)
{
	const char *why = modload_unload(_metadata, &self->m);

	if (why)
		SKIP(return, "%s", why);
}

FIXTURE_TEARDOWN(bad_param)
{
	modload_reload(_metadata, &self->m);
}

TEST_F(bad_param, is_einval_and_loads_nothing)
{
	char params[1200];

	snprintf(params, sizeof(params), "%s%s", self->m.params, variant->param);
	EXPECT_EQ(-EINVAL, load(self->m.ko, params));
	EXPECT_FALSE(module_loaded());
}

TEST_HARNESS_MAIN
