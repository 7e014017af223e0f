/*
 * archive.c - export images into a sparse pax archive (libarchive).
 *
 * Design notes
 * - One entry per source, named as a sync would name its target (NAME, or
 *   NAME.raw for the guest disk with -O raw), holding the same view: the
 *   source is opened by source.c exactly as for a sync (point-in-time
 *   clone, format choice, file view or guest disk), without a target, so
 *   without a change-detection base.
 * - An entry is a pax sparse entry (GNU.sparse 1.0, as libarchive writes
 *   it; GNU tar and bsdtar extract it as a sparse file).  Its map must be
 *   in the header, before any data: the image is mapped first (no data
 *   read), its DATA extents become the sparse map, then the data is
 *   streamed in order through the reader threads, a window at a time.
 *   Memory is the readers' buffers and one window's block map.
 * - The sparse map is held by libarchive (in the entry and in the pax
 *   writer, about 100 bytes a run).  A fragmented image could make it
 *   huge, so at most ARCHIVE_MAX_RUNS runs are kept: a first pass over
 *   the map counts the gaps between data runs by size, and if there are
 *   too many, the smallest ones are stored as zeros instead.
 * - Mapped data is stored as it is, zero blocks included (telling them
 *   from data would read the image twice).  XXX: a block device maps as
 *   data everywhere, so its entry is not sparse.
 * - libarchive skips the holes of a sparse entry but wants the whole file
 *   fed to archive_write_data(): holes are fed from a buffer of zeros.
 * - Any failure ends the whole archive: from then on the write callback
 *   refuses every byte, so libarchive can be closed (which frees what it
 *   holds; archive_write_fail would leak its buffers) without writing an
 *   end marker or what it still buffers: a reader of stdout sees a
 *   truncated archive.  A file DEST is never replaced: the archive is
 *   written to "DEST.tmp-XXXXXX" beside it and renamed over DEST once
 *   complete.  So a DEST that is one of the sources (a typo, or a link to
 *   one) is refused before anything is read, as a sync refuses its source
 *   as target: by device and inode.
 * - A file DEST is written back as it grows (every ARCHIVE_WRITEBACK
 *   bytes, from the advisor's thread): the fsync before the rename then
 *   waits for the last part only, not for the whole archive at once.
 * - A .tar.zst is compressed by archive_zstd.c rather than libarchive's
 *   zstd filter, whose frames have no checksum: libarchive writes the
 *   pax stream uncompressed into out_write(), which hands it on; frames
 *   are compressed on every CPU and written (put()) from a thread of
 *   archive_zstd.c's, one frame at a time.
 * - The writer is also offered to other archives (archive.h): a text
 *   entry, a sparse entry of given data runs read from an image (delta.h
 *   writes incremental archives with them).
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <libgen.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive.h"
#include "archive_fetch.h"
#include "archive_lib.h"
#include "archive_zstd.h"
#include "cli.h"
#include "engine.h"
#include "formats/tar.h"
#include "progress.h"
#include "reader.h"
#include "source.h"
#include "transport/advisor.h"
#include "transport/ssh.h"
#include "util.h"

#define ARCHIVE_BLOCK 4096		/* granularity of the reads */
#ifndef ARCHIVE_MAX_RUNS		/* a test build may lower it */
#define ARCHIVE_MAX_RUNS (1u << 18)	/* data runs in one sparse map */
#endif
#define ARCHIVE_ZEROS (1u << 20)	/* hole bytes fed per call */
#define ARCHIVE_WRITE_BLOCK (1 << 20)	/* bytes per write() of the archive */
#define ARCHIVE_WRITEBACK (32u << 20)	/* start writeback after this much */
#define ARCHIVE_ZSTD_LEVEL 1		/* zstd's level unless one is given */

enum archive_filter { FILTER_NONE, FILTER_GZIP, FILTER_ZSTD, FILTER_XZ };

static const struct {
	const char *name;		/* as --archive takes it */
	const char *ext;		/* the DEST ending that asks for it */
	enum archive_filter filter;	/* its compression */
} formats[] = {
	{ "tar", ".tar", FILTER_NONE },
	{ "tar.gz", ".tar.gz", FILTER_GZIP },
	{ "tgz", ".tgz", FILTER_GZIP },
	{ "tar.zst", ".tar.zst", FILTER_ZSTD },
	{ "tzst", ".tzst", FILTER_ZSTD },
	{ "tar.xz", ".tar.xz", FILTER_XZ },
	{ "txz", ".txz", FILTER_XZ },
};
#define NFORMATS (sizeof(formats) / sizeof(formats[0]))

