/*
 * test-util.c - checked arithmetic, size parsing, zero test, byte
 * formatting and whole-buffer I/O (src/util.c, src/util.h).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "unit.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

/* Parse @s; fail the case unless it gives @want. */
static void
parse_ok(const char *s, uint64_t want)
{
	uint64_t v = 0xdeadbeef;

	if (!vs_parse_size(s, &v))
		fail_msg("vs_parse_size(\"%s\") refused a valid size", s);
	if (v != want)
		fail_msg("vs_parse_size(\"%s\") = %llu, want %llu", s,
		    (unsigned long long)v, (unsigned long long)want);
}

/* Parse @s; fail the case unless it is refused and *out is untouched. */
static void
parse_bad(const char *s)
{
	uint64_t v = 12345;

	if (vs_parse_size(s, &v))
		fail_msg("vs_parse_size(\"%s\") accepted junk (%llu)",
		    s ? s : "(null)", (unsigned long long)v);
	assert_int_equal(v, 12345);
}

static void
test_parse_size_plain(void **state)
{
	(void)state;
	parse_ok("0", 0);
	parse_ok("1", 1);
	parse_ok("4096", 4096);
	parse_ok("65536", 65536);
	parse_ok("18446744073709551615", UINT64_MAX);
}

static void
test_parse_size_suffixes(void **state)
{
	(void)state;
	parse_ok("64K", 64u << 10);
	parse_ok("64k", 64u << 10);
	parse_ok("64KiB", 64u << 10);
	parse_ok("64kib", 64u << 10);
	parse_ok("64KB", 64u << 10);
	parse_ok("4M", 4u << 20);
	parse_ok("4MiB", 4u << 20);
	parse_ok("1G", 1u << 30);
	parse_ok("3G", 3ull << 30);
	parse_ok("2T", 2ull << 40);
	parse_ok("0K", 0);
}

static void
test_parse_size_junk(void **state)
{
	(void)state;
	parse_bad(NULL);
	parse_bad("");
	parse_bad("abc");
	parse_bad("K");
	parse_bad("64X");
	parse_bad("64Ki");
	parse_bad("64KiBs");
	parse_bad("64 K");
	parse_bad("1.5G");
	parse_bad("64B");	/* a B needs a multiplier before it */
	parse_bad("0x10");
}

static void
test_parse_size_sign(void **state)
{
	(void)state;
	parse_bad("-1");
	parse_bad("-64K");
	parse_bad("+64K");
	/* strtoull skips blanks and then accepts a sign: " -1" is -1. */
	parse_bad(" -1");
	parse_bad("\t-4096");
	parse_bad(" +5");
	parse_bad(" -18446744073709547520");	/* wraps to 4096 */
}

static void
test_parse_size_overflow(void **state)
{
	(void)state;
	parse_bad("18446744073709551616");	/* 2^64 */
	parse_bad("99999999999999999999999");
	parse_bad("16777216T");			/* 2^24 * 2^40 = 2^64 */
	parse_bad("17179869184G");		/* 2^34 * 2^30 */
	parse_ok("16777215T", 16777215ull << 40);
	parse_ok("17179869183G", 17179869183ull << 30);
}

static void
test_is_zero_lengths(void **state)
{
	uint8_t buf[64] = { 0 };

	(void)state;
	for (size_t len = 0; len <= 40; len++)
		if (!vs_is_zero(buf, len))
			fail_msg("zero buffer of %zu bytes not seen as zero",
			    len);
	/* A set byte just past the length must not matter. */
	for (size_t len = 0; len < 40; len++) {
		buf[len] = 1;
		if (!vs_is_zero(buf, len))
			fail_msg("byte past the end read at length %zu", len);
		buf[len] = 0;
	}
}

static void
test_is_zero_every_position(void **state)
{
	uint8_t buf[41];

	(void)state;
	for (size_t len = 1; len <= sizeof(buf); len++)
		for (size_t pos = 0; pos < len; pos++) {
			memset(buf, 0, sizeof(buf));
			buf[pos] = 0x80;
			if (vs_is_zero(buf, len))
				fail_msg("byte %zu of %zu set but seen as zero",
				    pos, len);
		}
}

