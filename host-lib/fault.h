/* SPDX-License-Identifier: MIT */
/*
 * fault.h - fault injection for tests.
 *
 * Not part of the public API and not exported from libtmem.so: tests that
 * want it link libtmem.a.  A disarmed fault point costs one relaxed load.
 * Fault points are process-wide, so a test arms them around the calls it
 * means to break.
 */
#ifndef TMEM_FAULT_H
#define TMEM_FAULT_H

#include <stdbool.h>
#include <stdint.h>

enum tm_fault {
	TM_FAULT_ALLOC,		/* slab or index allocation fails (ENOMEM) */
	TM_FAULT_SPILL_WRITE,	/* a spill write completes with -EIO */
	TM_FAULT_SPILL_ENOSPC,	/* a spill write completes with -ENOSPC */
	TM_FAULT_SPILL_READ,	/* a spill read completes with -EIO */
	TM_FAULT_SHORT_READ,	/* a spill read returns half of what was asked */
	TM_FAULT_BUCKETS,	/* a hash table cannot grow (calloc fails) */
	TM_FAULT_SUBMIT,	/* io_uring_submit fails, submitting nothing */
	TM_FAULT_SUBMIT_SHORT,	/* io_uring_submit takes half of the SQEs */
	TM_FAULT_WAIT,		/* io_uring_wait_cqe fails, writes in flight */
	TM_FAULT_SHORT_WRITE,	/* a spill write completes with half its bytes */
	TM_FAULT_READ_STALL,	/* a spill read parks until the gate opens */
	TM_FAULT_COMPACT_STALL,	/* compaction parks between its scan and moves */
	TM_FAULT_SPILL_STALL,	/* a spill batch parks between its write and
				 * freeing the slabs it emptied */
	TM_FAULT_PUT_WAIT_STALL, /* a put waiting for room parks once it
				  * found nothing it could free itself */
	TM_FAULT__COUNT
};

/* After @skip more checks of @f pass, the next @count checks fire. */
void tm_fault_arm(enum tm_fault f, uint64_t skip, uint64_t count);

/* Disarm every fault point and zero the hit counters. */
void tm_fault_reset(void);

/* How many times @f has fired since the last reset. */
uint64_t tm_fault_hits(enum tm_fault f);

/* Library side: true when this check of @f must fail. */
bool tm_fault_fire(enum tm_fault f);

/*
 * The gate: a fault point that fires parks the calling thread in
 * tm_fault_park() until a test calls tm_fault_gate_open(), or
 * tm_fault_gate_open_one() for that point alone.  The test sees it
 * parked in tm_fault_hits().  tm_fault_reset() opens the gate too.
 */
void tm_fault_park(enum tm_fault f);
void tm_fault_gate_open(void);
void tm_fault_gate_open_one(enum tm_fault f);

/*
 * Library side: test-only delays that stand in for a slow disk or a huge
 * pool (TMEM_TEST_SPILL_DELAY_MS, TMEM_TEST_FLUSH_DELAY_MS).  The delay
 * environment variable @env asks for, in ms, at most 10 s; 0 if unset.
 * Never set in production.
 */
uint32_t tm_test_delay_ms(const char *env);
void tm_test_sleep_ms(uint32_t ms);

struct tmem_store;

/* Probe: the longest hash chain (pages or objects) in any shard. */
uint32_t tm_probe_chain_max(struct tmem_store *s);

struct tmem_key;

/* Probe: whether indexing @key now would charge RAM for new chunks. */
bool tm_probe_ent_needs_ram(struct tmem_store *s, int pool,
			    const struct tmem_key *key);

#endif /* TMEM_FAULT_H */