/* One export: the archive being written and what every entry shares. */
struct export {
	struct archive *a;		/* the libarchive writer */
	const char *name;		/* the archive, for messages */
	int fd;				/* where it goes */
	struct vs_advisor *advisor;	/* its writeback (a file DEST only) */
	struct vs_zstd_out *zstd;	/* a .tar.zst's compressor, or NULL */
	uint64_t out_off;		/* bytes written to fd */
	uint64_t wb_off;		/* writeback started below this */
	bool failed;			/* abandoned: write nothing more */
	uint8_t *zeros;			/* ARCHIVE_ZEROS zero bytes */
	uint8_t *isdata;		/* per block of a window */
	struct vs_extent_vec map;	/* a window of the image's map */
	struct vs_extent_vec win;	/* the entry's data runs in a window */
	char **names;			/* entry names written so far */
	size_t nnames;			/* entries in names */
	bool progress;			/* draw a progress line */
};

/* One entry being written: where its data stream stands. */
struct entry {
	struct export *x;		/* the export */
	struct archive_entry *e;	/* its header and sparse map */
	struct vs_image *img;		/* the view read */
	uint64_t pos;			/* bytes of the file fed so far */
	struct vs_stats st;		/* bytes read, for the progress line */
};

/* An archive being written to DEST (archive.h). */
struct vs_archive_out {
	struct export x;		/* the writer and its buffers */
	const char *dest;		/* DEST as given ("-": stdout) */
	char *tmp;			/* the file renamed over DEST, or NULL */
	bool closed;			/* archive_write_close() was called */
};

const char *
vs_archive_format(const char *name)
{
	for (size_t i = 0; i < NFORMATS; i++)
		if (strcmp(name, formats[i].name) == 0)
			return formats[i].name;
	return NULL;
}

const char *
vs_archive_format_by_name(const char *path)
{
	size_t n = strlen(path);

	for (size_t i = 0; i < NFORMATS; i++) {
		size_t e = strlen(formats[i].ext);

		if (n > e && strcasecmp(path + n - e, formats[i].ext) == 0 &&
		    path[n - e - 1] != '/')
			return formats[i].name;
	}
	return NULL;
}

/* libarchive's error on @a as the one line about the archive. */
static void
archive_fail(struct export *x, const char *what)
{
	int e = archive_errno(x->a);
	const char *s = archive_error_string(x->a);

	/* Interrupted: vs_archive_out_close() says so (exit 4). */
	if (e == EINTR && vs_interrupted)
		return;
	if (e > 0 && (!s || strcmp(s, strerror(e)) != 0))
		vs_err(VS_EXIT_TARGET, x->name, "%s: %s%s%s", what,
		    s ? s : "", s ? ": " : "", strerror(e));
	else
		vs_err(VS_EXIT_TARGET, x->name, "%s: %s", what,
		    s ? s : "unknown libarchive error");
}

/* Feed @len bytes of @buf to the entry's data. */
static int
feed(struct entry *en, const void *buf, uint64_t len)
{
	const uint8_t *p = buf;

	while (len > 0) {
		la_ssize_t n = archive_write_data(en->x->a, p, len);

		if (n <= 0) {
			if (n == 0)
				vs_err(VS_EXIT_INTERNAL, en->x->name, "entry "
				    "%s: libarchive took no data at offset "
				    "%llu", archive_entry_pathname(en->e),
				    (unsigned long long)en->pos);
			else
				archive_fail(en->x, "write");
			return -1;
		}
		p += n;
		len -= (uint64_t)n;
		en->pos += (uint64_t)n;
	}
	return 0;
}

/* Feed the hole up to @off (libarchive skips it). */
static int
feed_hole(struct entry *en, uint64_t off)
{
	while (en->pos < off) {
		if (vs_interrupted) {
			vs_err(VS_EXIT_PARTIAL, en->img->name, "interrupted");
			return -1;
		}
		if (feed(en, en->x->zeros, vs_min(off - en->pos,
		    ARCHIVE_ZEROS)) < 0)
			return -1;
	}
	return 0;
}

/* Called on each data run [off, off + len) of an image, in order. */
typedef int (*run_fn)(struct entry *, uint64_t off, uint64_t len);

/* Walk the data runs of the image, merging runs closer than @gap_min;
 * call @fn on each (if not NULL) and count the gaps between them in
 * @gaps (64 buckets by power of two, if not NULL).  The number of runs
 * in *@nruns. */
