/*
 * test-vmdk.c - the vmdk checks made before qemu opens an image
 * (src/formats/vmdk.c): a descriptor is parsed strictly and bounded, and
 * every file it names is opened by vmsync under the refs policy (none in
 * memory: the parse is checked by how far it gets); a sparse header that
 * would make qemu read an embedded descriptor is refused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "formats/vmdk.h"
#include "vmsync.h"

#define HEAD "# Disk DescriptorFile\nversion=1\nCID=1234abcd\n" \
	"parentCID=ffffffff\ncreateType=\"monolithicFlat\"\n"

/* Prepare @text as a descriptor; the error text, "" if it succeeded. */
static const char *
prepare(const void *buf, size_t len)
{
	struct vs_vmdk v;
	struct vs_io *io;
	int rc;

	assert_int_equal(vs_io_open_mem(buf, len, "d.vmdk", &io), 0);
	vs_err_reset();
	rc = vs_vmdk_prepare(io, 5, &v);
	if (rc == 0) {
		vs_vmdk_release(&v);
		vs_io_close(io);
		return "";
	}
	assert_int_equal(vs_err_first(), VS_EXIT_SOURCE);
	vs_io_close(io);
	return vs_err_text();
}

static void
expect(const char *text, const char *why)
{
	const char *got = prepare(text, strlen(text));

	if (!strstr(got, why))
		fail_msg("'%s': got '%s', expected '%s'", text, got, why);
}

/* A descriptor that parses gets as far as opening its first extent,
 * which a memory io refuses. */
#define PARSED "extent file 'x-flat.vmdk' refused: files named by this " \
	"image are not followed"

static void
test_valid(void **state)
{
	(void)state;
	expect(HEAD "RW 2048 FLAT \"x-flat.vmdk\" 0\n", PARSED);
	/* Comments, settings, blanks, CR LF, padding NULs as qemu-img. */
	expect(HEAD "# Extent description\r\n\t RW  2048\tFLAT "
	    "\"x-flat.vmdk\"  7 \r\n\n#DDB\nddb.adapterType = \"ide\"\n"
	    "\0\0\0", PARSED);
	expect("# Disk DescriptorFile\ncreateType=\"vmfs\"\n"
	    "RW 2048 VMFS \"x-flat.vmdk\"\n", PARSED);
	expect("# Disk DescriptorFile\ncreateType=\"twoGbMaxExtentSparse\"\n"
	    "RW 2048 SPARSE \"x-flat.vmdk\"\n", PARSED);
}

static void
test_refused_lines(void **state)
{
	(void)state;
	expect(HEAD "RDONLY 2048 FLAT \"x-flat.vmdk\" 0\n",
	    "line 6: extent access 'RDONLY' is not read by qemu");
	expect(HEAD "NOACCESS 2048 FLAT \"x-flat.vmdk\" 0\n",
	    "line 6: extent access 'NOACCESS'");
	expect(HEAD "RW 2048 ZERO\n", "line 6: extent type 'ZERO' is not "
	    "supported");
	expect(HEAD "RW 2048 VMFSSPARSE \"x\"\n", "extent type 'VMFSSPARSE'");
	expect(HEAD "RW 0 FLAT \"x\" 0\n", "line 6: bad extent size");
	expect(HEAD "RW -1 FLAT \"x\" 0\n", "line 6: bad extent size");
	expect(HEAD "RW 1125899906842625 FLAT \"x\" 0\n", "bad extent size");
	expect(HEAD "RW 18446744073709551617 FLAT \"x\" 0\n",
	    "bad extent size");
	expect(HEAD "RW 2048 FLAT \"x\"\n", "no offset for a FLAT extent");
	expect(HEAD "RW 2048 SPARSE \"x\" 0\n", "offset given for a SPARSE");
	expect(HEAD "RW 2048 VMFS \"x\" 0\n", "offset given for a VMFS");
	expect(HEAD "RW 2048 FLAT \"x\" junk\n", "bad extent offset");
	expect(HEAD "RW 2048 FLAT \"x\" 0 1\n", "trailing characters");
	expect(HEAD "RW 2048 FLAT \"\" 0\n", "bad extent file name");
	expect(HEAD "RW 2048 FLAT \"x 0\n", "bad extent file name");
	expect(HEAD "RW 2048 FLAT x 0\n", "bad extent file name");
	expect(HEAD "hello\n", "line 6: not a setting, an extent or a "
	    "comment");
	expect(HEAD "=x\n", "line 6: not a setting");
	expect(HEAD "a/b = 1\n", "line 6: not a setting");
	expect(HEAD "CID=1\n", "line 6: bad CID");
	expect(HEAD "parentCID=123456789\n", "bad parentCID");
	expect(HEAD "createType=\"vmfs\"\n", "line 6: bad createType");
	expect(HEAD "createType=monolithicFlat\n", "bad createType");
}

