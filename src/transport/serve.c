/*
 * serve.c - the target side of a session: requests in, a local target's
 * operations out.
 *
 * Every request is parsed by vs_parse_req() before it is acted on; a
 * malformed one ends the session.  Replies go out only for BEGIN,
 * DIGESTS, SUMMARIES and COMMIT.
 * - The peer may be hostile (a forced-command client, or a compromised
 *   server answering a pull): every offset and index entry is checked
 *   against the size BEGIN declared before the target sees it.
 * - Reading the target here costs less than sending the source: a target
 *   whose index is not trusted is asked to hash its blocks, so that the
 *   engine sends only the blocks that differ.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "remote.h"
#include "wirecomp.h"
#include "../util.h"

/* The block sizes a local target takes are the ones BEGUN may carry, and
 * each a whole number of sectors. */
_Static_assert(IDX_MIN_BLOCK == VS_PROTO_MIN_BLOCK &&
    IDX_MAX_BLOCK == VS_PROTO_MAX_CHUNK, "index and wire block sizes");
_Static_assert(VS_PROTO_MIN_BLOCK % VS_SECTOR == 0, "blocks of sectors");

struct serve {
	struct vs_wire *w;		/* the session */
	struct vs_target *t;		/* the local target */
	struct vs_target_info info;	/* from BEGIN */
	bool begun;			/* BEGIN done */
	uint64_t size;			/* declared by BEGIN, bytes */
	uint64_t nblocks;		/* index entries of that size */
	struct vs_hash *old, *new;	/* RECORD / SUMMARIES scratch */
	struct vs_hash *digests;	/* DIGESTS reply */
	size_t cap;			/* entries in each of the three */
	uint8_t *block;			/* a decompressed WRITE */
};

/* Room for @n entries in the scratch arrays (n is checked by the parser). */
static int
room(struct serve *s, size_t n)
{
	struct vs_hash *a, *b, *c;

	if (n <= s->cap)
		return 0;
	a = realloc(s->old, n * sizeof(*a));
	if (a)
		s->old = a;
	b = realloc(s->new, n * sizeof(*b));
	if (b)
		s->new = b;
	c = realloc(s->digests, n * sizeof(*c));
	if (c)
		s->digests = c;
	if (!a || !b || !c) {
		vs_errno(VS_EXIT_INTERNAL, s->w->peer, "buffers");
		return -1;
	}
	s->cap = n;
	return 0;
}

void
vs_remote_send_error(struct vs_wire *w)
{
	enum vs_exit cat = vs_err_first();
	const char *text = vs_err_text();

	if (cat == VS_EXIT_OK) {
		cat = VS_EXIT_INTERNAL;
		text = "failed";
	}
	/* Also after garbage from the peer: it learns why we hang up. */
	w->failed = false;
	w->garbage = false;
	vs_send_error(w, cat, text);
	vs_wire_flush(w);
	w->failed = true;	/* the session is over */
}

static int
malformed(struct serve *s, const struct vs_msg *m)
{
	vs_err(s->w->cat, s->w->peer, "malformed message (type %u, %u bytes)",
	    m->type, m->len);
	return -1;
}

/* The answer to BEGIN: what the local target said. */
static int
send_begun(struct serve *s)
{
	const char *state = s->t->stats->index_state;
	struct vs_begun b = {
		.block_size = s->info.block_size,
		.seed = s->info.seed,
		.trusted = s->info.trusted,
		.hashes_target = s->info.hashes_target,
		.view = s->info.view,
	};

	snprintf(b.state, sizeof(b.state), "%s", state ? state : "");
	return vs_send_begun(s->w, &b);
}

static int
do_begin(struct serve *s, const struct vs_req *q)
{

	if (s->begun) {
		vs_err(s->w->cat, s->w->peer, "BEGIN repeated");
		return -1;
	}
	/* Recorded in the index: only a format vmsync reads, as a string of
	 * its own, never the peer's bytes. */
	s->t->src_format = strcmp(q->format, "qcow2") == 0 ? "qcow2" :
	    strcmp(q->format, "raw") == 0 ? "raw" : NULL;
	s->info.src_data_bytes = q->b;	/* for the space check */
	s->t->hash_untrusted = true;
	if (s->t->ops->begin(s->t, q->a, &s->info) < 0)
		return -1;
	s->begun = true;
	s->size = q->a;
	s->nblocks = q->a / s->info.block_size +
	    (q->a % s->info.block_size != 0);
	return send_begun(s);
}

/* [@off, @off + @len) lies inside the image BEGIN declared: bytes for
 * data, else index entries.  A refusal names the target and the offset. */
static int
in_bounds(struct serve *s, const char *what, uint64_t off, uint64_t len,
    bool bytes)
{
	uint64_t end = bytes ? s->size : s->nblocks, last;

	if (vs_add_ok(off, len, &last) && last <= end)
		return 0;
	vs_err(s->w->cat, s->t->name, "%s %llu: %s of %llu %s past the end "
	    "of the image (%llu %s)", bytes ? "offset" : "entry",
	    (unsigned long long)off, what, (unsigned long long)len,
	    bytes ? "bytes" : "entries", (unsigned long long)end,
	    bytes ? "bytes" : "entries");
	return -1;
}

