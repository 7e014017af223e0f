/*
 * test-advisor.c - the advisor thread gives the advice queued: once
 * drained, the ranges to read ahead are in the page cache (mincore), the
 * ranges to write back are no longer dirty (cachestat(2); on a kernel
 * without it, the page flags in /proc/kpageflags, which need root; the
 * case is skipped when neither can be read), also when the caller
 * outruns the queue; freeing waits for the advice still queued.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <cmocka.h>

#include "unit.h"
#include "transport/advisor.h"

#define FILE_BYTES (8u << 20)
#define PAGE 4096u

static int
setup(void **state)
{
	(void)state;
	return unit_mktmp("advisor");
}

static int
teardown(void **state)
{
	(void)state;
	return unit_rmtmp();
}

/* A file of FILE_BYTES of data, durable and out of the page cache. */
static int
cold_file(void)
{
	uint8_t *buf = malloc(FILE_BYTES);
	int fd = open(tpath("f"), O_RDWR | O_CREAT | O_TRUNC, 0600);

	assert_non_null(buf);
	assert_true(fd >= 0);
	fill(buf, FILE_BYTES, 1);
	assert_int_equal(pwrite(fd, buf, FILE_BYTES, 0), FILE_BYTES);
	assert_int_equal(fsync(fd), 0);
	assert_int_equal(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
	free(buf);
	return fd;
}

static struct vs_advisor *
advisor_of(int fd)
{
	struct vs_advisor *a = vs_advisor_new(fd);

	assert_non_null(a);
	return a;
}

/* Pages of [off, off + len) of @fd in the page cache. */
static size_t
resident_pages(int fd, uint64_t off, uint64_t len)
{
	unsigned char vec[FILE_BYTES / PAGE];
	void *map = mmap(NULL, FILE_BYTES, PROT_READ, MAP_SHARED, fd, 0);
	size_t n = 0;

	assert_true(map != MAP_FAILED);
	assert_int_equal(mincore(map, FILE_BYTES, vec), 0);
	munmap(map, FILE_BYTES);
	for (uint64_t p = off / PAGE; p < (off + len) / PAGE; p++)
		n += vec[p] & 1;
	return n;
}

/* Pages of [off, off + len) in the page cache once the reads in flight
 * completed (a page shows only then): polls for up to ten seconds. */
static size_t
settled_pages(int fd, uint64_t off, uint64_t len)
{
	size_t n = 0;

	for (int i = 0; i < 1000 && n < len / PAGE; i++) {
		if (i)
			usleep(10000);
		n = resident_pages(fd, off, len);
	}
	return n;
}

static void
test_read_ahead(void **state)
{
	int fd = cold_file();
	struct vs_advisor *a = advisor_of(fd);

	(void)state;
	assert_int_equal(resident_pages(fd, 0, FILE_BYTES), 0);
	vs_advise(a, VS_ADVISE_READ_AHEAD, 1 << 20, 2 << 20);
	vs_advise(a, VS_ADVISE_READ_AHEAD, 6 << 20, 1 << 20);
	vs_advisor_drain(a);
	assert_int_equal(settled_pages(fd, 1 << 20, 2 << 20), (2 << 20) / PAGE);
	assert_int_equal(settled_pages(fd, 6 << 20, 1 << 20), (1 << 20) / PAGE);
	assert_int_equal(resident_pages(fd, 0, 1 << 20), 0);
	assert_int_equal(resident_pages(fd, 3 << 20, 3 << 20), 0);
	vs_advisor_free(a);
	close(fd);
}

/* More advice than the queue holds: none of it is lost. */
static void
test_more_than_the_queue(void **state)
{
	int fd = cold_file();
	struct vs_advisor *a = advisor_of(fd);

	(void)state;
	for (uint64_t p = 0; p < FILE_BYTES / PAGE; p += 2)
		vs_advise(a, VS_ADVISE_READ_AHEAD, p * PAGE, PAGE);
	vs_advise(a, VS_ADVISE_READ_AHEAD, 0, 0);	/* nothing */
	vs_advisor_free(a);				/* drains */
	for (uint64_t p = 0; p < FILE_BYTES / PAGE; p += 2)
		assert_int_equal(settled_pages(fd, p * PAGE, PAGE), 1);
	close(fd);
}

#ifndef SYS_cachestat
#define SYS_cachestat 451
#endif
struct range { uint64_t off, len; };
struct page_stats {
	uint64_t cache, dirty, writeback, evicted, recently_evicted;
};

/* Dirty pages of @fd by cachestat(2), or -1 if the kernel has no
 * cachestat (or a seccomp filter refuses it). */
static long
cachestat_dirty(int fd)
{
	struct range r = { 0, 0 };
	struct page_stats st;

	if (syscall(SYS_cachestat, fd, &r, &st, 0) < 0) {
		assert_true(errno == ENOSYS || errno == EPERM);
		return -1;
	}
	return (long)st.dirty;
}

#define PM_PRESENT (1ull << 63)		/* /proc/PID/pagemap: page present */
#define PM_PFN ((1ull << 55) - 1)	/* its frame number (0 unless root) */
#define KPF_DIRTY 4			/* /proc/kpageflags: dirty bit */

/* Dirty pages of @fd by the flags of its page frames: each page is mapped
 * and touched, /proc/self/pagemap gives its frame, /proc/kpageflags the
 * frame's flags.  -1 if they cannot be read (not root, no procfs). */
static long
kpageflags_dirty(int fd)
{
	int pm = open("/proc/self/pagemap", O_RDONLY);
	int kf = open("/proc/kpageflags", O_RDONLY);
	volatile const uint8_t *map;
	long dirty = 0;

	if (pm < 0 || kf < 0) {
		if (pm >= 0)
			close(pm);
		if (kf >= 0)
			close(kf);
		return -1;
	}
	map = mmap(NULL, FILE_BYTES, PROT_READ, MAP_SHARED, fd, 0);
	assert_true(map != MAP_FAILED);
	for (uint64_t p = 0; p < FILE_BYTES / PAGE && dirty >= 0; p++) {
		uint64_t ent, flags;
		off_t at = (off_t)(((uintptr_t)map / PAGE + p) * 8);

		(void)map[p * PAGE];		/* fault the page in */
		assert_int_equal(pread(pm, &ent, 8, at), 8);
		assert_true(ent & PM_PRESENT);
		if (!(ent & PM_PFN)) {
			dirty = -1;		/* frame numbers hidden */
			break;
		}
		assert_int_equal(pread(kf, &flags, 8,
		    (off_t)((ent & PM_PFN) * 8)), 8);
		dirty += (flags >> KPF_DIRTY) & 1;
	}
	munmap((void *)map, FILE_BYTES);
	close(pm);
	close(kf);
	return dirty;
}

/* Dirty pages of @fd, or -1 if the kernel cannot tell this process. */
static long
dirty_pages(int fd)
{
	long n = cachestat_dirty(fd);

	return n >= 0 ? n : kpageflags_dirty(fd);
}

static void
test_writeback(void **state)
{
	int fd = cold_file();
	struct vs_advisor *a = advisor_of(fd);
	uint8_t *buf = malloc(FILE_BYTES), *want = malloc(FILE_BYTES);

	(void)state;
	assert_non_null(buf);
	assert_non_null(want);
	fill(buf, FILE_BYTES, 2);
	assert_int_equal(pwrite(fd, buf, FILE_BYTES, 0), FILE_BYTES);
	if (dirty_pages(fd) < 0) {
		vs_advisor_free(a);
		free(want);
		free(buf);
		close(fd);
		print_message("no cachestat(2) and /proc/kpageflags unreadable: "
		    "dirty pages cannot be counted\n");
		skip();
	}
	assert_true(dirty_pages(fd) > 0);
	vs_advise(a, VS_ADVISE_WRITEBACK, 0, FILE_BYTES);
	vs_advisor_drain(a);
	assert_int_equal(dirty_pages(fd), 0);
	vs_advisor_free(a);
	memset(buf, 0, FILE_BYTES);
	assert_int_equal(pread(fd, buf, FILE_BYTES, 0), FILE_BYTES);
	fill(want, FILE_BYTES, 2);
	assert_memory_equal(buf, want, FILE_BYTES);
	free(want);
	free(buf);
	close(fd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_read_ahead, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_more_than_the_queue, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_writeback, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
