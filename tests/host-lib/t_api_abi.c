/* SPDX-License-Identifier: MIT */
/*
 * t_api_abi: what a program built against an older tmem.h may rely on.
 *
 * struct tmem_stats is frozen at its ABI 1.0 size: tmem_stats() must not
 * write a byte past it however many stats the library has grown since
 * (those are read with tmem_stat_values(), which writes no more than it is
 * told).  And the shared library names its ABI with a SONAME, and each
 * call its version node: TMEM_1.0, 1.1 (tmem_stat_values), 1.2
 * (tmem_get_batch), 1.3 (tmem_object_pages), 1.4 (stored forms), 1.5
 * (tmem_store_create_spill).
 */
#include <dlfcn.h>
#include <elf.h>
#include <link.h>

#include "helpers.h"

/* struct tmem_stats as ABI 1.0 laid it out: 38 counters, two doubles. */
#define V1_COUNT	38
struct stats_v1 {
	uint64_t v[V1_COUNT];
	double compression_ratio;
	double fragmentation;
};

static void test_stats_size(void)
{
	struct tmem_store *s = t_store_new(1 << 20, NULL, 0);
	size_t sz = sizeof(struct stats_v1);
	unsigned char *buf = t_buf_alloc(sz);
	uint64_t all[TMEM_STAT__COUNT + 8];
	struct stats_v1 v1;
	int rc;

	t_eq(sizeof(struct tmem_stats), sz);
	memset(buf + sz, T_CANARY_BYTE, T_CANARY_LEN);
	t_rc(tmem_stats(s, (struct tmem_stats *)buf), 0);
	t_canary_verify(buf, sz);
	memcpy(&v1, buf, sz);
	t_eq(v1.v[TMEM_STAT_BUDGET], 1 << 20);
	free(buf);

	/* tmem_stat_values: at most n values; returns how many it knows. */
	memset(all, 0xa5, sizeof(all));
	rc = tmem_stat_values(s, all, 3);
	t_eq(rc, TMEM_STAT__COUNT);
	t_eq(all[3], 0xa5a5a5a5a5a5a5a5ull);
	rc = tmem_stat_values(s, all, TMEM_STAT__COUNT + 8);
	t_eq(rc, TMEM_STAT__COUNT);
	t_eq(all[TMEM_STAT_BUDGET], 1 << 20);
	t_eq(all[TMEM_STAT__COUNT], 0xa5a5a5a5a5a5a5a5ull);
	t_rc(tmem_stat_values(NULL, all, 1), -EINVAL);
	t_rc(tmem_stat_values(s, NULL, 1), -EINVAL);
	t_rc(tmem_stat_values(s, NULL, 0), TMEM_STAT__COUNT);
	t_store_free(s, NULL);
}

/* The DT_SONAME of the libtmem.so next to this test's directory. */
static void test_soname(void)
{
	char exe[PATH_MAX], so[PATH_MAX + 32];
	const char *soname = NULL, *strtab = NULL;
	struct link_map *lm;
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	void *h;

	t_assert(n > 0);
	exe[n] = 0;
	*strrchr(exe, '/') = 0;		/* .../tests */
	*strrchr(exe, '/') = 0;		/* the variant's build directory */
	snprintf(so, sizeof(so), "%s/libtmem.so", exe);
	h = dlopen(so, RTLD_NOW | RTLD_LOCAL);
	if (!h)
		t_fail("dlopen %s: %s", so, dlerror());
	t_rc(dlinfo(h, RTLD_DI_LINKMAP, &lm), 0);
	for (ElfW(Dyn) *d = lm->l_ld; d->d_tag != DT_NULL; d++)
		if (d->d_tag == DT_STRTAB)
			strtab = (const char *)d->d_un.d_ptr;
	for (ElfW(Dyn) *d = lm->l_ld; d->d_tag != DT_NULL && strtab; d++)
		if (d->d_tag == DT_SONAME)
			soname = strtab + d->d_un.d_val;
	if (!soname)
		t_fail("%s has no SONAME", so);
	if (strcmp(soname, "libtmem.so.1"))
		t_fail("%s: SONAME %s, want libtmem.so.1", so, soname);
	t_assert(dlsym(h, "tmem_stat_values"));
	/* Each call in the version node that added it. */
	t_assert(dlvsym(h, "tmem_get", "TMEM_1.0"));
	t_assert(dlvsym(h, "tmem_stat_values", "TMEM_1.1"));
	t_assert(dlvsym(h, "tmem_get_batch", "TMEM_1.2"));
	t_assert(dlvsym(h, "tmem_object_pages", "TMEM_1.3"));
	t_assert(dlvsym(h, "tmem_get_stored_batch", "TMEM_1.4"));
	t_assert(dlvsym(h, "tmem_put_stored", "TMEM_1.4"));
	t_assert(dlvsym(h, "tmem_iter_next_keys", "TMEM_1.4"));
	t_assert(dlvsym(h, "tmem_iter_left", "TMEM_1.4"));
	t_assert(dlvsym(h, "tmem_store_create_spill", "TMEM_1.5"));
	t_assert(!dlvsym(h, "tmem_store_create_spill", "TMEM_1.4"));
	t_assert(!dlvsym(h, "tmem_get_batch", "TMEM_1.0"));
	t_assert(!dlsym(h, "tm_charge"));	/* internals stay hidden */
	t_assert(!dlsym(h, "tm_rbatch_add"));
	t_assert(!dlsym(h, "tm_spill_ops_open"));
	dlclose(h);
}

int main(void)
{
	test_stats_size();
	test_soname();
	return T_EXIT_PASS;
}
