/*
 * reader.c - the source reader threads (see reader.h).
 *
 * Design notes
 * - READER_THREADS threads read different groups at once: one read at a
 *   time leaves the disk idle between requests, and a virtual or networked
 *   disk serves several requests in flight much faster than one.
 * - READER_SLOTS buffers: the engine works on one group while the threads
 *   fill others and one more waits ready; memory stays at that many groups
 *   whatever the image size.  Groups are handed out in order and the
 *   engine takes them in order, so the group it waits for is always being
 *   read or next to be.
 * - A format's metadata caches are not for two threads at once: every call
 *   into the format (locate, read, drop_cache) holds fmt_mu.  For formats
 *   with a locate op, only finding where a range is stored holds it; the
 *   container reads themselves run in parallel.
 * - A group without data is neither read nor handed over: an unchanged or
 *   sparse image costs no thread switch per empty group.
 * - The threads work on their own copy of each window's block map, and
 *   up to READER_WINDOWS windows are posted at once: the engine may post
 *   the next windows while it still takes the groups of this one, and the
 *   threads go on into them as soon as this one's groups are handed out.
 *   On a sparse image with scattered changes, where a window holds a
 *   group or two, the disk then never waits for the engine to map the
 *   next window.  A window is done with once its groups are handed out
 *   and none is being read; its place then takes a new one.
 * - Pages are dropped from the cache as soon as they are in a buffer.
 * - The threads hash the blocks they read (a zero block hashes as a hole):
 *   the engine's thread, which compares and writes, is the one all data
 *   passes through, and the readers mostly wait for the disk.  A caller
 *   that only passes the data on (an archive export) asks for no hashes.
 * - The threads block every signal: interrupts reach the main thread, and
 *   the threads only notice vs_interrupted between reads.
 * - A sequential format (an archive entry, a stream) gets one thread: it
 *   takes the groups in order, so the format sees its reads in increasing
 *   offset order.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "reader.h"
#include "util.h"

#define READER_THREADS 4
#define READER_SLOTS VS_READER_SLOTS
#define READER_WINDOWS VS_READER_WINDOWS
_Static_assert(READER_SLOTS >= READER_THREADS + 2,
    "a buffer for each thread, one for the engine and one ready");
#define READER_MIN_BLOCK 4096	/* the smallest block size hashed */

enum slot_state {
	SLOT_FREE,		/* a thread may fill it */
	SLOT_FILLING,		/* being read */
	SLOT_READY,		/* read, waiting for the engine */
	SLOT_FAILED,		/* the read failed or was interrupted */
	SLOT_TAKEN,		/* the engine works on it */
};

struct slot {
	uint8_t *buf;			/* group_bytes */
	uint64_t wstart;		/* its window ... */
	size_t g0;			/* ... and first block of its group */
	uint64_t bytes;			/* bytes read into it */
	struct vs_hash *hash;		/* its blocks' hashes */
	enum slot_state state;		/* see above */
};

/* A posted window: what its groups are. */
struct window {
	uint64_t seq;			/* order posted, from 1; 0: unused */
	uint64_t wstart;		/* where it starts */
	uint8_t *isdata;		/* its blocks to read (a copy) */
	size_t cap;			/* bytes allocated for isdata */
	size_t nb;			/* its block count */
	uint64_t bs;			/* block size */
	size_t group;			/* blocks per group */
	size_t next;			/* next group to hand out (block index) */
	int reading;			/* its groups being read */
};

struct worker {
	struct vs_reader *r;		/* its reader */
	pthread_t thread;		/* the thread */
	struct vs_place_vec place;	/* where a range can be read */
};

struct vs_reader {
	struct vs_image *src;		/* what to read */
	uint64_t seed;			/* of the block hashes ... */
	bool hashing;			/* ... if they are wanted */
	size_t max_group;		/* blocks a slot can hash */
	pthread_mutex_t fmt_mu;		/* held for every call into src */
	struct worker worker[READER_THREADS];
	int nworkers;			/* threads started */
	pthread_mutex_t mu;		/* guards everything below */
	pthread_cond_t cv;		/* any change of state */
	struct slot slot[READER_SLOTS];	/* the buffers */
	struct window win[READER_WINDOWS]; /* posted windows */
	uint64_t posted;		/* windows posted so far */
	bool failed;			/* a read failed: read nothing more */
	bool stop;			/* the threads must end */
};

