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
 *   complete.
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
#include "cli.h"
#include "engine.h"
#include "progress.h"
#include "reader.h"
#include "source.h"
#include "transport/ssh.h"
#include "util.h"

#define ARCHIVE_BLOCK 4096		/* granularity of the reads */
#ifndef ARCHIVE_MAX_RUNS		/* a test build may lower it */
#define ARCHIVE_MAX_RUNS (1u << 18)	/* data runs in one sparse map */
#endif
#define ARCHIVE_ZEROS (1u << 20)	/* hole bytes fed per call */
#define ARCHIVE_WRITE_BLOCK (1 << 20)	/* bytes per write() of the archive */
#define ARCHIVE_ZSTD_THREADS "2"	/* zstd's compression threads */

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
	{ "tar.xz", ".tar.xz", FILTER_XZ },
};
#define NFORMATS (sizeof(formats) / sizeof(formats[0]))

/* One export: the archive being written and what every entry shares. */
struct export {
	struct archive *a;		/* the libarchive writer */
	const char *name;		/* the archive, for messages */
	int fd;				/* where it goes */
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
		if (!(buf = vs_reader_take(rd, g0, &bytes, &hash))) {
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

	if (vs_reader_start(en->img, VS_CHUNK, 0, &rd) < 0)
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

/* Open @src as a sync would and write its entry. */
static int
export_one(struct export *x, const struct vs_cli *cli, const char *src)
{
	struct vs_stats st = { 0 };
	struct vs_target_opts topts = { .stats = &st };
	struct vs_source_opts sopts = vs_cli_source_opts(cli);
	struct vs_progress *p = NULL;
	struct entry en = { .x = x };
	struct vs_source s;
	char *name = NULL;
	bool any, whole;
	int ret = -1;

	if (vs_source_open(src, &sopts, &topts, &s) < 0 ||
	    vs_source_confirm(&s, src, &sopts, &topts, NULL, NULL) < 0)
		goto out;
	en.img = s.img;
	if (!(name = vs_target_name(src, s.to_raw))) {
		vs_target_name_failed(src);
		goto out;
	}
	if (take_name(x, src, name) < 0)
		goto out;
	if (!(en.e = archive_entry_new())) {
		vs_errno(VS_EXIT_INTERNAL, src, "archive entry");
		goto out;
	}
	archive_entry_set_pathname(en.e, name);
	archive_entry_set_filetype(en.e, AE_IFREG);
	archive_entry_set_perm(en.e, topts.src_mode & 0777 ?
	    topts.src_mode & 0777 : 0600);
	archive_entry_set_mtime(en.e, (time_t)topts.src_mtime_sec,
	    (long)topts.src_mtime_nsec);
	archive_entry_set_size(en.e, (la_int64_t)s.img->size);
	if (sparse_map(&en, &any) < 0)
		goto out;
	/* A single run covering the whole image is no sparse map at all
	 * (libarchive drops it): the entry is a plain file. */
	whole = any && archive_entry_sparse_count(en.e) == 0;
	archive_entry_sparse_reset(en.e);
	vs_info(1, "%s -> %s: %s (%s, %llu bytes)", src, x->name, name,
	    s.img->ops->name, (unsigned long long)s.img->size);
	if (archive_write_header(x->a, en.e) != ARCHIVE_OK) {
		archive_fail(x, name);
		goto out;
	}
	if (x->progress && !(p = vs_progress_new(stderr, src))) {
		vs_errno(VS_EXIT_INTERNAL, src, "progress");
		goto out;
	}
	vs_progress_start(p, s.img->size);
	st.virtual_size = s.img->size;
	if (stream_entry(&en, whole, p) < 0)
		goto out;
	if (archive_write_finish_entry(x->a) != ARCHIVE_OK) {
		archive_fail(x, name);
		goto out;
	}
	ret = 0;
out:
	vs_progress_end(p, ret == 0 && en.img ? en.img->size : 0, &en.st);
	vs_progress_free(p);
	if (en.e)
		archive_entry_free(en.e);
	free(name);
	vs_source_close(&s, ret == 0);
	return ret;
}

/* libarchive's output: x->fd, unless the archive was abandoned. */
static la_ssize_t
out_write(struct archive *a, void *arg, const void *buf, size_t len)
{
	struct export *x = arg;
	ssize_t n;

	if (x->failed) {
		archive_set_error(a, ECANCELED, "the archive was abandoned");
		return -1;
	}
	do
		n = write(x->fd, buf, len);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		archive_set_error(a, errno, "%s", strerror(errno));
		return -1;
	}
	return n;
}

/* The writer for @format, onto x->fd. */
static int
open_writer(struct export *x, const char *format)
{
	enum archive_filter f = FILTER_NONE;
	int rc = ARCHIVE_OK;

	for (size_t i = 0; i < NFORMATS; i++)
		if (strcmp(format, formats[i].name) == 0)
			f = formats[i].filter;
	if (!(x->a = archive_write_new())) {
		vs_errno(VS_EXIT_INTERNAL, x->name, "archive");
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
	case FILTER_ZSTD:
		rc = archive_write_add_filter_zstd(x->a);
		/* zstd compresses in threads of its own; where libarchive
		 * cannot ask it to, one thread compresses. */
		if (rc == ARCHIVE_OK)
			archive_write_set_filter_option(x->a, "zstd",
			    "threads", ARCHIVE_ZSTD_THREADS);
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
	/* Large writes; and never pad the last block, not even on a pipe:
	 * zeros after a compressed stream make zstd -d fail.  The archive's
	 * bytes are the same whatever the block size. */
	archive_write_set_bytes_per_block(x->a, ARCHIVE_WRITE_BLOCK);
	archive_write_set_bytes_in_last_block(x->a, 1);
	if (archive_write_open2(x->a, x, NULL, out_write, NULL, NULL) !=
	    ARCHIVE_OK) {
		archive_fail(x, "open");
		return -1;
	}
	return 0;
}

/* Make the renamed archive durable: fsync its directory. */
static void
sync_dir(const char *path)
{
	char *copy = strdup(path);
	int fd = copy ? open(dirname(copy), O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC) : -1;

	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	free(copy);
}

/* A usage error of the export, before anything is written. */
static int
refuse(const struct vs_cli *cli, const char *dest)
{
	for (int i = 0; i < cli->npaths - 1; i++)
		if (vs_is_remote(cli->paths[i])) {
			vs_err(VS_EXIT_USAGE, cli->paths[i], "archive export "
			    "of a remote source is not supported yet");
			return -1;
		}
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
	return 0;
}

int
vs_archive_export(const struct vs_cli *cli, bool progress)
{
	struct export x = { .progress = progress, .fd = -1 };
	const char *dest = cli->paths[cli->npaths - 1];
	bool to_stdout = strcmp(dest, "-") == 0;
	char *tmp = NULL;
	bool closed = false;
	int ret = -1;

	vs_err_reset();
	if (refuse(cli, dest) < 0)
		goto out;
	x.name = to_stdout ? "stdout" : dest;
	if (!(x.zeros = calloc(1, ARCHIVE_ZEROS)) ||
	    !(x.isdata = malloc(VS_WINDOW_BYTES / ARCHIVE_BLOCK))) {
		vs_errno(VS_EXIT_INTERNAL, x.name, "buffers");
		goto out;
	}
	if (to_stdout) {
		x.fd = 1;
	} else {
		if (asprintf(&tmp, "%s.tmp-XXXXXX", dest) < 0) {
			tmp = NULL;
			vs_errno(VS_EXIT_INTERNAL, dest, "archive");
			goto out;
		}
		/* 0600: it holds the disks' contents. */
		if ((x.fd = mkostemp(tmp, O_CLOEXEC)) < 0) {
			vs_errno(VS_EXIT_TARGET, dest, "cannot create the "
			    "archive");
			free(tmp);
			tmp = NULL;
			goto out;
		}
	}
	if (open_writer(&x, cli->archive) < 0)
		goto out;
	for (int i = 0; i < cli->npaths - 1; i++)
		if (export_one(&x, cli, cli->paths[i]) < 0)
			goto out;
	closed = true;
	if (archive_write_close(x.a) != ARCHIVE_OK) {
		archive_fail(&x, "write");
		goto out;
	}
	if (tmp) {
		if (fsync(x.fd) < 0) {
			vs_errno(VS_EXIT_TARGET, dest, "fsync");
			goto out;
		}
		if (rename(tmp, dest) < 0) {
			vs_errno(VS_EXIT_TARGET, dest, "cannot rename %s to it",
			    tmp);
			goto out;
		}
		free(tmp);
		tmp = NULL;
		sync_dir(dest);
	}
	ret = 0;
out:
	if (x.a) {
		x.failed = ret < 0;	/* no end marker, nothing more */
		if (!closed)
			archive_write_close(x.a);
		archive_write_free(x.a);
	}
	if (x.fd > 1)
		close(x.fd);
	if (tmp) {
		unlink(tmp);
		free(tmp);
	}
	for (size_t i = 0; i < x.nnames; i++)
		free(x.names[i]);
	free(x.names);
	free(x.zeros);
	free(x.isdata);
	vs_extent_vec_free(&x.map);
	vs_extent_vec_free(&x.win);
	if (ret == 0)
		return VS_EXIT_OK;
	if (vs_interrupted && vs_err_first() == VS_EXIT_OK)
		fputs("vmsync: interrupted\n", stderr);
	return vs_err_first() != VS_EXIT_OK ? vs_err_first() :
	    vs_interrupted ? VS_EXIT_PARTIAL : VS_EXIT_INTERNAL;
}
