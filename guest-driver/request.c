// SPDX-License-Identifier: GPL-2.0
/*
 * request.c - batches of ops on the virtio-tmem request queues.
 *
 * Each queue fills one open batch.  Puts and flushes are appended and the
 * batch is sent when it is full, when a synchronous op (a put without
 * credit, a cleancache get, a pool op) joins it, or when its timer fires;
 * so a burst of puts costs one notification per batch, and a get carries
 * the puts queued before it.  Ops on one key always use one queue, which
 * the device runs in order (spec 6.6).
 *
 * Ordering.  The ops of a queue reach the device in the order they joined
 * its sequence: the batches sent (on the ring or stalled before it, in
 * order), the open batch, then the flushes deferred for want of a batch.
 * An op joins only at the tail, and nothing is ever taken out of the
 * sequence to be sent later.  The one exception is a GET that needs no
 * order (a frontswap load, or a page brought back, see spec 6.9), which
 * may go alone in a batch of its own, ahead of the open batch.
 */
#include <linux/highmem.h>
#include <linux/jiffies.h>
#include <linux/ktime.h>
#include <linux/mm.h>
#include <linux/sched/clock.h>
#include <linux/slab.h>

#include "virtio_tmem_drv.h"

static unsigned int virtio_tmem_ops_cap(const struct virtio_tmem *vt)
{
	/* Room for the batch's pages, one synchronous op and a CREDITS op. */
	return min(vt->max_ops, vt->batch + 2);
}

/* Batches a queue may have out of its idle list at once. */
static unsigned int virtio_tmem_batches(void)
{
	unsigned int n = READ_ONCE(virtio_tmem_faults.batches);

	return n && n < VIRTIO_TMEM_BATCHES ? n : VIRTIO_TMEM_BATCHES;
}

/* Whether a batch can be taken: exact under q->lock, a hint without it. */
static bool virtio_tmem_can_take(const struct virtio_tmem_queue *q)
{
	return READ_ONCE(q->nbusy) < virtio_tmem_batches();
}

/* Whether a staging page is free, or will be once a request completes. */
static bool virtio_tmem_pages_coming(const struct virtio_tmem_queue *q)
{
	return READ_ONCE(q->nfree) || READ_ONCE(q->inflight) ||
	       !list_empty_careful(&q->stalled);
}

struct virtio_tmem_queue *virtio_tmem_queue_of(struct virtio_tmem *vt,
					       u64 hash)
{
	return &vt->queues[hash_64(hash, 32) % vt->nqueues];
}

bool virtio_tmem_take_credit(struct virtio_tmem *vt)
{
	return vt->has_credits && atomic_dec_if_positive(&vt->credits) >= 0;
}

/*
 * Top up the credits the driver holds with a CREDITS op riding on a batch
 * that is being sent anyway, so credits cost no notification of their own.
 */
static void virtio_tmem_ask_credits(struct virtio_tmem *vt,
				    struct virtio_tmem_batch *b)
{
	unsigned int held, want;
	struct virtio_tmem_op *op;

	if (!vt->has_credits || b->nops >= virtio_tmem_ops_cap(vt))
		return;
	held = atomic_read(&vt->credits) + atomic_read(&vt->credits_asked);
	if (held >= vt->max_credits / 2)
		return;
	want = vt->max_credits - held;
	op = &b->out->ops[b->nops];
	memset(op, 0, sizeof(*op));
	op->type = VIRTIO_TMEM_OP_CREDITS;
	op->arg = cpu_to_le32(want);
	memset(&b->slots[b->nops], 0, sizeof(b->slots[0]));
	b->slots[b->nops].class = VIRTIO_TMEM_CONTROL;
	b->nops++;
	b->classes |= BIT(VIRTIO_TMEM_CONTROL);
	b->credits_asked = want;
	atomic_add(want, &vt->credits_asked);
}

/* Take an idle batch, empty.  Caller must hold q->lock. */
static struct virtio_tmem_batch *virtio_tmem_batch_get(struct virtio_tmem_queue *q)
{
	struct virtio_tmem_batch *b;

	lockdep_assert_held(&q->lock);
	if (!virtio_tmem_can_take(q))
		return NULL;
	b = list_first_entry_or_null(&q->idle, struct virtio_tmem_batch, node);
	if (WARN_ON_ONCE(!b))
		return NULL;
	list_del(&b->node);
	q->nbusy++;
	b->busy = true;
	b->nops = 0;
	b->nputs = 0;
	b->ngets = 0;
	b->classes = 0;
	b->nstaged = 0;
	b->credits_asked = 0;
	b->ahead = false;
	return b;
}

static void virtio_tmem_batch_idle(struct virtio_tmem_queue *q,
				   struct virtio_tmem_batch *b)
{
	list_add(&b->node, &q->idle);
	q->nbusy--;
	b->busy = false;
}

/* Ask for staging pages given away to refused stores to be replaced. */
static void virtio_tmem_want_pages(struct virtio_tmem_queue *q)
{
	if (q->npages < q->vt->batch * VIRTIO_TMEM_STAGING)
		schedule_work(&q->refill_work);
}

/*
 * Account for one used request.  Every op's guest-side state is settled
 * here, including for a request the device could not run (@ran is false:
 * its ops count as failed with VIRTIO_TMEM_S_IO, which keeps frontswap
 * copies, makes loads retry, and poisons pools whose flushes were lost).
 * Caller must hold q->lock.
 */