static void
test_refused_descriptors(void **state)
{
	char *big, *many;
	size_t n = 0;

	(void)state;
	expect("# Disk DescriptorFile\nRW 2048 FLAT \"x\" 0\n",
	    "createType '' is not supported");
	expect("# Disk DescriptorFile\ncreateType=\"monolithicSparse\"\n"
	    "RW 2048 FLAT \"x\" 0\n", "createType 'monolithicSparse'");
	expect(HEAD, "names no extent");
	/* Text after a NUL byte is not read, as qemu does not (qemu leaves
	 * the tail of a longer CID there): this names no extent. */
	assert_non_null(strstr(prepare(HEAD "\0RW 2048 FLAT \"x\" 0\n",
	    sizeof(HEAD) + 19), "names no extent"));
	/* Larger than qemu reads: refused before it is parsed. */
	big = calloc(1, (1 << 20) + 2);
	assert_non_null(big);
	memcpy(big, HEAD, strlen(HEAD));
	memset(big + strlen(HEAD), '#', (1 << 20) + 1 - strlen(HEAD));
	assert_non_null(strstr(prepare(big, (1 << 20) + 1),
	    "vmdk descriptor larger than"));
	free(big);
	/* More extents than allowed. */
	many = malloc(2100 * 40 + sizeof(HEAD));
	assert_non_null(many);
	n = (size_t)sprintf(many, "%s", HEAD);
	for (int i = 0; i < 2049; i++)
		n += (size_t)sprintf(many + n, "RW 1 FLAT \"x%d\" 0\n", i);
	assert_non_null(strstr(prepare(many, n), "more than 2048 extents"));
	free(many);
	/* Extents adding up past the bound. */
	expect(HEAD "RW 1125899906842624 FLAT \"x\" 0\n"
	    "RW 1 FLAT \"y\" 0\n", "line 7: the extents add up to too large");
}

/* A hosted sparse header; capacity 0 defers to an embedded descriptor. */
static void
test_sparse(void **state)
{
	uint8_t h[4096] = { 'K', 'D', 'M', 'V', 1 };
	static const char desc[] = "# Disk DescriptorFile\nCID=1\n"
	    "parentCID=ffffffff\ncreateType=\"monolithicSparse\"\n"
	    "RW 8 SPARSE \"e.vmdk\"\nparentFileNameHint=\"base.vmdk\"\n";
	struct vs_vmdk v;
	struct vs_io *io;

	(void)state;
	h[12] = 8;				/* capacity: 8 sectors */
	assert_string_equal(prepare(h, sizeof(h)), "");
	/* The parent named in the embedded descriptor is reported. */
	h[28] = 1;				/* descriptor at sector 1 */
	h[36] = 2;				/* of 2 sectors */
	memcpy(h + 512, desc, sizeof(desc) - 1);
	assert_int_equal(vs_io_open_mem(h, sizeof(h), "s.vmdk", &io), 0);
	assert_int_equal(vs_vmdk_prepare(io, 5, &v), 0);
	assert_string_equal(v.parent, "base.vmdk");
	assert_int_equal(v.desc_fd, -1);
	vs_vmdk_release(&v);
	vs_io_close(io);
	/* An embedded descriptor out of the file. */
	h[36] = 200;
	assert_non_null(strstr(prepare(h, sizeof(h)), "out of the file"));
	h[36] = 2;
	h[12] = 0;
	assert_non_null(strstr(prepare(h, sizeof(h)), "capacity 0"));
	memcpy(h, "COWD", 4);
	assert_non_null(strstr(prepare(h, sizeof(h)),
	    "not a hosted sparse vmdk extent"));
	assert_non_null(strstr(prepare("KDMV", 4),
	    "not a hosted sparse vmdk extent"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_refused_lines),
		cmocka_unit_test(test_refused_descriptors),
		cmocka_unit_test(test_sparse),
	};

	vs_err_quiet = true;
	return cmocka_run_group_tests_name("vmdk", tests, NULL, NULL);
}
