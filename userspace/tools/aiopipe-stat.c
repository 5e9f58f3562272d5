// SPDX-License-Identifier: GPL-2.0
/*
 * aiopipe-stat: print aiopipe counters, global (through /dev/aiopipe) or of
 * one channel (an inherited fd, or a named FIFO path).
 *
 *   aiopipe-stat                      one "name value" line per counter
 *   aiopipe-stat --csv                a header line and one CSV row
 *   aiopipe-stat --watch 1 [--count N]
 *                                     every second: cumulative values and the
 *                                     change since the previous sample (CSV:
 *                                     one row per sample, with a time column)
 *   aiopipe-stat --fd 3 3</dev/aiopipe0   the channel behind fd 3
 *   aiopipe-stat --path /dev/aiopipe0     the same, opening it O_RDONLY|O_NONBLOCK
 *
 * In a program, the same numbers come from aiopipe_stats(fd, &st) in
 * libaiopipe (fd < 0 for the global ones).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "libaiopipe.h"

static void usage(FILE *f)
{
	fprintf(f,
"usage: aiopipe-stat [--csv] [--watch SECS [--count N]] [--fd FD | --path PATH]\n"
"Print aiopipe counters: global (default), or of the channel behind an open\n"
"fd or a named FIFO.  Plain output is one \"name value\" line per counter;\n"
"--watch adds the change since the last sample; --csv prints a header and one\n"
"row per sample (watch rows start with the elapsed seconds).\n"
"  -c, --csv          CSV: a header line, then one row per sample\n"
"  -w, --watch SECS   sample every SECS seconds (fractions allowed) until killed\n"
"  -n, --count N      with --watch: stop after N samples\n"
"  -f, --fd FD        the channel behind the open file descriptor FD\n"
"  -p, --path PATH    the channel behind PATH (a named FIFO, opened\n"
"                     O_RDONLY|O_NONBLOCK)\n"
"  -h, --help         this text\n"
"      --version      print the version and exit\n"
"Exit status: 0 ok, 1 the counters could not be read, 2 usage.\n");
}

static int get(int fd, struct aiopipe_stats *st, const char *what)
{
	int ret = aiopipe_stats(fd, st);

	if (ret < 0) {
		fprintf(stderr, "aiopipe-stat: %s: %s%s\n", what, strerror(-ret),
			fd < 0 && (ret == -ENOENT || ret == -ENODEV) ?
			" (is aiopipe.ko loaded?)" : "");
		exit(1);
	}
	return ret;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "csv", no_argument, NULL, 'c' },
		{ "watch", required_argument, NULL, 'w' },
		{ "count", required_argument, NULL, 'n' },
		{ "fd", required_argument, NULL, 'f' },
		{ "path", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct aiopipe_stats cur, prev;
	const char *what = AIOPIPE_DEV_FACTORY;
	double watch = 0;
	long count = -1, sample = 0;
	bool csv = false;
	int fd = -1, opt, i, n = aiopipe_stat_count();
	struct timespec t0, t;
	char *end;

	while ((opt = getopt_long(argc, argv, "cw:n:f:p:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			csv = true;
			break;
		case 'w':
			watch = strtod(optarg, &end);
			if (end == optarg || *end || !(watch > 0)) {
				fprintf(stderr, "aiopipe-stat: bad --watch '%s'\n", optarg);
				return 2;
			}
			break;
		case 'n':
			count = strtol(optarg, &end, 0);
			if (end == optarg || *end || count < 1) {
				fprintf(stderr, "aiopipe-stat: bad --count '%s'\n", optarg);
				return 2;
			}
			break;
		case 'f':
			fd = (int)strtol(optarg, &end, 0);
			if (end == optarg || *end || fd < 0) {
				fprintf(stderr, "aiopipe-stat: bad --fd '%s'\n", optarg);
				return 2;
			}
			what = "fd";
			break;
		case 'p':
			what = optarg;
			fd = open(optarg, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
			if (fd < 0) {
				fprintf(stderr, "aiopipe-stat: %s: %s\n", optarg, strerror(errno));
				return 1;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("aiopipe-stat %s\n", AIOPIPE_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}

	get(fd, &cur, what);
	if (csv) {
		if (watch)
			printf("seconds,");
		for (i = 0; i < n; i++)
			printf("%s%s", aiopipe_stat_name(i), i + 1 < n ? "," : "\n");
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (csv) {
			if (watch)
				printf("%.3f,", (double)(t.tv_sec - t0.tv_sec) +
				       (double)(t.tv_nsec - t0.tv_nsec) / 1e9);
			for (i = 0; i < n; i++)
				printf("%llu%s", aiopipe_stat_value(&cur, i),
				       i + 1 < n ? "," : "\n");
		} else {
			if (watch)
				printf("# %.3f s\n", (double)(t.tv_sec - t0.tv_sec) +
				       (double)(t.tv_nsec - t0.tv_nsec) / 1e9);
			for (i = 0; i < n; i++) {
				unsigned long long v = aiopipe_stat_value(&cur, i);

				if (watch && sample)
					printf("%-20s %llu (%+lld)\n", aiopipe_stat_name(i), v,
					       (long long)(v - aiopipe_stat_value(&prev, i)));
				else
					printf("%-20s %llu\n", aiopipe_stat_name(i), v);
			}
		}
		fflush(stdout);
		if (!watch || (count > 0 && ++sample >= count))
			break;
		if (count < 0)
			sample++;
		prev = cur;
		{
			struct timespec ts = { (time_t)watch,
					       (long)((watch - (double)(time_t)watch) * 1e9) };

			nanosleep(&ts, NULL);
		}
		get(fd, &cur, what);
	}
	return 0;
}
