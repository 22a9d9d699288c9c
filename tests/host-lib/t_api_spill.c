/* SPDX-License-Identifier: MIT */
/*
 * t_api_spill: the spill file.  A directory gets a fresh file, unlinked at
 * once (the directory stays empty) unless TMEM_SPILL_KEEP, then mode 0600;
 * any other path is the file itself, created, never an existing file or a
 * symlink; a file system without O_DIRECT only when asked; the path is
 * copied at create time; "" or spill_max 0 disable spilling; and once
 * spill_max is reached persistent puts are -ENOSPC while every accepted
 * page still reads back; but not before: threads that put at once past
 * the budget all find room while the spill file has it.
 */
#include <fcntl.h>
#include <pthread.h>

#include "helpers.h"

#define MIB	(1ull << 20)
#define LEN	T_PAGE_4K

/*
 * Put @n incompressible pages, then cut the budget to 0 so that reclaim
 * spills each of them (their index entries stay in RAM, over the budget:
 * budget 0 refuses new keys), check they read back, then flush them.
 * Returns the number spilled.
 */
static uint64_t spill_some(struct tmem_store *s, uint32_t n)
{
	int p = t_pool_new(s, TMEM_PERSISTENT, LEN);
	struct tmem_key k;
	uint32_t i;

	t_rc(tmem_set_budget(s, 64 * MIB), 0);
	for (i = 0; i < n; i++) {
		k = t_key(1, i);
		t_rc(t_put_tag(s, p, &k, t_tag(T_RAND, i), LEN), 0);
	}
	t_rc(tmem_set_budget(s, 0), 0);
	t_wait_stat_or_fail(s, TMEM_STAT_PAGES_SPILLED, T_EQ, n, 10000);
	for (i = 0; i < n; i++) {
		k = t_key(1, i);
		t_rc(t_get_check(s, p, &k, t_tag(T_RAND, i), LEN), 0);
	}
	t_eq(t_stats_get(s, TMEM_STAT_PAGES_SPILLED), n);
	t_rc(tmem_pool_destroy(s, p), n);
	return t_stats_get(s, TMEM_STAT_SPILLS);
}

static void test_dir_unlinked(void)
{
	char dir[T_PATH_MAX];
	struct tmem_store *s = t_store_new(1 * MIB, dir, 64 * MIB);

	t_rc(t_dir_count(dir), 0);
	t_assert(spill_some(s, 32) >= 32);
	t_rc(t_dir_count(dir), 0);
	t_store_free(s, dir);
}

