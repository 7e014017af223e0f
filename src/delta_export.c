/*
 * delta_export.c - vmsync --since BASE SRC ARCHIVE: an incremental archive
 * of what changed from BASE to SRC (format in delta.h).
 *
 * Design notes
 * - BASE and SRC are two generations of one image as files (a backup's
 *   live copy, its snapshots).  Where both have a trusted index with the
 *   same block size and seed (a snapshot keeps the live copy's), the
 *   blocks that changed are those whose entries differ: unchanged data is
 *   never read.  Otherwise both files are compared block by block, a
 *   chunk at a time, except where their extents tell (physmap.h): a chunk
 *   both place on the same physical extents (snapshots of one file on
 *   btrfs), or that is a hole in both, is equal without reading it.  BASE
 *   is still read there if its digest needs its data.
 * - A changed block is read from both files and only its 4 KiB sectors
 *   that differ are stored.  A block that turned into zeros is a "hole"
 *   line instead, merged with its neighbours.
 * - The archive's headers come before its data, so the changes are found
 *   first (a list of ranges), then the text is written and the changed
 *   bytes are read again from SRC and streamed by the archive writer
 *   (archive.h), as a full export streams an image.  The list is bounded:
 *   past DELTA_MAX_RUNS data runs, runs closer than a growing gap are
 *   merged (the unchanged bytes between them are stored too); past
 *   VS_DELTA_MAX_HOLES hole lines, the shortest holes are stored as zero
 *   data instead.
 * - SRC must not change while it is read twice: its size and times are
 *   checked at the end, and a change abandons the archive.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive.h"
#include "btrfs.h"
#include "cli.h"
#include "delta.h"
#include "delta_text.h"
#include "index.h"
#include "physmap.h"
#include "source.h"
#include "transport/ssh.h"
#include "transport/transport.h"
#include "util.h"

#ifndef DELTA_MAX_RUNS			/* a test build may lower it */
#define DELTA_MAX_RUNS (1u << 18)	/* data runs in the sparse map */
#endif
#define CMP_CHUNK (1u << 20)		/* bytes compared per step, at least */
#define ENTRIES 4096u			/* index entries read per step */

/* One generation: the file and its index. */
struct gen {
	const char *path;		/* as given */
	int fd;				/* read-only */
	struct stat st;			/* when opened */
	uint64_t size;			/* bytes */
	struct vs_index *ix;		/* its index, or NULL */
	const struct idx_header *h;	/* trusted header, or NULL */
	struct vs_physmap *pm;		/* its extents, or NULL */
};

/* One export of a delta. */
struct dx {
	struct gen base, src;		/* the two generations */
	uint32_t bs;			/* block size compared and digested */
	uint64_t seed;			/* the digest's seed */
	struct vs_extent_vec ch;	/* changes in order: DATA (bytes to
					 * store) or ZERO (hole lines) */
	size_t ndata, nholes;		/* entries of each type in ch */
	uint64_t gap_min;		/* data runs closer are merged */
	uint64_t hole_min;		/* shorter holes are stored as data */
	uint64_t read;			/* bytes read from both files */
	uint64_t skipped;		/* bytes equal by their extents */
	uint8_t *sbuf, *bbuf;		/* a chunk of each */
	size_t chunk;			/* their size */
};

static int
open_gen(struct gen *g, const char *path)
{
	g->path = path;
	if ((g->fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) < 0 ||
	    fstat(g->fd, &g->st) < 0) {
		vs_errno(VS_EXIT_SOURCE, path, "cannot open");
		return -1;
	}
	if (!S_ISREG(g->st.st_mode)) {
		vs_err(VS_EXIT_SOURCE, path, "an incremental archive is made "
		    "between two regular files");
		return -1;
	}
	g->size = (uint64_t)g->st.st_size;
	g->h = vs_delta_trusted(path, &g->st, &g->ix);
	return 0;
}

static void
close_gen(struct gen *g)
{
	vs_physmap_close(g->pm);
	idx_close(g->ix);
	if (g->fd >= 0)
		close(g->fd);
}

/* Merge neighbouring data runs closer than x->gap_min, and store holes
 * shorter than x->hole_min as data, in place. */