static void virtio_tmem_complete(struct virtio_tmem_queue *q,
				 struct virtio_tmem_batch *b, bool ran)
{
	struct virtio_tmem *vt = q->vt;
	unsigned int i;

	lockdep_assert_held(&q->lock);
	for (i = 0; i < b->nops; i++) {
		const struct virtio_tmem_op *op = &b->out->ops[i];
		struct virtio_tmem_slot *s = &b->slots[i];
		u8 st = ran ? b->in->status[i].status : VIRTIO_TMEM_S_IO;
		u32 val = ran ? le32_to_cpu(b->in->status[i].value) : 0;
		bool ephemeral = s->pool &&
				 s->pool->kind == VIRTIO_TMEM_POOL_EPHEMERAL;

		switch (op->type) {
		case VIRTIO_TMEM_OP_PUT:
			if (s->credited && st != VIRTIO_TMEM_S_OK)
				atomic_inc(&vt->credits);
			if (s->waiter)
				break;	/* the caller's own page */
			if (!ephemeral) {
				virtio_tmem_fs_put_done(s, st, q);
				break;
			}
			if (st != VIRTIO_TMEM_S_OK) {
				virtio_tmem_filter_add(s->pool, op, -1);
				virtio_tmem_count(VIRTIO_TMEM_CLEANCACHE_PUT_REFUSED,
						  1);
			}
			q->pages[q->nfree++] = s->copy;
			break;
		case VIRTIO_TMEM_OP_FLUSH_PAGE:
			if (st == VIRTIO_TMEM_S_OK && ephemeral)
				virtio_tmem_filter_add(s->pool, op, -1);
			fallthrough;
		case VIRTIO_TMEM_OP_FLUSH_OBJECT:
			if (op->type == VIRTIO_TMEM_OP_FLUSH_OBJECT &&
			    st == VIRTIO_TMEM_S_OK && ephemeral)
				virtio_tmem_filter_drop_object(s->pool, op, val);
			if (st == VIRTIO_TMEM_S_OK || st == VIRTIO_TMEM_S_MISS)
				break;
			virtio_tmem_count(VIRTIO_TMEM_FLUSHES_LOST, 1);
			if (ephemeral)
				virtio_tmem_pool_poison(vt, s->pool);
			break;
		case VIRTIO_TMEM_OP_CREDITS:
			if (st == VIRTIO_TMEM_S_OK && val) {
				atomic_add(val, &vt->credits);
				virtio_tmem_count(VIRTIO_TMEM_CREDITS_GRANTED, val);
				WRITE_ONCE(vt->store_backoff, jiffies);
			}
			break;
		}
		if (s->waiter) {
			s->waiter->status = st;
			s->waiter->value = val;
			/* Status and value before done: the waiter reads them after. */
			smp_store_release(&s->waiter->done, true);
		}
	}
	if (ran && b->in->resp.credits) {
		u32 granted = le32_to_cpu(b->in->resp.credits);

		atomic_add(granted, &vt->credits);
		virtio_tmem_count(VIRTIO_TMEM_CREDITS_GRANTED, granted);
	}
	atomic_sub(b->credits_asked, &vt->credits_asked);
	virtio_tmem_batch_idle(q, b);
	virtio_tmem_want_pages(q);
}

/*
 * Add the stalled batches to the ring, oldest first, and notify.  A batch
 * the ring refuses stays, with those behind it, until a request completes
 * (virtio-blk waits the same way); with none in flight the timer retries,
 * backing off.  Nothing is failed for a local reason, so a load never
 * misses because the guest was short of memory.  Caller must hold q->lock.
 */
static void virtio_tmem_add_stalled(struct virtio_tmem_queue *q)
{
	struct virtio_tmem_batch *b;
	bool added = false;

	lockdep_assert_held(&q->lock);
	while ((b = list_first_entry_or_null(&q->stalled,
					     struct virtio_tmem_batch, node))) {
		struct scatterlist *sgs[] = { b->sg_out, b->sg_in };
		int err = -ENOSPC;

		/* No indirect table from the reserves: direct descriptors do. */
		if (!virtio_tmem_fault_add_fails())
			err = virtqueue_add_sgs(q->vq, sgs, 1, 1, b,
						GFP_NOWAIT | __GFP_NOWARN);
		if (err) {
			virtio_tmem_count(VIRTIO_TMEM_ADD_FAILURES, 1);
			break;
		}
		list_del(&b->node);
		q->inflight++;
		q->kick_classes |= b->classes;
		added = true;
	}
	if (list_empty(&q->stalled)) {
		q->retry_ms = 1;
	} else if (!q->inflight) {
		timer_reduce(&q->timer, jiffies + msecs_to_jiffies(q->retry_ms));
		q->retry_ms = min_t(unsigned int, 2 * q->retry_ms,
				    VIRTIO_TMEM_RETRY_MS);
	}
	if (added && virtqueue_kick_prepare(q->vq) && virtqueue_notify(q->vq)) {
		virtio_tmem_count(VIRTIO_TMEM_KICKS, 1);
		virtio_tmem_count_classes(virtio_tmem_class_kicks,
					  q->kick_classes);
		q->kick_classes = 0;
	}
}

/* Send @b, which is off every list, after those sent before it. */
static void virtio_tmem_send(struct virtio_tmem_queue *q,
			     struct virtio_tmem_batch *b)
{
	u64 start = virtio_tmem_profile_start();
	unsigned int i, j, no = 1, ni = 1;

