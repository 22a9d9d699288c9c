// SPDX-License-Identifier: GPL-2.0
/*
 * torture.c - a stress test of both backends, run from debugfs in the
 * spirit of locktorture:
 *
 *   echo "threads=16 seconds=20 keys=64 cleancache=1 toggle=1" \
 *	> /sys/kernel/debug/virtio_tmem/torture
 *
 * Kernel threads call the backends' hooks as the kernel does, each on
 * keys of its own, and check every answer against what they stored:
 *
 *  - frontswap threads store, load and invalidate pages of a swap type no
 *    swap area uses (the last one).  A load of a stored key must succeed
 *    and return its bytes: that is the promise frontswap makes the kernel.
 *  - cleancache threads put, get and invalidate pages and files of a pool
 *    that one more thread keeps destroying and re-creating (umount and
 *    mount); with toggle=1 it also flips the cleancache parameter.  A get
 *    may miss, but a hit must return the bytes of the newest put of the
 *    key since it was last invalidated (put-put-get coherency).
 *
 * The hooks' own rules hold: no two ops on one key at once, a store of a
 * stored key is preceded by its invalidation (as __frontswap_store() does),
 * puts run with interrupts off.  Every page's bytes depend on its key and
 * on a generation counter, so a stale page never passes for a fresh one.
 *
 * The write returns once the run is over: the length written if every
 * check passed, -EIO if any failed (dmesg says which).  Reading the file
 * gives the last run's figures.
 */
#include <linux/cleancache.h>
#include <linux/debugfs.h>
#include <linux/delay.h>
#include <linux/frontswap.h>
#include <linux/highmem.h>
#include <linux/kthread.h>
#include <linux/prandom.h>
#include <linux/sched/signal.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/swap.h>

#include "virtio_tmem_drv.h"

#define TORTURE_MAX_THREADS	64
#define TORTURE_OBJECTS		4	/* files per cleancache thread */

struct torture_params {
	unsigned int threads, seconds, keys;
	bool cleancache, toggle;
};

struct torture_run {
	struct torture_params p;
	unsigned long deadline;
	unsigned int fs_type;
	int cc_id;			/* the cleancache pool, or -1 */
	atomic_long_t stores, stores_ok, loads, invalidates;
	atomic_long_t puts, gets, hits, cycles, toggles;
	atomic_long_t failures;
};

struct torture_thread {
	struct torture_run *run;
	struct task_struct *task;
	unsigned int id;
	struct rnd_state rnd;
	u64 gen;			/* the last generation handed out */
	u64 *model;			/* per key: its generation, 0: none */
	struct page *page, *check;
};

static DEFINE_MUTEX(torture_mutex);	/* one run at a time */
static char torture_last[256] = "no run yet\n";

