/*
 * memtarget.h - a target held in memory that logs every operation, for
 * driving vs_sync() in unit tests without files, devices or root.
 *
 * Design notes
 * - The target keeps its bytes, which of its sectors are allocated, and
 *   one index entry per block.  A punch over an unallocated sector changes
 *   nothing and is counted apart (punched_data), as a real target would
 *   skip it.
 * - Like the local target: begin() of an untrusted target empties the
 *   index (all holes) and summaries() answer "unknown"; a trusted one keeps
 *   its entries across a size change, the new ones holes, except the block
 *   at the old end, which is unknown until recorded again.
 * - digests() is there or not (mt_new(.., digests)): without it the engine
 *   asks for summaries.  Each digest is vs_hash_group() of what
 *   summaries() would answer, as the server computes it.
 * - interrupt_at sets vs_interrupted at that write (1 for the first), as
 *   a signal arriving during it would.
 * - Calls outside the target's size fail with a VS_EXIT_INTERNAL error, so
 *   an engine that strays fails the run.
 * Header only: each unit test is one program.  Include after <cmocka.h>.
 */
#ifndef VS_MEMTARGET_H
#define VS_MEMTARGET_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "transport/transport.h"
#include "util.h"
#include "vmsync.h"

enum mt_op {
	MT_BEGIN,		/* a: size */
	MT_SUMMARIES,		/* a: first, b: n */
	MT_DIGESTS,		/* a: first, b: n, c: per */
	MT_WRITE,		/* a: off, b: len */
	MT_PREFETCH,		/* a: off, b: len */
	MT_PUNCH,		/* a: off, b: len */
	MT_RECORD,		/* a: first, b: n */
	MT_COMMIT,		/* nothing */
};

struct mt_call {
	enum mt_op op;		/* which operation */
	uint64_t a, b, c;	/* its arguments, per enum mt_op */
};

struct mem_target {
	struct vs_target t;		/* base, first */
	struct vs_stats stats;		/* t.stats points here */
	uint32_t block_size;		/* bytes per entry, given to begin() */
	uint64_t seed;			/* hash seed, given to begin() */
	bool trusted;			/* summaries come from the entries */
	unsigned interrupt_at;		/* set vs_interrupted at this write
					 * (1: the first); 0: never */
	unsigned writes;		/* write() calls so far */
	unsigned commits;		/* commit() calls so far */
	uint64_t punched_data;		/* bytes punch() found allocated */
	uint64_t size;			/* bytes of the target */
	uint8_t *data;			/* its bytes */
	uint8_t *alloc;			/* per VS_SECTOR: allocated */
	struct vs_hash *entries;	/* the index, one per block */
	uint64_t nent;			/* entries */
	uint64_t unknown_lo, unknown_hi; /* entries answered as unknown */
	struct mt_call *log;		/* every call, in order */
	size_t nlog, cap;		/* calls logged, room */
};

static inline uint64_t
mt_nblocks(const struct mem_target *m, uint64_t size)
{
	return (size + m->block_size - 1) / m->block_size;
}

static inline int
mt_log(struct mem_target *m, enum mt_op op, uint64_t a, uint64_t b,
    uint64_t c)
{
	if (m->nlog == m->cap) {
		size_t cap = m->cap ? 2 * m->cap : 64;
		struct mt_call *l = realloc(m->log, cap * sizeof(*l));

		if (!l) {
			vs_errno(VS_EXIT_INTERNAL, m->t.name, "log");
			return -1;
		}
		m->log = l;
		m->cap = cap;
	}
	m->log[m->nlog++] = (struct mt_call){ op, a, b, c };
	return 0;
}

/* Is [off, off + len) inside @limit?  Else an error naming @op. */
static inline int
mt_check(struct mem_target *m, const char *op, uint64_t off, uint64_t len,
    uint64_t limit)
{
	if (len == 0 || off > limit || len > limit - off) {
		vs_err(VS_EXIT_INTERNAL, m->t.name, "%s [%llu, +%llu) outside "
		    "%llu", op, (unsigned long long)off,
		    (unsigned long long)len, (unsigned long long)limit);
		return -1;
	}
	return 0;
}

