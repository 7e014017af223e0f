/*
 * choose.c - which format an image is read as.
 *
 * A guest owns every byte of a raw disk, so it can write a qcow2 header
 * into its first sector.  Reading such a disk as qcow2 would back up the
 * clusters of the forged image instead of the guest's data, and follow a
 * backing file the guest named.  So content alone never makes vmsync read
 * an image as anything but raw.  A probed format is used only when it is
 * confirmed, in this order:
 *   1. --format names it (and nothing is probed);
 *   2. the file's name says so (.qcow2, .qcow; .vmdk, .vdi, .vhdx, .vhd,
 *      .vpc and .qed, read through qemu-storage-daemon (nbd.c), which
 *      opens them with the driver named, never probing; a .vmdk that is
 *      a descriptor is a vmdk too: vmdk.c opens the extent files it
 *      names);
 *   3. the target's index records that the last sync read it so.
 * A name or record that disagrees with the content is refused: the image
 * or the target is not what it was.  Otherwise the file is copied as raw,
 * which is always lossless (only the dead clusters of a real qcow2 are
 * not punched), and the caller says so once.  A whole-disk LUKS guest is
 * raw data: it is copied, never refused.
 */
#include <string.h>
#include <strings.h>

#include "format.h"
#include "../util.h"

#define PROBE_LEN 4096

/* Formats known by name and content but not read; LUKS is guest data.
 * A vmdk descriptor (monolithicFlat, split extents) is a text file that
 * names the files holding the disk: it probes as its own kind. */
#define VMDK_DESCRIPTOR "vmdk descriptor"
static const struct {
	const char *name;	/* as qemu-img names it; what the probe says */
	const char *magic;	/* bytes at offset 0, or NULL */
	size_t len;		/* magic length */
	const char *suffix[2];	/* file name endings that say so */
} others[] = {
	{ "qed", "QED\0", 4, { ".qed" } },
	{ "vmdk", "KDMV", 4, { ".vmdk" } },
	{ VMDK_DESCRIPTOR, "# Disk DescriptorFile", 21, { NULL } },
	{ "vdi", "<<< ", 4, { ".vdi" } },
	{ "vhdx", "vhdxfile", 8, { ".vhdx" } },
	{ "vpc", "conectix", 8, { ".vhd", ".vpc" } },
	{ "luks", "LUKS\xba\xbe", 6, { NULL } },
};

static const char *const qcow2_suffix[] = { ".qcow2", ".qcow" };

static bool
ends_with(const char *name, const char *suffix)
{
	size_t n = strlen(name), s = strlen(suffix);

	return n > s && strcasecmp(name + n - s, suffix) == 0;
}

const char *
vs_format_by_name(const char *name)
{
	for (size_t i = 0; i < sizeof(qcow2_suffix) / sizeof(*qcow2_suffix);
	    i++)
		if (ends_with(name, qcow2_suffix[i]))
			return "qcow2";
	for (size_t i = 0; i < sizeof(others) / sizeof(*others); i++)
		for (size_t j = 0; j < 2 && others[i].suffix[j]; j++)
			if (ends_with(name, others[i].suffix[j]))
				return others[i].name;
	return NULL;
}

int
vs_format_probe(struct vs_io *io, const char **out)
{
	uint8_t head[PROBE_LEN];
	size_t len = (size_t)vs_min(sizeof(head), io->size);

	*out = "raw";
	if (io->ops->pread(io, head, len, 0) < 0)
		return -1;
	if (vs_format_qcow2.probe(head, len)) {
		*out = "qcow2";
		return 0;
	}
	for (size_t i = 0; i < sizeof(others) / sizeof(*others); i++)
		if (len >= others[i].len &&
		    memcmp(head, others[i].magic, others[i].len) == 0) {
			*out = others[i].name;
			break;
		}
	return 0;
}

bool
vs_format_guest_only(const char *format)
{
	static const char *const via_qemu[] = { "vmdk", "vdi", "vhdx", "vpc",
	    "qed" };

	for (size_t i = 0; i < sizeof(via_qemu) / sizeof(*via_qemu); i++)
		if (strcmp(format, via_qemu[i]) == 0)
			return true;
	return false;
}

