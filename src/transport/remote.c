/*
 * remote.c - a target on the other end of the wire (the source side's
 * view): every target operation becomes a request.
 *
 * Design notes
 * - Only what is needed crosses: one digest per 4 MiB group of a trusted
 *   target (or of one that hashes its blocks when its index is not
 *   trusted), entries only for groups that differ, changed blocks
 *   (compressed), punches, and the index entries that changed.
 * - WRITE, PUNCH and RECORD are not answered, so they stream; a failure on
 *   the other side arrives as ERROR in place of the next reply.
 * - WRITE payloads are compressed ahead by a pool of threads (wirepool.c)
 *   and sent in order; every other request first sends the WRITEs put
 *   before it, except a PUNCH that overlaps none of them.
 * - Entries the engine will ask for (expect()) are asked for at once, so
 *   the replies are there when it gets to them: a SUMMARIES that waited
 *   for its reply after the WRITEs before it waited for the other side to
 *   write them all, once per changed group.  Asked ahead, the replies
 *   are read in turn, whatever reply is waited for; their entries are
 *   those of blocks not written yet, so they hold whenever they are read.
 * - Replies not read yet wait in the pipe from the other side; while the
 *   engine sends WRITEs it reads nothing, so they must fit there, or the
 *   other side would stop reading, blocked on a reply, and so stop the
 *   WRITEs: at most half the pipe's size (AHEAD_UNKNOWN_BYTES if it is no
 *   pipe) is asked ahead, entries held until taken included.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "remote.h"
#include "wirecomp.h"
#include "wireadapt.h"
#include "wirepool.h"
#include "../util.h"
#include "../vec.h"

/* Bytes per WRITE at most: large enough for the other side to write in
 * large pieces, small enough that the compression pool's slots hold
 * little (a 4 MiB chunk took 27 MiB more at peak for the same speed). */
#define REMOTE_WRITE_BYTES (1u << 20)
/* Reply bytes asked ahead when the pipe's size is not known (a socket
 * buffers more). */
#define AHEAD_UNKNOWN_BYTES (32u << 10)
/* A SUMMARIES_R's frame: type, length, entries, checksum. */
#define AHEAD_REPLY_BYTES(n) (12 + (size_t)(n) * VS_PROTO_HASH_LEN)

/* A SUMMARIES asked ahead (expect()): its reply, once read. */
struct ahead {
	uint64_t first;		/* entries [first, first + n) */
	size_t n;
	bool arrived;		/* h holds the reply */
	struct vs_hash *h;	/* n entries */
};
VS_VECTOR(ahead_vec, struct ahead)

struct remote_target {
	struct vs_target t;	/* base, first */
	struct vs_wire *w;	/* the session */
	uint32_t codec;		/* for WRITE */
	struct vs_wirepool *pool; /* compresses them, unless codec is none */
	uint32_t block_size;	/* the target's, from BEGUN */
	struct ahead_vec ahead;	/* asked ahead, oldest first */
	size_t ahead_bytes;	/* their reply bytes, until taken */
	size_t ahead_max;	/* at most this many */
};

/* Read the reply of type @type; an ERROR from the peer is reported as it
 * stands, with its category. */
void
vs_remote_report(struct vs_wire *w, const struct vs_msg *m)
{
	struct vs_error_msg e;

	if (vs_parse_error(m, &e) == 0)
		vs_err((enum vs_exit)e.cat, w->peer, "%s", e.text);
	else
		vs_err(w->cat, w->peer, "malformed error message");
	w->failed = true;
}

int
vs_remote_expect(struct vs_wire *w, uint32_t type, struct vs_msg *m)
{
	if (vs_wire_recv(w, m) < 0)
		return -1;
	if (m->type == VS_MSG_ERROR) {
		vs_remote_report(w, m);
		return -1;
	}
	if (m->type != type) {
		vs_err(w->cat, w->peer, "unexpected message %u (wanted %u)",
		    m->type, type);
		w->failed = true;
		return -1;
	}
	return 0;
}