static void test_dir_keep(void)
{
	struct tmem_config cfg = {
		.budget = 1 * MIB,
		.spill_max = 64 * MIB,
		.flags = TMEM_SPILL_KEEP,
	};
	char dir[T_PATH_MAX], path[T_PATH_MAX * 2];
	struct tmem_store *s = t_store_new_cfg(&cfg, dir);
	struct dirent *de;
	struct stat sb;
	DIR *d;

	t_rc(t_dir_count(dir), 1);
	d = opendir(dir);
	t_assert(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
	closedir(d);
	t_rc(stat(path, &sb), 0);
	t_assert(S_ISREG(sb.st_mode));
	if ((sb.st_mode & 07777) != 0600)
		t_fail("spill file %s has mode %o, want 0600", path,
		       (unsigned int)(sb.st_mode & 07777));
	t_assert(spill_some(s, 32) >= 32);
	t_rc(stat(path, &sb), 0);
	t_assert(sb.st_size > 0);
	t_store_free(s, dir);
}

/*
 * A path that is not a directory is the spill file itself.  Whether it is
 * unlinked is not promised, so look at it with TMEM_SPILL_KEEP.
 */
static struct tmem_store *file_store(const char *path, uint32_t flags)
{
	struct tmem_config cfg = {
		.budget = 1 * MIB,
		.spill_path = path,
		.spill_max = 64 * MIB,
		.flags = flags,
	};
	struct tmem_store *s = NULL;

	t_rc(tmem_store_create(&cfg, &s), 0);
	t_assert(s);
	return s;
}

/* Created... */
static void test_file_path(void)
{
	char dir[T_PATH_MAX], path[T_PATH_MAX * 2];
	struct tmem_store *s;
	struct stat sb;

	t_mkdtemp(dir);
	snprintf(path, sizeof(path), "%s/spill.bin", dir);
	s = file_store(path, 0);
	t_assert(spill_some(s, 16) >= 16);
	tmem_store_destroy(s);
	unlink(path);

	s = file_store(path, TMEM_SPILL_KEEP);
	t_rc(stat(path, &sb), 0);
	t_assert(S_ISREG(sb.st_mode));
	t_assert(spill_some(s, 16) >= 16);
	tmem_store_destroy(s);
	t_dir_remove(dir);
}

/*
 * ...but never an existing file: it may be someone's data.  Nor a symlink,
 * dangling or not.  The store is refused with -EEXIST and the file keeps
 * its bytes and its mode.
 */
static void test_file_exists(void)
{
	struct tmem_config cfg = {
		.budget = 1 * MIB,
		.spill_max = 64 * MIB,
	};
	char dir[T_PATH_MAX], path[T_PATH_MAX * 2], link[T_PATH_MAX * 2];
	static unsigned char junk[1 << 16], head[sizeof(junk)];
	struct tmem_store *s = NULL;
	struct stat sb;
	int fd, flags;

	t_mkdtemp(dir);
	snprintf(path, sizeof(path), "%s/old-file", dir);
	snprintf(link, sizeof(link), "%s/link", dir);
	memset(junk, 0xee, sizeof(junk));
	fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
	t_assert(fd >= 0);
	t_rc(write(fd, junk, sizeof(junk)), sizeof(junk));
	close(fd);
	t_rc(symlink(path, link), 0);

	for (flags = 0; flags < 2; flags++) {
		cfg.flags = flags ? TMEM_SPILL_KEEP : 0;
		cfg.spill_path = path;
		t_rc(tmem_store_create(&cfg, &s), -EEXIST);
		cfg.spill_path = link;
		t_rc(tmem_store_create(&cfg, &s), -EEXIST);
		t_rc(lstat(link, &sb), 0);
		t_assert(S_ISLNK(sb.st_mode));
		t_rc(stat(path, &sb), 0);
		if ((sb.st_mode & 07777) != 0644)
			t_fail("existing file's mode changed to %o",
			       (unsigned int)(sb.st_mode & 07777));
		t_eq(sb.st_size, sizeof(junk));
		fd = open(path, O_RDONLY);
		t_assert(fd >= 0);
		t_rc(read(fd, head, sizeof(head)), sizeof(head));
		close(fd);
		t_assert(!memcmp(head, junk, sizeof(junk)));
	}
	/* A dangling symlink is not followed to create its target. */
	t_rc(unlink(path), 0);
	cfg.spill_path = link;
	t_rc(tmem_store_create(&cfg, &s), -EEXIST);
	t_rc(access(path, F_OK), -1);
	t_dir_remove(dir);
}

/*
 * A file system in RAM (tmpfs), or without O_DIRECT, would keep "spilled"
 * pages in host memory: refused with -EOPNOTSUPP, unless the caller asks for
 * it with TMEM_SPILL_BUFFERED, and then every spilled byte shows in the
 * spill_buffered gauge.
 */
static void test_no_direct(void)
{
	struct tmem_config cfg = {
		.budget = 1 * MIB,
		.spill_max = 64 * MIB,
	};
	struct tmem_store *s = NULL;
	char dir[T_PATH_MAX];
	uint64_t used;

	if (access("/dev/shm", W_OK | X_OK)) {
		printf("no writable /dev/shm: tmpfs case skipped\n");
		return;
	}
	t_mkdtemp_in("/dev/shm", dir);
	cfg.spill_path = dir;
	t_rc(tmem_store_create(&cfg, &s), -EOPNOTSUPP);
	t_rc(t_dir_count(dir), 0);
	cfg.flags = TMEM_SPILL_BUFFERED;
	t_rc(tmem_store_create(&cfg, &s), 0);
	t_eq(t_stats_get(s, TMEM_STAT_SPILL_BUFFERED), 0);
	t_assert(spill_some(s, 16) >= 16);
	t_eq(t_stats_get(s, TMEM_STAT_SPILL_BUFFERED), 0);	/* flushed */
	{
		int p = t_pool_new(s, TMEM_PERSISTENT, LEN);
		struct tmem_key k = t_key(2, 0);

		t_rc(tmem_set_budget(s, 64 * MIB), 0);
		t_rc(t_put_tag(s, p, &k, t_tag(T_RAND, 5), LEN), 0);
		t_rc(tmem_set_budget(s, 0), 0);
		t_wait_stat_or_fail(s, TMEM_STAT_PAGES_SPILLED, T_EQ, 1,
				    10000);
		used = t_stats_get(s, TMEM_STAT_SPILL_USED);
		t_assert(used > 0);
		t_eq(t_stats_get(s, TMEM_STAT_SPILL_BUFFERED), used);
	}
	t_store_free(s, dir);

	/* On a disk with O_DIRECT the flag changes nothing: 0 buffered. */
	t_mkdtemp(dir);
	cfg.spill_path = dir;
	t_rc(tmem_store_create(&cfg, &s), 0);
	t_assert(spill_some(s, 16) >= 16);
	{
		int p = t_pool_new(s, TMEM_PERSISTENT, LEN);
		struct tmem_key k = t_key(2, 0);

		t_rc(tmem_set_budget(s, 64 * MIB), 0);
		t_rc(t_put_tag(s, p, &k, t_tag(T_RAND, 5), LEN), 0);
		t_rc(tmem_set_budget(s, 0), 0);
		t_wait_stat_or_fail(s, TMEM_STAT_PAGES_SPILLED, T_EQ, 1,
				    10000);
		t_eq(t_stats_get(s, TMEM_STAT_SPILL_BUFFERED), 0);
	}
	t_store_free(s, dir);
}

/* The config and its string are copied: freeing them changes nothing. */
static void test_path_copied(void)
{
	struct tmem_config *cfg = calloc(1, sizeof(*cfg));
	struct tmem_store *s = NULL;
	char dir[T_PATH_MAX], *path;

	t_assert(cfg);
	t_mkdtemp(dir);
	path = strdup(dir);
	t_assert(path);
	cfg->budget = 1 * MIB;
	cfg->spill_path = path;
	cfg->spill_max = 64 * MIB;
	t_rc(tmem_store_create(cfg, &s), 0);
	memset(path, 'x', strlen(path));
	free(path);
	memset(cfg, 0xff, sizeof(*cfg));
	free(cfg);
	t_eq(t_stats_get(s, TMEM_STAT_BUDGET), 1 * MIB);
	t_eq(t_stats_get(s, TMEM_STAT_SPILL_MAX), 64 * MIB);
	t_assert(spill_some(s, 16) >= 16);
	t_rc(t_dir_count(dir), 0);
	t_store_free(s, dir);
}

/* "" and spill_max 0 mean no spill: at budget 0 persistent puts fail. */
static void test_no_spill(void)
{
	struct tmem_config cfg = { .budget = 0, .spill_path = "",
				   .spill_max = 64 * MIB };
	char dir[T_PATH_MAX];
	struct tmem_store *s;
	struct tmem_key k = t_key(1, 1);
	int i, p;

	for (i = 0; i < 2; i++) {
		s = t_store_new_cfg(&cfg, i ? dir : NULL);
		if (i)
			t_rc(t_dir_count(dir), 0);
		p = t_pool_new(s, TMEM_PERSISTENT, LEN);
		t_rc(t_put_tag(s, p, &k, 1, LEN), -ENOSPC);
		t_eq(t_stats_get(s, TMEM_STAT_SPILLS), 0);
		t_store_free(s, i ? dir : NULL);
		cfg.spill_max = 0;	/* second round: a dir, but no cap */
	}
}

/*
 * Fill a 1 MiB spill file: some put is refused with -ENOSPC, the spill
 * never outgrows its cap, every accepted page reads back and every
 * refused key is empty.  Flushing makes room again.
 */
static void test_cap(void)
{
	enum { MAXPUTS = 2000 };
	char dir[T_PATH_MAX];
	struct tmem_store *s = t_store_new(256 << 10, dir, 1 * MIB);
	int p = t_pool_new(s, TMEM_PERSISTENT, LEN);
	static bool ok[MAXPUTS];
	uint32_t i, n, accepted = 0, refused = 0;
	struct tmem_key k;
	uint64_t end;
	int rc;

	for (n = 0; n < MAXPUTS && refused < 16; n++) {
		k = t_key(2, n);
		rc = t_put_tag(s, p, &k, t_tag(T_RAND, n), LEN);
		if (rc != 0 && rc != -ENOSPC)
			t_fail("put %u: %s", n, t_errname(rc));
		ok[n] = rc == 0;
		accepted += ok[n];
		refused += !ok[n];
		t_assert(t_stats_get(s, TMEM_STAT_SPILL_USED) <= 1 * MIB);
	}
	printf("cap: %u accepted, %u refused\n", accepted, refused);
	t_assert(refused > 0);
	/* More than RAM alone could hold: the spill took its share. */
	t_assert(accepted > (256 << 10) / LEN);
	t_assert(t_stats_get(s, TMEM_STAT_SPILLS) > 0);
	t_eq(t_stats_get(s, TMEM_STAT_PUT_REJ_NOSPACE), refused);
	t_eq(t_stats_get(s, TMEM_STAT_PAGES_PERSISTENT), accepted);
	for (i = 0; i < n; i++) {
		k = t_key(2, i);
		t_rc(t_get_check(s, p, &k, t_tag(T_RAND, i), LEN),
		     ok[i] ? 0 : -ENOENT);
	}

	/* Free half the accepted pages: puts succeed again, soon. */
	for (i = 0; i < n; i += 2)
		if (ok[i]) {
			k = t_key(2, i);
			t_rc(tmem_flush_page(s, p, &k), 0);
			ok[i] = false;
		}
	k = t_key(3, 0);
	end = t_now_ms() + 5000;
	while ((rc = t_put_tag(s, p, &k, t_tag(T_RAND, 1), LEN)) == -ENOSPC &&
	       t_now_ms() < end)
		t_sleep_ms(10);
	t_rc(rc, 0);
	t_rc(t_get_check(s, p, &k, t_tag(T_RAND, 1), LEN), 0);
	for (i = 0; i < n; i++) {
		k = t_key(2, i);
		t_rc(t_get_check(s, p, &k, t_tag(T_RAND, i), LEN),
		     ok[i] ? 0 : -ENOENT);
	}
	t_store_free(s, dir);
}

/* One putter of test_racing_room: its own keys, all of them. */
struct racer {
	struct tmem_store *s;
	int pool;
	uint32_t id;
	uint32_t refused;
	int first_error;
};

enum { RACERS = 4, RACER_PAGES = 1024 };

static void *racer_run(void *arg)
{
	struct racer *r = arg;
	struct tmem_key k;
	uint32_t i;
	int rc;

	for (i = 0; i < RACER_PAGES; i++) {
		k = t_key(10 + r->id, i);
		rc = t_put_tag(r->s, r->pool, &k,
			       t_tag(T_RAND, r->id * RACER_PAGES + i), LEN);
		if (rc) {
			r->refused++;
			if (!r->first_error)
				r->first_error = rc;
		}
	}
	return NULL;
}

/*
 * Four threads put 4096 incompressible pages at once into a 256 KiB
 * budget with a 64 MiB spill file (16 MiB needed): every put must be
 * taken.  A block device in front of the store (QEMU's tmem driver)
 * cannot refuse a write the spill file has room for; the guest sees it
 * as an I/O error.  Each page reads back.
 */
static void test_racing_room(void)
{
	char dir[T_PATH_MAX];
	struct tmem_store *s = t_store_new(256 << 10, dir, 64 * MIB);
	struct racer r[RACERS];
	pthread_t th[RACERS];
	uint32_t i, j, refused = 0;
	struct tmem_key k;

	for (i = 0; i < RACERS; i++) {
		r[i] = (struct racer) {
			.s = s, .pool = i ? r[0].pool :
				t_pool_new(s, TMEM_PERSISTENT, LEN),
			.id = i,
		};
		t_assert(!pthread_create(&th[i], NULL, racer_run, &r[i]));
	}
	for (i = 0; i < RACERS; i++) {
		t_assert(!pthread_join(th[i], NULL));
		refused += r[i].refused;
		if (r[i].refused)
			printf("racing room: thread %u: %u refused, first %s\n",
			       i, r[i].refused, t_errname(r[i].first_error));
	}
	if (refused) {
		uint64_t v[TMEM_STAT__COUNT];
		unsigned int n = tmem_stat_values(s, v, TMEM_STAT__COUNT);

		for (i = 0; i < n; i++)
			if (v[i])
				printf("  %s %llu\n", tmem_stat_name(i),
				       (unsigned long long)v[i]);
	}
	t_eq(refused, 0);
	t_eq(t_stats_get(s, TMEM_STAT_PAGES_PERSISTENT), RACERS * RACER_PAGES);
	t_assert(t_stats_get(s, TMEM_STAT_RAM_USED) <= 256 << 10);
	for (i = 0; i < RACERS; i++)
		for (j = 0; j < RACER_PAGES; j++) {
			k = t_key(10 + i, j);
			t_rc(t_get_check(s, r[0].pool, &k,
					 t_tag(T_RAND, i * RACER_PAGES + j),
					 LEN), 0);
		}
	t_store_free(s, dir);
}

int main(int argc, char **argv)
{
	test_dir_unlinked();
	test_dir_keep();
	test_file_path();
	test_file_exists();
	test_no_direct();
	test_path_copied();
	test_no_spill();
	test_cap();
	/* a race: on the library before the fix, about one run in ten lost */
	for (int i = 0; i < 4; i++)
		test_racing_room();
	return T_EXIT_PASS;
}