	lockdep_assert_held(&q->lock);
	if (b->ahead) {
		/* Alone, so that the device may run it ahead: no CREDITS. */
		b->out->req.flags = cpu_to_le16(VIRTIO_TMEM_REQ_F_OVERTAKE);
	} else {
		virtio_tmem_ask_credits(q->vt, b);
		b->out->req.flags = 0;
		q->submitted++;
	}
	b->out->req.nops = cpu_to_le16(b->nops);
	sg_init_table(b->sg_out, 1 + b->nputs);
	sg_set_buf(&b->sg_out[0], b->out, struct_size(b->out, ops, b->nops));
	sg_init_table(b->sg_in, 1 + b->ngets);
	sg_set_buf(&b->sg_in[0], b->in, struct_size(b->in, status, b->nops));
	for (i = 0; i < b->nops; i++) {
		switch (b->out->ops[i].type) {
		case VIRTIO_TMEM_OP_PUT:
			sg_set_page(&b->sg_out[no++], b->slots[i].copy,
				    PAGE_SIZE, 0);
			break;
		case VIRTIO_TMEM_OP_GET_RANGE:
			for (j = 0; j < b->slots[i].nmore; j++)
				sg_set_page(&b->sg_in[ni + 1 + j],
					    b->slots[i].more[j], PAGE_SIZE, 0);
			fallthrough;
		case VIRTIO_TMEM_OP_GET:
		case VIRTIO_TMEM_OP_GET_EXCL:
			sg_set_page(&b->sg_in[ni], b->slots[i].target,
				    PAGE_SIZE, 0);
			ni += 1 + b->slots[i].nmore;
			break;
		}
	}
	virtio_tmem_count(VIRTIO_TMEM_REQUESTS, 1);
	list_add_tail(&b->node, &q->stalled);
	virtio_tmem_add_stalled(q);
	virtio_tmem_profile_end(VIRTIO_TMEM_PROFILE_NS_SEND, start);
}

/* Send the open batch.  Caller must hold q->lock. */
static void virtio_tmem_submit(struct virtio_tmem_queue *q)
{
	struct virtio_tmem_batch *b = q->open;

	lockdep_assert_held(&q->lock);
	if (!b)
		return;
	q->open = NULL;
	if (b->nops)
		virtio_tmem_send(q, b);
	else
		virtio_tmem_batch_idle(q, b);
}

static bool virtio_tmem_batch_full(const struct virtio_tmem *vt,
				   const struct virtio_tmem_batch *b)
{
	return b->nops + 1 >= virtio_tmem_ops_cap(vt) || b->nstaged >= vt->batch;
}

/*
 * Make an idle batch the open one, led by as many deferred flushes as fit.
 * Caller must hold q->lock.
 */
static struct virtio_tmem_batch *virtio_tmem_open(struct virtio_tmem_queue *q)
{
	struct virtio_tmem_batch *b;
	unsigned int i, n;

	b = virtio_tmem_batch_get(q);
	if (!b)
		return NULL;
	q->open = b;
	mod_timer(&q->timer, jiffies + msecs_to_jiffies(VIRTIO_TMEM_FLUSH_MS));
	n = min(q->ndeferred, virtio_tmem_ops_cap(q->vt) - 2);
	for (i = 0; i < n; i++) {
		b->out->ops[i] = q->deferred[i];
		b->slots[i] = q->deferred_slots[i];
		b->classes |= BIT(b->slots[i].class);
	}
	b->nops = n;
	q->ndeferred -= n;
	memmove(q->deferred, q->deferred + n,
		q->ndeferred * sizeof(*q->deferred));
	memmove(q->deferred_slots, q->deferred_slots + n,
		q->ndeferred * sizeof(*q->deferred_slots));
	return b;
}

/*
 * Hold a flush for the next batch, at the tail of the sequence.  Caller
 * must hold q->lock, and there must be no open batch.
 */
static struct virtio_tmem_op *virtio_tmem_defer(struct virtio_tmem_queue *q,
						struct virtio_tmem_slot **slot)
{
	unsigned int i = q->ndeferred;

	lockdep_assert_held(&q->lock);
	WARN_ON_ONCE(q->open);
	if (i >= VIRTIO_TMEM_DEFERRED)
		return NULL;
	q->ndeferred++;
	memset(&q->deferred[i], 0, sizeof(q->deferred[i]));
	*slot = &q->deferred_slots[i];
	memset(*slot, 0, sizeof(**slot));
	return &q->deferred[i];
}

/*
 * Move deferred flushes into batches, sending each full one, while idle
 * batches last.  The last one stays open for the timer to send, unless
 * @all.  Caller must hold q->lock.
 */
static void virtio_tmem_undefer(struct virtio_tmem_queue *q, bool all)
{
	lockdep_assert_held(&q->lock);
	while (q->ndeferred) {
		virtio_tmem_submit(q);
		if (!virtio_tmem_open(q))
			return;
	}
	if (all)
		virtio_tmem_submit(q);
}