static void
test_is_zero_large(void **state)
{
	size_t len = (4u << 20) + 7;
	uint8_t *buf = calloc(1, len);
	size_t where[] = { 0, 15, 16, 17, 4095, 4096, 65536, len / 2,
		len - 17, len - 16, len - 1 };

	(void)state;
	assert_non_null(buf);
	assert_true(vs_is_zero(buf, len));
	for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
		buf[where[i]] = 1;
		if (vs_is_zero(buf, len))
			fail_msg("byte %zu of a large buffer missed", where[i]);
		buf[where[i]] = 0;
	}
	assert_true(vs_is_zero(buf, len));
	free(buf);
}

static void
test_add_mul_ok(void **state)
{
	uint64_t r = 0;

	(void)state;
	assert_true(vs_add_ok(1, 2, &r));
	assert_int_equal(r, 3);
	assert_true(vs_add_ok(UINT64_MAX - 1, 1, &r));
	assert_true(r == UINT64_MAX);
	assert_false(vs_add_ok(UINT64_MAX, 1, &r));
	assert_false(vs_add_ok(1ull << 63, 1ull << 63, &r));
	assert_true(vs_mul_ok(1ull << 31, 1ull << 32, &r));
	assert_true(r == 1ull << 63);
	assert_false(vs_mul_ok(1ull << 32, 1ull << 32, &r));
	assert_false(vs_mul_ok(UINT64_MAX, 2, &r));
	assert_true(vs_mul_ok(UINT64_MAX, 1, &r));
	assert_true(r == UINT64_MAX);
	assert_true(vs_mul_ok(0, UINT64_MAX, &r));
	assert_int_equal(r, 0);
}

static void
test_align_pow2(void **state)
{
	(void)state;
	assert_false(vs_is_pow2(0));
	assert_true(vs_is_pow2(1));
	assert_true(vs_is_pow2(4096));
	assert_false(vs_is_pow2(4097));
	assert_false(vs_is_pow2(3 * 4096));
	assert_true(vs_is_pow2(1ull << 63));
	assert_int_equal(vs_align_down(8191, 4096), 4096);
	assert_int_equal(vs_align_up(4097, 4096), 8192);
	assert_int_equal(vs_align_up(4096, 4096), 4096);
	assert_int_equal(vs_align_up(0, 4096), 0);
	assert_int_equal(vs_min(3, 5), 3);
	assert_int_equal(vs_max(3, 5), 5);
}

static void
fmt_is(uint64_t bytes, const char *want)
{
	char buf[64];

	memset(buf, 'x', sizeof(buf));
	assert_ptr_equal(vs_fmt_bytes(bytes, buf, sizeof(buf)), buf);
	assert_string_equal(buf, want);
}

static void
test_fmt_bytes(void **state)
{
	char small[6];

	(void)state;
	fmt_is(0, "0 B");
	fmt_is(1, "1 B");
	fmt_is(1023, "1023 B");
	fmt_is(1024, "1.00 KiB");
	fmt_is(1536, "1.50 KiB");
	fmt_is(1u << 20, "1.00 MiB");
	fmt_is(3ull << 30, "3.00 GiB");
	fmt_is(5ull << 40, "5.00 TiB");
	fmt_is(1ull << 50, "1.00 PiB");
	fmt_is(1ull << 60, "1024.00 PiB");
	/* Truncated to the buffer, always terminated. */
	vs_fmt_bytes(1536, small, sizeof(small));
	assert_string_equal(small, "1.50 ");
}

static int
setup_tmp(void **state)
{
	(void)state;
	return unit_mktmp("util");
}

static int
teardown_tmp(void **state)
{
	char path[4200];

	(void)state;
	snprintf(path, sizeof(path), "%s/f", tmpdir);
	unlink(path);
	return rmdir(tmpdir);
}