void
vs_remote_broken(struct vs_wire *w)
{
	struct vs_msg m;

	if (w->failed || vs_wire_recv(w, &m) < 0)
		return;		/* reported */
	if (m.type == VS_MSG_ERROR) {
		vs_remote_report(w, &m);
		return;
	}
	vs_wire_err(w, w->why ? w->why : "connection lost");
	w->failed = true;
}

/* The result @rc of a send: after the stream broke the peer may have
 * said why, so show that instead (other failures are reported). */
static int
sent(struct remote_target *rt, int rc)
{
	if (rc < 0 && rt->w->wbroken)
		vs_remote_broken(rt->w);
	return rc < 0 ? -1 : 0;
}

/* Send the WRITEs still in the pool: whatever follows comes after them. */
static int
flushed(struct remote_target *rt)
{
	return rt->pool ? sent(rt, vs_wirepool_flush(rt->pool)) : 0;
}

static const char *
index_state(const char *s)
{
	static const char *const known[] = { "trusted", "rebuilt", "new",
	    "none" };

	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strcmp(s, known[i]) == 0)
			return known[i];
	return "-";
}

/* The next reply, of @type: a hash reply of @count hashes into @out. */
static int
next_hashes(struct remote_target *rt, uint32_t type, size_t count,
    struct vs_hash *out)
{
	struct vs_msg m;

	if (vs_remote_expect(rt->w, type, &m) < 0)
		return -1;
	if (vs_parse_hashes(&m, type, count, out) < 0) {
		vs_err(rt->w->cat, rt->w->peer, "malformed hash reply");
		return -1;
	}
	return 0;
}

/* Read the replies asked ahead up to and including @upto's. */
static int
read_ahead(struct remote_target *rt, const struct ahead *upto)
{
	for (struct ahead *a = rt->ahead.v; a < rt->ahead.v + rt->ahead.n;
	    a++) {
		if (!a->arrived) {
			if (next_hashes(rt, VS_MSG_SUMMARIES_R, a->n,
			    a->h) < 0)
				return -1;
			a->arrived = true;
		}
		if (a == upto)
			break;
	}
	return 0;
}

/* The reply to the request just sent, after those asked ahead. */
static int
read_reply(struct remote_target *rt, uint32_t type, struct vs_msg *m)
{
	if (read_ahead(rt, NULL) < 0)
		return -1;
	return vs_remote_expect(rt->w, type, m);
}

/* The reply to DIGESTS or SUMMARIES: @count hashes of @type into @out. */
static int
read_hashes(struct remote_target *rt, uint32_t type, size_t count,
    struct vs_hash *out)
{
	if (read_ahead(rt, NULL) < 0)
		return -1;
	return next_hashes(rt, type, count, out);
}

/* Forget the oldest @k asked ahead (read). */
static void
drop_ahead(struct remote_target *rt, size_t k)
{
	struct ahead_vec *v = &rt->ahead;

	for (size_t i = 0; i < k; i++) {
		rt->ahead_bytes -= AHEAD_REPLY_BYTES(v->v[i].n);
		free(v->v[i].h);
	}
	memmove(v->v, v->v + k, (v->n - k) * sizeof(*v->v));
	v->n -= k;
}

/* Entries [first, first + n) from a reply asked ahead: 1 if one holds
 * them (then it and those before it are forgotten), 0 if none does. */
static int
take_ahead(struct remote_target *rt, uint64_t first, size_t n,
    struct vs_hash *out)
{
	for (size_t i = 0; i < rt->ahead.n; i++) {
		struct ahead *a = &rt->ahead.v[i];

		if (first < a->first || first + n > a->first + a->n)
			continue;
		if (read_ahead(rt, a) < 0)
			return -1;
		memcpy(out, a->h + (first - a->first), n * sizeof(*out));
		/* The engine asks in order: those before are not wanted. */
		drop_ahead(rt, i + (first + n == a->first + a->n));
		return 1;
	}
	return 0;
}

