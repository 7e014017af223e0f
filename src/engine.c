/*
 * engine.c - walk the source map, hash, compare with the index, write.
 *
 * Design notes
 * - The image is handled one window of VS_WINDOW_BYTES at a
 *   time: map the window (no data read), fetch its index entries, read the
 *   DATA blocks in VS_CHUNK pieces, then record the new entries.  Memory is
 *   the readers' chunks, two windows of entries and the block maps of the
 *   windows planned ahead (below), whatever the image size.
 * - A block is DATA if any byte of it is mapped as data.  A DATA block that
 *   reads as all zeros is treated as a hole.  Holes are punched on the
 *   target only where the index says the target may hold data.
 * - Without a trusted index every entry is "unknown": each DATA block goes
 *   to the target's write(), which compares with the old bytes, and each
 *   hole is punched where the target has data.  A far target that hashes
 *   its own blocks instead (info.hashes_target) is asked for digests and
 *   entries as if trusted, so only the blocks that differ cross the wire.
 * - Reader threads (reader.c) read and hash the next groups while this
 *   one is compared and written.  The next windows are mapped and posted
 *   to them before this one is written, as many as it takes to give them
 *   a group to read in each of their buffers (at most VS_READER_WINDOWS
 *   in all), so they go on into them without waiting: on a large sparse
 *   image whose windows hold a changed piece or two, reading would
 *   otherwise stop at every window.
 * - Neighbouring blocks to write go to the target as one write() of up to
 *   a group, so it can compare and write in large pieces.
 * - With change detection (changes.h), blocks the base shares with the
 *   source are "kept": not read, their entries stay as the index has them.
 *   It is used only when the trusted index says the target was synced
 *   from that very base.  The blocks left to read then nearly all
 *   changed, so the target is told to fetch their old bytes at once.
 */
#include <stdlib.h>
#include <string.h>

#include "changes.h"
#include "engine.h"
#include "progress.h"
#include "reader.h"
#include "util.h"

/* A group whose writes are decided, waiting to be applied. */
struct group {
	size_t g0, g1;			/* its blocks in the window */
	uint8_t *buf;			/* its data from the reader, or NULL */
	int same;			/* 1: nothing to compare, unchanged */
};

/* A window mapped and posted to the readers, ahead of its turn. */
struct plan {
	uint64_t wstart, wlen;		/* where it starts, its bytes */
	size_t nb;			/* its blocks */
	uint8_t *isdata;		/* per block: to read */
	uint8_t *keep;			/* per block: unchanged since the base */
	struct vs_extent_vec map;	/* its extents */
	size_t groups;			/* its groups with a block to read */
};

#define PLANS VS_READER_WINDOWS		/* this window and those ahead */

/* What change detection says of a block (plan.keep). */
enum {
	KEEP_NO = 0,		/* may have changed: read and compare */
	KEEP_HOLE = 1,		/* unchanged, a hole in the source */
	KEEP_DATA = 2,		/* unchanged data, not read */
};

struct sync_state {
	struct vs_image *src;		/* source */
	struct vs_target *t;		/* target */
	struct vs_stats *st;		/* counters */
	uint64_t bwlimit;		/* bytes per second, 0: none */
	double bw_start;		/* when the sync began */
	struct vs_target_info info;	/* block size, seed, trust */
	struct vs_reader *reader;	/* reads the groups ahead */
	struct plan plan[PLANS];	/* this window and those ahead,
					 * see plan_of() */
	uint64_t wstart;		/* this window's start ... */
	const uint8_t *isdata;		/* ... its plan's isdata */
	const uint8_t *keep;		/* ... and keep */
	struct vs_changes *changes;	/* change detection, or NULL */
	uint64_t base_size;		/* the base's size, with changes */
	struct vs_hash *old, *new;	/* entries of the window */
	struct vs_hash *digests;	/* per group, or NULL: no digests */
	size_t group;			/* blocks per group (one chunk) */
	uint64_t punch_off, punch_len;	/* pending punch, coalesced */
};

/* Does the target declare @cap (its begin() said so)? */
static bool
can(const struct sync_state *s, enum vs_target_cap cap)
{
	return s->info.caps & cap;
}