/* Read guest bytes [off, off + len) through the format; unlocked. */
static int
read_through(struct vs_reader *r, uint8_t *buf, uint64_t len, uint64_t off)
{
	struct vs_image *src = r->src;
	int rc;

	pthread_mutex_lock(&r->fmt_mu);
	rc = src->ops->read(src, buf, len, off);
	if (rc == 0 && src->ops->drop_cache)
		src->ops->drop_cache(src, off, len);
	pthread_mutex_unlock(&r->fmt_mu);
	return rc;
}

/* Read guest bytes [off, off + len): where the format stores them as they
 * are, straight from the container, outside the format's lock. */
static int
read_range(struct worker *w, uint8_t *buf, uint64_t len, uint64_t off)
{
	struct vs_reader *r = w->r;
	struct vs_io *io = r->src->io;
	int rc;

	if (!r->src->ops->locate)
		return read_through(r, buf, len, off);
	pthread_mutex_lock(&r->fmt_mu);
	rc = vs_image_locate(r->src, off, len, &w->place);
	pthread_mutex_unlock(&r->fmt_mu);
	if (rc < 0)
		return -1;
	for (size_t i = 0; i < w->place.n; i++) {
		const struct vs_place *p = &w->place.v[i];
		uint8_t *dst = buf + (p->off - off);

		if (vs_interrupted)
			return -1;
		if (p->host == VS_NOWHERE) {
			if (read_through(r, dst, p->len, p->off) < 0)
				return -1;
			continue;
		}
		if (io->ops->pread(io, dst, p->len, p->host) < 0)
			return -1;
		if (io->ops->drop_cache)
			io->ops->drop_cache(io, p->host, p->len);
	}
	return 0;
}

/* Hash blocks [b, e) of the window, read into @buf (the group's buffer,
 * which starts at block @g0), into @hash. */
static void
hash_blocks(const struct vs_reader *r, const struct window *w,
    const uint8_t *buf, size_t g0, size_t b, size_t e, struct vs_hash *hash)
{
	for (size_t i = b; i < e; i++) {
		uint64_t off = w->wstart + i * w->bs;
		size_t len = (size_t)vs_min(w->bs, r->src->size - off);
		const uint8_t *blk = buf + (i - g0) * w->bs;

		if (vs_is_zero(blk, len))
			hash[i - g0] = vs_hash_hole;
		else
			vs_hash_block(blk, len, r->seed, &hash[i - g0]);
	}
}

/* Read the data blocks of [g0, g1) of window @win into @buf and hash
 * them into @hash; unlocked. */
static int
read_group(struct worker *w, const struct window *win, uint8_t *buf,
    struct vs_hash *hash, size_t g0, size_t g1, uint64_t *bytes)
{
	struct vs_reader *r = w->r;

	*bytes = 0;
	for (size_t b = g0; b < g1;) {
		size_t e = b;
		uint64_t off = win->wstart + b * win->bs, end;

		while (e < g1 && !win->isdata[e] == !win->isdata[b])
			e++;
		end = vs_min(win->wstart + e * win->bs, r->src->size);
		if (win->isdata[b]) {
			if (vs_interrupted)
				return -1;
			if (read_range(w, buf + (b - g0) * win->bs, end - off,
			    off) < 0)
				return -1;
			*bytes += end - off;
			if (r->hashing)
				hash_blocks(r, win, buf, g0, b, e, hash);
		}
		b = e;
	}
	return 0;
}

bool
vs_group_has_data(const uint8_t *isdata, size_t g0, size_t g1)
{
	for (size_t i = g0; i < g1; i++)
		if (isdata[i])
			return true;
	return false;
}

/* Move @w's next group past groups without data; true if one is left. */
static bool
groups_left(struct window *w)
{
	while (w->next < w->nb && !vs_group_has_data(w->isdata, w->next,
	    vs_min(w->next + w->group, w->nb)))
		w->next += w->group;
	return w->next < w->nb;
}