static int
walk_runs(struct entry *en, uint64_t gap_min, run_fn fn, uint64_t *gaps,
    uint64_t *nruns)
{
	struct vs_image *img = en->img;
	uint64_t start = 0, end = 0;	/* the open run, if end > start */

	*nruns = 0;
	for (uint64_t w = 0; w < img->size; w += VS_WINDOW_BYTES) {
		if (vs_interrupted) {
			vs_err(VS_EXIT_PARTIAL, img->name, "interrupted");
			return -1;
		}
		if (vs_image_map(img, w, vs_min(VS_WINDOW_BYTES,
		    img->size - w), &en->x->map) < 0)
			return -1;
		for (size_t i = 0; i < en->x->map.n; i++) {
			const struct vs_extent *e = &en->x->map.v[i];

			if (e->type != VS_EXT_DATA)
				continue;
			/* Adjacent (across windows), or a gap to merge. */
			if (end > start && e->off - end < vs_max(gap_min, 1)) {
				end = e->off + e->len;
				continue;
			}
			if (end > start) {
				if (gaps)
					gaps[63 - __builtin_clzll(e->off -
					    end)]++;
				(*nruns)++;
				if (fn && fn(en, start, end - start) < 0)
					return -1;
			}
			start = e->off;
			end = e->off + e->len;
		}
	}
	if (end > start) {
		(*nruns)++;
		if (fn && fn(en, start, end - start) < 0)
			return -1;
	}
	return 0;
}

static int
add_run(struct entry *en, uint64_t off, uint64_t len)
{
	archive_entry_sparse_add_entry(en->e, (la_int64_t)off,
	    (la_int64_t)len);
	return 0;
}

/* Give the entry its sparse map: the image's data runs, at most
 * ARCHIVE_MAX_RUNS of them.  *@any: the image holds data. */
static int
sparse_map(struct entry *en, bool *any)
{
	uint64_t gaps[64] = { 0 }, n, gap_min = 0, runs;

	if (walk_runs(en, 0, NULL, gaps, &n) < 0)
		return -1;
	*any = n > 0;
	/* Too many runs: merge the gaps below the smallest power of two
	 * that leaves few enough. */
	for (runs = n; runs > ARCHIVE_MAX_RUNS && gap_min < 63; gap_min++)
		runs -= gaps[gap_min];
	if (gap_min) {
		vs_info(1, "%s: %llu data runs; gaps under %llu bytes are "
		    "stored as zeros", en->img->name, (unsigned long long)n,
		    1ull << gap_min);
		gap_min = 1ull << gap_min;
	}
	if (walk_runs(en, gap_min, add_run, NULL, &n) < 0)
		return -1;
	/* No data at all: one empty run at the end keeps the entry sparse
	 * (libarchive writes no sparse map without a run). */
	if (!*any && en->img->size)
		archive_entry_sparse_add_entry(en->e,
		    (la_int64_t)en->img->size, 0);
	return 0;
}

/* The next data run of the entry's map into @r; false after the last. */
static bool
next_run(struct entry *en, bool whole, bool *started, struct vs_extent *r)
{
	la_int64_t off, len;

	if (whole) {			/* not sparse: one run, all of it */
		if (*started || !en->img->size)
			return false;
		*started = true;
		*r = (struct vs_extent){ 0, en->img->size, VS_EXT_DATA };
		return true;
	}
	*started = true;
	do {
		if (archive_entry_sparse_next(en->e, &off, &len) != ARCHIVE_OK)
			return false;
	} while (len == 0);
	*r = (struct vs_extent){ (uint64_t)off, (uint64_t)len, VS_EXT_DATA };
	return true;
}

/* Feed the data runs of the window of @wlen bytes at @w (in en->x->win),
 * read by @rd, and the holes before them. */
static int
stream_window(struct entry *en, struct vs_reader *rd, uint64_t w,
    uint64_t wlen, struct vs_progress *p)
{
	struct export *x = en->x;
	size_t nb = (size_t)((wlen + ARCHIVE_BLOCK - 1) / ARCHIVE_BLOCK);
	size_t group = VS_CHUNK / ARCHIVE_BLOCK, k = 0;

	vs_mark_data(&x->win, w, ARCHIVE_BLOCK, nb, x->isdata);
	if (vs_reader_window(rd, w, x->isdata, nb, ARCHIVE_BLOCK, group) < 0)
		return -1;
	for (size_t g0 = 0; g0 < nb; g0 += group) {
		size_t g1 = (size_t)vs_min(g0 + group, nb);
		uint64_t gs = w + g0 * ARCHIVE_BLOCK;
		uint64_t ge = vs_min(w + g1 * ARCHIVE_BLOCK, en->img->size);
		const struct vs_hash *hash;
		uint64_t bytes;
		uint8_t *buf;
		int rc = 0;

		if (!vs_group_has_data(x->isdata, g0, g1))
			continue;
		if (!(buf = vs_reader_take(rd, w, g0, &bytes, &hash))) {
			if (vs_interrupted)
				vs_err(VS_EXIT_PARTIAL, en->img->name,
				    "interrupted");
			return -1;
		}
		en->st.read_bytes += bytes;
		for (; rc == 0 && k < x->win.n && x->win.v[k].off < ge; k++) {
			const struct vs_extent *r = &x->win.v[k];
			uint64_t a = vs_max(r->off, en->pos);
			uint64_t b = vs_min(r->off + r->len, ge);

			if ((rc = feed_hole(en, a)) == 0)
				rc = feed(en, buf + (a - gs), b - a);
			if (r->off + r->len > ge)
				break;		/* goes on in the next group */
		}
		vs_reader_give(rd, buf);
		if (rc < 0)
			return -1;
		vs_progress_update(p, ge, &en->st);
	}
	return 0;
}