/* Stop at the next check after SIGINT/SIGTERM/SIGHUP. */
static int
check_interrupt(struct sync_state *s)
{
	if (!vs_interrupted)
		return 0;
	vs_err(VS_EXIT_PARTIAL, s->src->name, "interrupted");
	return -1;
}

static int
flush_punch(struct sync_state *s)
{
	int r = 0;

	if (s->punch_len)
		r = s->t->ops->punch(s->t, s->punch_off, s->punch_len);
	s->punch_len = 0;
	return r;
}

/* Block at @off (@len bytes) is a hole in the source. */
static int
hole_block(struct sync_state *s, size_t i, uint64_t off, uint64_t len)
{
	s->new[i] = vs_hash_hole;
	if (vs_hash_eq(&s->old[i], &vs_hash_hole))
		return 0;
	if (s->punch_len && s->punch_off + s->punch_len == off) {
		s->punch_len += len;
		return 0;
	}
	if (flush_punch(s) < 0)
		return -1;
	s->punch_off = off;
	s->punch_len = len;
	return 0;
}

/* Take the data of group @g of the window from the reader into g->buf,
 * and the hash of every block of the group. */
static int
take_group(struct sync_state *s, struct group *g)
{
	const struct vs_hash *hash;
	uint64_t bytes = 0;
	size_t g0 = g->g0, g1 = g->g1;

	if (!vs_group_has_data(s->isdata, g0, g1)) {	/* nothing to read */
		for (size_t i = g0; i < g1; i++)
			if (!s->keep[i])
				s->new[i] = vs_hash_hole;
		return 0;
	}
	/* The readers stop at a signal, but the groups they read ahead
	 * (tens of MiB) would still be written: stop here instead. */
	if (check_interrupt(s) < 0)
		return -1;
	if (!(g->buf = vs_reader_take(s->reader, s->wstart, g0, &bytes,
	    &hash))) {
		if (vs_interrupted)
			check_interrupt(s);
		return -1;
	}
	s->st->read_bytes += bytes;
	/* --bwlimit: what was read and written so far sets the pace; the
	 * readers, a bounded distance ahead, wait with the engine. */
	if (s->bwlimit)
		vs_pace(s->bw_start, s->st->read_bytes + s->st->written_bytes +
		    s->st->target_read_bytes, s->bwlimit);
	for (size_t i = g0; i < g1; i++) {
		if (s->keep[i])
			continue;	/* set from the old entry */
		s->new[i] = s->isdata[i] ? hash[i - g0] : vs_hash_hole;
	}
	return 0;
}

/* The target's entries for group [g0, g1): from its digest when they all
 * match, else asked for.  Returns 1 if the whole group is unchanged. */
static int
old_entries(struct sync_state *s, uint64_t first, size_t g0, size_t g1)
{
	struct vs_hash d;
	size_t kept = 0;

	for (size_t i = g0; i < g1; i++)
		kept += s->keep[i] != 0;
	if (!s->digests)
		return 0;		/* fetched for the whole window */
	if (kept == g1 - g0) {
		/* Nothing changes here: no need to know the entries. */
		for (size_t i = g0; i < g1; i++)
			s->old[i] = s->new[i] = vs_hash_unknown;
		return 1;
	}
	if (kept)		/* their entries are needed */
		return s->t->ops->summaries(s->t, first + g0, g1 - g0,
		    s->old + g0) < 0 ? -1 : 0;
	vs_hash_group(s->new + g0, g1 - g0, s->info.seed, &d);
	if (vs_hash_eq(&d, &s->digests[g0 / s->group])) {
		memcpy(s->old + g0, s->new + g0, (g1 - g0) * sizeof(*s->new));
		return 1;
	}
	return s->t->ops->summaries(s->t, first + g0, g1 - g0,
	    s->old + g0) < 0 ? -1 : 0;
}

/* Write blocks [b, e) of group @g as one piece. */
static int
write_blocks(struct sync_state *s, uint64_t wstart, const struct group *g,
    size_t b, size_t e)
{
	uint64_t bs = s->info.block_size, off = wstart + b * bs;

	if (b == e)
		return 0;
	if (flush_punch(s) < 0)
		return -1;
	return s->t->ops->write(s->t, g->buf + (b - g->g0) * bs,
	    (size_t)vs_min((e - b) * bs, s->src->size - off), off);
}

