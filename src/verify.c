/*
 * verify.c - vmsync --verify: check a backup against the index beside it,
 * without its source.
 *
 * Design notes
 * - The target is read as the sync wrote it: its bytes as they are (a
 *   qcow2 target is a copy of the source's file view), every data block
 *   by the same reader threads as a sync, hashed with the index's seed
 *   and compared with its entry.  A hole must be recorded as a hole, and
 *   a block recorded as a hole must be one (zeros written as data are
 *   reported: a sync punches them).  A block's sector record, where it
 *   holds for the entry, must match the block's sectors too: a sync
 *   trusts it instead of reading the old block.
 * - A target named as qcow2 whose header says so is also opened as qcow2
 *   and its metadata checked as a sync checks a source: damage is
 *   reported, never repaired.
 * - The index's dirty flag marks a partial generation (its sync did not
 *   finish, or another program wrote it); it is reported and fails the
 *   check, since its entries need not describe the file.
 * - Nothing is written; the reader drops the cache behind it.
 * - Checking and reporting are apart: vmsync --server checks a backup
 *   beneath its --root and sends the result (VERIFIED), which the client
 *   reports as it reports a local one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "index.h"
#include "reader.h"
#include "progress.h"
#include "transport/transport.h"
#include "util.h"
#include "verify.h"

struct verify {
	const char *path;
	struct vs_verify_result *r;	/* what is found */
	struct vs_image *img;	/* the target's bytes as they are */
	struct vs_index *ix;
	struct idx_header h;
	struct vs_reader *reader;
	struct vs_extent_vec map;
	uint8_t *isdata;	/* per block of the window */
	struct vs_hash *want;	/* the index's entries for the window */
	size_t group;		/* blocks per reader group */
	uint64_t *sec;		/* a group's sector records */
	bool *valid;		/* which of them hold */
};

static const char *const why_text[] = {
	[VS_BAD_DIFFERS] = "differs from the index",
	[VS_BAD_HOLE] = "a hole where the index records data",
	[VS_BAD_ALLOCATED] = "data (zeros) where the index records a hole",
	[VS_BAD_UNKNOWN] = "not recorded in the index",
};

const char *
vs_verify_why_text(enum vs_verify_why why)
{
	return why >= VS_BAD_DIFFERS && why <= VS_BAD_UNKNOWN ?
	    why_text[why] : "bad";
}

/* Note block @b (@len bytes) as bad, merging with the range before. */
static void
add_bad(struct verify *v, uint64_t b, uint64_t len, enum vs_verify_why why)
{
	struct vs_verify_result *r = v->r;
	uint64_t off = b * v->h.block_size;
	struct vs_verify_bad *last = r->nbad ? &r->bad[r->nbad - 1] : NULL;

	r->bad_bytes += len;
	if (last && last->why == why && last->off + last->len == off &&
	    !r->more_bad) {
		last->len += len;
		return;
	}
	if (r->nbad == VS_VERIFY_BAD_KEPT) {
		r->more_bad++;
		return;
	}
	r->bad[r->nbad++] = (struct vs_verify_bad){ off, len, why };
}

/* Do the sectors of @blk (@len bytes) hash as the record @sec says? */
static bool
sectors_match(const struct verify *v, const uint8_t *blk, uint64_t len,
    const uint64_t *sec)
{
	for (uint64_t at = 0; at < len; at += IDX_SECTOR)
		if (sec[at / IDX_SECTOR] != idx_sector_hash(blk + at,
		    (size_t)vs_min(IDX_SECTOR, len - at), v->h.seed))
			return false;
	return true;
}

/* Compare block @b (window block @i, group block @k of @buf) with its
 * entry and its sector record. */
static void
check_block(struct verify *v, uint64_t b, size_t i, const struct vs_hash *got,
    const uint8_t *buf, size_t k)
{
	uint64_t bs = v->h.block_size;
	uint64_t len = vs_min(bs, v->img->size - b * bs);
	const struct vs_hash *want = &v->want[i];

	if (vs_hash_eq(want, &vs_hash_unknown))
		add_bad(v, b, len, VS_BAD_UNKNOWN);
	else if (!got && !vs_hash_eq(want, &vs_hash_hole))
		add_bad(v, b, len, VS_BAD_HOLE);
	else if (!got)
		return;
	else if (vs_hash_eq(want, &vs_hash_hole) &&
	    vs_hash_eq(got, &vs_hash_hole))
		add_bad(v, b, len, VS_BAD_ALLOCATED);
	else if (!vs_hash_eq(want, got) || (v->valid[k] && !sectors_match(v,
	    buf + k * bs, len, v->sec + k * idx_sectors_per_block((uint32_t)bs))))
		add_bad(v, b, len, VS_BAD_DIFFERS);
}