/**
 * virtio_tmem_add_op - reserve an op at the tail of the queue's sequence
 * @q: the queue; caller must hold q->lock, taken with irqsave into @flags
 * @slot: set to the op's guest-side state, zeroed
 * @need_page: reserve a staging page too, in (*slot)->copy
 * @can_wait: the caller may sleep; q->lock is dropped while it waits
 * @flags: the caller's irqsave flags
 *
 * Return: the op, zeroed, or NULL if no batch has room and @can_wait is
 * false, or if @need_page and no staging page is free or on its way
 * back.  The caller fills the op and calls virtio_tmem_op_added() before
 * it drops q->lock.  A flush (!@need_page) that cannot wait and finds no
 * batch is deferred instead, behind the flushes deferred before it; then
 * q->open is NULL and virtio_tmem_op_added() has nothing to account.
 * While flushes are deferred, nothing else joins the open batch: the
 * deferred ones are older.
 */
struct virtio_tmem_op *virtio_tmem_add_op(struct virtio_tmem_queue *q,
					  struct virtio_tmem_slot **slot,
					  bool need_page, bool can_wait,
					  unsigned long *flags)
{
	struct virtio_tmem_batch *b;
	struct virtio_tmem_op *op;

	lockdep_assert_held(&q->lock);
	for (;;) {
		if (q->ndeferred)
			virtio_tmem_undefer(q, false);
		b = q->open;
		if (!q->ndeferred && !b)
			b = virtio_tmem_open(q);
		if (!b || q->ndeferred) {
			/* Every batch is busy. */
			if (!can_wait)
				return need_page ? NULL :
				       virtio_tmem_defer(q, slot);
			spin_unlock_irqrestore(&q->lock, *flags);
			wait_event(q->wait, virtio_tmem_can_take(q));
			spin_lock_irqsave(&q->lock, *flags);
			continue;
		}
		if (virtio_tmem_batch_full(q->vt, b) ||
		    (need_page && !q->nfree && b->nstaged)) {
			/* Send it; its staging pages come back with it. */
			virtio_tmem_submit(q);
			continue;
		}
		if (!need_page || q->nfree)
			break;
		/* Pages come back only from requests sent. */
		virtio_tmem_want_pages(q);
		if (!can_wait || !virtio_tmem_pages_coming(q))
			return NULL;
		spin_unlock_irqrestore(&q->lock, *flags);
		wait_event(q->wait, READ_ONCE(q->nfree) ||
			   !virtio_tmem_pages_coming(q));
		spin_lock_irqsave(&q->lock, *flags);
	}
	op = &b->out->ops[b->nops];
	memset(op, 0, sizeof(*op));
	*slot = &b->slots[b->nops];
	memset(*slot, 0, sizeof(**slot));
	if (need_page) {
		(*slot)->copy = q->pages[--q->nfree];
		b->nstaged++;
	}
	return op;
}

/* Count the op at b->nops into @b. */
static void virtio_tmem_account(struct virtio_tmem_batch *b)
{
	u8 type = b->out->ops[b->nops].type;

	if (type == VIRTIO_TMEM_OP_PUT)
		b->nputs++;
	else if (type == VIRTIO_TMEM_OP_GET || type == VIRTIO_TMEM_OP_GET_EXCL ||
		 type == VIRTIO_TMEM_OP_GET_RANGE)
		b->ngets += 1 + b->slots[b->nops].nmore;
	b->classes |= BIT(b->slots[b->nops].class);
	b->nops++;
}

/* Account the op virtio_tmem_add_op() gave out; send the batch if full. */
void virtio_tmem_op_added(struct virtio_tmem_queue *q)
{
	struct virtio_tmem_batch *b = q->open;

	lockdep_assert_held(&q->lock);
	if (!b)
		return;		/* a deferred flush */
	virtio_tmem_account(b);
	if (READ_ONCE(virtio_tmem_sync) || virtio_tmem_batch_full(q->vt, b))
		virtio_tmem_submit(q);
}

/**
 * virtio_tmem_queue_flush - queue a flush, never waiting
 * @q: the queue of its key
 * @flush: a FLUSH_PAGE or FLUSH_OBJECT; copied
 * @pool: the pool it names
 *
 * It joins the open batch, or is deferred behind the flushes deferred
 * before it.  May be called with interrupts off.
 *
 * Return: false if it could not be queued at all (counted in
 * flushes_lost); the caller decides what that costs.
 */
bool virtio_tmem_queue_flush(struct virtio_tmem_queue *q,
			     const struct virtio_tmem_op *flush,
			     struct virtio_tmem_pool *pool)
{
	struct virtio_tmem_slot *s;
	struct virtio_tmem_op *op;
	unsigned long flags;

	spin_lock_irqsave(&q->lock, flags);
	op = virtio_tmem_add_op(q, &s, false, false, &flags);
	if (op) {
		*op = *flush;
		s->class = VIRTIO_TMEM_FLUSH;
		s->pool = pool;
		virtio_tmem_op_added(q);
	}
	spin_unlock_irqrestore(&q->lock, flags);
	if (!op)
		virtio_tmem_count(VIRTIO_TMEM_FLUSHES_LOST, 1);
	return op;
}

/*
 * Complete every request the device has used, then let in what waited
 * for the ring.  Returns the classes of the ops completed, or 0 if none
 * was.  Caller must hold q->lock.
 */
static unsigned long virtio_tmem_reap(struct virtio_tmem_queue *q)
{
	unsigned long classes = 0;
	struct virtio_tmem_batch *b;
	bool any = false;
	unsigned int len;

	lockdep_assert_held(&q->lock);
	while ((b = virtqueue_get_buf(q->vq, &len))) {
		classes |= b->classes;
		q->inflight--;
		if (!b->ahead)
			q->completed++;
		virtio_tmem_complete(q, b,
				     len >= struct_size(b->in, status, b->nops));
		any = true;
	}
	if (any) {
		/* The ring has room again: first what waited for it, in order. */
		virtio_tmem_add_stalled(q);
		/* Deferred flushes lead new batches; the timer sends the last. */
		virtio_tmem_undefer(q, false);
	}
	return classes;
}