/* Does block @i of the window go to the target's write()? */
static bool
to_write(const struct sync_state *s, const struct group *g, size_t i)
{
	return !g->same && !vs_hash_eq(&s->new[i], &vs_hash_hole) &&
	    !vs_hash_eq(&s->new[i], &s->old[i]);
}

/* Take group @g and find its target entries: what to write is known. */
static int
decide_group(struct sync_state *s, uint64_t first, struct group *g)
{
	if (take_group(s, g) < 0)
		return -1;
	if ((g->same = old_entries(s, first, g->g0, g->g1)) < 0)
		return -1;
	for (size_t i = g->g0; i < g->g1 && !g->same; i++)
		if (s->keep[i])
			s->new[i] = s->old[i];
	return 0;
}

/* Ask the target to fetch the old bytes of each run of blocks of
 * [b0, b1) of the window that @want picks. */
static void
prefetch_runs(struct sync_state *s, uint64_t wstart, size_t b0, size_t b1,
    bool (*want)(const struct sync_state *, const struct group *, size_t),
    const struct group *g)
{
	uint64_t bs = s->info.block_size, size = s->src->size;

	for (size_t b = b0, e; b < b1; b = e + 1) {
		for (e = b; e < b1 && want(s, g, e); e++)
			;
		if (e > b)
			s->t->ops->prefetch(s->t, wstart + b * bs,
			    vs_min(e * bs, size - wstart) - b * bs);
	}
}

/* Write and punch what decide_group() found for @g. */
static int
apply_group(struct sync_state *s, uint64_t wstart, const struct group *g)
{
	uint64_t bs = s->info.block_size, size = s->src->size;
	size_t run = g->g0;	/* first block of the pending write */

	for (size_t i = g->g0; i < g->g1; i++) {
		uint64_t off = wstart + i * bs;
		size_t len = (size_t)vs_min(bs, size - off);

		if (to_write(s, g, i))
			continue;	/* joins the pending write */
		if (write_blocks(s, wstart, g, run, i) < 0)
			return -1;
		run = i + 1;
		if (vs_hash_eq(&s->new[i], &vs_hash_hole)) {
			if (hole_block(s, i, off, len) < 0)
				return -1;
		} else if (s->keep[i] != KEEP_HOLE ||
		    !vs_hash_eq(&s->new[i], &vs_hash_unknown)) {
			/* Data found or known equal; not a kept hole whose
			 * entry was not asked for. */
			s->st->unchanged_bytes += len;
		}
	}
	return write_blocks(s, wstart, g, run, g->g1);
}

/* Give @g's buffer back to the reader. */
static void
release_group(struct sync_state *s, struct group *g)
{
	if (g->buf)
		vs_reader_give(s->reader, g->buf);
	*g = (struct group){ 0 };
}

/* Blocks of the window that change detection finds unchanged: not read. */
static int
mark_kept(struct sync_state *s, struct plan *pl)
{
	uint64_t bs = s->info.block_size, wstart = pl->wstart;
	size_t nb = pl->nb;

	if (!s->changes) {
		memset(pl->keep, 0, nb);
		return 0;
	}
	if (vs_changes_window(s->changes, wstart, pl->wlen, (uint32_t)bs,
	    &pl->map, pl->keep) < 0)
		return -1;
	/* Where the size changed, the block at the old or new end changed
	 * length: the target's entry for it no longer holds. */
	if (s->base_size != s->src->size) {
		uint64_t edge = vs_min(s->base_size, s->src->size) / bs;

		if (edge >= wstart / bs && edge < wstart / bs + nb)
			pl->keep[edge - wstart / bs] = 0;
	}
	/* A kept hole was a hole in the base too (the maps agree): keeping
	 * its entry spares a far target the question. */
	for (size_t i = 0; i < nb; i++)
		if (pl->keep[i] && pl->isdata[i]) {
			pl->isdata[i] = 0;
			pl->keep[i] = KEEP_DATA;
			s->st->skipped_bytes += vs_min(bs, pl->wlen - i * bs);
		}
	return 0;
}