static bool
readable(const char *format)
{
	return strcmp(format, "raw") == 0 || strcmp(format, "qcow2") == 0 ||
	    vs_format_guest_only(format);
}

/* The one line for @name, named as the format @byname that vmsync does
 * not read and whose content looks like @probed: how to convert it. */
static void
refuse_unread(const char *name, const char *byname, const char *probed)
{
	/* The name ends with one of byname's suffixes: a dot is there. */
	int stem = (int)(strrchr(name, '.') - name);

	if (strcmp(probed, VMDK_DESCRIPTOR) == 0)
		vs_err(VS_EXIT_SOURCE, name, "vmdk descriptor: the disk is in "
		    "the extent files it names and --format=raw would copy "
		    "only the descriptor; convert it first: qemu-img convert "
		    "-O raw %s %.*s.img", name, stem, name);
	else
		vs_err(VS_EXIT_SOURCE, name, "%s image: this format is not "
		    "supported yet; convert it first (qemu-img convert -O raw "
		    "%s %.*s.img) or use --format=raw to copy the file as it "
		    "is", byname, name, stem, name);
}

int
vs_format_decide(const char *name, const char *forced, const char *recorded,
    const char *probed, struct vs_format_choice *c)
{
	const char *byname = vs_format_by_name(name);

	memset(c, 0, sizeof(*c));
	c->probed = probed;
	if (forced) {
		if (!readable(forced)) {
			vs_err(VS_EXIT_SOURCE, name,
			    "format '%s' is not supported", forced);
			return -1;
		}
		c->format = forced;
		c->basis = "--format";
		return 0;
	}
	if (byname && !readable(byname)) {
		refuse_unread(name, byname, probed);
		return -1;
	}
	/* A fixed VHD has its footer at the end only: qemu checks it.  A
	 * vmdk descriptor names the files holding the disk. */
	if (byname && strcmp(byname, probed) != 0 &&
	    !(strcmp(byname, "vpc") == 0 && strcmp(probed, "raw") == 0) &&
	    !(strcmp(byname, "vmdk") == 0 &&
	    strcmp(probed, VMDK_DESCRIPTOR) == 0)) {
		vs_err(VS_EXIT_SOURCE, name, "named as a %s image, but it is "
		    "not one (use --format=raw to copy the file as it is)",
		    byname);
		return -1;
	}
	if (byname) {
		c->format = byname;
		c->basis = "its name";
		return 0;
	}
	if (recorded && (strcmp(recorded, "raw") == 0 ||
	    strcmp(recorded, "qcow2") == 0)) {
		if (strcmp(recorded, "raw") != 0 &&
		    strcmp(recorded, probed) != 0) {
			vs_err(VS_EXIT_SOURCE, name, "the last sync read it "
			    "as %s, but it is not a %s image now (use "
			    "--format=raw to copy the file as it is)",
			    recorded, recorded);
			return -1;
		}
		c->format = strcmp(recorded, "raw") == 0 ? "raw" : "qcow2";
		c->basis = "the target's record";
		return 0;
	}
	c->format = "raw";
	c->basis = "its content";
	c->unconfirmed = strcmp(probed, "raw") != 0 &&
	    strcmp(probed, "luks") != 0;
	return 0;
}

int
vs_format_choose(struct vs_io *io, const char *name, const char *forced,
    const char *recorded, struct vs_format_choice *c)
{
	const char *probed = "raw";

	if (!forced && vs_format_probe(io, &probed) < 0)
		return -1;
	return vs_format_decide(name, forced, recorded, probed, c);
}

void
vs_format_warn_unconfirmed(const char *name, const struct vs_format_choice *c)
{
	if (!c->unconfirmed)
		return;
	vs_warn(name, "starts like a %s%s, but neither its name nor "
	    "--format says it is one: copied as raw%s", c->probed,
	    strcmp(c->probed, VMDK_DESCRIPTOR) == 0 ? "" : " image",
	    strcmp(c->probed, "qcow2") == 0 ? ", dead clusters included" : "");
}
