// SPDX-License-Identifier: GPL-2.0
/*
 * Deliberately broken test module for the runner's own tests: two kthreads
 * increment one plain counter with no lock, a read-modify-write data race.
 * Under KCSAN (make check-race) this is reported as
 *   "BUG: KCSAN: data-race in dr_thread / dr_thread".
 * On a kernel without KCSAN it loads, races harmlessly and unloads silently.
 * The threads run until a bounded number of increments is done, so init
 * returns in well under a second even under TCG.
 */
#include <linux/completion.h>
#include <linux/kthread.h>
#include <linux/module.h>

#define DR_THREADS	2
#define DR_LOOPS	200000

static unsigned long dr_counter;
static DECLARE_COMPLETION(dr_done);
static atomic_t dr_running = ATOMIC_INIT(DR_THREADS);

static int dr_thread(void *unused)
{
	int i;

	for (i = 0; i < DR_LOOPS; i++) {
		dr_counter++;		/* racy on purpose: no lock, no marking */
		cpu_relax();
	}
	if (atomic_dec_and_test(&dr_running))
		complete(&dr_done);
	return 0;
}

static int __init data_race_init(void)
{
	struct task_struct *t;
	int i;

	for (i = 0; i < DR_THREADS; i++) {
		t = kthread_run(dr_thread, NULL, "data_race/%d", i);
		if (IS_ERR(t)) {
			/* count the threads that will never run */
			if (atomic_sub_and_test(DR_THREADS - i, &dr_running))
				complete(&dr_done);
			break;
		}
	}
	wait_for_completion(&dr_done);
	pr_info("data_race: %u threads, counter %lu of %u increments\n",
		DR_THREADS, READ_ONCE(dr_counter), DR_THREADS * DR_LOOPS);
	return 0;
}

static void __exit data_race_exit(void)
{
}

module_init(data_race_init);
module_exit(data_race_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("aiopipe runner self-test: a plain data race for KCSAN");