/*
 * virtio_tmem_poll_begin - turn @q's callbacks off for a synchronous op
 * that is about to be sent and will poll for its completion.  Caller must
 * hold q->lock, and call virtio_tmem_poll_end() after polling.
 */
static void virtio_tmem_poll_begin(struct virtio_tmem_queue *q)
{
	lockdep_assert_held(&q->lock);
	if (!q->npolling++)
		virtqueue_disable_cb(q->vq);
}

/*
 * virtio_tmem_poll_window - how many microseconds a synchronous op on @q
 * polls: twice the queue's recent answer time, so that answers as slow as
 * most are caught while polling, between poll_us and poll_max_us (either
 * may change at any time).  Answers slower than poll_max_us on average
 * (a spill read, a host that stays busy) no poll the limit allows would
 * catch: then only poll_us, and the op sleeps for its interrupt.
 */
static unsigned int virtio_tmem_poll_window(const struct virtio_tmem_queue *q)
{
	unsigned int base = READ_ONCE(virtio_tmem_poll_us);
	unsigned int top = max(base, READ_ONCE(virtio_tmem_poll_max_us));
	unsigned int typical = READ_ONCE(q->answer_ns) / NSEC_PER_USEC;

	if (typical > top)
		return base;
	return clamp(typical > top / 2 ? top : 2 * typical, base, top);
}

/*
 * virtio_tmem_poll_learn - fold an op's answer time, @waited_ns from the
 * start of its poll, into @q's running average (weight 1/8), capped at
 * twice poll_max_us so that one stalled answer moves the window little
 * while answers that stay slow still take the average past the limit.
 * Ops on a queue are served by one host thread, so they share it; a
 * racing update may be lost, which the next op makes up.
 */
static void virtio_tmem_poll_learn(struct virtio_tmem_queue *q, u64 waited_ns)
{
	u64 cap = 2ULL * READ_ONCE(virtio_tmem_poll_max_us) * NSEC_PER_USEC;
	u32 avg = READ_ONCE(q->answer_ns);
	u32 sample = min3(waited_ns, cap, (u64)U32_MAX);

	WRITE_ONCE(q->answer_ns, avg - avg / 8 + sample / 8);
}

/**
 * virtio_tmem_poll_window_max - the longest poll window of @vt's queues
 * @vt: the device
 *
 * Return: microseconds, for the statistics.
 */
unsigned int virtio_tmem_poll_window_max(struct virtio_tmem *vt)
{
	unsigned int i, w = 0;

	for (i = 0; i < vt->nqueues; i++)
		w = max(w, virtio_tmem_poll_window(&vt->queues[i]));
	return w;
}

/*
 * virtio_tmem_poll - reap @q's used ring until @w is done or @window_us
 * has passed.  The notify signals an ioeventfd (on KVM, and emulated by
 * QEMU's memory core under TCG), and QEMU's main loop or iothread runs
 * the request while this vCPU spins.  So the op completes here, without
 * an interrupt or a sleep, unless the host is slow (a spill read, say).
 *
 * Return: true if @w is done.
 */
static bool virtio_tmem_poll(struct virtio_tmem_queue *q,
			     struct virtio_tmem_waiter *w,
			     unsigned int window_us)
{
	u64 end = local_clock() + (u64)window_us * NSEC_PER_USEC;
	unsigned long flags, classes;

	for (;;) {
		spin_lock_irqsave(&q->lock, flags);
		classes = virtio_tmem_reap(q);
		spin_unlock_irqrestore(&q->lock, flags);
		if (classes)
			wake_up_all(&q->wait);
		/* Pairs with the release in virtio_tmem_complete(). */
		if (smp_load_acquire(&w->done))
			return true;
		if (local_clock() >= end || need_resched())
			return false;
		cpu_relax();
	}
}

/*
 * virtio_tmem_poll_end - the last poller of @q turns its callbacks back
 * on, reaping what the device used meanwhile: virtqueue_enable_cb() is
 * false while used buffers are pending, and any used after it succeeds
 * raise an interrupt.
 */
static void virtio_tmem_poll_end(struct virtio_tmem_queue *q)
{
	unsigned long flags, classes = 0;

	spin_lock_irqsave(&q->lock, flags);
	if (!--q->npolling) {
		while (!virtqueue_enable_cb(q->vq)) {
			virtqueue_disable_cb(q->vq);
			classes |= virtio_tmem_reap(q);
		}
	}
	spin_unlock_irqrestore(&q->lock, flags);
	if (classes)
		wake_up_all(&q->wait);
}

/*
 * Whether the queue's sequence holds an op that a cleancache get of
 * @get's file must not pass: one of the pool's that is not a get and
 * names the same object, or one on the whole pool.  Gets change nothing
 * (GET_EXCL is not a get here), and CREDITS and MISSES touch no page.
 * The sequence is the busy batches (open, stalled, on the ring) and the
 * deferred flushes, which the caller rules out.  A request that is on
 * the ring but already answered still counts: it costs a missed chance,
 * never a stale page.  Caller must hold q->lock.
 */