static void
test_pread_full_eof(void **state)
{
	char path[4200], buf[256];
	uint8_t data[100];
	int fd;

	(void)state;
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i + 1);
	snprintf(path, sizeof(path), "%s/f", tmpdir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(vs_pwrite_full(fd, data, sizeof(data), 0), 0);

	memset(buf, 0xee, sizeof(buf));
	assert_int_equal(vs_pread_full(fd, buf, 200, 50), 50);
	assert_memory_equal(buf, data + 50, 50);
	assert_int_equal((uint8_t)buf[50], 0xee);	/* not written past */
	assert_int_equal(vs_pread_full(fd, buf, 100, 0), 100);
	assert_memory_equal(buf, data, 100);
	assert_int_equal(vs_pread_full(fd, buf, 10, 100), 0);
	assert_int_equal(vs_pread_full(fd, buf, 10, 1u << 30), 0);
	assert_int_equal(vs_pread_full(fd, buf, 0, 0), 0);
	close(fd);
	assert_int_equal(vs_pread_full(fd, buf, 10, 0), -1);
	assert_int_equal(vs_pwrite_full(fd, buf, 10, 0), -1);
}

static void
test_pwrite_full_offset(void **state)
{
	char path[4200];
	uint8_t buf[8192], back[8192];
	int fd;

	(void)state;
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 7);
	snprintf(path, sizeof(path), "%s/f", tmpdir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(vs_pwrite_full(fd, buf, sizeof(buf), 1u << 20), 0);
	assert_int_equal(lseek(fd, 0, SEEK_END), (1u << 20) + sizeof(buf));
	assert_int_equal(vs_pread_full(fd, back, sizeof(back), 1u << 20),
	    sizeof(back));
	assert_memory_equal(buf, back, sizeof(buf));
	/* What lies before the write reads as zeros. */
	assert_int_equal(vs_pread_full(fd, back, 4096, 0), 4096);
	assert_true(vs_is_zero(back, 4096));
	close(fd);
}

static void
test_now_monotonic(void **state)
{
	double a = vs_now(), b = vs_now();

	(void)state;
	assert_true(a > 0);
	assert_true(b >= a);
}

static void
test_escape(void **state)
{
	char out[64];

	(void)state;
	assert_string_equal(vs_escape("vm.img", out, sizeof(out)), "vm.img");
	/* A terminal escape and a faked second line. */
	assert_string_equal(vs_escape("x\033[2J\nvmsync: ok", out,
	    sizeof(out)), "x\\033[2J\\012vmsync: ok");
	assert_string_equal(vs_escape("a\\b\177\r", out, sizeof(out)),
	    "a\\134b\\177\\015");
	/* UTF-8 stays; C1 controls, stray and overlong bytes do not. */
	assert_string_equal(vs_escape("caf\303\251", out, sizeof(out)),
	    "caf\303\251");
	assert_string_equal(vs_escape("\302\233\377\300\257\303", out,
	    sizeof(out)), "\\302\\233\\377\\300\\257\\303");
	/* Truncated between escapes, never inside one. */
	assert_string_equal(vs_escape("ab\033cd", out, 5), "ab");
	assert_string_equal(vs_escape("ab\033cd", out, 7), "ab\\033");
	assert_string_equal(vs_escape("\303\251\303\251", out, 4),
	    "\303\251");
}

