/*
 * test-cli.c - command line parsing and validation (vs_cli_parse in
 * src/cli.c): defaults, every option, --block-size limits, exclusive
 * options, missing operands, --index with several sources, --format,
 * archive DESTs.
 * --help and --usage exit inside popt and are covered by shell tests.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "cli.h"

/* Parse a NULL-terminated argv; returns vs_cli_parse's result. */
static int
parse(const char **argv, struct vs_cli *cli)
{
	int argc = 0;

	while (argv[argc])
		argc++;
	memset(cli, 0x5a, sizeof(*cli));	/* parse must set everything */
	return vs_cli_parse(argc, argv, cli);
}

/* Expect @argv to parse; the caller frees @cli. */
#define PARSE_OK(cli, ...) do {						\
	const char *argv_[] = { "vmsync", __VA_ARGS__, NULL };		\
	if (parse(argv_, (cli)) != 0)					\
		fail_msg("refused a valid command line");		\
} while (0)

/* Expect @argv to be a usage error that leaves nothing to free. */
#define PARSE_BAD(...) do {						\
	const char *argv_[] = { "vmsync", __VA_ARGS__, NULL };		\
	struct vs_cli c_;						\
	if (parse(argv_, &c_) != -1)					\
		fail_msg("accepted a bad command line (%s ...)",	\
		    argv_[1]);						\
	assert_null(c_.paths);						\
	assert_null(c_.index);						\
	assert_int_equal(c_.npaths, 0);					\
} while (0)

static void
test_defaults(void **state)
{
	struct vs_cli c;

	(void)state;
	PARSE_OK(&c, "src.img", "dst.img");
	assert_false(c.dry_run);
	assert_int_equal(c.verbose, 0);
	assert_false(c.quiet);
	assert_int_equal(c.progress, VS_AUTO);
	assert_false(c.stats);
	assert_false(c.json);
	assert_int_equal(c.block_size, 0);
	assert_false(c.checksum);
	assert_null(c.format);
	assert_null(c.index);
	assert_int_equal(c.npaths, 2);
	assert_string_equal(c.paths[0], "src.img");
	assert_string_equal(c.paths[1], "dst.img");
	vs_cli_free(&c);
	assert_null(c.paths);
	assert_int_equal(c.npaths, 0);
}

static void
test_paths_copied(void **state)
{
	char a[] = "a.img", b[] = "b.img", d[] = "backup/";
	const char *argv[] = { "vmsync", a, b, d, NULL };
	struct vs_cli c;

	(void)state;
	assert_int_equal(parse(argv, &c), 0);
	a[0] = b[0] = d[0] = 'X';
	assert_int_equal(c.npaths, 3);
	assert_string_equal(c.paths[0], "a.img");
	assert_string_equal(c.paths[1], "b.img");
	assert_string_equal(c.paths[2], "backup/");
	vs_cli_free(&c);
}

static void
test_flags(void **state)
{
	struct vs_cli c;

	(void)state;
	PARSE_OK(&c, "-n", "s", "d");
	assert_true(c.dry_run);
	vs_cli_free(&c);
	PARSE_OK(&c, "--dry-run", "s", "d");
	assert_true(c.dry_run);
	vs_cli_free(&c);
	PARSE_OK(&c, "-q", "s", "d");
	assert_true(c.quiet);
	vs_cli_free(&c);
	PARSE_OK(&c, "--quiet", "s", "d");
	assert_true(c.quiet);
	vs_cli_free(&c);
	PARSE_OK(&c, "--stats", "s", "d");
	assert_true(c.stats);
	assert_false(c.json);
	vs_cli_free(&c);
	PARSE_OK(&c, "--json", "s", "d");
	assert_true(c.json);
	assert_false(c.stats);
	vs_cli_free(&c);
	PARSE_OK(&c, "-c", "s", "d");
	assert_true(c.checksum);
	vs_cli_free(&c);
	PARSE_OK(&c, "--checksum", "s", "d");
	assert_true(c.checksum);
	assert_false(c.dry_run);
	vs_cli_free(&c);
	/* Options after the operands count too. */
	PARSE_OK(&c, "s", "d", "-n", "-c");
	assert_true(c.dry_run);
	assert_true(c.checksum);
	assert_int_equal(c.npaths, 2);
	vs_cli_free(&c);
}

