/*
 * source.c - open a source image and choose the view that is synced.
 */
#include <libgen.h>
#include <sys/stat.h>
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

/* Open @path, named @name in messages and for relative backing files. */
static int
open_image(const char *path, const char *name, const char *format,
    struct vs_io **iop, struct vs_image **out)
{
	struct vs_io *io;
	char *n;

	if (vs_io_open_file(path, &io) < 0)
		return -1;
	if (!(n = strdup(name))) {
		vs_errno(VS_EXIT_INTERNAL, name, "open");
		vs_io_close(io);
		return -1;
	}
	free(io->name);
	io->name = n;
	if (iop)
		*iop = io;
	return vs_image_open(io, format, out);
}

/* The view to sync of @img: its guest disk, or the file itself. */
static int
choose_view(struct vs_image *img, bool to_raw, struct vs_image **out)
{
	if (img->ops != &vs_format_raw && vs_image_validate(img) < 0) {
		vs_image_close(img);
		return -1;
	}
	if (to_raw) {
		*out = img;
		return 0;
	}
	return vs_fileview_open(img, out);
}

/* The base, as format @fmt in the same view as the source; none if it
 * cannot be read (the sync then reads everything). */
static void
open_base(struct vs_source *s, const char *src, const char *fmt)
{
	struct vs_view *v = s->view;
	struct vs_image *img;
	char *name = NULL;

	/* The state's base resolves relative backing files like the source
	 * (a name in the source's directory). */
	if (v->base_in_state && asprintf(&name, "%s (base)", src) < 0)
		name = NULL;
	vs_err_demote(true);
	if (open_image(v->base_path, name ? name : v->base_path, fmt, NULL,
	    &img) == 0 && choose_view(img, s->to_raw, &s->base) == 0 &&
	    s->base->ops != s->img->ops) {
		vs_image_close(s->base);
		s->base = NULL;
	}
	vs_err_demote(false);
	if (!s->base)
		vs_warn(v->base_path, "not used as the base of %s: no change "
		    "detection", src);
	free(name);
}

int
vs_source_open(const char *src, const struct vs_source_opts *o,
    struct vs_target_opts *topts, struct vs_source *s)
{
	const char *output = o->output, *fmt;
	struct vs_image *img;
	struct vs_io *io;
	struct stat st;
	bool is_raw;

	memset(s, 0, sizeof(*s));
	if (vs_view_open(src, &o->view, &s->view) < 0)
		return -1;
	if (open_image(s->view->read_path, src, o->format, &io, &img) < 0)
		return -1;
	/* The target takes the source's times and is never the source
	 * itself: the file as given, not its clone. */
	if (s->view->cloned && stat(src, &st) == 0) {
		io->mode = st.st_mode;
		io->mtime_sec = st.st_mtim.tv_sec;
		io->mtime_nsec = st.st_mtim.tv_nsec;
		io->dev = st.st_dev;
		io->ino = st.st_ino;
	}
	topts->src_mode = io->mode;
	topts->src_mtime_sec = io->mtime_sec;
	topts->src_mtime_nsec = io->mtime_nsec;
	topts->src_dev = io->dev;
	topts->src_ino = io->ino;
	is_raw = img->ops == &vs_format_raw;
	s->to_raw = !is_raw && output && strcmp(output, "raw") == 0;
	if (is_raw && output && strcmp(output, "raw") != 0) {
		vs_err(VS_EXIT_USAGE, src, "a raw image cannot be synced as "
		    "%s", output);
		vs_image_close(img);
		return -1;
	}
	if (s->to_raw)
		vs_info(1, "%s: %s image, syncing its guest disk", src,
		    img->ops->name);
	fmt = img->ops->name;
	if (choose_view(img, s->to_raw, &s->img) < 0)
		return -1;
	if (s->view->base_path && !vs_hash_eq(&s->view->base_id,
	    &vs_view_none))
		open_base(s, src, fmt);
	return 0;
}

struct vs_sync_view
vs_source_sync_view(const struct vs_source *s)
{
	return (struct vs_sync_view){
		.base = s->base,
		.base_id = s->view->base_id,
		.id = s->view->id,
	};
}

void
vs_source_close(struct vs_source *s, bool ok)
{
	vs_image_close(s->base);
	vs_image_close(s->img);
	vs_view_finish(s->view, ok);
	memset(s, 0, sizeof(*s));
}