static int
mt_begin(struct vs_target *t, uint64_t size, struct vs_target_info *info)
{
	struct mem_target *m = (struct mem_target *)t;
	uint64_t old_n = m->nent, new_n = mt_nblocks(m, size);
	uint64_t sectors = (size + VS_SECTOR - 1) / VS_SECTOR;
	uint8_t *data = calloc(1, size ? size : 1);
	uint8_t *alloc = calloc(1, sectors ? sectors : 1);
	struct vs_hash *ent = calloc(new_n ? new_n : 1, sizeof(*ent));

	if (mt_log(m, MT_BEGIN, size, 0, 0) < 0 || !data || !alloc || !ent) {
		free(data), free(alloc), free(ent);
		vs_errno(VS_EXIT_INTERNAL, t->name, "begin");
		return -1;
	}
	if (m->data) {
		memcpy(data, m->data, (size_t)vs_min(size, m->size));
		memcpy(alloc, m->alloc, (size_t)vs_min(sectors,
		    (m->size + VS_SECTOR - 1) / VS_SECTOR));
	}
	if (m->trusted && m->entries)
		memcpy(ent, m->entries, (size_t)vs_min(old_n, new_n) *
		    sizeof(*ent));
	m->unknown_lo = m->unknown_hi = 0;
	if (m->trusted && size != m->size) {
		m->unknown_lo = vs_min(size, m->size) / m->block_size;
		m->unknown_hi = m->unknown_lo + 1;
	}
	free(m->data), free(m->alloc), free(m->entries);
	m->data = data;
	m->alloc = alloc;
	m->entries = ent;
	m->nent = new_n;
	m->size = size;
	t->stats->index_state = m->trusted ? "trusted" : "new";
	info->caps = VS_CAP_PREFETCH | (t->ops->digests ? VS_CAP_DIGESTS : 0);
	info->block_size = m->block_size;
	info->seed = m->seed;
	info->trusted = m->trusted;
	memset(&info->view, 0, sizeof(info->view));
	return 0;
}

static inline void
mt_answer(const struct mem_target *m, uint64_t first, size_t n,
    struct vs_hash *out)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t b = first + i;

		out[i] = !m->trusted || (b >= m->unknown_lo &&
		    b < m->unknown_hi) ? vs_hash_unknown : m->entries[b];
	}
}

static int
mt_summaries(struct vs_target *t, uint64_t first, size_t n,
    struct vs_hash *out)
{
	struct mem_target *m = (struct mem_target *)t;

	if (mt_log(m, MT_SUMMARIES, first, n, 0) < 0 ||
	    mt_check(m, "summaries", first, n, m->nent) < 0)
		return -1;
	mt_answer(m, first, n, out);
	return 0;
}

static int
mt_digests(struct vs_target *t, uint64_t first, size_t n, size_t per,
    struct vs_hash *out)
{
	struct mem_target *m = (struct mem_target *)t;
	struct vs_hash *e;

	if (mt_log(m, MT_DIGESTS, first, n, per) < 0 ||
	    mt_check(m, "digests", first, n, m->nent) < 0)
		return -1;
	if (!(e = calloc(n, sizeof(*e)))) {
		vs_errno(VS_EXIT_INTERNAL, t->name, "digests");
		return -1;
	}
	mt_answer(m, first, n, e);
	for (size_t g = 0, k = 0; g < n; g += per, k++)
		vs_hash_group(e + g, vs_min(per, n - g), m->seed, &out[k]);
	free(e);
	return 0;
}

static int
mt_write(struct vs_target *t, const void *buf, size_t len, uint64_t off)
{
	struct mem_target *m = (struct mem_target *)t;

	if (mt_log(m, MT_WRITE, off, len, 0) < 0 ||
	    mt_check(m, "write", off, len, m->size) < 0)
		return -1;
	if (++m->writes == m->interrupt_at)
		vs_interrupted = 1;
	memcpy(m->data + off, buf, len);
	for (uint64_t s = off / VS_SECTOR; s * VS_SECTOR < off + len; s++)
		m->alloc[s] = 1;
	t->stats->written_bytes += len;
	return 0;
}

static void
mt_prefetch(struct vs_target *t, uint64_t off, uint64_t len)
{
	(void)mt_log((struct mem_target *)t, MT_PREFETCH, off, len, 0);
}