static void
compact(struct dx *x)
{
	size_t o = 0;

	x->ndata = x->nholes = 0;
	for (size_t i = 0; i < x->ch.n; i++) {
		struct vs_extent e = x->ch.v[i];
		struct vs_extent *last = o ? &x->ch.v[o - 1] : NULL;

		if (e.type == VS_EXT_ZERO && e.len < x->hole_min)
			e.type = VS_EXT_DATA;
		if (last && last->type == VS_EXT_DATA && e.type ==
		    VS_EXT_DATA && e.off - (last->off + last->len) <
		    vs_max(x->gap_min, 1)) {
			last->len = e.off + e.len - last->off;
			continue;
		}
		x->ch.v[o++] = e;
		if (e.type == VS_EXT_DATA)
			x->ndata++;
		else
			x->nholes++;
	}
	x->ch.n = o;
}

/* Note a change [off, off + len) of @type, after all those before. */
static int
note(struct dx *x, uint64_t off, uint64_t len, enum vs_extent_type type)
{
	struct vs_extent *last = x->ch.n ? &x->ch.v[x->ch.n - 1] : NULL;

	/* (A hole grows block by block: only compact() judges its length.) */
	if (last && last->type == type && (last->off + last->len == off ||
	    (type == VS_EXT_DATA && off - (last->off + last->len) <
	    x->gap_min))) {
		last->len = off + len - last->off;
		return 0;
	}
	if (vs_extent_vec_push(&x->ch, (struct vs_extent){ off, len, type })
	    < 0) {
		vs_errno(VS_EXIT_INTERNAL, x->src.path, "changes");
		return -1;
	}
	if (type == VS_EXT_DATA)
		x->ndata++;
	else
		x->nholes++;
	/* Too many: coarser, until well under the bound. */
	while (x->ndata > DELTA_MAX_RUNS) {
		x->gap_min = x->gap_min ? x->gap_min * 2 : 2 * IDX_SECTOR;
		compact(x);
	}
	while (x->nholes > VS_DELTA_MAX_HOLES) {
		x->hole_min = x->hole_min ? x->hole_min * 2 : 2 * x->bs;
		compact(x);
	}
	return 0;
}

/* Block [off, off + len) of SRC (@s) differs from BASE's (@b): note the
 * sectors that differ, or a hole if it turned into zeros. */
static int
note_block(struct dx *x, uint64_t off, size_t len, const uint8_t *s,
    const uint8_t *b)
{
	if (vs_is_zero(s, len))
		return note(x, off, len, VS_EXT_ZERO);
	for (size_t at = 0; at < len; at += IDX_SECTOR) {
		size_t n = (size_t)vs_min(IDX_SECTOR, len - at);

		if (memcmp(s + at, b + at, n) != 0 &&
		    note(x, off + at, n, VS_EXT_DATA) < 0)
			return -1;
	}
	return 0;
}

/* @len bytes of @g at @off into @buf, zeros past its end. */
static int
read_at(struct dx *x, struct gen *g, uint8_t *buf, size_t len, uint64_t off)
{
	ssize_t r = off < g->size ? vs_pread_full(g->fd, buf,
	    (size_t)vs_min(len, g->size - off), off) : 0;

	if (r < 0) {
		vs_errno(VS_EXIT_SOURCE, g->path, "read at offset %llu",
		    (unsigned long long)off);
		return -1;
	}
	memset(buf + r, 0, len - (size_t)r);
	x->read += (uint64_t)r;
	return 0;
}