static u64 torture_mix(u64 x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* The bytes of generation @gen of key @key: half noise, half a pattern. */
static void torture_fill(struct page *page, u64 key, u64 gen)
{
	u64 *w = kmap_atomic(page), s = torture_mix(key ^ torture_mix(gen));
	unsigned int i;

	for (i = 0; i < PAGE_SIZE / sizeof(u64); i++)
		w[i] = i & 1 ? s ^ i : (s = torture_mix(s));
	kunmap_atomic(w);
}

static bool torture_same(struct page *a, struct page *b)
{
	void *x = kmap_atomic(a), *y = kmap_atomic(b);
	bool same = !memcmp(x, y, PAGE_SIZE);

	kunmap_atomic(y);
	kunmap_atomic(x);
	return same;
}

static void torture_fail(struct torture_thread *t, const char *what,
			 unsigned long key, u64 gen)
{
	if (atomic_long_inc_return(&t->run->failures) <= 20)
		pr_err("virtio_tmem: torture: thread %u: %s (key %lu, generation %llu)\n",
		       t->id, what, key, gen);
}

static bool torture_running(struct torture_thread *t)
{
	if (time_before(jiffies, t->run->deadline))
		return !kthread_should_stop();
	/* Done: wait to be stopped, so the task outlives kthread_stop(). */
	while (!kthread_should_stop())
		schedule_timeout_interruptible(HZ / 10);
	return false;
}

/* One key of the swap type, as the kernel's frontswap calls would use it. */
static void torture_fs_step(struct torture_thread *t)
{
	const struct frontswap_ops *ops = &virtio_tmem_frontswap_ops;
	struct torture_run *run = t->run;
	unsigned int k = prandom_u32_state(&t->rnd) % run->p.keys;
	unsigned int r = prandom_u32_state(&t->rnd) % 10;
	pgoff_t offset = (pgoff_t)t->id * run->p.keys + k;
	u64 *gen = &t->model[k];

	if (*gen && r < 4) {
		atomic_long_inc(&run->loads);
		memset(page_address(t->page), 0x5a, PAGE_SIZE);
		if (ops->load(run->fs_type, offset, t->page)) {
			torture_fail(t, "frontswap load of a stored page failed",
				     offset, *gen);
			*gen = 0;
			return;
		}
		torture_fill(t->check, offset, *gen);
		if (!torture_same(t->page, t->check))
			torture_fail(t, "frontswap load returned the wrong bytes",
				     offset, *gen);
	} else if (r < 8) {
		if (*gen)
			ops->invalidate_page(run->fs_type, offset);
		torture_fill(t->page, offset, ++t->gen);
		atomic_long_inc(&run->stores);
		*gen = ops->store(run->fs_type, offset, t->page) ? 0 : t->gen;
		if (*gen)
			atomic_long_inc(&run->stores_ok);
	} else if (*gen) {
		ops->invalidate_page(run->fs_type, offset);
		atomic_long_inc(&run->invalidates);
		*gen = 0;
	}
}

static struct cleancache_filekey torture_filekey(struct torture_thread *t,
						 unsigned int obj)
{
	struct cleancache_filekey key = {};

	key.u.ino = 1000000 + t->id * TORTURE_OBJECTS + obj;
	return key;
}

/* One key of the cleancache pool, as the page cache would use it. */
static void torture_cc_step(struct torture_thread *t)
{
	const struct cleancache_ops *ops = &virtio_tmem_cleancache_ops;
	struct torture_run *run = t->run;
	unsigned int per_obj = max(run->p.keys / TORTURE_OBJECTS, 1U);
	unsigned int k = prandom_u32_state(&t->rnd) % (per_obj * TORTURE_OBJECTS);
	unsigned int obj = k / per_obj, index = k % per_obj, i;
	unsigned int r = prandom_u32_state(&t->rnd) % 20;
	struct cleancache_filekey key = torture_filekey(t, obj);
	unsigned long flags, name = key.u.ino << 16 | index;
	int id = READ_ONCE(run->cc_id);
	u64 *gen = &t->model[k];

	if (id < 0)
		return;
	if (r < 8) {
		torture_fill(t->page, name, ++t->gen);
		local_irq_save(flags);
		ops->put_page(id, key, index, t->page);
		local_irq_restore(flags);
		*gen = t->gen;
		atomic_long_inc(&run->puts);
	} else if (r < 17) {
		atomic_long_inc(&run->gets);
		memset(page_address(t->page), 0x5a, PAGE_SIZE);
		if (ops->get_page(id, key, index, t->page))
			return;
		atomic_long_inc(&run->hits);
		if (!*gen) {
			torture_fail(t, "cleancache hit on an invalidated page",
				     name, 0);
			return;
		}
		torture_fill(t->check, name, *gen);
		if (!torture_same(t->page, t->check))
			torture_fail(t, "cleancache hit returned stale or wrong bytes",
				     name, *gen);
	} else if (r < 19) {
		ops->invalidate_page(id, key, index);
		*gen = 0;
	} else {
		ops->invalidate_inode(id, key);
		for (i = 0; i < per_obj; i++)
			t->model[obj * per_obj + i] = 0;
	}
}

static int torture_worker(void *arg)
{
	struct torture_thread *t = arg;
	bool cc = t->run->p.cleancache && t->id % 2;

	while (torture_running(t)) {
		if (cc)
			torture_cc_step(t);
		else
			torture_fs_step(t);
		cond_resched();
	}
	return 0;
}

/* Mount and unmount: destroy and re-create the cleancache pool. */
static int torture_cycler(void *arg)
{
	struct torture_thread *t = arg;
	struct torture_run *run = t->run;
	unsigned int steps;
	int id;

	while (torture_running(t)) {
		id = virtio_tmem_cleancache_ops.init_fs(PAGE_SIZE);
		if (id < 0) {
			usleep_range(10000, 20000);
			continue;
		}
		WRITE_ONCE(run->cc_id, id);
		for (steps = 1 + prandom_u32_state(&t->rnd) % 10; steps; steps--) {
			usleep_range(10000, 20000);
			if (run->p.toggle && !(prandom_u32_state(&t->rnd) % 4)) {
				WRITE_ONCE(virtio_tmem_cleancache_on,
					   !READ_ONCE(virtio_tmem_cleancache_on));
				atomic_long_inc(&run->toggles);
			}
		}
		WRITE_ONCE(run->cc_id, -1);
		virtio_tmem_cleancache_ops.invalidate_fs(id);
		atomic_long_inc(&run->cycles);
		/* unmounted for a while, as between a umount and a mount */
		usleep_range(10000, 20000);
	}
	return 0;
}

static int torture_parse(char *buf, struct torture_params *p)
{
	char *tok, *val;
	unsigned int v;

	*p = (struct torture_params){ .threads = 16, .seconds = 10, .keys = 64 };
	while ((tok = strsep(&buf, " \t\n"))) {
		if (!*tok)
			continue;
		val = strchr(tok, '=');
		if (!val || kstrtouint(val + 1, 0, &v))
			return -EINVAL;
		*val = '\0';
		if (!strcmp(tok, "threads") && v && v <= TORTURE_MAX_THREADS)
			p->threads = v;
		else if (!strcmp(tok, "seconds") && v && v <= 3600)
			p->seconds = v;
		else if (!strcmp(tok, "keys") && v && v <= 4096)
			p->keys = v;
		else if (!strcmp(tok, "cleancache") && v <= 1)
			p->cleancache = v;
		else if (!strcmp(tok, "toggle") && v <= 1)
			p->toggle = v;
		else
			return -EINVAL;
	}
	return 0;
}

static void torture_free(struct torture_thread *t, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		if (t[i].task)
			kthread_stop(t[i].task);
	}
	for (i = 0; i < n; i++) {
		if (t[i].page)
			__free_page(t[i].page);
		if (t[i].check)
			__free_page(t[i].check);
		kvfree(t[i].model);
	}
	kfree(t);
}