static bool virtio_tmem_object_queued(struct virtio_tmem_queue *q,
				      const struct virtio_tmem_op *get)
{
	unsigned int i, j;

	lockdep_assert_held(&q->lock);
	for (i = 0; i < VIRTIO_TMEM_BATCHES; i++) {
		const struct virtio_tmem_batch *b = &q->batches[i];

		for (j = 0; b->busy && j < b->nops; j++) {
			const struct virtio_tmem_op *o = &b->out->ops[j];

			if (o->pool != get->pool)
				continue;
			switch (o->type) {
			case VIRTIO_TMEM_OP_GET:
			case VIRTIO_TMEM_OP_GET_RANGE:
			case VIRTIO_TMEM_OP_CREDITS:
			case VIRTIO_TMEM_OP_MISSES:
				continue;
			case VIRTIO_TMEM_OP_FLUSH_POOL:
			case VIRTIO_TMEM_OP_POOL_DESTROY:
			case VIRTIO_TMEM_OP_POOL_NEW:
				return true;
			}
			if (!memcmp(o->oid, get->oid, sizeof(o->oid)))
				return true;
		}
	}
	return false;
}

/*
 * Whether @op of @class may go alone, flagged to overtake what was sent
 * before it.  Caller must hold q->lock, with nothing deferred.
 */
static bool virtio_tmem_needs_no_order(struct virtio_tmem_queue *q,
				       const struct virtio_tmem_op *op,
				       u8 class)
{
	if (class == VIRTIO_TMEM_FS_LOAD || class == VIRTIO_TMEM_BRING_BACK)
		return true;
	if (class != VIRTIO_TMEM_CC_GET || !q->vt->has_overtake)
		return false;
	if (!READ_ONCE(virtio_tmem_faults.overtake_unchecked) &&
	    virtio_tmem_object_queued(q, op)) {
		virtio_tmem_count(VIRTIO_TMEM_CLEANCACHE_GETS_IN_ORDER, 1);
		return false;
	}
	return true;
}

/**
 * virtio_tmem_sync_op - run one op and wait for its status
 * @vt: the device
 * @q: the queue the op's key maps to
 * @op: the op; copied
 * @class: what it is for, for the statistics
 * @pool: the pool it names, or NULL
 * @page: the data of a PUT or the buffer of a GET, else NULL
 * @value: set to the status value
 *
 * The op joins the tail of the queue's sequence, in the open batch, which
 * is sent at once: the ops queued before it travel in the same
 * notification, and the device runs them first.  A frontswap load and a
 * GET that brings a page back need no such order (spec 6.9: no op on
 * their key is queued), nor does a cleancache get of a file no queued op
 * names (virtio_tmem_object_queued()), so for those the op goes alone
 * when a batch is idle and nothing is deferred, and the open batch is
 * left to fill up.  Otherwise it joins the open batch like any other.
 * Process context only.
 *
 * Return: the VIRTIO_TMEM_S_* status.
 */
int virtio_tmem_sync_op(struct virtio_tmem *vt, struct virtio_tmem_queue *q,
			const struct virtio_tmem_op *op, u8 class,
			struct virtio_tmem_pool *pool, struct page *page,
			u32 *value)
{
	return virtio_tmem_sync_range(vt, q, op, class, pool, page, NULL, 0,
				      value);
}

/**
 * virtio_tmem_sync_range - virtio_tmem_sync_op(), for a GET_RANGE too
 * @vt: the device
 * @q: the queue the op's key maps to
 * @op: the op; copied
 * @class: what it is for, for the statistics
 * @pool: the pool it names, or NULL
 * @page: the data of a PUT or the (first) buffer of a GET
 * @more: GET_RANGE: the buffers of the pages after the first
 * @nmore: how many; the op's count less one
 * @value: set to the status value
 *
 * Return: the VIRTIO_TMEM_S_* status.
 */
int virtio_tmem_sync_range(struct virtio_tmem *vt,
			   struct virtio_tmem_queue *q,
			   const struct virtio_tmem_op *op, u8 class,
			   struct virtio_tmem_pool *pool, struct page *page,
			   struct page **more, unsigned int nmore, u32 *value)
{
	bool poll = READ_ONCE(virtio_tmem_poll_us);
	u64 start = ktime_get_ns(), poll_start = 0;
	struct virtio_tmem_waiter w = {};
	struct virtio_tmem_batch *alone = NULL;
	struct virtio_tmem_slot *s;
	struct virtio_tmem_op *o;
	unsigned long flags;

	might_sleep();
	spin_lock_irqsave(&q->lock, flags);
	if (!q->ndeferred && !READ_ONCE(virtio_tmem_sync) &&
	    virtio_tmem_needs_no_order(q, op, class))
		alone = virtio_tmem_batch_get(q);
	if (alone && class == VIRTIO_TMEM_CC_GET)
		virtio_tmem_count(VIRTIO_TMEM_CLEANCACHE_GETS_AHEAD, 1);
	if (alone) {
		o = &alone->out->ops[0];
		s = &alone->slots[0];
		memset(s, 0, sizeof(*s));
		/* Nothing sent before it is needed first: spec 6.9. */
		alone->ahead = vt->has_overtake;
	} else {
		o = virtio_tmem_add_op(q, &s, false, true, &flags);
	}
	*o = *op;
	s->class = class;
	s->pool = pool;
	s->waiter = &w;
	if (op->type == VIRTIO_TMEM_OP_PUT)
		s->copy = page;
	else
		s->target = page;
	s->more = more;
	s->nmore = nmore;
	if (poll)
		virtio_tmem_poll_begin(q);
	if (alone) {
		virtio_tmem_account(alone);
		virtio_tmem_send(q, alone);
	} else {
		virtio_tmem_op_added(q);
		virtio_tmem_submit(q);
	}
	spin_unlock_irqrestore(&q->lock, flags);