/* Compare the blocks whose entries differ, from both indexes. */
static int
by_index(struct dx *x)
{
	uint64_t nbs = idx_nblocks(x->src.size, x->bs);
	uint64_t nbb = idx_nblocks(x->base.size, x->bs);
	struct vs_hash *se = malloc(ENTRIES * sizeof(*se));
	struct vs_hash *be = malloc(ENTRIES * sizeof(*be));
	int ret = -1;

	if (!se || !be) {
		vs_errno(VS_EXIT_INTERNAL, x->src.path, "entries");
		goto out;
	}
	for (uint64_t b0 = 0; b0 < nbs; b0 += ENTRIES) {
		size_t n = (size_t)vs_min(ENTRIES, nbs - b0);

		if (vs_interrupted) {
			vs_err(VS_EXIT_PARTIAL, x->src.path, "interrupted");
			goto out;
		}
		if (idx_read(x->src.ix, b0, n, se) < 0 ||
		    (b0 < nbb && idx_read(x->base.ix, b0,
		    (size_t)vs_min(n, nbb - b0), be) < 0))
			goto out;
		for (size_t i = 0; i < n; i++) {
			uint64_t off = (b0 + i) * x->bs;
			size_t len = (size_t)vs_min(x->bs, x->src.size - off);
			const struct vs_hash *old = b0 + i < nbb ? &be[i] :
			    &vs_hash_hole;

			if (vs_hash_eq(&se[i], old))
				continue;
			if (vs_hash_eq(&se[i], &vs_hash_hole)) {
				if (note(x, off, len, VS_EXT_ZERO) < 0)
					goto out;
				continue;
			}
			if (read_at(x, &x->src, x->sbuf, len, off) < 0 ||
			    read_at(x, &x->base, x->bbuf, len, off) < 0 ||
			    note_block(x, off, len, x->sbuf, x->bbuf) < 0)
				goto out;
		}
	}
	ret = 0;
out:
	free(se);
	free(be);
	return ret;
}

/* Are [off, off + len) of both files surely equal, by their extents?
 * Where FIEMAP cannot tell (another filesystem, an error), they maybe
 * differ. */
static bool
same_extents(struct dx *x, uint64_t off, size_t len)
{
	uint64_t pos = off, n;
	bool same = true;

	if (!x->src.pm || !x->base.pm ||
	    off + len > vs_min(x->src.size, x->base.size))
		return false;
	while (same && pos < off + len)
		if (vs_physmap_cmp(x->src.pm, x->base.pm, pos,
		    off + len - pos, &same, &n) < 0 || n == 0)
			return false;
		else
			pos += n;
	return same;
}

/* Does @g hold data in [off, off + len)?  (Unsure: yes.) */
static bool
has_data(const struct gen *g, uint64_t off, size_t len)
{
	off_t d = lseek(g->fd, (off_t)off, SEEK_DATA);

	return !(d < 0 && errno == ENXIO) && !(d >= 0 &&
	    (uint64_t)d >= off + len);
}

/* A chunk equal in both files: only BASE's digest may need its bytes. */
static int
equal_chunk(struct dx *x, struct vs_delta_digest *d, uint64_t off,
    size_t len)
{
	x->skipped += len;
	if (!d)
		return 0;
	if (!has_data(&x->base, off, len)) {
		for (size_t at = 0; at < len; at += x->bs)
			vs_delta_digest_add(d, &vs_hash_hole, 1);
		return 0;
	}
	if (read_at(x, &x->base, x->bbuf, len, off) < 0)
		return -1;
	for (size_t at = 0; at < len; at += x->bs) {
		size_t n = (size_t)vs_min(x->bs, len - at);
		struct vs_hash h = vs_hash_hole;

		if (!vs_is_zero(x->bbuf + at, n))
			vs_hash_block(x->bbuf + at, n, x->seed, &h);
		vs_delta_digest_add(d, &h, 1);
	}
	posix_fadvise(x->base.fd, (off_t)off, (off_t)len,
	    POSIX_FADV_DONTNEED);
	return 0;
}

/* Compare both files a chunk at a time, by their extents or by reading
 * them; hash BASE's blocks into @d too, if not NULL. */