/* Feed the entry's file: its data runs read through the reader threads,
 * a window at a time, the holes between them as zeros. */
static int
stream_entry(struct entry *en, bool whole, struct vs_progress *p)
{
	struct export *x = en->x;
	struct vs_reader *rd = NULL;
	struct vs_extent r = { 0 };
	bool started = false, have;
	uint64_t size = en->img->size;
	int ret = -1;

	if (vs_reader_start(en->img, VS_CHUNK, NULL, &rd) < 0)
		return -1;
	have = next_run(en, whole, &started, &r);
	for (uint64_t w = 0; w < size && have; w += VS_WINDOW_BYTES) {
		uint64_t wlen = vs_min(VS_WINDOW_BYTES, size - w);

		/* The runs, or their parts, in this window. */
		vs_extent_vec_reset(&x->win);
		while (have && r.off < w + wlen) {
			uint64_t a = vs_max(r.off, w);
			uint64_t b = vs_min(r.off + r.len, w + wlen);

			if (vs_extent_add(&x->win, a, b - a, VS_EXT_DATA) < 0) {
				vs_errno(VS_EXIT_INTERNAL, en->img->name,
				    "map");
				goto out;
			}
			if (r.off + r.len > w + wlen)
				break;		/* goes on in the next window */
			have = next_run(en, whole, &started, &r);
		}
		if (x->win.n && stream_window(en, rd, w, wlen, p) < 0)
			goto out;
	}
	ret = feed_hole(en, size);
out:
	vs_reader_stop(rd);
	return ret;
}

int
vs_archive_entry_name_check(const char *src, const char *name)
{
	if (vs_tar_name_ok(name))
		return 0;
	vs_err(VS_EXIT_USAGE, src, "entry name %s is a name of vmsync's own "
	    "files, which an import refuses", name);
	return -1;
}

/* Has an entry of this archive that name already? Remember it if not. */
static int
take_name(struct export *x, const char *src, const char *name)
{
	char **v;

	for (size_t i = 0; i < x->nnames; i++)
		if (strcmp(x->names[i], name) == 0) {
			vs_err(VS_EXIT_USAGE, src, "another source of this run "
			    "has the same entry name %s in the archive", name);
			return -1;
		}
	if (!(v = realloc(x->names, (x->nnames + 1) * sizeof(*v))) ||
	    !(v[x->nnames] = strdup(name))) {
		if (v)
			x->names = v;
		vs_errno(VS_EXIT_INTERNAL, src, "entry name");
		return -1;
	}
	x->names = v;
	x->nnames++;
	return 0;
}

/* A new entry @name: a regular file of @size bytes. */
static struct archive_entry *
new_entry(const char *src, const char *name, uint32_t mode, int64_t sec,
    long nsec, uint64_t size)
{
	struct archive_entry *e = archive_entry_new();

	if (!e) {
		vs_libarchive_failed(VS_EXIT_INTERNAL, src);
		return NULL;
	}
	archive_entry_set_pathname(e, name);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, mode & 0777 ? mode & 0777 : 0600);
	archive_entry_set_mtime(e, (time_t)sec, nsec);
	archive_entry_set_size(e, (la_int64_t)size);
	return e;
}

/* Write the entry en->e, whose sparse map is set (@any: it holds data),
 * with its data read from en->img. */