static void
test_verbose_count(void **state)
{
	struct vs_cli c;

	(void)state;
	PARSE_OK(&c, "-v", "s", "d");
	assert_int_equal(c.verbose, 1);
	vs_cli_free(&c);
	PARSE_OK(&c, "-vv", "s", "d");
	assert_int_equal(c.verbose, 2);
	vs_cli_free(&c);
	PARSE_OK(&c, "-v", "--verbose", "-v", "s", "d");
	assert_int_equal(c.verbose, 3);
	vs_cli_free(&c);
	PARSE_OK(&c, "-nv", "s", "d");
	assert_int_equal(c.verbose, 1);
	assert_true(c.dry_run);
	vs_cli_free(&c);
}

static void
test_progress(void **state)
{
	struct vs_cli c;

	(void)state;
	PARSE_OK(&c, "--progress", "s", "d");
	assert_int_equal(c.progress, VS_ON);
	vs_cli_free(&c);
	PARSE_OK(&c, "--no-progress", "s", "d");
	assert_int_equal(c.progress, VS_OFF);
	vs_cli_free(&c);
	/* The last one wins. */
	PARSE_OK(&c, "--no-progress", "--progress", "s", "d");
	assert_int_equal(c.progress, VS_ON);
	vs_cli_free(&c);
	PARSE_OK(&c, "--progress", "--no-progress", "s", "d");
	assert_int_equal(c.progress, VS_OFF);
	vs_cli_free(&c);
	/* --quiet only conflicts with asking for progress. */
	PARSE_OK(&c, "-q", "--no-progress", "s", "d");
	assert_true(c.quiet);
	assert_int_equal(c.progress, VS_OFF);
	vs_cli_free(&c);
}

/* --block-size @arg must parse to @want. */
static void
block_ok(const char *arg, uint32_t want)
{
	const char *argv[] = { "vmsync", "-B", arg, "s", "d", NULL };
	struct vs_cli c;

	if (parse(argv, &c) != 0)
		fail_msg("--block-size %s refused", arg);
	if (c.block_size != want)
		fail_msg("--block-size %s gave %u, want %u", arg,
		    c.block_size, want);
	vs_cli_free(&c);
}

static void
block_bad(const char *arg)
{
	const char *argv[] = { "vmsync", "--block-size", arg, "s", "d", NULL };
	struct vs_cli c;

	if (parse(argv, &c) != -1)
		fail_msg("--block-size %s accepted", arg);
	assert_null(c.paths);
}

static void
test_block_size_ok(void **state)
{
	struct vs_cli c;

	(void)state;
	block_ok("4K", 4096);
	block_ok("4096", 4096);
	block_ok("64KiB", 65536);
	block_ok("64k", 65536);
	block_ok("1M", 1u << 20);
	block_ok("4M", 4u << 20);
	block_ok("4MiB", 4u << 20);
	PARSE_OK(&c, "--block-size=128K", "s", "d");
	assert_int_equal(c.block_size, 128u << 10);
	vs_cli_free(&c);
}

static void
test_block_size_bad(void **state)
{
	(void)state;
	block_bad("3K");		/* not a power of two */
	block_bad("96K");
	block_bad("8M");		/* too large */
	block_bad("2K");		/* too small */
	block_bad("512");
	block_bad("0");
	block_bad("abc");
	block_bad("");
	block_bad("-4K");
	block_bad("4G");
	block_bad("18446744073709551616");
	PARSE_BAD("-B");		/* no argument */
}

static void
test_exclusive(void **state)
{
	struct vs_cli c;

	(void)state;
	PARSE_BAD("-q", "-v", "s", "d");
	PARSE_BAD("--verbose", "--quiet", "s", "d");
	PARSE_BAD("--json", "--stats", "s", "d");
	PARSE_BAD("--stats", "--json", "s", "d");
	PARSE_BAD("-q", "--progress", "s", "d");
	PARSE_BAD("--progress", "-q", "s", "d");
	/* Neighbours that are fine together. */
	PARSE_OK(&c, "-v", "--json", "--progress", "s", "d");
	assert_int_equal(c.verbose, 1);
	assert_true(c.json);
	vs_cli_free(&c);
	PARSE_OK(&c, "-q", "--stats", "s", "d");
	assert_true(c.quiet);
	assert_true(c.stats);
	vs_cli_free(&c);
}