static int
remote_begin(struct vs_target *t, uint64_t size, struct vs_target_info *info)
{
	struct remote_target *rt = (struct remote_target *)t;
	struct vs_begun b;
	struct vs_msg m;

	if (sent(rt, vs_send_begin(rt->w, size, t->src_format,
	    info->src_data_bytes)) < 0 ||
	    read_reply(rt, VS_MSG_BEGUN, &m) < 0)
		return -1;
	if (vs_parse_begun(&m, &b) < 0) {
		vs_err(rt->w->cat, rt->w->peer, "malformed BEGUN message");
		return -1;
	}
	/* Far: digests first; the other side reads ahead when told, and
	 * entries are asked ahead. */
	info->caps = VS_CAP_DIGESTS | VS_CAP_PREFETCH | VS_CAP_EXPECT;
	info->block_size = b.block_size;
	info->seed = b.seed;
	info->trusted = b.trusted;
	info->hashes_target = b.hashes_target;
	info->view = b.view;
	t->stats->index_state = index_state(b.state);
	rt->block_size = info->block_size;
	return 0;
}

static int
remote_digests(struct vs_target *t, uint64_t first, size_t n, size_t per,
    struct vs_hash *out)
{
	struct remote_target *rt = (struct remote_target *)t;

	if (flushed(rt) < 0 || sent(rt, vs_send_digests(rt->w, first,
	    (uint32_t)n, (uint32_t)per)) < 0)
		return -1;
	return read_hashes(rt, VS_MSG_DIGESTS_R, (n + per - 1) / per, out);
}

static int
remote_summaries(struct vs_target *t, uint64_t first, size_t n,
    struct vs_hash *out)
{
	struct remote_target *rt = (struct remote_target *)t;
	int rc = take_ahead(rt, first, n, out);

	if (rc != 0)
		return rc < 0 ? -1 : 0;
	if (flushed(rt) < 0 ||
	    sent(rt, vs_send_summaries(rt->w, first, (uint32_t)n)) < 0)
		return -1;
	return read_hashes(rt, VS_MSG_SUMMARIES_R, n, out);
}

/* One WRITE message, its payload encoded with @codec (the pool's). */
static int
send_write(void *arg, uint64_t off, uint32_t len, uint32_t codec,
    const void *data, size_t dlen)
{
	struct remote_target *rt = arg;

	return sent(rt, vs_send_write(rt->w, off, len, codec, data, dlen));
}

/* One WRITE of at most a chunk, as the protocol has it. */
static int
write_block(struct vs_target *t, const void *buf, size_t len, uint64_t off)
{
	struct remote_target *rt = (struct remote_target *)t;

	if (!rt->pool)
		return send_write(rt, off, (uint32_t)len, VS_WIRE_NONE, buf,
		    len);
	return vs_wirepool_put(rt->pool, buf, len, off) < 0 ? -1 : 0;
}

/* A run of blocks: WRITEs of up to REMOTE_WRITE_BYTES each, so the other
 * side writes large pieces. */
static int
remote_write(struct vs_target *t, const void *buf, size_t len, uint64_t off)
{
	for (size_t done = 0; done < len; done += REMOTE_WRITE_BYTES) {
		size_t n = (size_t)vs_min(REMOTE_WRITE_BYTES, len - done);

		if (write_block(t, (const uint8_t *)buf + done, n,
		    off + done) < 0)
			return -1;
	}
	return 0;
}

static void
remote_prefetch(struct vs_target *t, uint64_t off, uint64_t len)
{
	struct remote_target *rt = (struct remote_target *)t;

	/* A hint: a failure shows at the next request. */
	(void)sent(rt, vs_send_prefetch(rt->w, off, len));
}

/* Ask for entries [first, first + n) now, if their reply fits in what
 * may wait unread (see the design notes). */
static void
remote_expect(struct vs_target *t, uint64_t first, size_t n)
{
	struct remote_target *rt = (struct remote_target *)t;
	size_t bytes = AHEAD_REPLY_BYTES(n);
	struct ahead a = { .first = first, .n = n };

	if (rt->w->failed || n == 0 || n > VS_PROTO_MAX_ENTRIES ||
	    rt->ahead_bytes + bytes > rt->ahead_max)
		return;
	/* A hint: where memory runs out, the entries are asked when
	 * needed. */
	if (!(a.h = malloc(n * sizeof(*a.h))) ||
	    ahead_vec_push(&rt->ahead, a) < 0) {
		free(a.h);
		return;
	}
	/* Ahead of the WRITEs queued: they are of other blocks.  Sent now,
	 * so the other side answers while they are compressed and sent. */
	if (sent(rt, vs_send_summaries(rt->w, first, (uint32_t)n)) < 0 ||
	    sent(rt, vs_wire_flush(rt->w)) < 0) {
		rt->ahead.n--;
		free(a.h);
		return;		/* a failure shows at the next request */
	}
	rt->ahead_bytes += bytes;
}