static int
write_entry(struct entry *en, const char *src, bool any)
{
	const char *name = archive_entry_pathname(en->e);
	struct export *x = en->x;
	struct vs_progress *p = NULL;
	bool whole;
	int ret = -1;

	/* A single run covering the whole image is no sparse map at all
	 * (libarchive drops it): the entry is a plain file. */
	whole = any && archive_entry_sparse_count(en->e) == 0;
	archive_entry_sparse_reset(en->e);
	vs_info(1, "%s -> %s: %s (%s, %llu bytes)", src, x->name, name,
	    en->img->ops->name, (unsigned long long)en->img->size);
	if (archive_write_header(x->a, en->e) != ARCHIVE_OK) {
		archive_fail(x, name);
		goto out;
	}
	if (x->progress && !(p = vs_progress_new(stderr, src))) {
		vs_errno(VS_EXIT_INTERNAL, src, "progress");
		goto out;
	}
	vs_progress_start(p, en->img->size);
	if (stream_entry(en, whole, p) < 0)
		goto out;
	if (archive_write_finish_entry(x->a) != ARCHIVE_OK) {
		archive_fail(x, name);
		goto out;
	}
	ret = 0;
out:
	vs_progress_end(p, ret == 0 ? en->img->size : 0, &en->st);
	vs_progress_free(p);
	return ret;
}

/* Open @path as a sync would and write its entry; @src names it in
 * messages. */
static int
export_file(struct export *x, const struct vs_cli *cli, const char *path,
    const char *src)
{
	struct vs_stats st = { 0 };
	struct vs_target_opts topts = { .stats = &st };
	struct vs_source_opts sopts = vs_cli_source_opts(cli);
	struct entry en = { .x = x };
	struct vs_source s;
	char *name = NULL;
	bool any;
	int ret = -1;

	if (vs_source_open(path, &sopts, &topts, &s) < 0 ||
	    vs_source_confirm(&s, path, &sopts, &topts, NULL, NULL) < 0)
		goto out;
	en.img = s.img;
	if (!(name = vs_target_name(path, s.to_raw))) {
		vs_target_name_failed(path);
		goto out;
	}
	if (vs_archive_entry_name_check(src, name) < 0)
		goto out;
	if (take_name(x, src, name) < 0)
		goto out;
	if (!(en.e = new_entry(src, name, topts.src_mode,
	    topts.src_mtime_sec, (long)topts.src_mtime_nsec, s.img->size)))
		goto out;
	st.virtual_size = s.img->size;
	if (sparse_map(&en, &any) < 0 || write_entry(&en, src, any) < 0)
		goto out;
	ret = 0;
out:
	if (en.e)
		archive_entry_free(en.e);
	free(name);
	vs_source_close(&s, ret == 0);
	return ret;
}

/* A remote @src: pulled first (archive_fetch.c), then written from the
 * pulled file, which already is the view asked for. */
static int
export_remote(struct export *x, const struct vs_cli *cli, const char *src,
    const char *dest)
{
	struct vs_stats st = { .index_state = "-" };
	struct vs_fetched f;
	struct vs_cli raw = *cli;
	int ret;

	if (vs_archive_fetch(cli, src, dest, &f, &st) < 0)
		return -1;
	raw.format = "raw";
	raw.output = NULL;
	raw.source_live = true;
	ret = export_file(x, &raw, f.path, src);
	vs_archive_fetched_free(&f);
	return ret;
}

static int
export_one(struct export *x, const struct vs_cli *cli, const char *src,
    const char *dest)
{
	return vs_is_remote(src) ? export_remote(x, cli, src, dest) :
	    export_file(x, cli, src, src);
}

int
vs_archive_out_sparse(struct vs_archive_out *o, const char *src,
    const char *name, struct vs_image *img, const struct vs_extent_vec *runs,
    uint32_t mode, int64_t mtime_sec, long mtime_nsec)
{
	struct entry en = { .x = &o->x, .img = img };
	int ret = -1;

	if (take_name(&o->x, src, name) < 0 ||
	    !(en.e = new_entry(src, name, mode, mtime_sec, mtime_nsec,
	    img->size)))
		return -1;
	for (size_t i = 0; i < runs->n; i++)
		add_run(&en, runs->v[i].off, runs->v[i].len);
	/* No data at all: one empty run at the end keeps the entry sparse. */
	if (!runs->n && img->size)
		archive_entry_sparse_add_entry(en.e, (la_int64_t)img->size, 0);
	ret = write_entry(&en, src, runs->n > 0);
	archive_entry_free(en.e);
	return ret;
}