static int
by_reading(struct dx *x, struct vs_delta_digest *d)
{
	uint64_t end = vs_max(x->src.size, x->base.size);

	/* Extents tell where files share them: on btrfs. */
	if (vs_on_btrfs(x->src.fd) && vs_on_btrfs(x->base.fd) &&
	    (vs_physmap_open(x->src.fd, x->src.path, &x->src.pm) < 0 ||
	    vs_physmap_open(x->base.fd, x->base.path, &x->base.pm) < 0))
		return -1;
	for (uint64_t off = 0; off < end; off += x->chunk) {
		size_t len = (size_t)vs_min(x->chunk, end - off);

		if (vs_interrupted) {
			vs_err(VS_EXIT_PARTIAL, x->src.path, "interrupted");
			return -1;
		}
		/* A chunk's digest entries are whole blocks (chunk is a
		 * multiple of the block size) except at the very end. */
		if (same_extents(x, off, len)) {
			if (equal_chunk(x, d, off, len) < 0)
				return -1;
			continue;
		}
		if (read_at(x, &x->src, x->sbuf, len, off) < 0 ||
		    read_at(x, &x->base, x->bbuf, len, off) < 0)
			return -1;
		for (size_t at = 0; at < len; at += x->bs) {
			uint64_t o = off + at;
			size_t n = (size_t)vs_min(x->bs, len - at);
			struct vs_hash h = vs_hash_hole;

			if (d && o < x->base.size) {
				size_t bn = (size_t)vs_min(n, x->base.size - o);

				if (!vs_is_zero(x->bbuf + at, bn))
					vs_hash_block(x->bbuf + at, bn, x->seed,
					    &h);
				vs_delta_digest_add(d, &h, 1);
			}
			if (o >= x->src.size)
				continue;
			n = (size_t)vs_min(n, x->src.size - o);
			if (memcmp(x->sbuf + at, x->bbuf + at, n) != 0 &&
			    note_block(x, o, n, x->sbuf + at, x->bbuf + at) < 0)
				return -1;
		}
		posix_fadvise(x->src.fd, (off_t)off, (off_t)len,
		    POSIX_FADV_DONTNEED);
		posix_fadvise(x->base.fd, (off_t)off, (off_t)len,
		    POSIX_FADV_DONTNEED);
	}
	return 0;
}

/* Find the changes and BASE's digest: from the indexes where both are
 * trusted alike, else by reading. */
static int
find_changes(struct dx *x, struct vs_hash *digest)
{
	struct vs_delta_digest *d = NULL;
	bool both = x->base.h && x->src.h &&
	    x->base.h->block_size == x->src.h->block_size &&
	    x->base.h->seed == x->src.h->seed;

	x->bs = x->base.h ? x->base.h->block_size : VS_DEFAULT_BLOCK;
	x->chunk = vs_max(CMP_CHUNK, x->bs);
	if (!(x->sbuf = malloc(x->chunk)) || !(x->bbuf = malloc(x->chunk))) {
		vs_errno(VS_EXIT_INTERNAL, x->src.path, "buffers");
		return -1;
	}
	if (x->base.h) {
		x->seed = x->base.h->seed;
		if (vs_delta_base_digest(x->base.fd, x->base.path,
		    x->base.size, x->bs, x->seed, x->base.ix, x->base.h,
		    digest, &x->read) < 0)
			return -1;
		return both ? by_index(x) : by_reading(x, NULL);
	}
	if (vs_random64(&x->seed) < 0 ||
	    vs_delta_digest_new(x->bs, x->base.size, x->seed, &d) < 0) {
		vs_errno(VS_EXIT_INTERNAL, x->base.path, "digest");
		return -1;
	}
	if (by_reading(x, d) < 0) {
		vs_delta_digest_end(d, digest);
		return -1;
	}
	vs_delta_digest_end(d, digest);
	return 0;
}

/* The delta's text and its data runs, from the changes. */
static int
split(struct dx *x, struct vs_delta *d, struct vs_extent_vec *runs)
{
	for (size_t i = 0; i < x->ch.n; i++)
		if (vs_extent_vec_push(x->ch.v[i].type == VS_EXT_DATA ? runs :
		    &d->holes, x->ch.v[i]) < 0) {
			vs_errno(VS_EXIT_INTERNAL, x->src.path, "changes");
			return -1;
		}
	return 0;
}

/* Has SRC changed since it was opened? */
static int
src_unchanged(const struct dx *x)
{
	struct stat now;

	if (fstat(x->src.fd, &now) == 0 && now.st_size == x->src.st.st_size &&
	    vs_timespec_cmp(&now.st_mtim, &x->src.st.st_mtim) == 0 &&
	    vs_timespec_cmp(&now.st_ctim, &x->src.st.st_ctim) == 0)
		return 0;
	vs_err(VS_EXIT_SOURCE, x->src.path, "changed while the incremental "
	    "archive was written");
	return -1;
}