static int
mt_punch(struct vs_target *t, uint64_t off, uint64_t len)
{
	struct mem_target *m = (struct mem_target *)t;

	if (mt_log(m, MT_PUNCH, off, len, 0) < 0 ||
	    mt_check(m, "punch", off, len, m->size) < 0)
		return -1;
	memset(m->data + off, 0, len);
	for (uint64_t s = off / VS_SECTOR; s * VS_SECTOR < off + len; s++) {
		if (!m->alloc[s])
			continue;
		m->alloc[s] = 0;
		m->punched_data += vs_min((s + 1) * VS_SECTOR, m->size) -
		    s * VS_SECTOR;
	}
	t->stats->punched_bytes += len;
	return 0;
}

static int
mt_record(struct vs_target *t, uint64_t first, size_t n,
    const struct vs_hash *old, const struct vs_hash *new)
{
	struct mem_target *m = (struct mem_target *)t;

	(void)old;
	if (mt_log(m, MT_RECORD, first, n, 0) < 0 ||
	    mt_check(m, "record", first, n, m->nent) < 0)
		return -1;
	memcpy(m->entries + first, new, n * sizeof(*new));
	if (first <= m->unknown_lo && m->unknown_lo < first + n)
		m->unknown_lo = m->unknown_hi = 0;
	return 0;
}

static int
mt_commit(struct vs_target *t, const struct vs_hash *view)
{
	struct mem_target *m = (struct mem_target *)t;

	(void)view;
	m->commits++;
	return mt_log(m, MT_COMMIT, 0, 0, 0);
}

static void
mt_close(struct vs_target *t)
{
	struct mem_target *m = (struct mem_target *)t;

	free(m->data);
	free(m->alloc);
	free(m->entries);
	free(m->log);
	free(m);
}

static const struct vs_target_ops mt_ops = {
	.name = "memory",
	.begin = mt_begin,
	.summaries = mt_summaries,
	.write = mt_write,
	.prefetch = mt_prefetch,
	.punch = mt_punch,
	.record = mt_record,
	.commit = mt_commit,
	.close = mt_close,
};

static const struct vs_target_ops mt_ops_digests = {
	.name = "memory",
	.begin = mt_begin,
	.summaries = mt_summaries,
	.digests = mt_digests,
	.write = mt_write,
	.prefetch = mt_prefetch,
	.punch = mt_punch,
	.record = mt_record,
	.commit = mt_commit,
	.close = mt_close,
};

/* An empty, untrusted target of @block_size with @seed; with the digests
 * op if @digests.  NULL if out of memory. */
static inline struct mem_target *
mt_new(uint32_t block_size, uint64_t seed, bool digests)
{
	struct mem_target *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->t.ops = digests ? &mt_ops_digests : &mt_ops;
	m->t.name = "memtarget";
	m->t.stats = &m->stats;
	m->block_size = block_size;
	m->seed = seed;
	return m;
}

/* Trust the target.  @entries (NULL: keep the recorded ones): the @n
 * entries of an unallocated target of @n blocks. */
static inline int
mt_trust(struct mem_target *m, const struct vs_hash *entries, uint64_t n)
{
	m->trusted = true;
	if (!entries)
		return 0;
	free(m->entries), free(m->data), free(m->alloc);
	m->size = n * m->block_size;
	m->nent = n;
	m->entries = calloc(n ? n : 1, sizeof(*entries));
	m->data = calloc(1, m->size ? m->size : 1);
	m->alloc = calloc(1, m->size / VS_SECTOR + 1);
	if (!m->entries || !m->data || !m->alloc)
		return -1;
	memcpy(m->entries, entries, n * sizeof(*entries));
	return 0;
}

/* Forget the log and counters, before the next run. */
static inline void
mt_log_reset(struct mem_target *m)
{
	m->nlog = 0;
	m->writes = m->commits = 0;
	m->punched_data = 0;
	memset(&m->stats, 0, sizeof(m->stats));
}

/* Calls of @op in the log. */
static inline size_t
mt_count(const struct mem_target *m, enum mt_op op)
{
	size_t n = 0;

	for (size_t i = 0; i < m->nlog; i++)
		n += m->log[i].op == op;
	return n;
}

/* The @k-th call of @op (0 for the first), or NULL. */
static inline const struct mt_call *
mt_nth(const struct mem_target *m, enum mt_op op, size_t k)
{
	for (size_t i = 0; i < m->nlog; i++)
		if (m->log[i].op == op && k-- == 0)
			return &m->log[i];
	return NULL;
}

#endif