int
vs_archive_out_text(struct vs_archive_out *o, const char *name,
    const void *buf, size_t len, uint32_t mode, int64_t mtime_sec)
{
	struct export *x = &o->x;
	struct archive_entry *e;
	int ret = -1;

	if (take_name(x, name, name) < 0 ||
	    !(e = new_entry(name, name, mode, mtime_sec, 0, len)))
		return -1;
	if (archive_write_header(x->a, e) != ARCHIVE_OK ||
	    (len && archive_write_data(x->a, buf, len) != (la_ssize_t)len) ||
	    archive_write_finish_entry(x->a) != ARCHIVE_OK)
		archive_fail(x, name);
	else
		ret = 0;
	archive_entry_free(e);
	return ret;
}

/* Write all @len bytes of @buf to the archive's fd, starting the
 * writeback of what it holds every ARCHIVE_WRITEBACK bytes.  Written in
 * pieces of at most ARCHIVE_WRITE_BLOCK: an interrupted run (EINTR) stops
 * after the piece under way, also on a pipe read slowly. */
static int
put(void *arg, const void *buf, size_t len)
{
	struct export *x = arg;
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n;

		if (vs_interrupted) {
			errno = EINTR;
			return -1;
		}
		n = write(x->fd, p, vs_min(len, ARCHIVE_WRITE_BLOCK));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		p += n;
		len -= (size_t)n;
		x->out_off += (uint64_t)n;
	}
	if (x->advisor && x->out_off - x->wb_off >= ARCHIVE_WRITEBACK) {
		vs_advise(x->advisor, VS_ADVISE_WRITEBACK, x->wb_off,
		    x->out_off - x->wb_off);
		x->wb_off = x->out_off;
	}
	return 0;
}

/* zstd's failure @why (NULL: the write's, in errno) as libarchive's. */
static void
set_error(struct archive *a, const char *why)
{
	if (why)
		archive_set_error(a, EIO, "zstd: %s", why);
	else
		archive_set_error(a, errno, "%s", strerror(errno));
}

/* libarchive's output: compressed (a .tar.zst) or not, to x->fd, unless
 * the archive was abandoned. */
static la_ssize_t
out_write(struct archive *a, void *arg, const void *buf, size_t len)
{
	struct export *x = arg;
	const char *why = NULL;

	if (x->failed) {
		archive_set_error(a, ECANCELED, "the archive was abandoned");
		return -1;
	}
	if (x->zstd ? vs_zstd_out_write(x->zstd, buf, len, &why) < 0 :
	    put(x, buf, len) < 0) {
		set_error(a, why);
		return -1;
	}
	return (la_ssize_t)len;
}

/* libarchive's close: the rest of a .tar.zst, compressed and written. */
static int
out_close(struct archive *a, void *arg)
{
	struct export *x = arg;
	const char *why = NULL;

	if (x->failed || !x->zstd)
		return ARCHIVE_OK;
	if (vs_zstd_out_end(x->zstd, &why) < 0) {
		set_error(a, why);
		x->failed = true;	/* libarchive ignores what we return */
		return ARCHIVE_FATAL;
	}
	return ARCHIVE_OK;
}

/* --compress-level @level (0: the default) for the libarchive filter
 * @f, whose module is @module. */
static int
set_level(struct export *x, enum archive_filter f, const char *module,
    int level)
{
	char v[16];

	if (f == FILTER_NONE && level) {
		vs_err(VS_EXIT_USAGE, x->name, "--compress-level: an "
		    "uncompressed archive has no level");
		return -1;
	}
	if (f == FILTER_NONE || !level)
		return 0;
	if (level > 9) {
		vs_err(VS_EXIT_USAGE, x->name, "--compress-level %d: %s takes "
		    "1 to 9", level, module);
		return -1;
	}
	snprintf(v, sizeof(v), "%d", level);
	if (archive_write_set_filter_option(x->a, module, "compression-level",
	    v) != ARCHIVE_OK) {
		archive_fail(x, module);
		return -1;
	}
	return 0;
}

/* A .tar.zst's compressor, at @level (0: ARCHIVE_ZSTD_LEVEL), on every
 * CPU.  Level 1: level 3, zstd's own default, measured twice as slow for
 * 8 % less (the fast level -1 gained little more in make bench, for 10 %
 * more). */
static int
open_zstd(struct export *x, int level)
{
	const char *why;
	unsigned n;

	if (!level)
		level = ARCHIVE_ZSTD_LEVEL;
	x->zstd = vs_zstd_out_new(level, -1, put, x, &why);
	if (!x->zstd) {
		vs_err(VS_EXIT_INTERNAL, x->name, "zstd: %s", why);
		return -1;
	}
	n = vs_zstd_out_threads(x->zstd);
	vs_info(1, "%s: zstd level %d, %u compressing thread%s", x->name,
	    level, n, n == 1 ? "" : "s");
	return 0;
}