/* Is block @i of the window to be read? */
static bool
to_read(const struct sync_state *s, const struct group *g, size_t i)
{
	(void)g;
	return s->isdata[i];
}

/* Whether change detection can be used: the target holds the base. */
static int
start_changes(struct sync_state *s, const struct vs_sync_view *v)
{
	const char *why = NULL;

	if (!v || !v->base)
		return 0;
	if (!s->info.trusted)
		why = "the target's index is not trusted";
	else if (!vs_hash_eq(&s->info.view, &v->base_id))
		why = "the target was not synced from the base";
	if (why) {
		/* A new target reads everything anyway: say so only under -v. */
		vs_info(s->st->index_state && strcmp(s->st->index_state,
		    "new") == 0 ? 1 : 0,
		    "%s: change detection off (%s): reading all data",
		    s->src->name, why);
		return 0;
	}
	vs_info(2, "%s: change detection against %s", s->src->name,
	    v->base->name);
	s->base_size = v->base->size;
	return vs_changes_open(s->src, v->base, &s->changes);
}

/* Whether every block of [g0, g1) of a window is kept. */
static bool
all_kept(const uint8_t *keep, size_t g0, size_t g1)
{
	for (size_t i = g0; i < g1; i++)
		if (!keep[i])
			return false;
	return true;
}

/* The end of the run of groups from @g0 of a window of @nb blocks that
 * are all kept or all not (*@kept: which). */
static size_t
group_run(const struct sync_state *s, const uint8_t *keep, size_t nb,
    size_t g0, bool *kept)
{
	size_t g1;

	*kept = all_kept(keep, g0, vs_min(g0 + s->group, nb));
	for (g1 = g0; g1 < nb; g1 += s->group)
		if (all_kept(keep, g1, vs_min(g1 + s->group, nb)) != *kept)
			break;
	return vs_min(g1, nb);
}

/* The target's entries of the window's @nb blocks.  A target that can
 * digest its entries (trusted, or hashing its blocks) is asked for one
 * digest per group; otherwise for the entries.  With change detection,
 * only those of the groups with a block that may have changed: a kept
 * block keeps its entry whatever it is, and on a large sparse image most
 * windows have nothing to read, so reading all their entries would read
 * most of the index. */
static int
window_entries(struct sync_state *s, uint64_t first, size_t nb)
{

	if (s->digests)
		return s->t->ops->digests(s->t, first, nb, s->group,
		    s->digests);
	if (!s->info.trusted && can(s, VS_CAP_DIGESTS)) {
		/* A far target that knows nothing: do not ask it, every block
		 * is compared on its side. */
		for (size_t i = 0; i < nb; i++)
			s->old[i] = vs_hash_unknown;
		return 0;
	}
	if (!s->changes)
		return s->t->ops->summaries(s->t, first, nb, s->old);
	for (size_t g0 = 0, g1; g0 < nb; g0 = g1) {
		bool kept;

		g1 = group_run(s, s->keep, nb, g0, &kept);
		if (!kept && s->t->ops->summaries(s->t, first + g0, g1 - g0,
		    s->old + g0) < 0)
			return -1;
		for (size_t i = g0; kept && i < g1; i++)
			s->old[i] = vs_hash_unknown;
	}
	return 0;
}

/* Map the window at @wstart into @pl and post it to the readers: which
 * blocks hold data, and which change detection finds unchanged.  The
 * readers may still be reading the window before it, so the calls into
 * the source's format hold the readers' format lock. */