static void
test_operands(void **state)
{
	const char *none[] = { "vmsync", NULL };
	const char *flags_only[] = { "vmsync", "-n", "-v", NULL };
	struct vs_cli c;

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(parse(none, &c), -1);
	assert_null(c.paths);
	assert_int_equal(parse(flags_only, &c), -1);
	assert_null(c.paths);
	PARSE_BAD("only-src.img");
	PARSE_BAD("-n", "only-src.img");
	PARSE_OK(&c, "a", "b", "c", "d", "dir/");
	assert_int_equal(c.npaths, 5);
	assert_string_equal(c.paths[4], "dir/");
	vs_cli_free(&c);
	/* "--" ends the options: a name that starts with a dash. */
	PARSE_OK(&c, "--", "-odd.img", "d");
	assert_int_equal(c.npaths, 2);
	assert_string_equal(c.paths[0], "-odd.img");
	vs_cli_free(&c);
}

static void
test_unknown_option(void **state)
{
	(void)state;
	PARSE_BAD("--no-such-option", "s", "d");
	PARSE_BAD("-Z", "s", "d");
	PARSE_BAD("--dry-run=yes", "s", "d");
}

static void
test_index(void **state)
{
	struct vs_cli c;

	(void)state;
	PARSE_OK(&c, "--index", "/var/lib/x.idx", "s", "/dev/sdz");
	assert_non_null(c.index);
	assert_string_equal(c.index, "/var/lib/x.idx");
	assert_int_equal(c.npaths, 2);
	vs_cli_free(&c);
	assert_null(c.index);
	PARSE_OK(&c, "--index=i", "s", "d");
	assert_string_equal(c.index, "i");
	vs_cli_free(&c);
	PARSE_BAD("--index", "i", "s1", "s2", "d/");
	PARSE_BAD("--index", "i", "s1", "s2", "s3", "d/");
	PARSE_BAD("--index", "i", "d");
	PARSE_BAD("--index");
}

static void
test_format(void **state)
{
	struct vs_cli c;

	(void)state;
	PARSE_OK(&c, "-f", "raw", "s", "d");
	assert_non_null(c.format);
	assert_string_equal(c.format, "raw");
	vs_cli_free(&c);
	PARSE_OK(&c, "--format=raw", "s", "d");
	assert_string_equal(c.format, "raw");
	vs_cli_free(&c);
	PARSE_OK(&c, "--format", "auto", "s", "d");
	assert_null(c.format);
	vs_cli_free(&c);
	PARSE_OK(&c, "-f", "qcow2", "s", "d");
	assert_string_equal(c.format, "qcow2");
	vs_cli_free(&c);
	PARSE_BAD("--format", "vvfat", "s", "d");
	PARSE_BAD("--format", "RAW", "s", "d");
	PARSE_BAD("--format", "", "s", "d");
	PARSE_BAD("-f");
}

static void
test_output_format(void **state)
{
	struct vs_cli c;

	(void)state;
	PARSE_OK(&c, "s", "d");
	assert_null(c.output);
	vs_cli_free(&c);
	PARSE_OK(&c, "-O", "raw", "s", "d");
	assert_string_equal(c.output, "raw");
	vs_cli_free(&c);
	PARSE_OK(&c, "--output-format=qcow2", "s", "d");
	assert_string_equal(c.output, "qcow2");
	vs_cli_free(&c);
	PARSE_OK(&c, "-O", "qcow2", "-O", "raw", "s", "d");
	assert_string_equal(c.output, "raw");
	vs_cli_free(&c);
	PARSE_BAD("-O", "vmdk", "s", "d");
	PARSE_BAD("--output-format", "", "s", "d");
	PARSE_BAD("-O");
}

static void
test_remote_options(void **state)
{
	struct vs_cli c;

	(void)state;
	PARSE_OK(&c, "s", "d");
	assert_int_equal(c.compress, -1);
	assert_null(c.rsh);
	vs_cli_free(&c);
	PARSE_OK(&c, "-e", "ssh -p 2222", "--remote-vmsync", "/opt/vmsync",
	    "--compress=zlib", "--compress-level", "9", "--bwlimit=10M",
	    "s", "h:d");
	assert_string_equal(c.rsh, "ssh -p 2222");
	assert_string_equal(c.remote_vmsync, "/opt/vmsync");
	assert_int_equal(c.compress, 1);
	assert_int_equal(c.compress_level, 9);
	assert_int_equal(c.bwlimit, 10u << 20);
	vs_cli_free(&c);
	PARSE_OK(&c, "--compress=none", "s", "d");
	assert_int_equal(c.compress, 0);
	vs_cli_free(&c);
	PARSE_OK(&c, "--server", "--root=/backup");
	assert_true(c.server);
	assert_string_equal(c.root, "/backup");
	vs_cli_free(&c);
	PARSE_BAD("--compress=lz4", "s", "d");
	PARSE_BAD("--compress-level=0", "s", "d");
	PARSE_BAD("--compress-level=20", "s", "d");
	PARSE_BAD("--compress=zlib", "--compress-level=12", "s", "d");
	PARSE_BAD("--bwlimit=0", "s", "d");
	PARSE_BAD("--bwlimit=fast", "s", "d");
	PARSE_BAD("--root=/backup", "s", "d");
}