/* The writer for @format, onto x->fd, at compression @level (0: the
 * default). */
static int
open_writer(struct export *x, const char *format, int level)
{
	static const char *const module[] = {
		[FILTER_NONE] = NULL, [FILTER_GZIP] = "gzip",
		[FILTER_ZSTD] = "zstd", [FILTER_XZ] = "xz",
	};
	enum archive_filter f = FILTER_NONE;
	int rc = ARCHIVE_OK;

	for (size_t i = 0; i < NFORMATS; i++)
		if (strcmp(format, formats[i].name) == 0)
			f = formats[i].filter;
	if (!(x->a = archive_write_new())) {
		vs_libarchive_failed(VS_EXIT_INTERNAL, x->name);
		return -1;
	}
	if (archive_write_set_format_pax(x->a) != ARCHIVE_OK) {
		archive_fail(x, "pax format");
		return -1;
	}
	switch (f) {
	case FILTER_NONE:
		break;
	case FILTER_GZIP:
		rc = archive_write_add_filter_gzip(x->a);
		break;
	case FILTER_ZSTD:		/* compressed by out_write() */
		rc = open_zstd(x, level) < 0 ? ARCHIVE_FATAL : ARCHIVE_OK;
		if (rc != ARCHIVE_OK)
			return -1;
		break;
	case FILTER_XZ:
		rc = archive_write_add_filter_xz(x->a);
		break;
	}
	/* ARCHIVE_WARN: an external program compresses; that still works. */
	if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) {
		archive_fail(x, format);
		return -1;
	}
	if (f != FILTER_ZSTD && set_level(x, f, module[f], level) < 0)
		return -1;
	/* Large writes; and never pad the last block, not even on a pipe:
	 * zeros after a compressed stream make zstd -d fail.  The archive's
	 * bytes are the same whatever the block size.  What zstd compresses
	 * here goes to it unblocked: it writes in large pieces itself. */
	archive_write_set_bytes_per_block(x->a, x->zstd ? 0 :
	    ARCHIVE_WRITE_BLOCK);
	archive_write_set_bytes_in_last_block(x->a, 1);
	if (archive_write_open2(x->a, x, NULL, out_write, out_close, NULL) !=
	    ARCHIVE_OK) {
		archive_fail(x, "open");
		return -1;
	}
	return 0;
}

/* Make the renamed archive durable: fsync its directory.  -1 if that
 * fails (errno set); a directory that cannot be opened to read is not
 * synced. */
static int
sync_dir(const char *path)
{
	char *copy = strdup(path);
	int fd = copy ? open(dirname(copy), O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC) : -1;
	int rc = 0;

	if (fd >= 0) {
		rc = fsync(fd);
		close(fd);
	}
	free(copy);
	return rc;
}

/* Is @dest one of the run's sources (its SRCs, and --since's BASE), by
 * that name or another (a hard or symbolic link)?  The archive is renamed
 * over DEST: the image would be lost.  Which source into *@src. */
static bool
is_source(const struct vs_cli *cli, const char *dest, const char **src)
{
	struct stat d, s;

	if (stat(dest, &d) < 0)
		return false;
	for (int i = 0; i < cli->npaths; i++) {
		*src = i < cli->npaths - 1 ? cli->paths[i] : cli->since;
		if (*src && !vs_is_remote(*src) && stat(*src, &s) == 0 &&
		    s.st_dev == d.st_dev && s.st_ino == d.st_ino)
			return true;
	}
	return false;
}

int
vs_archive_check_dest(const struct vs_cli *cli)
{
	const char *dest = cli->paths[cli->npaths - 1], *src;

	if (vs_is_remote(dest)) {
		vs_err(VS_EXIT_USAGE, dest, "an archive is written here: pipe "
		    "it to the remote host (vmsync --archive=%s SRC... - | "
		    "ssh HOST 'cat > FILE')", cli->archive);
		return -1;
	}
	if (strcmp(dest, "-") == 0 && isatty(1)) {
		vs_err(VS_EXIT_USAGE, "stdout", "will not write an archive to "
		    "a terminal");
		return -1;
	}
	if (strcmp(dest, "-") != 0 && is_source(cli, dest, &src)) {
		if (strcmp(src, dest) == 0)
			vs_err(VS_EXIT_USAGE, dest, "target is the source "
			    "itself");
		else
			vs_err(VS_EXIT_USAGE, dest, "target is the source %s "
			    "itself", src);
		return -1;
	}
	return 0;
}

int
vs_archive_out_open(const struct vs_cli *cli, bool progress,
    struct vs_archive_out **out)
{
	struct vs_archive_out *o = calloc(1, sizeof(*o));
	const char *dest = cli->paths[cli->npaths - 1];
	bool to_stdout = strcmp(dest, "-") == 0;