static int
plan_window(struct sync_state *s, struct plan *pl, uint64_t wstart)
{
	uint64_t bs = s->info.block_size;
	int rc;

	pl->wstart = wstart;
	pl->wlen = vs_min(VS_WINDOW_BYTES, s->src->size - wstart);
	pl->nb = (size_t)((pl->wlen + bs - 1) / bs);
	vs_reader_lock_format(s->reader);
	rc = vs_image_map(s->src, wstart, pl->wlen, &pl->map);
	if (rc == 0) {
		s->st->data_bytes += vs_mark_data(&pl->map, wstart, bs,
		    pl->nb, pl->isdata);
		rc = mark_kept(s, pl);
	}
	vs_reader_unlock_format(s->reader);
	if (rc < 0)
		return -1;
	pl->groups = 0;
	for (size_t g0 = 0; g0 < pl->nb; g0 += s->group)
		pl->groups += vs_group_has_data(pl->isdata, g0,
		    vs_min(g0 + s->group, pl->nb));
	if (vs_reader_window(s->reader, wstart, pl->isdata, pl->nb, bs,
	    s->group) < 0)
		return -1;
	/* The entries window_entries() will ask for, and the sector records
	 * of the blocks to compare: the target may fetch them meanwhile. */
	for (size_t g0 = 0, g1; s->changes && can(s, VS_CAP_EXPECT) &&
	    g0 < pl->nb; g0 = g1) {
		bool kept;

		g1 = group_run(s, pl->keep, pl->nb, g0, &kept);
		if (!kept)
			s->t->ops->expect(s->t, wstart / bs + g0, g1 - g0);
	}
	return 0;
}

/* The plan of the window at @wstart. */
static struct plan *
plan_of(struct sync_state *s, uint64_t wstart)
{
	return &s->plan[wstart / VS_WINDOW_BYTES % PLANS];
}

/* Plan the windows from *@next on, before the window at @w is written:
 * that one, then (@ahead) those after it while the readers would not
 * have a group for each buffer and fewer than PLANS are planned. */
static int
plan_ahead(struct sync_state *s, uint64_t w, uint64_t *next, bool ahead)
{
	size_t groups = 0;

	for (uint64_t a = w + VS_WINDOW_BYTES; a < *next;
	    a += VS_WINDOW_BYTES)
		groups += plan_of(s, a)->groups;
	while (*next < s->src->size && (*next == w || (ahead &&
	    *next - w < (uint64_t)PLANS * VS_WINDOW_BYTES &&
	    groups < VS_READER_SLOTS))) {
		if (plan_window(s, plan_of(s, *next), *next) < 0)
			return -1;
		if (*next != w)
			groups += plan_of(s, *next)->groups;
		*next += VS_WINDOW_BYTES;
	}
	return 0;
}

/* Compare, write and record the window planned in @pl. */
static int
sync_window(struct sync_state *s, const struct plan *pl,
    struct vs_progress *p)
{
	uint64_t bs = s->info.block_size, wstart = pl->wstart;
	uint64_t wlen = pl->wlen, first = wstart / bs;
	size_t nb = pl->nb;
	struct group prev = { 0 };	/* decided, not yet applied */
	bool per_group = can(s, VS_CAP_PREFETCH) && !s->changes;

	if (check_interrupt(s) < 0)
		return -1;
	s->wstart = wstart;
	s->isdata = pl->isdata;
	s->keep = pl->keep;
	/* The target compares each write with its old bytes: it is asked to
	 * fetch them ahead.  With change detection nearly every block left
	 * to read changed, so the whole window's are asked for now; else
	 * each group's blocks to write, once it is decided. */
	if (can(s, VS_CAP_PREFETCH) && s->changes)
		prefetch_runs(s, wstart, 0, nb, to_read, NULL);
	/* The readers started before the entries are fetched, which may
	 * wait for the index's disk or a far target. */
	if (window_entries(s, first, nb) < 0)
		return -1;
	/* Each group is written once the next one is decided, so that the
	 * target fetches the old bytes of the next while this is written. */
	for (size_t g0 = 0; g0 < nb + s->group; g0 += s->group) {
		struct group next = { .g0 = g0, .g1 = vs_min(g0 + s->group,
		    nb) };
		int rc = 0;

		if (g0 < nb && (rc = decide_group(s, first, &next)) == 0
		    && per_group)
			prefetch_runs(s, wstart, next.g0, next.g1, to_write,
			    &next);
		if (rc == 0 && prev.g1 > prev.g0 &&
		    (rc = apply_group(s, wstart, &prev)) == 0)
			vs_progress_update(p, wstart + vs_min(prev.g1 * bs,
			    wlen), s->st);
		release_group(s, &prev);
		prev = next;
		if (rc < 0) {
			release_group(s, &prev);
			return -1;
		}
	}
	if (flush_punch(s) < 0)
		return -1;
	return s->t->ops->record(s->t, first, nb, s->old, s->new);
}

