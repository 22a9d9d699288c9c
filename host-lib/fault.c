// SPDX-License-Identifier: MIT
/*
 * fault.c - fault injection points for tests.  Process-wide, so that a
 * test can break the store it holds without a handle on its internals.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "fault.h"

struct tm_fault_point {
	_Atomic uint64_t skip;
	_Atomic uint64_t count;
	_Atomic uint64_t hits;
};

static struct tm_fault_point tm_faults[TM_FAULT__COUNT];
static _Atomic int tm_faults_armed;

void tm_fault_arm(enum tm_fault f, uint64_t skip, uint64_t count)
{
	if ((unsigned)f >= TM_FAULT__COUNT)
		return;
	atomic_store(&tm_faults[f].skip, skip);
	atomic_store(&tm_faults[f].count, count);
	atomic_store(&tm_faults_armed, 1);
}

static pthread_mutex_t tm_gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t tm_gate_cond = PTHREAD_COND_INITIALIZER;
/* Times each point's gate was opened. */
static uint64_t tm_gate_opened[TM_FAULT__COUNT];

void tm_fault_park(enum tm_fault f)
{
	uint64_t seen;

	if (!atomic_load_explicit(&tm_faults_armed, memory_order_relaxed))
		return;
	pthread_mutex_lock(&tm_gate_lock);
	seen = tm_gate_opened[f];
	if (tm_fault_fire(f))
		while (tm_gate_opened[f] == seen)
			pthread_cond_wait(&tm_gate_cond, &tm_gate_lock);
	pthread_mutex_unlock(&tm_gate_lock);
}

void tm_fault_gate_open_one(enum tm_fault f)
{
	if ((unsigned)f >= TM_FAULT__COUNT)
		return;
	pthread_mutex_lock(&tm_gate_lock);
	tm_gate_opened[f]++;
	pthread_cond_broadcast(&tm_gate_cond);
	pthread_mutex_unlock(&tm_gate_lock);
}

void tm_fault_gate_open(void)
{
	pthread_mutex_lock(&tm_gate_lock);
	for (int i = 0; i < TM_FAULT__COUNT; i++)
		tm_gate_opened[i]++;
	pthread_cond_broadcast(&tm_gate_cond);
	pthread_mutex_unlock(&tm_gate_lock);
}

void tm_fault_reset(void)
{
	tm_fault_gate_open();
	atomic_store(&tm_faults_armed, 0);
	for (int i = 0; i < TM_FAULT__COUNT; i++) {
		atomic_store(&tm_faults[i].skip, 0);
		atomic_store(&tm_faults[i].count, 0);
		atomic_store(&tm_faults[i].hits, 0);
	}
}

uint64_t tm_fault_hits(enum tm_fault f)
{
	if ((unsigned)f >= TM_FAULT__COUNT)
		return 0;
	return atomic_load(&tm_faults[f].hits);
}

/* Decrement @v if it is non-zero; true if it was. */
static bool tm_take(_Atomic uint64_t *v)
{
	uint64_t cur = atomic_load(v);

	while (cur) {
		if (atomic_compare_exchange_weak(v, &cur, cur - 1))
			return true;
	}
	return false;
}

bool tm_fault_fire(enum tm_fault f)
{
	struct tm_fault_point *fp = &tm_faults[f];

	if (!atomic_load_explicit(&tm_faults_armed, memory_order_relaxed))
		return false;
	if (tm_take(&fp->skip) || !tm_take(&fp->count))
		return false;
	atomic_fetch_add(&fp->hits, 1);
	return true;
}

uint32_t tm_test_delay_ms(const char *env)
{
	const char *v = getenv(env);
	unsigned long ms = v ? strtoul(v, NULL, 10) : 0;

	return ms > 10000 ? 10000 : (uint32_t)ms;
}

void tm_test_sleep_ms(uint32_t ms)
{
	struct timespec ts = { .tv_sec = ms / 1000,
			       .tv_nsec = (long)(ms % 1000) * 1000000l };

	while (ms && nanosleep(&ts, &ts) && errno == EINTR)
		;
}
