/*
 * source.c - open a source image and choose the view that is synced.
 */
#include <ctype.h>
#include <errno.h>
#include <libgen.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "import.h"
#include "source.h"

/* The export name of the NBD URI @uri, percent-decoded (malloc'd): the
 * path after the authority, up to the query. */
static char *
export_name(const char *uri)
{
	const char *p = strstr(uri, "://") + 3;
	size_t n;
	char *out, *q;

	p += strcspn(p, "/?#");
	if (*p == '/')
		p++;
	else
		p = "";
	n = strcspn(p, "?#");
	if (!(out = malloc(n + 1)))
		return NULL;
	for (q = out; n > 0; n--, p++) {
		unsigned c;

		if (*p == '%' && n >= 3 && isxdigit((unsigned char)p[1]) &&
		    isxdigit((unsigned char)p[2]) &&
		    sscanf(p + 1, "%2x", &c) == 1 && c != 0) {
			*q++ = (char)c;
			p += 2;
			n -= 2;
		} else {
			*q++ = *p;
		}
	}
	*q = '\0';
	return out;
}

/* The target's file name for @src: its basename, with the extension
 * replaced by ".raw" when a qcow2 image is synced as its guest disk.  An
 * NBD URI's is its export name's last component, the same way; NULL
 * with errno EINVAL if it has none. */
char *
vs_target_name(const char *src, bool to_raw)
{
	char *copy, *out = NULL;
	const char *base;
	const char *dot;

	if (vs_import_is_entry(src))
		return vs_import_target_name(src);
	if (vs_nbd_is_uri(src)) {
		if (!(copy = export_name(src)))
			return NULL;
		base = strrchr(copy, '/') ? strrchr(copy, '/') + 1 : copy;
		if (!*base || strcmp(base, ".") == 0 ||
		    strcmp(base, "..") == 0) {
			free(copy);
			errno = EINVAL;
			return NULL;
		}
		to_raw = true;
	} else if (!(copy = strdup(src))) {
		return NULL;
	} else {
		base = basename(copy);
	}
	dot = strrchr(base, '.');
	if (!to_raw)
		out = strdup(base);
	else if (asprintf(&out, "%.*s.raw", (int)(dot && dot != base ?
	    dot - base : (int)strlen(base)), base) < 0)
		out = NULL;
	free(copy);
	return out;
}

/* Where the files an image named @name may refer to are allowed: its
 * own directory and the --backing-dir ones. */
static int
open_refs(const char *name, const struct vs_source_opts *o,
    struct vs_refs **out)
{
	char *copy = strdup(name);
	int rc;

	if (!copy) {
		vs_errno(VS_EXIT_INTERNAL, name, "open");
		return -1;
	}
	rc = vs_refs_open(dirname(copy), o->backing_dirs, o->nbacking_dirs,
	    out);
	free(copy);
	return rc;
}

/* Open @path, named @name in messages, whose backing files @refs allows
 * (relative names start from its own directory). */