/* Does the target digest its entries: a far one whose entries mean
 * something, from a trusted index or from hashing its blocks?  Not with
 * change detection where the target takes expect(): the entries of every
 * group that may have changed are asked for ahead, without waiting for
 * a digest first. */
static bool
digested(const struct sync_state *s)
{
	if (s->changes && can(s, VS_CAP_EXPECT))
		return false;
	return can(s, VS_CAP_DIGESTS) && (s->info.trusted ||
	    s->info.hashes_target);
}

/* Bytes the source maps as data, for the target's free space check: 0
 * (not known) for a block device, whose map says data everywhere.  A map
 * that fails here fails before anything is written. */
static int
source_data_bytes(struct vs_image *src, uint64_t *sum)
{
	*sum = 0;
	if (src->io && src->io->is_block)
		return 0;
	return vs_image_data_bytes(src, sum);
}

int
vs_sync(struct vs_image *src, struct vs_target *t, struct vs_progress *p,
    const struct vs_sync_view *view)
{
	struct sync_state s = { .src = src, .t = t, .st = t->stats,
	    .bwlimit = view ? view->bwlimit : 0 };
	double start = vs_now();
	bool ahead, bufs = true;
	int ret = -1;

	s.bw_start = start;
	s.st->virtual_size = src->size;
	s.st->guest_size = vs_fileview_guest_size(src);
	if (source_data_bytes(src, &s.info.src_data_bytes) < 0 ||
	    t->ops->begin(t, src->size, &s.info) < 0)
		return -1;
	vs_info(2, "%s: %s, %llu bytes, block size %u, index %s", src->name,
	    src->ops->name, (unsigned long long)src->size, s.info.block_size,
	    s.st->index_state);
	for (int i = 0; i < PLANS; i++) {
		s.plan[i].isdata = malloc(VS_WINDOW_BYTES / s.info.block_size);
		s.plan[i].keep = malloc(VS_WINDOW_BYTES / s.info.block_size);
		if (!s.plan[i].isdata || !s.plan[i].keep)
			bufs = false;
	}
	s.old = calloc(VS_WINDOW_BYTES / s.info.block_size, sizeof(*s.old));
	s.new = calloc(VS_WINDOW_BYTES / s.info.block_size, sizeof(*s.new));
	s.group = VS_CHUNK / s.info.block_size;
	if (!bufs || !s.old || !s.new) {
		vs_errno(VS_EXIT_INTERNAL, src->name, "buffers");
		goto out;
	}
	if (start_changes(&s, view) < 0)
		goto out;
	/* Whether digests are asked depends on change detection. */
	if (digested(&s) && !(s.digests = calloc(VS_WINDOW_BYTES / VS_CHUNK,
	    sizeof(*s.digests)))) {
		vs_errno(VS_EXIT_INTERNAL, src->name, "buffers");
		goto out;
	}
	if (vs_reader_start(src, VS_CHUNK, &s.info.seed, &s.reader) < 0)
		goto out;
	vs_progress_start(p, src->size);
	/* Windows are planned ahead of their turn (see the design notes).
	 * A sequential source's format may not map ahead of its reads: its
	 * windows are planned in turn. */
	ahead = !src->ops->sequential;
	for (uint64_t w = 0, next = 0; w < src->size; w += VS_WINDOW_BYTES)
		if (plan_ahead(&s, w, &next, ahead) < 0 ||
		    sync_window(&s, plan_of(&s, w), p) < 0)
			goto out;
	if (t->ops->commit(t, view ? &view->id : NULL) < 0)
		goto out;
	ret = 0;
out:
	s.st->elapsed = vs_now() - start;
	vs_progress_end(p, ret == 0 ? src->size : 0, s.st);
	for (int i = 0; i < PLANS; i++) {
		vs_extent_vec_free(&s.plan[i].map);
		free(s.plan[i].isdata);
		free(s.plan[i].keep);
	}
	vs_reader_stop(s.reader);
	vs_changes_close(s.changes);
	free(s.old);
	free(s.new);
	free(s.digests);
	return ret;
}
