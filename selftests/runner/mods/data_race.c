// SPDX-License-Identifier: GPL-2.0
/*
 * Deliberately broken test module for the runner's own tests: two kthreads
 * increment one plain counter with no lock, a read-modify-write data race.
 * Under KCSAN (make check-race) this is reported as
 *   "BUG: KCSAN: data-race in dr_thread / dr_thread".
 * On a kernel without KCSAN it loads, races harmlessly and unloads silently.
 * The threads stop after a bounded number of increments, so init returns
 * in well under a second even under TCG.
 */
#include <linux/atomic.h>
#include <linux/kthread.h>
#include <linux/module.h>
#include <linux/sched/task.h>

#define DR_THREADS	2
#define DR_LOOPS	200000

static unsigned long dr_counter;
static atomic_t dr_started = ATOMIC_INIT(0);

/*
 * Every thread waits for the others before it races, so the loops overlap,
 * and runs until told to stop: kthread() skips a thread function whose stop
 * came before its first run, which would leave nobody to race with.
 */
static int dr_thread(void *unused)
{
	int i;

	atomic_inc(&dr_started);
	while (atomic_read(&dr_started) < DR_THREADS)
		cond_resched();	/* one vCPU, no preemption: let the other run */
	for (i = 0; i < DR_LOOPS; i++) {
		dr_counter++;		/* racy on purpose: no lock, no marking */
		cpu_relax();
	}
	while (!kthread_should_stop())
		schedule_timeout_interruptible(1);
	return 0;
}

/*
 * kthread_stop() returns once dr_thread() has returned, so no thread runs
 * module text after init: the module can be unloaded at once.
 */
static int __init data_race_init(void)
{
	struct task_struct *t[DR_THREADS];
	int i, n, err = 0;

	for (n = 0; n < DR_THREADS; n++) {
		t[n] = kthread_create(dr_thread, NULL, "data_race/%d", n);
		if (IS_ERR(t[n])) {
			err = PTR_ERR(t[n]);
			break;
		}
		get_task_struct(t[n]);	/* it may exit before kthread_stop() */
		wake_up_process(t[n]);
	}
	/* all started (or one never will): then they race, then they stop */
	while (!err && atomic_read(&dr_started) < DR_THREADS)
		schedule_timeout_uninterruptible(1);
	if (err)	/* the started ones must not wait for the missing one */
		atomic_add(DR_THREADS, &dr_started);
	for (i = 0; i < n; i++) {
		kthread_stop(t[i]);
		put_task_struct(t[i]);
	}
	if (err)
		return err;
	pr_info("data_race: %d threads, counter %lu of %d increments\n",
		n, READ_ONCE(dr_counter), n * DR_LOOPS);
	return 0;
}

static void __exit data_race_exit(void)
{
}

module_init(data_race_init);
module_exit(data_race_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("aiopipe runner self-test: a plain data race for KCSAN");