/* Write @text into @dir/@name under the test's directory. */
static void
put_file(const char *dir, const char *name, const char *text)
{
	char path[4300];
	FILE *f;

	snprintf(path, sizeof(path), "%s/cg%s/%s", tmpdir, dir, name);
	assert_non_null(f = fopen(path, "w"));
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static void
test_cgroup_cpus(void **state)
{
	const char *dirs[] = { "", "/a", "/a/b" };
	char root[4200], path[4300];

	(void)state;
	snprintf(root, sizeof(root), "%s/cg", tmpdir);
	for (size_t i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s%s", root, dirs[i]);
		assert_int_equal(mkdir(path, 0700), 0);
	}
	assert_int_equal(vs_cgroup_cpus(root, "/a/b", false), 0);	/* no files */
	assert_int_equal(vs_cgroup_cpus(root, "/", false), 0);
	put_file("/a/b", "cpu.max", "max 100000\n");
	put_file("/a", "cpu.max", "garbage\n");
	assert_int_equal(vs_cgroup_cpus(root, "/a/b", false), 0);
	put_file("/a/b", "cpu.max", "150000 100000\n");	/* 1.5 CPUs: 2 threads */
	assert_int_equal(vs_cgroup_cpus(root, "/a/b", false), 2);
	assert_int_equal(vs_cgroup_cpus(root, "/a", false), 0);
	put_file("/a", "cpu.max", "50000 100000\n");	/* a parent's is lower */
	assert_int_equal(vs_cgroup_cpus(root, "/a/b", false), 1);
	put_file("/a", "cpu.max", "800000 100000\n");	/* a parent's is higher */
	assert_int_equal(vs_cgroup_cpus(root, "/a/b", false), 2);
	/* The root's own file: none on a host, but in a cgroup namespace
	 * (a container) the root is the container's cgroup, named "/". */
	put_file("", "cpu.max", "100000 100000\n");
	assert_int_equal(vs_cgroup_cpus(root, "/", false), 1);
	assert_int_equal(vs_cgroup_cpus(root, "/a/b", false), 1);
	put_file("", "cpu.max", "max 100000\n");
	assert_int_equal(vs_cgroup_cpus(root, "/a/b", false), 2);
	/* cgroup v1: a quota of -1 is none. */
	put_file("/a/b", "cpu.cfs_quota_us", "-1\n");
	put_file("/a/b", "cpu.cfs_period_us", "100000\n");
	put_file("/a", "cpu.cfs_quota_us", "-1\n");
	put_file("/a", "cpu.cfs_period_us", "100000\n");
	assert_int_equal(vs_cgroup_cpus(root, "/a/b", true), 0);
	put_file("/a", "cpu.cfs_quota_us", "300000\n");
	assert_int_equal(vs_cgroup_cpus(root, "/a/b", true), 3);
	put_file("/a/b", "cpu.cfs_quota_us", "100000\n");
	assert_int_equal(vs_cgroup_cpus(root, "/a/b", true), 1);
	put_file("/a/b", "cpu.cfs_period_us", "0\n");
	assert_int_equal(vs_cgroup_cpus(root, "/a/b", true), 3);
	put_file("", "cpu.cfs_quota_us", "200000\n");	/* a container's */
	put_file("", "cpu.cfs_period_us", "100000\n");
	assert_int_equal(vs_cgroup_cpus(root, "/a/b", true), 2);
	assert_int_equal(vs_cgroup_cpus(root, "/", true), 2);
	assert_true(vs_cpu_count() >= 1);
	for (size_t i = 3; i-- > 0;) {
		static const char *const names[] = { "cpu.max",
		    "cpu.cfs_quota_us", "cpu.cfs_period_us" };

		for (size_t j = 0; j < 3; j++) {
			snprintf(path, sizeof(path), "%s%s/%s", root, dirs[i],
			    names[j]);
			unlink(path);
		}
		snprintf(path, sizeof(path), "%s%s", root, dirs[i]);
		assert_int_equal(rmdir(path), 0);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_size_plain),
		cmocka_unit_test(test_parse_size_suffixes),
		cmocka_unit_test(test_parse_size_junk),
		cmocka_unit_test(test_parse_size_sign),
		cmocka_unit_test(test_parse_size_overflow),
		cmocka_unit_test(test_is_zero_lengths),
		cmocka_unit_test(test_is_zero_every_position),
		cmocka_unit_test(test_is_zero_large),
		cmocka_unit_test(test_add_mul_ok),
		cmocka_unit_test(test_align_pow2),
		cmocka_unit_test(test_fmt_bytes),
		cmocka_unit_test_setup_teardown(test_pread_full_eof,
		    setup_tmp, teardown_tmp),
		cmocka_unit_test_setup_teardown(test_pwrite_full_offset,
		    setup_tmp, teardown_tmp),
		cmocka_unit_test(test_now_monotonic),
		cmocka_unit_test(test_escape),
		cmocka_unit_test_setup_teardown(test_cgroup_cpus,
		    setup_tmp, teardown_tmp),
	};

	return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