	if (poll) {
		poll_start = local_clock();
		virtio_tmem_count(virtio_tmem_poll(q, &w,
						   virtio_tmem_poll_window(q)) ?
				  VIRTIO_TMEM_SYNC_POLLED :
				  VIRTIO_TMEM_SYNC_SLEPT, 1);
		virtio_tmem_poll_end(q);
	}
	/* Pairs with the release in virtio_tmem_complete(). */
	wait_event(q->wait, smp_load_acquire(&w.done));
	if (poll)
		virtio_tmem_poll_learn(q, local_clock() - poll_start);
	virtio_tmem_latency_add(class, ktime_get_ns() - start);
	if (value)
		*value = w.value;
	return w.status;
}

/*
 * Send every open batch and deferred flush, and wait for all requests sent
 * so far, so that an op spanning queues (FLUSH_POOL, POOL_DESTROY) is
 * ordered after them.
 */
void virtio_tmem_quiesce(struct virtio_tmem *vt)
{
	unsigned int i;

	for (i = 0; i < vt->nqueues; i++) {
		struct virtio_tmem_queue *q = &vt->queues[i];
		unsigned long flags, target;

		spin_lock_irqsave(&q->lock, flags);
		for (;;) {
			virtio_tmem_undefer(q, true);
			if (!q->ndeferred)
				break;
			spin_unlock_irqrestore(&q->lock, flags);
			wait_event(q->wait, virtio_tmem_can_take(q));
			spin_lock_irqsave(&q->lock, flags);
		}
		target = q->submitted;
		spin_unlock_irqrestore(&q->lock, flags);
		wait_event(q->wait, (long)(READ_ONCE(q->completed) - target) >= 0);
	}
}

void virtio_tmem_request_done(struct virtqueue *vq)
{
	struct virtio_tmem *vt = vq->vdev->priv;
	struct virtio_tmem_queue *q = &vt->queues[vq->index - 1];
	u64 start = virtio_tmem_profile_start();
	unsigned long flags, classes = 0;

	spin_lock_irqsave(&q->lock, flags);
	/* While a synchronous op polls, callbacks stay off: it reaps. */
	do {
		virtqueue_disable_cb(vq);
		classes |= virtio_tmem_reap(q);
	} while (!q->npolling && !virtqueue_enable_cb(vq));
	spin_unlock_irqrestore(&q->lock, flags);

	virtio_tmem_count(VIRTIO_TMEM_INTERRUPTS, 1);
	virtio_tmem_count_classes(virtio_tmem_class_irqs, classes);
	wake_up_all(&q->wait);
	virtio_tmem_profile_end(VIRTIO_TMEM_PROFILE_NS_INTERRUPT, start);
}

/* Sends a batch left half full, and retries adding stalled ones. */
static void virtio_tmem_timer(struct timer_list *t)
{
	struct virtio_tmem_queue *q = from_timer(q, t, timer);
	unsigned long flags;

	spin_lock_irqsave(&q->lock, flags);
	virtio_tmem_submit(q);
	virtio_tmem_add_stalled(q);
	spin_unlock_irqrestore(&q->lock, flags);
}

/*
 * Replace the staging pages refused stores kept, in process context and
 * without dipping into the reserves: the paths that use staging pages run
 * with interrupts off or under PF_MEMALLOC, and must not allocate.
 */
static void virtio_tmem_refill(struct work_struct *work)
{
	struct virtio_tmem_queue *q = container_of(work,
						   struct virtio_tmem_queue,
						   refill_work);
	unsigned int want = q->vt->batch * VIRTIO_TMEM_STAGING;
	unsigned long flags;
	struct page *page;
	bool more = true;

	while (more) {
		page = virtio_tmem_alloc_page(GFP_KERNEL | __GFP_NORETRY |
					      __GFP_NOWARN);
		if (!page)
			break;
		spin_lock_irqsave(&q->lock, flags);
		if (q->npages < want) {
			q->pages[q->nfree++] = page;
			q->npages++;
			page = NULL;
		}
		more = q->npages < want;
		spin_unlock_irqrestore(&q->lock, flags);
		if (page)
			__free_page(page);
		else
			virtio_tmem_count(VIRTIO_TMEM_STAGING_REFILLS, 1);
	}
	wake_up_all(&q->wait);
}

static void virtio_tmem_batch_free(struct virtio_tmem_batch *b)
{
	kfree(b->sg_out);
	kfree(b->sg_in);
	kfree(b->slots);
	kfree(b->in);
	kfree(b->out);
}

static int virtio_tmem_batch_init(struct virtio_tmem *vt,
				  struct virtio_tmem_batch *b)
{
	unsigned int cap = virtio_tmem_ops_cap(vt);

