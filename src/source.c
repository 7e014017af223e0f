/*
 * source.c - open a source image and choose the view that is synced.
 */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "source.h"

/* The target's file name for @src: its basename, with the extension
 * replaced by ".raw" when a qcow2 image is synced as its guest disk. */
char *
vs_target_name(const char *src, bool to_raw)
{
	char *copy = strdup(src), *out = NULL;
	const char *base;
	const char *dot;

	if (!copy)
		return NULL;
	base = basename(copy);
	dot = strrchr(base, '.');
	if (!to_raw)
		out = strdup(base);
	else if (asprintf(&out, "%.*s.raw", (int)(dot && dot != base ?
	    dot - base : (int)strlen(base)), base) < 0)
		out = NULL;
	free(copy);
	return out;
}

/* Open @src and choose the view to sync: the guest disk for -O raw (and
 * raw images), the file itself otherwise. */
int
vs_source_open(const char *src, const char *format, const char *output,
    struct vs_target_opts *topts, struct vs_image **out, bool *to_raw)
{
	struct vs_image *img;
	struct vs_io *io;
	bool is_raw;

	if (vs_io_open_file(src, &io) < 0)
		return -1;
	topts->src_mode = io->mode;
	topts->src_mtime_sec = io->mtime_sec;
	topts->src_mtime_nsec = io->mtime_nsec;
	topts->src_dev = io->dev;
	topts->src_ino = io->ino;
	if (vs_image_open(io, format, &img) < 0)
		return -1;
	is_raw = img->ops == &vs_format_raw;
	*to_raw = !is_raw && output && strcmp(output, "raw") == 0;
	if (is_raw && output && strcmp(output, "raw") != 0) {
		vs_err(VS_EXIT_USAGE, src, "a raw image cannot be synced as "
		    "%s", output);
		vs_image_close(img);
		return -1;
	}
	if (!is_raw && vs_image_validate(img) < 0) {
		vs_image_close(img);
		return -1;
	}
	if (*to_raw) {
		vs_info(1, "%s: %s image, syncing its guest disk", src,
		    img->ops->name);
		*out = img;
		return 0;
	}
	return vs_fileview_open(img, out);
}
