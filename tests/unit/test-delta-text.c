/*
 * test-delta-text.c - the text entry of an incremental archive
 * (src/delta_text.c): what the export writes parses back the same, and
 * every departure from the format is refused as a source error (exit 2)
 * naming the line.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "unit.h"

#include <string.h>

#include "delta.h"
#include "delta_text.h"
#include "vmsync.h"

/* A delta of two holes, formatted. */
static char *
sample(size_t *len)
{
	struct vs_delta d = { .name = "vm.img", .base_size = 1 << 20,
	    .base_seed = 0x0123456789abcdefull, .block_size = 65536,
	    .size = 2 << 20 };
	char *text;

	for (int i = 0; i < VS_HASH_LEN; i++)
		d.base_digest.b[i] = (uint8_t)(i * 17);
	assert_int_equal(vs_extent_add(&d.holes, 65536, 65536, VS_EXT_ZERO), 0);
	assert_int_equal(vs_extent_add(&d.holes, 1 << 20, 4096, VS_EXT_ZERO), 0);
	assert_int_equal(vs_delta_format(&d, &text, len), 0);
	vs_extent_vec_free(&d.holes);
	return text;
}

static void
test_round_trip(void **state)
{
	struct vs_delta d;
	size_t len;
	char *text = sample(&len);

	(void)state;
	vs_err_reset();
	assert_int_equal(vs_delta_parse(text, len, &d, "t.tar"), 0);
	assert_string_equal(d.name, "vm.img");
	assert_int_equal(d.base_size, 1 << 20);
	assert_true(d.base_seed == 0x0123456789abcdefull);
	assert_int_equal(d.base_digest.b[3], 51);
	assert_int_equal(d.block_size, 65536);
	assert_int_equal(d.size, 2 << 20);
	assert_int_equal(d.holes.n, 2);
	assert_int_equal(d.holes.v[1].off, 1 << 20);
	assert_int_equal(d.holes.v[1].len, 4096);
	vs_delta_free(&d);
	free(text);
}

/* Replace the first @from in the sample with @to, fix the checksum if
 * @reseal, and expect a refusal mentioning @why. */
static void
refused(const char *from, const char *to, bool reseal, const char *why)
{
	struct vs_delta d;
	size_t len;
	char *text = sample(&len), *buf = malloc(len + 64), *at, *end;

	assert_non_null(buf);
	assert_non_null(at = strstr(text, from));
	len = (size_t)snprintf(buf, len + 64, "%.*s%s%s", (int)(at - text),
	    text, to, at + strlen(from));
	if (reseal && (end = strstr(buf, "end ")))
		len = (size_t)(end - buf) + (size_t)sprintf(end, "end %016llx\n",
		    (unsigned long long)vs_hash64(buf, (size_t)(end - buf)));
	vs_err_reset();
	assert_int_equal(vs_delta_parse(buf, len, &d, "t.tar"), -1);
	assert_int_equal(vs_err_first(), VS_EXIT_SOURCE);
	if (!strstr(vs_err_text(), why))
		fail_msg("\"%s\" does not say \"%s\"", vs_err_text(), why);
	vs_delta_free(&d);
	free(text);
	free(buf);
}

static void
test_checksum(void **state)
{
	(void)state;
	refused("hole 65536 ", "hole 65537 ", false, "line 10 of its delta: the checksum");
	refused("end ", "end x", false, "neither a hole nor the end");
	refused("vm.img\n", "vm.img\nextra 1\n", true, "line 3 of its delta: base-size");
}

static void
test_numbers(void **state)
{
	(void)state;
	refused("base-size 1048576", "base-size 99999999999999999999", true,
	    "out of range");
	refused("base-size 1048576", "base-size 01048576", true,
	    "out of range");
	refused("base-size 1048576", "base-size -1", true, "out of range");
	refused("block-size 65536", "block-size 65537", true,
	    "not a block size");
	refused("block-size 65536", "block-size 1024", true,
	    "not a block size");
	refused("base-seed 0123", "base-seed 0X23", true, "hex digits");
}

static void
test_holes(void **state)
{
	(void)state;
	/* Beyond the size, overflowing, empty, out of order. */
	refused("hole 1048576 4096", "hole 2093056 8192", true,
	    "out of range");
	refused("hole 1048576 4096", "hole 18446744073709551615 2", true,
	    "out of range");
	refused("hole 1048576 4096", "hole 1048576 0", true, "out of range");
	refused("hole 1048576 4096", "hole 65536 4096", true,
	    "out of order");
	refused("hole 1048576 4096", "hole 100000 4096", true,
	    "out of order");
}

static void
test_framing(void **state)
{
	(void)state;
	refused("vmsync-delta 1", "vmsync-delta 2", true, "line 1");
	refused("name vm.img", "name ../vm.img", true, "not a file name");
	refused("name vm.img", "name ..", true, "not a file name");
	refused("name vm.img", "name vm\timg", true, "control characters");
	refused("name vm.img", "name .vm.img.vmsync-index", true,
	    "not an image name");
	refused("name vm.img", "name .vmsync.lock", true,
	    "not an image name");
	refused("end ", "hole 1 1\nend ", false, "");
}

static void
test_truncated(void **state)
{
	struct vs_delta d;
	size_t len;
	char *text = sample(&len);

	(void)state;
	for (size_t cut = 0; cut < len; cut++) {
		vs_err_reset();
		assert_int_equal(vs_delta_parse(text, cut, &d, "t.tar"), -1);
		assert_int_equal(vs_err_first(), VS_EXIT_SOURCE);
		vs_delta_free(&d);
	}
	/* Text after the end line. */
	text = realloc(text, len + 2);
	memcpy(text + len, "x\n", 2);
	vs_err_reset();
	assert_int_equal(vs_delta_parse(text, len + 2, &d, "t.tar"), -1);
	assert_non_null(strstr(vs_err_text(), "text after the end"));
	vs_delta_free(&d);
	free(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_checksum),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_holes),
		cmocka_unit_test(test_framing),
		cmocka_unit_test(test_truncated),
	};

	vs_err_quiet = true;
	return cmocka_run_group_tests_name("delta-text", tests, NULL, NULL);
}