/* Requests that touch the target stay inside the size BEGIN gave. */
static int
check_bounds(struct serve *s, const struct vs_req *q)
{
	switch (q->type) {
	case VS_MSG_WRITE:
		return in_bounds(s, "WRITE", q->a, q->b, true);
	case VS_MSG_PUNCH:
		return in_bounds(s, "PUNCH", q->a, q->b, true);
	case VS_MSG_PREFETCH:
		return in_bounds(s, "PREFETCH", q->a, q->b, true);
	case VS_MSG_RECORD:
		return in_bounds(s, "RECORD", q->a, q->b, false);
	case VS_MSG_DIGESTS:
		return in_bounds(s, "DIGESTS", q->a, q->b, false);
	case VS_MSG_SUMMARIES:
		return in_bounds(s, "SUMMARIES", q->a, q->b, false);
	}
	return 0;
}

static int
do_hashes(struct serve *s, const struct vs_req *q)
{
	size_t n = (size_t)q->b;

	if (room(s, n) < 0 || s->t->ops->summaries(s->t, q->a, n, s->old) < 0)
		return -1;
	if (q->type == VS_MSG_SUMMARIES)
		return vs_send_hashes(s->w, VS_MSG_SUMMARIES_R, s->old, n);
	for (size_t g = 0, k = 0; g < n; g += q->per, k++)
		vs_hash_group(s->old + g, vs_min(q->per, n - g),
		    s->info.seed, &s->digests[k]);
	return vs_send_hashes(s->w, VS_MSG_DIGESTS_R, s->digests,
	    (n + q->per - 1) / q->per);
}

static int
do_write(struct serve *s, const struct vs_req *q)
{
	const void *data = q->data;

	if (q->codec != VS_WIRE_NONE) {
		if (!s->block && !(s->block = malloc(VS_PROTO_MAX_CHUNK))) {
			vs_errno(VS_EXIT_INTERNAL, s->w->peer, "buffers");
			return -1;
		}
		if (vs_wiredecomp(q->codec, q->data, q->data_len, s->block,
		    (size_t)q->b) < 0) {
			vs_err(s->w->cat, s->w->peer, "offset %llu: block does "
			    "not decompress", (unsigned long long)q->a);
			return -1;
		}
		data = s->block;
	}
	return s->t->ops->write(s->t, data, (size_t)q->b, q->a);
}

static int
do_record(struct serve *s, const struct vs_req *q)
{
	size_t n = (size_t)q->b;

	if (room(s, n) < 0)
		return -1;
	vs_record_entries(q, s->old, s->new);
	return s->t->ops->record(s->t, q->a, n, s->old, s->new);
}

static int
do_commit(struct serve *s, const struct vs_req *q)
{
	const struct vs_stats *st = s->t->stats;
	struct vs_done d;

	if (s->t->ops->commit(s->t, &q->view) < 0)
		return -1;
	/* The counters as the commit leaves them. */
	d = (struct vs_done){ .read = st->target_read_bytes,
	    .written = st->written_bytes, .punched = st->punched_bytes,
	    .unchanged = st->unchanged_bytes };
	if (vs_send_done(s->w, &d) < 0)
		return -1;
	return vs_wire_flush(s->w);
}

static int
serve_loop(struct serve *s)
{
	struct vs_msg m;
	struct vs_req q;

	for (;;) {
		if (vs_wire_recv(s->w, &m) < 0)
			return -1;
		/* The source side failed (a pull's server): its own line and
		 * exit code, in place of the next request. */
		if (m.type == VS_MSG_ERROR) {
			vs_remote_report(s->w, &m);
			return -1;
		}
		if (vs_parse_req(&m, &q) < 0)
			return malformed(s, &m);
		if (q.type != VS_MSG_BEGIN && !s->begun) {
			vs_err(s->w->cat, s->w->peer, "request before BEGIN");
			return -1;
		}
		if (q.type != VS_MSG_BEGIN && check_bounds(s, &q) < 0)
			return -1;
		switch (q.type) {
		case VS_MSG_BEGIN:
			if (do_begin(s, &q) < 0)
				return -1;
			break;
		case VS_MSG_DIGESTS:
		case VS_MSG_SUMMARIES:
			if (do_hashes(s, &q) < 0)
				return -1;
			break;
		case VS_MSG_WRITE:	/* a run of blocks, up to a chunk */
			if (q.b > VS_PROTO_MAX_CHUNK || do_write(s, &q) < 0)
				return q.b > VS_PROTO_MAX_CHUNK ?
				    malformed(s, &m) : -1;
			break;
		case VS_MSG_PREFETCH:
			if (s->info.caps & VS_CAP_PREFETCH)
				s->t->ops->prefetch(s->t, q.a, q.b);
			break;
		case VS_MSG_PUNCH:
			if (s->t->ops->punch(s->t, q.a, q.b) < 0)
				return -1;
			break;
		case VS_MSG_RECORD:
			if (do_record(s, &q) < 0)
				return -1;
			break;
		case VS_MSG_COMMIT:
			return do_commit(s, &q);
		}
	}
}

int
vs_serve_target(struct vs_wire *w, struct vs_target *t)
{
	struct serve s = { .w = w, .t = t };
	int rc = -1;

	rc = serve_loop(&s);
	if (rc < 0 && w->wbroken)
		vs_remote_broken(w);
	else if (rc < 0 && (!w->failed || w->garbage))
		vs_remote_send_error(w);
	free(s.old);
	free(s.new);
	free(s.digests);
	free(s.block);
	return rc;
}
