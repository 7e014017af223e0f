/*
 * test-advisor.c - the advisor thread gives the advice queued: once
 * drained, the ranges to read ahead are in the page cache (mincore), the
 * ranges to write back are no longer dirty (cachestat, where the kernel
 * has it), also when the caller outruns the queue; freeing waits for the
 * advice still queued.
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

/* Dirty pages of @fd, or -1 if the kernel cannot tell (no cachestat). */
static long
dirty_pages(int fd)
{
	struct range r = { 0, 0 };
	struct page_stats st;

	if (syscall(SYS_cachestat, fd, &r, &st, 0) < 0) {
		assert_int_equal(errno, ENOSYS);
		return -1;
	}
	return (long)st.dirty;
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
		print_message("cachestat(2) unavailable: writeback not seen\n");
	} else {
		assert_true(dirty_pages(fd) > 0);
		vs_advise(a, VS_ADVISE_WRITEBACK, 0, FILE_BYTES);
		vs_advisor_drain(a);
		assert_int_equal(dirty_pages(fd), 0);
	}
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