	b->out = kzalloc(struct_size(b->out, ops, cap), GFP_KERNEL);
	b->in = kzalloc(struct_size(b->in, status, cap), GFP_KERNEL);
	b->slots = kcalloc(cap, sizeof(*b->slots), GFP_KERNEL);
	b->sg_out = kcalloc(cap + 1, sizeof(*b->sg_out), GFP_KERNEL);
	/* A synchronous op is sent at once: one GET_RANGE a batch, at most. */
	b->sg_in = kcalloc(cap + VIRTIO_TMEM_RANGE_MAX, sizeof(*b->sg_in),
			   GFP_KERNEL);
	if (!b->out || !b->in || !b->slots || !b->sg_out || !b->sg_in)
		return -ENOMEM;
	return 0;
}

/**
 * virtio_tmem_queues_alloc - allocate the request queues and their pages
 * @vt: the device
 *
 * Once, at probe: freeze keeps them, so that a restore, which runs with
 * I/O forbidden and often with memory short (the pages the host held came
 * back before the guest slept), needs none of the driver's allocations.
 * On failure nothing stays allocated.
 */
int virtio_tmem_queues_alloc(struct virtio_tmem *vt)
{
	unsigned int i, j;

	if (READ_ONCE(virtio_tmem_faults.nomem_setup))
		return -ENOMEM;
	vt->queues = kcalloc(vt->nqueues, sizeof(*vt->queues), GFP_KERNEL);
	if (!vt->queues)
		return -ENOMEM;
	for (i = 0; i < vt->nqueues; i++) {
		struct virtio_tmem_queue *q = &vt->queues[i];

		spin_lock_init(&q->lock);
		INIT_LIST_HEAD(&q->idle);
		INIT_LIST_HEAD(&q->stalled);
		init_waitqueue_head(&q->wait);
		timer_setup(&q->timer, virtio_tmem_timer, 0);
		INIT_WORK(&q->refill_work, virtio_tmem_refill);
		q->vt = vt;
	}
	for (i = 0; i < vt->nqueues; i++) {
		struct virtio_tmem_queue *q = &vt->queues[i];

		q->batches = kcalloc(VIRTIO_TMEM_BATCHES, sizeof(*q->batches),
				     GFP_KERNEL);
		/* Hundreds of KiB: fragmented memory must not fail a rebind. */
		q->deferred = kvcalloc(VIRTIO_TMEM_DEFERRED,
				       sizeof(*q->deferred), GFP_KERNEL);
		q->deferred_slots = kvcalloc(VIRTIO_TMEM_DEFERRED,
					     sizeof(*q->deferred_slots),
					     GFP_KERNEL);
		q->pages = kcalloc(vt->batch * VIRTIO_TMEM_STAGING,
				   sizeof(*q->pages), GFP_KERNEL);
		if (!q->batches || !q->deferred || !q->deferred_slots ||
		    !q->pages)
			goto nomem;
		for (; q->npages < vt->batch * VIRTIO_TMEM_STAGING; q->npages++) {
			q->pages[q->nfree] = virtio_tmem_alloc_page(GFP_KERNEL);
			if (!q->pages[q->nfree])
				goto nomem;
			q->nfree++;
		}
		for (j = 0; j < VIRTIO_TMEM_BATCHES; j++) {
			if (virtio_tmem_batch_init(vt, &q->batches[j]))
				goto nomem;
			list_add_tail(&q->batches[j].node, &q->idle);
		}
	}
	return 0;

nomem:
	virtio_tmem_queues_free(vt);
	return -ENOMEM;
}

/**
 * virtio_tmem_queues_attach - give the queues their virtqueues
 * @vt: the device
 * @vqs: one per request queue
 *
 * At probe and at every restore.  The queues are idle: nothing was sent
 * since virtio_tmem_queues_detach() or since they were allocated.
 */
void virtio_tmem_queues_attach(struct virtio_tmem *vt, struct virtqueue **vqs)
{
	unsigned int i;

	for (i = 0; i < vt->nqueues; i++) {
		struct virtio_tmem_queue *q = &vt->queues[i];

		q->vq = vqs[i];
		q->retry_ms = 1;
		q->kick_classes = 0;
		if (q->npages < vt->batch * VIRTIO_TMEM_STAGING)
			schedule_work(&q->refill_work);
	}
}

/**
 * virtio_tmem_queues_detach - stop using the virtqueues
 * @vt: the device, reset, its queues quiesced
 *
 * Before the virtqueues are deleted; the queues' memory stays.
 */
void virtio_tmem_queues_detach(struct virtio_tmem *vt)
{
	unsigned int i;

	for (i = 0; vt->queues && i < vt->nqueues; i++) {
		struct virtio_tmem_queue *q = &vt->queues[i];

		del_timer_sync(&q->timer);
		cancel_work_sync(&q->refill_work);
		WARN_ON_ONCE(q->inflight || !list_empty(&q->stalled) ||
			     q->nbusy);
		q->vq = NULL;
	}
}

/* At remove, or when probe failed: no batch is in flight any more. */
void virtio_tmem_queues_free(struct virtio_tmem *vt)
{
	unsigned int i, j;

	for (i = 0; vt->queues && i < vt->nqueues; i++) {
		struct virtio_tmem_queue *q = &vt->queues[i];

		del_timer_sync(&q->timer);
		cancel_work_sync(&q->refill_work);
		for (j = 0; q->batches && j < VIRTIO_TMEM_BATCHES; j++)
			virtio_tmem_batch_free(&q->batches[j]);
		kfree(q->batches);
		kvfree(q->deferred);
		kvfree(q->deferred_slots);
		while (q->nfree)
			__free_page(q->pages[--q->nfree]);
		kfree(q->pages);
	}
	kfree(vt->queues);
	vt->queues = NULL;
}