static int
verify_window(struct verify *v, uint64_t wstart)
{
	uint64_t bs = v->h.block_size;
	uint64_t wlen = vs_min(VS_WINDOW_BYTES, v->img->size - wstart);
	uint64_t first = wstart / bs;
	size_t nb = (size_t)((wlen + bs - 1) / bs);

	if (vs_interrupted) {
		vs_err(VS_EXIT_PARTIAL, v->path, "interrupted");
		return -1;
	}
	if (vs_image_map(v->img, wstart, wlen, &v->map) < 0 ||
	    idx_read(v->ix, first, nb, v->want) < 0)
		return -1;
	vs_mark_data(&v->map, wstart, bs, nb, v->isdata);
	if (vs_reader_window(v->reader, wstart, v->isdata, nb, bs,
	    v->group) < 0)
		return -1;
	for (size_t g0 = 0; g0 < nb; g0 += v->group) {
		size_t g1 = vs_min(g0 + v->group, nb);
		const struct vs_hash *hash = NULL;
		uint8_t *buf = NULL;
		uint64_t bytes = 0;

		if (vs_group_has_data(v->isdata, g0, g1) &&
		    !(buf = vs_reader_take(v->reader, wstart, g0, &bytes,
		    &hash))) {
			if (vs_interrupted)
				vs_err(VS_EXIT_PARTIAL, v->path, "interrupted");
			return -1;
		}
		v->r->read_bytes += bytes;
		if (idx_read_sectors(v->ix, first + g0, g1 - g0, v->want + g0,
		    v->sec, v->valid) < 0)
			return -1;
		for (size_t i = g0; i < g1; i++)
			check_block(v, first + i, i, buf && v->isdata[i] ?
			    &hash[i - g0] : NULL, buf, i - g0);
		if (buf)
			vs_reader_give(v->reader, buf);
	}
	return 0;
}

/* A target named as qcow2 that says it is one: check its metadata as a
 * sync checks a source's, its own only: the backing file of an overlay is
 * not part of its backup. */
static void
check_qcow2(struct verify *v)
{
	const char *probed = NULL, *dot = strrchr(v->path, '.');
	struct vs_image *q = NULL;
	struct vs_io *io = NULL;

	if (!dot || (strcmp(dot, ".qcow2") != 0 && strcmp(dot, ".qcow") != 0))
		return;
	if (vs_format_probe(v->img->io, &probed) < 0 || !probed ||
	    strcmp(probed, "qcow2") != 0)
		return;
	if (vs_io_open_file(v->path, &io) < 0) {
		v->r->meta_bad = true;
		return;
	}
	io->alone = true;
	if (vs_image_open(io, "qcow2", &q) < 0 || vs_image_validate(q) < 0)
		v->r->meta_bad = true;
	vs_image_close(q);
}

/* Open the target and its index; check what the header says. */
static int
open_both(struct verify *v, const char *index)
{
	char *ipath = index ? strdup(index) : vs_local_index_path(v->path);
	const struct idx_header *h;
	struct vs_io *io = NULL;
	const char *why = NULL;
	int rc = -1;

	if (!ipath) {
		vs_errno(VS_EXIT_INTERNAL, v->path, "index path");
		return -1;
	}
	if (vs_io_open_file(v->path, &io) < 0 ||
	    vs_image_open(io, "raw", &v->img) < 0 ||
	    idx_open(ipath, false, &v->ix) < 0)
		goto out;
	if (!v->ix) {
		vs_err(VS_EXIT_SOURCE, v->path, "no vmsync index beside it "
		    "(%s): not a backup vmsync made", ipath);
		goto out;
	}
	if (!(h = idx_header(v->ix, &why))) {
		vs_err(VS_EXIT_SOURCE, ipath, "index unusable: %s", why);
		goto out;
	}
	v->h = *h;
	v->r->partial = h->flags & IDX_FLAG_DIRTY;
	if (h->virtual_size != v->img->size) {
		vs_err(VS_EXIT_DIFFERS, v->path, "%llu bytes, but the index "
		    "describes %llu", (unsigned long long)v->img->size,
		    (unsigned long long)h->virtual_size);
		goto out;
	}
	rc = 0;
out:
	free(ipath);
	return rc;
}

