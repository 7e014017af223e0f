/*
 * raw.c - raw images: the container's bytes are the disk.
 *
 * The map is the container's allocation (SEEK_DATA/SEEK_HOLE on files, all
 * data on block devices).  Raw accepts anything, so it is probed last.
 */
#include <stdlib.h>

#include "format.h"

static bool
raw_probe(const uint8_t *head, size_t len)
{
	(void)head, (void)len;
	return true;
}

static int
raw_open(struct vs_io *io, const struct vs_chain *chain,
    struct vs_image **out)
{
	struct vs_image *img = calloc(1, sizeof(*img));

	(void)chain;
	if (!img) {
		vs_errno(VS_EXIT_INTERNAL, io->name, "open");
		return -1;
	}
	img->ops = &vs_format_raw;
	img->name = io->name;
	img->size = io->size;
	img->io = io;
	*out = img;
	return 0;
}

static void
raw_close(struct vs_image *img)
{
	vs_io_close(img->io);
	free(img);
}

static int
raw_map(struct vs_image *img, uint64_t off, uint64_t len,
    struct vs_extent_vec *out)
{
	return img->io->ops->map(img->io, off, len, out);
}

static int
raw_read(struct vs_image *img, void *buf, size_t len, uint64_t off)
{
	return img->io->ops->pread(img->io, buf, len, off);
}

static void
raw_drop_cache(struct vs_image *img, uint64_t off, uint64_t len)
{
	img->io->ops->drop_cache(img->io, off, len);
}

const struct vs_format_ops vs_format_raw = {
	.name = "raw",
	.probe = raw_probe,
	.open = raw_open,
	.close = raw_close,
	.map = raw_map,
	.read = raw_read,
	.drop_cache = raw_drop_cache,
	.place = vs_place_identity,
	.locate = vs_place_identity,
};