static void
test_repeated_options(void **state)
{
	struct vs_cli c;

	(void)state;
	/* The last value wins; the earlier ones are not leaked (checked by
	 * LeakSanitizer under SANITIZE=1). */
	PARSE_OK(&c, "-B", "4K", "-B", "8K", "-f", "raw", "-f", "auto",
	    "--index", "a.idx", "--index", "b.idx", "s", "d");
	assert_int_equal(c.block_size, 8192);
	assert_null(c.format);
	assert_string_equal(c.index, "b.idx");
	vs_cli_free(&c);
}

static void
test_version(void **state)
{
	const char *argv[] = { "vmsync", "-V", NULL };
	const char *argv2[] = { "vmsync", "--version", "s", "d", NULL };
	struct vs_cli c;

	(void)state;
	assert_int_equal(parse(argv, &c), 1);
	assert_null(c.paths);
	assert_int_equal(parse(argv2, &c), 1);
	assert_null(c.paths);
}

/* An archive DEST: by its name (not a directory, not a listing) or
 * --archive; "-" needs --archive; the options of a sync are refused. */
static void
test_archive(void **state)
{
	struct vs_cli c;

	(void)state;
	PARSE_OK(&c, "s", "d");
	assert_null(c.archive);
	vs_cli_free(&c);
	PARSE_OK(&c, "s", "d.tar");
	assert_string_equal(c.archive, "tar");
	vs_cli_free(&c);
	PARSE_OK(&c, "s", "t", "d.TAR.ZST");
	assert_string_equal(c.archive, "tar.zst");
	vs_cli_free(&c);
	PARSE_OK(&c, "s", "d.tgz");
	assert_string_equal(c.archive, "tgz");
	vs_cli_free(&c);
	PARSE_OK(&c, "s", "d.tar.xz");
	assert_string_equal(c.archive, "tar.xz");
	vs_cli_free(&c);
	PARSE_OK(&c, "s", "d.tzst");
	assert_string_equal(c.archive, "tzst");
	vs_cli_free(&c);
	PARSE_OK(&c, "s", "d.txz");
	assert_string_equal(c.archive, "txz");
	vs_cli_free(&c);
	PARSE_OK(&c, "s", "d.tar.gz/");
	assert_null(c.archive);			/* a directory */
	vs_cli_free(&c);
	PARSE_OK(&c, "s", ".tar");
	assert_null(c.archive);			/* nothing before the dot */
	vs_cli_free(&c);
	PARSE_OK(&c, "--archive=tar.gz", "s", "-");
	assert_string_equal(c.archive, "tar.gz");
	vs_cli_free(&c);
	PARSE_OK(&c, "--archive", "tar", "s", "out.bin");
	assert_string_equal(c.archive, "tar");
	vs_cli_free(&c);
	PARSE_BAD("--archive=zip", "s", "-");
	PARSE_BAD("--archive=", "s", "-");
	PARSE_BAD("s", "-");
	PARSE_BAD("-n", "s", "d.tar");
	PARSE_BAD("--stats", "s", "d.tar");
	PARSE_OK(&c, "--archive=tar", "--since=b", "s", "-");
	assert_string_equal(c.since, "b");	/* an incremental archive */
	vs_cli_free(&c);
	PARSE_BAD("--archive=tar", "--since=b", "s", "t", "-");
	PARSE_BAD("--archive=tar", "--list", "d");
	PARSE_BAD("--archive=tar", "s");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_paths_copied),
		cmocka_unit_test(test_flags),
		cmocka_unit_test(test_verbose_count),
		cmocka_unit_test(test_progress),
		cmocka_unit_test(test_block_size_ok),
		cmocka_unit_test(test_block_size_bad),
		cmocka_unit_test(test_exclusive),
		cmocka_unit_test(test_operands),
		cmocka_unit_test(test_unknown_option),
		cmocka_unit_test(test_index),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_output_format),
		cmocka_unit_test(test_remote_options),
		cmocka_unit_test(test_repeated_options),
		cmocka_unit_test(test_version),
		cmocka_unit_test(test_archive),
	};

	return cmocka_run_group_tests_name("cli", tests, NULL, NULL);
}