/* The window whose groups are handed out next: the first posted with a
 * group left, or NULL. */
static struct window *
window_to_read(struct vs_reader *r)
{
	struct window *best = NULL;

	if (r->failed)
		return NULL;
	for (int i = 0; i < READER_WINDOWS; i++) {
		struct window *w = &r->win[i];

		if (w->seq && groups_left(w) && (!best || w->seq < best->seq))
			best = w;
	}
	return best;
}

static struct slot *
free_slot(struct vs_reader *r)
{
	for (int i = 0; i < READER_SLOTS; i++)
		if (r->slot[i].state == SLOT_FREE)
			return &r->slot[i];
	return NULL;
}

static void *
reader_main(void *arg)
{
	struct worker *w = arg;
	struct vs_reader *r = w->r;
	struct slot *s;

	pthread_mutex_lock(&r->mu);
	for (;;) {
		struct window *win;
		size_t g0, g1;
		int rc;

		/* Wait for a group with data (of a posted window) and a free
		 * buffer. */
		for (;;) {
			win = window_to_read(r);
			if (r->stop || (win && (s = free_slot(r))))
				break;
			pthread_cond_wait(&r->cv, &r->mu);
		}
		if (r->stop)
			break;
		g0 = win->next;
		g1 = vs_min(g0 + win->group, win->nb);
		win->next = g1;
		win->reading++;
		s->wstart = win->wstart;
		s->g0 = g0;
		s->state = SLOT_FILLING;
		pthread_mutex_unlock(&r->mu);
		/* A window being read is not replaced, so its map and start
		 * do not change under us. */
		rc = read_group(w, win, s->buf, s->hash, g0, g1, &s->bytes);
		pthread_mutex_lock(&r->mu);
		win->reading--;
		s->state = rc < 0 ? SLOT_FAILED : SLOT_READY;
		if (rc < 0)
			r->failed = true;	/* read nothing more */
		pthread_cond_broadcast(&r->cv);
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

/* Stop and join the threads started, free everything. */
static void
destroy(struct vs_reader *r)
{
	pthread_mutex_lock(&r->mu);
	r->stop = true;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	for (int i = 0; i < r->nworkers; i++)
		pthread_join(r->worker[i].thread, NULL);
	for (int i = 0; i < READER_THREADS; i++)
		vs_place_vec_free(&r->worker[i].place);
	for (int i = 0; i < READER_SLOTS; i++) {
		free(r->slot[i].buf);
		free(r->slot[i].hash);
	}
	pthread_mutex_destroy(&r->fmt_mu);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cv);
	for (int i = 0; i < READER_WINDOWS; i++)
		free(r->win[i].isdata);
	free(r);
}

int
vs_reader_start(struct vs_image *src, size_t group_bytes,
    const uint64_t *seed, struct vs_reader **out)
{
	struct vs_reader *r = calloc(1, sizeof(*r));
	int rc = 0;

	*out = NULL;
	if (!r) {
		vs_errno(VS_EXIT_INTERNAL, src->name, "buffers");
		return -1;
	}
	r->src = src;
	r->hashing = seed != NULL;
	r->seed = seed ? *seed : 0;
	r->max_group = group_bytes / READER_MIN_BLOCK;
	pthread_mutex_init(&r->fmt_mu, NULL);
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	for (int i = 0; i < READER_SLOTS; i++)
		if (!(r->slot[i].buf = aligned_alloc(4096, group_bytes)) ||
		    !(r->slot[i].hash = calloc(r->max_group,
		    sizeof(*r->slot[i].hash)))) {
			vs_errno(VS_EXIT_INTERNAL, src->name, "buffers");
			destroy(r);
			return -1;
		}
	/* A stream is read by one thread, which takes the groups in order. */
	for (int i = 0; i < (src->ops->sequential ? 1 : READER_THREADS) &&
	    rc == 0; i++) {
		r->worker[i].r = r;
		rc = vs_thread_start(&r->worker[i].thread, reader_main,
		    &r->worker[i]);
		if (rc == 0)
			r->nworkers++;
	}
	if (rc != 0) {
		destroy(r);
		vs_err(VS_EXIT_INTERNAL, src->name, "cannot start the reader");
		return -1;
	}
	*out = r;
	return 0;
}

int
vs_reader_window(struct vs_reader *r, uint64_t wstart, const uint8_t *isdata,
    size_t nb, uint64_t bs, size_t group)
{
	struct window *w = NULL;

	if (group > r->max_group || group * bs > r->max_group *
	    READER_MIN_BLOCK) {
		vs_err(VS_EXIT_INTERNAL, r->src->name, "groups of %zu blocks "
		    "of %llu bytes do not fit the reader's buffers", group,
		    (unsigned long long)bs);
		return -1;
	}
	pthread_mutex_lock(&r->mu);
	/* The place of a window done with: all of it handed out, none of it
	 * being read. */
	for (int i = 0; i < READER_WINDOWS && !w; i++)
		if (!r->win[i].seq || (!groups_left(&r->win[i]) &&
		    !r->win[i].reading))
			w = &r->win[i];
	if (!w) {
		pthread_mutex_unlock(&r->mu);
		vs_err(VS_EXIT_INTERNAL, r->src->name, "more than %d windows "
		    "posted to the reader", READER_WINDOWS);
		return -1;
	}
	if (nb > w->cap) {
		uint8_t *n = realloc(w->isdata, nb);

		if (!n) {
			pthread_mutex_unlock(&r->mu);
			vs_errno(VS_EXIT_INTERNAL, r->src->name, "buffers");
			return -1;
		}
		w->isdata = n;
		w->cap = nb;
	}
	memcpy(w->isdata, isdata, nb);
	w->seq = ++r->posted;
	w->wstart = wstart;
	w->nb = nb;
	w->bs = bs;
	w->group = group;
	w->next = 0;
	/* A window with nothing to read (most of a sparse image, or of one
	 * that barely changed) wakes no thread. */
	if (vs_group_has_data(isdata, 0, nb))
		pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	return 0;
}

uint8_t *
vs_reader_take(struct vs_reader *r, uint64_t wstart, size_t g0,
    uint64_t *bytes, const struct vs_hash **hash)
{
	struct slot *s = NULL;

	pthread_mutex_lock(&r->mu);
	for (;;) {
		for (int i = 0; i < READER_SLOTS; i++)
			if (r->slot[i].wstart == wstart &&
			    r->slot[i].g0 == g0 &&
			    (r->slot[i].state == SLOT_READY ||
			    r->slot[i].state == SLOT_FAILED))
				s = &r->slot[i];
		if (s)
			break;
		pthread_cond_wait(&r->cv, &r->mu);
	}
	if (s->state == SLOT_FAILED) {
		s->state = SLOT_FREE;
		pthread_mutex_unlock(&r->mu);
		return NULL;
	}
	s->state = SLOT_TAKEN;
	*bytes = s->bytes;
	*hash = s->hash;
	pthread_mutex_unlock(&r->mu);
	return s->buf;
}

void
vs_reader_give(struct vs_reader *r, uint8_t *buf)
{
	pthread_mutex_lock(&r->mu);
	for (int i = 0; i < READER_SLOTS; i++)
		if (r->slot[i].buf == buf)
			r->slot[i].state = SLOT_FREE;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

void
vs_reader_lock_format(struct vs_reader *r)
{
	pthread_mutex_lock(&r->fmt_mu);
}

void
vs_reader_unlock_format(struct vs_reader *r)
{
	pthread_mutex_unlock(&r->fmt_mu);
}

void
vs_reader_stop(struct vs_reader *r)
{
	if (r)
		destroy(r);
}

uint64_t
vs_mark_data(const struct vs_extent_vec *map, uint64_t wstart, uint64_t bs,
    size_t nb, uint8_t *isdata)
{
	uint64_t bytes = 0;

	memset(isdata, 0, nb);
	for (size_t k = 0; k < map->n; k++) {
		const struct vs_extent *e = &map->v[k];

		if (e->type != VS_EXT_DATA)
			continue;
		bytes += e->len;
		for (uint64_t b = (e->off - wstart) / bs;
		    b < nb && wstart + b * bs < e->off + e->len; b++)
			isdata[b] = 1;
	}
	return bytes;
}