void
vs_verify_report(const char *shown, const struct vs_verify_result *r,
    FILE *json)
{
	for (size_t i = 0; i < r->nbad; i++)
		vs_err(VS_EXIT_DIFFERS, shown, "offset %llu: %llu bytes: %s",
		    (unsigned long long)r->bad[i].off,
		    (unsigned long long)r->bad[i].len,
		    vs_verify_why_text(r->bad[i].why));
	if (r->more_bad)
		vs_err(VS_EXIT_DIFFERS, shown, "%llu more bad ranges",
		    (unsigned long long)r->more_bad);
	if (r->partial)
		vs_err(VS_EXIT_DIFFERS, shown, "partial: its index is dirty "
		    "(a sync that did not finish, or a write by another "
		    "program)");
	if (r->status == VS_EXIT_OK)
		vs_info(0, "%s: %llu bytes match the index", shown,
		    (unsigned long long)r->virtual_size);
	if (!json)
		return;
	fputs("{\"path\":", json);
	vs_json_string(json, shown);
	fprintf(json, ",\"status\":%d,\"complete\":%s,\"virtual_size\":%llu,"
	    "\"read_bytes\":%llu,\"bad_bytes\":%llu,\"metadata_ok\":%s,"
	    "\"bad\":[", r->status, r->complete ? "true" : "false",
	    (unsigned long long)r->virtual_size,
	    (unsigned long long)r->read_bytes,
	    (unsigned long long)r->bad_bytes, r->meta_bad ? "false" : "true");
	for (size_t i = 0; i < r->nbad; i++) {
		fprintf(json, "%s{\"offset\":%llu,\"length\":%llu,\"reason\":",
		    i ? "," : "", (unsigned long long)r->bad[i].off,
		    (unsigned long long)r->bad[i].len);
		vs_json_string(json, vs_verify_why_text(r->bad[i].why));
		fputc('}', json);
	}
	fprintf(json, "],\"more_bad\":%llu}", (unsigned long long)r->more_bad);
}

int
vs_verify_result_init(struct vs_verify_result *r)
{
	memset(r, 0, sizeof(*r));
	r->bad = malloc(VS_VERIFY_BAD_KEPT * sizeof(*r->bad));
	return r->bad ? 0 : -1;
}

void
vs_verify_result_free(struct vs_verify_result *r)
{
	free(r->bad);
	r->bad = NULL;
}

enum vs_exit
vs_verify_check(const char *path, const char *index,
    struct vs_verify_result *r)
{
	struct verify v = { .path = path, .r = r };
	int ok = -1;

	vs_err_reset();
	if (open_both(&v, index) < 0)
		goto out;
	v.group = VS_CHUNK / v.h.block_size;
	v.isdata = malloc(VS_WINDOW_BYTES / v.h.block_size);
	v.want = malloc(VS_WINDOW_BYTES / v.h.block_size * sizeof(*v.want));
	v.sec = malloc(VS_CHUNK / IDX_SECTOR * sizeof(*v.sec));
	v.valid = malloc(v.group * sizeof(*v.valid));
	if (!v.isdata || !v.want || !v.sec || !v.valid) {
		vs_errno(VS_EXIT_INTERNAL, path, "verify");
		goto out;
	}
	check_qcow2(&v);
	if (vs_reader_start(v.img, VS_CHUNK, &v.h.seed, &v.reader) < 0)
		goto out;
	for (uint64_t w = 0; w < v.img->size; w += VS_WINDOW_BYTES)
		if (verify_window(&v, w) < 0)
			goto out;
	ok = 0;
out:
	if (v.reader)
		vs_reader_stop(v.reader);
	if (ok == 0 && (r->nbad || r->partial || r->meta_bad))
		r->status = VS_EXIT_DIFFERS;
	else if (ok < 0)
		r->status = vs_err_first() != VS_EXIT_OK ? vs_err_first() :
		    VS_EXIT_INTERNAL;
	else
		r->status = VS_EXIT_OK;
	r->complete = v.ix && !r->partial;
	r->virtual_size = v.img ? v.img->size : 0;
	vs_extent_vec_free(&v.map);
	free(v.isdata);
	free(v.want);
	free(v.sec);
	free(v.valid);
	idx_close(v.ix);
	vs_image_close(v.img);
	return r->status;
}

enum vs_exit
vs_verify(const char *path, const char *index, FILE *json)
{
	struct vs_verify_result r;
	enum vs_exit rc;

	if (vs_verify_result_init(&r) < 0) {
		vs_errno(VS_EXIT_INTERNAL, path, "verify");
		r.status = VS_EXIT_INTERNAL;
	} else {
		vs_verify_check(path, index, &r);
	}
	vs_verify_report(path, &r, json);
	rc = r.status;
	vs_verify_result_free(&r);
	return rc;
}