static int
remote_punch(struct vs_target *t, uint64_t off, uint64_t len)
{
	struct remote_target *rt = (struct remote_target *)t;

	/* A punch and the WRITEs queued commute unless they overlap. */
	if (rt->pool && vs_wirepool_pending(rt->pool, off, len) &&
	    flushed(rt) < 0)
		return -1;
	return sent(rt, vs_send_punch(rt->w, off, len));
}

static int
remote_record(struct vs_target *t, uint64_t first, size_t n,
    const struct vs_hash *old, const struct vs_hash *new)
{
	struct remote_target *rt = (struct remote_target *)t;

	if (flushed(rt) < 0)
		return -1;
	return sent(rt, vs_send_record(rt->w, first, (uint32_t)n, old, new));
}

static int
remote_commit(struct vs_target *t, const struct vs_hash *view)
{
	struct remote_target *rt = (struct remote_target *)t;
	struct vs_done d;
	struct vs_msg m;

	if (flushed(rt) < 0 || sent(rt, vs_send_commit(rt->w, view)) < 0 ||
	    read_reply(rt, VS_MSG_DONE, &m) < 0)
		return -1;
	if (vs_parse_done(&m, &d) < 0) {
		vs_err(rt->w->cat, rt->w->peer, "malformed DONE message");
		return -1;
	}
	t->stats->target_read_bytes += d.read;
	t->stats->written_bytes += d.written;
	t->stats->punched_bytes += d.punched;
	t->stats->unchanged_bytes += d.unchanged;
	return 0;
}

static void
remote_close(struct vs_target *t)
{
	struct remote_target *rt = (struct remote_target *)t;

	vs_wirepool_free(rt->pool);
	for (size_t i = 0; i < rt->ahead.n; i++)
		free(rt->ahead.v[i].h);
	ahead_vec_free(&rt->ahead);
	free(rt);
}

static const struct vs_target_ops remote_ops = {
	.name = "remote",
	.begin = remote_begin,
	.summaries = remote_summaries,
	.digests = remote_digests,
	.prefetch = remote_prefetch,
	.expect = remote_expect,
	.write = remote_write,
	.punch = remote_punch,
	.record = remote_record,
	.commit = remote_commit,
	.close = remote_close,
};

/* Reply bytes that may wait unread in the pipe read from @fd: half of
 * it, even where it is small (a user over the pipe size limits gets two
 * pages). */
static size_t
ahead_max(int fd)
{
	int size = fcntl(fd, F_GETPIPE_SZ);

	return size > 0 ? (size_t)size / 2 : AHEAD_UNKNOWN_BYTES;
}

int
vs_remote_target(struct vs_wire *w, const char *name, uint32_t codec,
    int level, bool adaptive, struct vs_stats *stats, struct vs_target **out)
{
	struct remote_target *rt = calloc(1, sizeof(*rt));

	if (!rt) {
		vs_errno(VS_EXIT_INTERNAL, name, "remote target");
		return -1;
	}
	rt->t.ops = &remote_ops;
	rt->t.name = name;
	rt->t.stats = stats;
	rt->w = w;
	rt->codec = codec;
	rt->ahead_max = ahead_max(w->rfd);
	if (codec != VS_WIRE_NONE && !(rt->pool = vs_wirepool_new(codec,
	    level, REMOTE_WRITE_BYTES, adaptive ? VS_WIREADAPT_UNIT : 0,
	    send_write, rt))) {
		vs_errno(VS_EXIT_INTERNAL, name, "compression");
		free(rt);
		return -1;
	}
	*out = &rt->t;
	return 0;
}
