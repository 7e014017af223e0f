/*
 * test-choose.c - the rule that decides which format an image is read as
 * (src/formats/choose.c): content alone never makes it anything but raw;
 * --format, the file's name or the target's record confirm a format, and
 * a name or record that disagrees with the content is refused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "unit.h"

#include <string.h>

#include "formats/format.h"
#include "vmsync.h"

static uint8_t qcow2_head[512] = { 'Q', 'F', 'I', 0xfb, 0, 0, 0, 3 };
static uint8_t luks_head[512] = { 'L', 'U', 'K', 'S', 0xba, 0xbe, 0, 2 };
static uint8_t vmdk_head[512] = { 'K', 'D', 'M', 'V' };
static uint8_t vmdk_desc_head[512] = "# Disk DescriptorFile\nversion=1\n";
static uint8_t raw_head[512] = { 0xeb, 0x63, 0x90 };	/* a boot sector */

/* Choose for @head named @name; the return value of vs_format_choose. */
static int
choose(const uint8_t *head, const char *name, const char *forced,
    const char *recorded, struct vs_format_choice *c)
{
	struct vs_io *io;
	int rc;

	assert_int_equal(vs_io_open_mem(head, 512, name, &io), 0);
	vs_err_reset();
	rc = vs_format_choose(io, name, forced, recorded, c);
	if (rc < 0)
		assert_int_equal(vs_err_first(), VS_EXIT_SOURCE);
	vs_io_close(io);
	return rc;
}

static void
expect(const uint8_t *head, const char *name, const char *forced,
    const char *recorded, const char *format, bool unconfirmed)
{
	struct vs_format_choice c;

	assert_int_equal(choose(head, name, forced, recorded, &c), 0);
	assert_string_equal(c.format, format);
	assert_int_equal(c.unconfirmed, unconfirmed);
}

static void
refused(const uint8_t *head, const char *name, const char *forced,
    const char *recorded)
{
	struct vs_format_choice c;

	assert_int_equal(choose(head, name, forced, recorded, &c), -1);
}

/* A guest that wrote a qcow2 header into its disk gets its disk copied. */
static void
test_content_alone_is_raw(void **state)
{
	(void)state;
	expect(qcow2_head, "/images/guest.img", NULL, NULL, "raw", true);
	expect(qcow2_head, "guest", NULL, "", "raw", true);
	expect(vmdk_head, "guest.img", NULL, NULL, "raw", true);
	expect(vmdk_desc_head, "guest.img", NULL, NULL, "raw", true);
	expect(raw_head, "guest.img", NULL, NULL, "raw", false);
}

static void
test_luks_is_guest_data(void **state)
{
	(void)state;
	expect(luks_head, "crypt.img", NULL, NULL, "raw", false);
	expect(luks_head, "crypt.img", NULL, "raw", "raw", false);
}

static void
test_name_confirms(void **state)
{
	(void)state;
	expect(qcow2_head, "vm.qcow2", NULL, NULL, "qcow2", false);
	expect(qcow2_head, "dir.x/VM.QCOW2", NULL, NULL, "qcow2", false);
	expect(qcow2_head, "old.qcow", NULL, NULL, "qcow2", false);
	/* A name that says qcow2 over other content is refused. */
	refused(raw_head, "vm.qcow2", NULL, NULL);
	refused(luks_head, "vm.qcow2", NULL, "qcow2");
	/* Formats read through qemu, by name; a name over other content is
	 * refused, but for a fixed VHD (its footer is at the end). */
	expect(vmdk_head, "vm.vmdk", NULL, NULL, "vmdk", false);
	expect(raw_head, "vm.vhd", NULL, NULL, "vpc", false);
	refused(raw_head, "vm.vdi", NULL, NULL);
	refused(raw_head, "vm.vhdx", NULL, NULL);
	refused(raw_head, "vm.qed", NULL, NULL);
	/* A vmdk descriptor named so is a vmdk (its extent files are
	 * opened by vmdk.c); under another name it is copied as it is. */
	expect(vmdk_desc_head, "/vm/disk.vmdk", NULL, NULL, "vmdk", false);
	expect(vmdk_desc_head, "/vm/disk.img", NULL, NULL, "raw", true);
	refused(vmdk_desc_head, "/vm/disk.vdi", NULL, NULL);
	/* ".qcow2" alone is no name with a suffix. */
	expect(qcow2_head, ".qcow2", NULL, NULL, "raw", true);
}

static void
test_forced(void **state)
{
	(void)state;
	expect(qcow2_head, "guest.img", "qcow2", NULL, "qcow2", false);
	expect(qcow2_head, "vm.qcow2", "raw", NULL, "raw", false);
	expect(raw_head, "vm.qcow2", "raw", "qcow2", "raw", false);
	expect(raw_head, "vm.img", "vmdk", NULL, "vmdk", false);
	refused(raw_head, "vm.img", "vvfat", NULL);
}

static void
test_record_confirms(void **state)
{
	(void)state;
	expect(qcow2_head, "vm.img", NULL, "qcow2", "qcow2", false);
	/* Read as raw last time: a header the guest wrote since changes
	 * nothing, and needs no warning. */
	expect(qcow2_head, "guest.img", NULL, "raw", "raw", false);
	/* Recorded qcow2, no longer one: refused, naming --format. */
	refused(raw_head, "vm.img", NULL, "qcow2");
	/* A record of a format vmsync does not read confirms nothing. */
	expect(qcow2_head, "vm.img", NULL, "vmdk", "raw", true);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_content_alone_is_raw),
		cmocka_unit_test(test_luks_is_guest_data),
		cmocka_unit_test(test_name_confirms),
		cmocka_unit_test(test_forced),
		cmocka_unit_test(test_record_confirms),
	};

	vs_err_quiet = true;
	return cmocka_run_group_tests_name("choose", tests, NULL, NULL);
}