static int torture_start(struct torture_run *run, struct torture_thread *t,
			 unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		t[i].run = run;
		t[i].id = i;
		prandom_seed_state(&t[i].rnd, 0x70e7 + i);
		t[i].model = kvcalloc(run->p.keys, sizeof(u64), GFP_KERNEL);
		t[i].page = alloc_page(GFP_KERNEL);
		t[i].check = alloc_page(GFP_KERNEL);
		if (!t[i].model || !t[i].page || !t[i].check)
			return -ENOMEM;
	}
	for (i = 0; i < n; i++) {
		bool cycler = run->p.cleancache && i == n - 1;

		t[i].task = kthread_run(cycler ? torture_cycler : torture_worker,
					&t[i], "tmem_torture/%u", i);
		if (IS_ERR(t[i].task)) {
			int err = PTR_ERR(t[i].task);

			t[i].task = NULL;
			return err;
		}
	}
	return 0;
}

static int torture_run(struct torture_run *run)
{
	struct virtio_tmem_pool *pool;
	unsigned int n = run->p.threads + run->p.cleancache;
	bool cc_on = READ_ONCE(virtio_tmem_cleancache_on);
	struct torture_thread *t;
	int err;

	run->fs_type = MAX_SWAPFILES - 1;
	run->cc_id = -1;
	pool = &virtio_tmem_fs_pools[run->fs_type];
	if (READ_ONCE(pool->in_use))
		return -EBUSY;
	t = kcalloc(n, sizeof(*t), GFP_KERNEL);
	if (!t)
		return -ENOMEM;
	virtio_tmem_frontswap_pool_init(run->fs_type, false);
	run->deadline = jiffies + run->p.seconds * HZ;
	err = torture_start(run, t, n);
	if (!err)
		msleep_interruptible(run->p.seconds * 1000);
	torture_free(t, n);
	/* swapoff: frees what the host and the guest hold of the type */
	virtio_tmem_frontswap_ops.invalidate_area(run->fs_type);
	WRITE_ONCE(virtio_tmem_cleancache_on, cc_on);
	return err;
}

static ssize_t torture_write(struct file *file, const char __user *ubuf,
			     size_t len, loff_t *ppos)
{
	struct torture_run *run;
	char *buf;
	long failures;
	int err;

	buf = memdup_user_nul(ubuf, min_t(size_t, len, 255));
	if (IS_ERR(buf))
		return PTR_ERR(buf);
	run = kzalloc(sizeof(*run), GFP_KERNEL);
	err = run ? torture_parse(buf, &run->p) : -ENOMEM;
	kfree(buf);
	if (err)
		goto out;
	if (!mutex_trylock(&torture_mutex)) {
		err = -EBUSY;
		goto out;
	}
	pr_info("virtio_tmem: torture: %u threads, %u s, %u keys each%s%s\n",
		run->p.threads, run->p.seconds, run->p.keys,
		run->p.cleancache ? ", cleancache" : "",
		run->p.toggle ? ", toggling" : "");
	err = torture_run(run);
	failures = atomic_long_read(&run->failures);
	snprintf(torture_last, sizeof(torture_last),
		 "stores=%ld stored=%ld loads=%ld invalidates=%ld puts=%ld gets=%ld hits=%ld cycles=%ld toggles=%ld failures=%ld error=%d\n",
		 atomic_long_read(&run->stores), atomic_long_read(&run->stores_ok),
		 atomic_long_read(&run->loads), atomic_long_read(&run->invalidates),
		 atomic_long_read(&run->puts), atomic_long_read(&run->gets),
		 atomic_long_read(&run->hits), atomic_long_read(&run->cycles),
		 atomic_long_read(&run->toggles), failures, err);
	pr_info("virtio_tmem: torture: %s", torture_last);
	mutex_unlock(&torture_mutex);
	if (!err && failures)
		err = -EIO;
out:
	kfree(run);
	return err ? err : len;
}

static int torture_show(struct seq_file *m, void *v)
{
	mutex_lock(&torture_mutex);
	seq_puts(m, torture_last);
	mutex_unlock(&torture_mutex);
	return 0;
}

static int torture_open(struct inode *inode, struct file *file)
{
	return single_open(file, torture_show, NULL);
}

static const struct file_operations torture_fops = {
	.owner = THIS_MODULE,
	.open = torture_open,
	.read = seq_read,
	.write = torture_write,
	.llseek = seq_lseek,
	.release = single_release,
};

void virtio_tmem_torture_debugfs(struct dentry *dir)
{
	debugfs_create_file("torture", 0600, dir, NULL, &torture_fops);
}
