/* SPDX-License-Identifier: LGPL-2.1 OR MIT */
/*
 * libaiopipe: a tiny helper library for aiopipe users.
 * Every function returns 0 (or a value >= 0) on success and -errno on
 * failure; errno is left as the failing call set it.
 */
#ifndef LIBAIOPIPE_H
#define LIBAIOPIPE_H

#include <linux/aiopipe.h>

#ifdef __cplusplus
extern "C" {
#endif

/* pipe2() for aiopipe: fds[0] read end, fds[1] write end. */
int aiopipe_pair(int fds[2], int flags);
/* The same with a capacity (bytes, 0 = default) and engine (AIOPIPE_ENGINE_*). */
int aiopipe_pair_ex(int fds[2], int flags, unsigned int capacity,
		    unsigned int engine);
/* Returns the new capacity, like fcntl(F_SETPIPE_SZ). */
int aiopipe_set_capacity(int fd, unsigned int bytes);
int aiopipe_get_capacity(int fd);
int aiopipe_set_engine(int fd, unsigned int engine);
int aiopipe_get_engine(int fd);
int aiopipe_set_filter(int fd, unsigned int on);
int aiopipe_get_filter(int fd);
/* Counters of fd's channel; fd < 0 for the global ones. */
int aiopipe_stats(int fd, struct aiopipe_stats *st);
/* Name and value of counter i (0 .. aiopipe_stat_count()-1). */
int aiopipe_stat_count(void);
const char *aiopipe_stat_name(int i);
unsigned long long aiopipe_stat_value(const struct aiopipe_stats *st, int i);
/* "retry" / "direct" <-> AIOPIPE_ENGINE_*; -EINVAL for anything else. */
int aiopipe_engine_parse(const char *name);
const char *aiopipe_engine_name(unsigned int engine);

/* fault injection (docs/hardening.md): the calling thread opts in to failslab */
int aiopipe_fail_self(void);

#ifdef __cplusplus
}
#endif

#endif /* LIBAIOPIPE_H */