	*out = o;
	if (!o) {
		vs_errno(VS_EXIT_INTERNAL, dest, "archive");
		return -1;
	}
	o->x = (struct export){ .progress = progress, .fd = -1 };
	o->dest = dest;
	if (vs_archive_check_dest(cli) < 0)
		return -1;
	o->x.name = to_stdout ? "stdout" : dest;
	if (!(o->x.zeros = calloc(1, ARCHIVE_ZEROS)) ||
	    !(o->x.isdata = malloc(VS_WINDOW_BYTES / ARCHIVE_BLOCK))) {
		vs_errno(VS_EXIT_INTERNAL, o->x.name, "buffers");
		return -1;
	}
	if (to_stdout) {
		o->x.fd = 1;
	} else {
		if (asprintf(&o->tmp, "%s.tmp-XXXXXX", dest) < 0) {
			o->tmp = NULL;
			vs_errno(VS_EXIT_INTERNAL, dest, "archive");
			return -1;
		}
		/* 0600: it holds the disks' contents. */
		if ((o->x.fd = mkostemp(o->tmp, O_CLOEXEC)) < 0) {
			vs_errno(VS_EXIT_TARGET, dest, "cannot create the "
			    "archive");
			free(o->tmp);
			o->tmp = NULL;
			return -1;
		}
		o->x.advisor = vs_advisor_new(o->x.fd);	/* NULL: none */
	}
	return open_writer(&o->x, cli->archive, cli->compress_level);
}

/* End the archive: its end marker, then the file renamed over DEST. */
static int
finish(struct vs_archive_out *o)
{
	o->closed = true;
	/* out_close()'s failure, the end of a .tar.zst, shows in x.failed:
	 * libarchive drops its return. */
	if (archive_write_close(o->x.a) != ARCHIVE_OK || o->x.failed) {
		archive_fail(&o->x, "write");
		return -1;
	}
	if (!o->tmp)
		return 0;
	if (fsync(o->x.fd) < 0) {
		vs_errno(VS_EXIT_TARGET, o->dest, "fsync");
		return -1;
	}
	if (rename(o->tmp, o->dest) < 0) {
		vs_errno(VS_EXIT_TARGET, o->dest, "cannot rename %s to it",
		    o->tmp);
		return -1;
	}
	free(o->tmp);
	o->tmp = NULL;
	if (sync_dir(o->dest) < 0) {
		vs_errno(VS_EXIT_TARGET, o->dest, "written, but its directory "
		    "cannot be synced: the name may not survive a crash");
		return -1;
	}
	return 0;
}

int
vs_archive_out_close(struct vs_archive_out *o, bool ok)
{
	struct export *x;
	int ret = ok ? 0 : -1;

	if (!o)
		return vs_err_first() != VS_EXIT_OK ? vs_err_first() :
		    VS_EXIT_INTERNAL;
	x = &o->x;
	if (ret == 0 && x->a)
		ret = finish(o);
	if (x->a) {
		x->failed = ret < 0;	/* no end marker, nothing more */
		if (!o->closed)
			archive_write_close(x->a);
		archive_write_free(x->a);
	}
	vs_zstd_out_free(x->zstd);
	vs_advisor_free(x->advisor);
	if (x->fd > 1)
		close(x->fd);
	if (o->tmp) {
		unlink(o->tmp);
		free(o->tmp);
	}
	for (size_t i = 0; i < x->nnames; i++)
		free(x->names[i]);
	free(x->names);
	free(x->zeros);
	free(x->isdata);
	vs_extent_vec_free(&x->map);
	vs_extent_vec_free(&x->win);
	free(o);
	if (ret == 0)
		return VS_EXIT_OK;
	if (vs_interrupted && vs_err_first() == VS_EXIT_OK)
		fputs("vmsync: interrupted\n", stderr);
	return vs_err_first() != VS_EXIT_OK ? vs_err_first() :
	    vs_interrupted ? VS_EXIT_PARTIAL : VS_EXIT_INTERNAL;
}

int
vs_archive_export(const struct vs_cli *cli, bool progress)
{
	struct vs_archive_out *o = NULL;
	bool ok = false;

	vs_err_reset();
	if (vs_archive_out_open(cli, progress, &o) == 0) {
		ok = true;
		for (int i = 0; ok && i < cli->npaths - 1; i++)
			ok = export_one(&o->x, cli, cli->paths[i], o->dest) == 0;
	}
	return vs_archive_out_close(o, ok);
}