static int
open_image(const char *path, const char *name, const char *format,
    const struct vs_refs *refs, struct vs_io **iop, struct vs_image **out)
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
	io->refs = refs;
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
open_base(struct vs_source *s, const char *src, const char *fmt,
    const struct vs_source_opts *o)
{
	struct vs_view *v = s->view;
	struct vs_image *img;
	char *name = NULL;

	/* The state's base resolves relative backing files like the source
	 * (a name in the source's directory); a --since base like itself. */
	if (v->base_in_state && asprintf(&name, "%s (base)", src) < 0)
		name = NULL;
	vs_err_demote(true);
	if ((v->base_in_state || open_refs(v->base_path, o,
	    &s->base_refs) == 0) &&
	    open_image(v->base_path, name ? name : v->base_path, fmt,
	    v->base_in_state ? s->refs : s->base_refs, NULL, &img) == 0 &&
	    choose_view(img, s->to_raw, &s->base) == 0 &&
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

/* Open the image of the view as @c->format and choose the view to sync.
 * Fills the source fields of @topts. */
static int
open_images(struct vs_source *s, const char *src,
    const struct vs_source_opts *o, struct vs_target_opts *topts)
{
	const char *output = o->output;
	struct vs_image *img;
	struct vs_io *io;
	struct stat st;
	bool is_raw;

	if (vs_format_guest_only(s->choice.format) &&
	    (!output || strcmp(output, "raw") != 0)) {
		vs_err(VS_EXIT_SOURCE, src, "a %s image can only be synced as "
		    "its guest disk; add -O raw", s->choice.format);
		return -1;
	}
	if (open_image(s->view->read_path, src, s->choice.format, s->refs,
	    &io, &img) < 0)
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
	return choose_view(img, s->to_raw, &s->img);
}

/* What the file's first bytes look like (its format is decided by
 * choose.c, never by them alone). */
static int
probe_file(const char *path, const char *name, const char **probed)
{
	struct vs_io *io;
	int rc;

	if (vs_io_open_file(path, &io) < 0)
		return -1;
	free(io->name);
	if (!(io->name = strdup(name))) {
		vs_errno(VS_EXIT_INTERNAL, name, "open");
		vs_io_close(io);
		return -1;
	}
	rc = vs_format_probe(io, probed);
	vs_io_close(io);
	return rc;
}

void
vs_target_name_failed(const char *src)
{
	if (vs_nbd_is_uri(src) && errno == EINVAL)
		vs_err(VS_EXIT_USAGE, src, "the NBD export has no name to "
		    "name the target after: give the target's file name as "
		    "DEST (DIR/NAME.raw)");
	else
		vs_errno(VS_EXIT_INTERNAL, src, "target name");
}

/* An NBD export someone else serves (a running VM's backup export): its
 * guest view, read as it is. */
static int
open_uri(struct vs_source *s, const char *src,
    const struct vs_source_opts *o, struct vs_target_opts *topts)
{
	struct vs_image *img;
	struct timespec now;

	if (!o->output || strcmp(o->output, "raw") != 0) {
		vs_err(VS_EXIT_SOURCE, src, "an NBD export can only be synced "
		    "as its guest disk; add -O raw");
		return -1;
	}
	if (o->format && strcmp(o->format, "raw") != 0) {
		vs_err(VS_EXIT_USAGE, src, "an NBD export is read as its "
		    "server serves it: --format does not apply");
		return -1;
	}
	if (o->view.since) {
		vs_err(VS_EXIT_USAGE, src, "--since needs a point-in-time "
		    "source, not an NBD export");
		return -1;
	}
	if (vs_view_open_plain(src, &s->view) < 0)
		return -1;
	s->choice = (struct vs_format_choice){ .format = "nbd",
	    .probed = "nbd", .basis = "its URI" };
	s->to_raw = true;
	/* No file: the target is made 0600 and takes the time of the run. */
	clock_gettime(CLOCK_REALTIME, &now);
	topts->src_mode = S_IFREG | 0600;
	topts->src_mtime_sec = now.tv_sec;
	topts->src_mtime_nsec = now.tv_nsec;
	if (vs_nbd_open_uri(src, &img) < 0)
		return -1;
	vs_info(1, "%s: NBD export, read as it is served: no btrfs clone and "
	    "no change detection from extents; the allocated data is read "
	    "and compared with the index", src);
	return choose_view(img, true, &s->img);
}

/* An entry of an archive (import.c): read as a raw image, as it streams
 * out of the archive. */
static int
open_entry(struct vs_source *s, const char *src,
    const struct vs_source_opts *o, struct vs_target_opts *topts)
{
	struct vs_image *img;
	uint32_t mode;

	if (o->output && strcmp(o->output, "raw") != 0) {
		vs_err(VS_EXIT_USAGE, src, "an archive entry is synced as the "
		    "file it holds: -O does not apply");
		return -1;
	}
	if (vs_view_open_plain(src, &s->view) < 0)
		return -1;
	s->choice = (struct vs_format_choice){ .format = "tar",
	    .probed = "tar", .basis = "its archive" };
	s->to_raw = true;
	if (vs_import_open(src, &img, &mode, &topts->src_mtime_sec,
	    &topts->src_mtime_nsec) < 0)
		return -1;
	topts->src_mode = S_IFREG | (mode & 0777 ? mode & 0777 : 0600);
	return choose_view(img, true, &s->img);
}

int
vs_source_open(const char *src, const struct vs_source_opts *o,
    struct vs_target_opts *topts, struct vs_source *s)
{
	const char *probed = "raw";

	memset(s, 0, sizeof(*s));
	if (vs_import_is_entry(src))
		return open_entry(s, src, o, topts);
	if (vs_nbd_is_uri(src))
		return open_uri(s, src, o, topts);
	if (vs_view_open(src, &o->view, &s->view) < 0)
		return -1;
	if (!o->format && probe_file(s->view->read_path, src, &probed) < 0)
		return -1;
	if (vs_format_decide(src, o->format, NULL, probed, &s->choice) < 0)
		return -1;
	if (open_refs(src, o, &s->refs) < 0)
		return -1;
	return open_images(s, src, o, topts);
}

int
vs_source_confirm(struct vs_source *s, const char *src,
    const struct vs_source_opts *o, struct vs_target_opts *topts,
    const char *recorded, const char *target)
{
	struct vs_format_choice c;

	if (vs_nbd_is_uri(src) || vs_import_is_entry(src)) {
		vs_info(1, "%s: read as %s (%s)", src, s->choice.format,
		    s->choice.basis);
		return 0;
	}
	/* With -O raw the target is named after the view, so its record
	 * is of another view: only --format and the name confirm. */
	if (o->output && strcmp(o->output, "raw") == 0)
		recorded = NULL;
	if (vs_format_decide(src, o->format, recorded, s->choice.probed,
	    &c) < 0)
		return -1;
	if (strcmp(c.format, s->choice.format) != 0) {
		vs_image_close(s->img);
		s->img = NULL;
		s->choice = c;
		if (open_images(s, src, o, topts) < 0)
			return -1;
	}
	s->choice = c;
	vs_info(1, "%s: read as %s (%s)", src, c.format, c.basis);
	vs_format_warn_unconfirmed(src, &c);
	/* A format whose bytes' places are unknown (read through qemu)
	 * has no use for a base: keeping the clone would only pin the
	 * image's old extents. */
	if (!s->img->ops->place && s->view->keeps_base) {
		s->view->keeps_base = false;
		vs_info(1, "%s: change detection from extents does not apply "
		    "to %s images: the allocated data is read", src,
		    s->choice.format);
	}
	/* The base: --since's, or the one kept for this target; none
	 * without a target (an archive is written whole). */
	if (!target)
		return 0;
	if (vs_view_target(s->view, target) < 0)
		return -1;
	if (s->view->base_path && !vs_hash_eq(&s->view->base_id,
	    &vs_view_none) && s->img->ops->place)
		open_base(s, src, s->choice.format, o);
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
	vs_refs_free(s->base_refs);
	vs_refs_free(s->refs);
	vs_view_finish(s->view, ok);
	memset(s, 0, sizeof(*s));
}