/* Write the two entries into @o. */
static int
write_delta(struct dx *x, struct vs_archive_out *o, struct vs_delta *d,
    const struct vs_extent_vec *runs)
{
	struct vs_image *img = NULL;
	struct vs_io *io = NULL;
	char *text = NULL, *tname = NULL;
	size_t tlen;
	int ret = -1;

	if (vs_delta_format(d, &text, &tlen) < 0 ||
	    asprintf(&tname, "%s%s", d->name, VS_DELTA_SUFFIX) < 0) {
		tname = NULL;
		vs_errno(VS_EXIT_INTERNAL, x->src.path, "delta");
		goto out;
	}
	if (vs_io_open_file(x->src.path, &io) < 0 ||
	    vs_image_open(io, "raw", &img) < 0)
		goto out;
	if (img->size != x->src.size) {
		vs_err(VS_EXIT_SOURCE, x->src.path, "changed while the "
		    "incremental archive was written");
		goto out;
	}
	if (vs_archive_out_text(o, tname, text, tlen, 0600,
	    x->src.st.st_mtim.tv_sec) < 0 ||
	    vs_archive_out_sparse(o, x->src.path, d->name, img, runs,
	    x->src.st.st_mode, x->src.st.st_mtim.tv_sec,
	    x->src.st.st_mtim.tv_nsec) < 0 || src_unchanged(x) < 0)
		goto out;
	ret = 0;
out:
	vs_image_close(img);
	free(text);
	free(tname);
	return ret;
}

/* Say what was found, and how. */
static void
report(const struct dx *x, const struct vs_extent_vec *runs, bool indexes)
{
	uint64_t bytes = 0;

	for (size_t i = 0; i < runs->n; i++)
		bytes += runs->v[i].len;
	vs_info(1, "%s: since %s: %llu changed bytes in %zu runs, %zu hole "
	    "lines; read %llu bytes (%s; %llu bytes equal by their extents)",
	    x->src.path, x->base.path, (unsigned long long)bytes, runs->n,
	    x->nholes, (unsigned long long)x->read, indexes ?
	    "changes from the indexes" : "both files compared",
	    (unsigned long long)x->skipped);
}

static int
refuse(const struct vs_cli *cli)
{
	if (cli->npaths != 2) {
		vs_err(VS_EXIT_USAGE, cli->since, "--since with an archive "
		    "DEST takes a single SRC");
		return -1;
	}
	if (cli->format || cli->output) {
		vs_err(VS_EXIT_USAGE, cli->paths[0], "an incremental archive "
		    "compares the files as they are: -f and -O do not apply");
		return -1;
	}
	if (vs_is_remote(cli->since) || vs_is_remote(cli->paths[0])) {
		vs_err(VS_EXIT_USAGE, vs_is_remote(cli->since) ? cli->since :
		    cli->paths[0], "an incremental archive is made between "
		    "local files");
		return -1;
	}
	return vs_archive_check_dest(cli);
}

int
vs_delta_export(const struct vs_cli *cli, bool progress)
{
	struct dx x = { .base.fd = -1, .src.fd = -1 };
	struct vs_delta d = { 0 };
	struct vs_extent_vec runs = { 0 };
	struct vs_archive_out *o = NULL;
	bool ok = false;

	vs_err_reset();
	if (refuse(cli) < 0 || open_gen(&x.base, cli->since) < 0 ||
	    open_gen(&x.src, cli->paths[0]) < 0)
		goto out;
	if (!(d.name = vs_target_name(x.src.path, false))) {
		vs_target_name_failed(x.src.path);
		goto out;
	}
	if (vs_archive_entry_name_check(x.src.path, d.name) < 0)
		goto out;
	if (find_changes(&x, &d.base_digest) < 0)
		goto out;
	compact(&x);
	d.base_size = x.base.size;
	d.base_seed = x.seed;
	d.block_size = x.bs;
	d.size = x.src.size;
	if (split(&x, &d, &runs) < 0)
		goto out;
	report(&x, &runs, x.base.h && x.src.h && x.base.h->block_size ==
	    x.src.h->block_size && x.base.h->seed == x.src.h->seed);
	if (vs_archive_out_open(cli, progress, &o) < 0)
		goto out;
	ok = write_delta(&x, o, &d, &runs) == 0;
out:
	close_gen(&x.base);
	close_gen(&x.src);
	free(x.sbuf);
	free(x.bbuf);
	vs_extent_vec_free(&x.ch);
	vs_extent_vec_free(&runs);
	vs_delta_free(&d);
	if (!o && !ok)
		return vs_err_first() != VS_EXIT_OK ? vs_err_first() :
		    VS_EXIT_INTERNAL;
	return vs_archive_out_close(o, ok);
}
