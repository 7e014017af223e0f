/*
 * proto.c - encode and parse protocol messages; every field is checked.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "pack.h"
#include "../engine.h"
#include "../util.h"

#define SMALL 256	/* encoding buffer for small messages */

static int
send_packed(struct vs_wire *w, uint32_t type, struct vs_pack *p)
{
	if (p->bad) {
		vs_err(VS_EXIT_INTERNAL, w->peer, "message too long to encode");
		return -1;
	}
	return vs_wire_send(w, type, p->p, p->len);
}

struct vs_hello
vs_hello_local(void)
{
	return (struct vs_hello){ .version = VS_PROTO_VERSION,
	    .codecs = 1u << VS_WIRE_ZLIB | 1u << VS_WIRE_ZSTD, .hash = 1 };
}

int
vs_send_hello(struct vs_wire *w, const struct vs_hello *h)
{
	uint8_t buf[SMALL];
	struct vs_pack p = { .p = buf, .cap = sizeof(buf) };

	vs_put(&p, VS_PROTO_MAGIC, 8);
	vs_put_u32(&p, h->version);
	vs_put_u32(&p, h->codecs);
	vs_put_u32(&p, h->hash);
	return send_packed(w, VS_MSG_HELLO, &p);
}

int
vs_send_error(struct vs_wire *w, uint32_t cat, const char *text)
{
	uint8_t buf[VS_MSG_TEXT_MAX + 16];
	struct vs_pack p = { .p = buf, .cap = sizeof(buf) };
	char t[VS_MSG_TEXT_MAX + 1];

	snprintf(t, sizeof(t), "%s", text);
	vs_put_u32(&p, cat);
	vs_put_str(&p, t);
	return send_packed(w, VS_MSG_ERROR, &p);
}

int
vs_send_open(struct vs_wire *w, const struct vs_open *o)
{
	uint8_t buf[3 * VS_PATH_MAX + 128];
	struct vs_pack p = { .p = buf, .cap = sizeof(buf) };

	vs_put_u32(&p, o->direction);
	vs_put_u32(&p, o->flags);
	vs_put_u32(&p, o->block_size);
	vs_put_u32(&p, o->codec);
	vs_put_u32(&p, (uint32_t)o->level);
	vs_put_u32(&p, o->mode);
	vs_put_u64(&p, (uint64_t)o->mtime_sec);
	vs_put_u64(&p, (uint64_t)o->mtime_nsec);
	vs_put_str(&p, o->path);
	vs_put_str(&p, o->name);
	vs_put_str(&p, o->format);
	vs_put_str(&p, o->output);
	vs_put_u32(&p, o->keep);
	vs_put_str(&p, o->snapshot_dir);
	vs_put_str(&p, o->recorded);
	return send_packed(w, VS_MSG_OPEN, &p);
}

int
vs_send_opened(struct vs_wire *w, const struct vs_opened *o)
{
	uint8_t buf[VS_PATH_MAX + 64];
	struct vs_pack p = { .p = buf, .cap = sizeof(buf) };

	vs_put_u64(&p, o->size);
	vs_put_u32(&p, o->mode);
	vs_put_u64(&p, (uint64_t)o->mtime_sec);
	vs_put_u64(&p, (uint64_t)o->mtime_nsec);
	vs_put_str(&p, o->name);
	vs_put_str(&p, o->format);
	return send_packed(w, VS_MSG_OPENED, &p);
}

static struct vs_unpack
reader(const struct vs_msg *m)
{
	return (struct vs_unpack){ .p = m->p, .left = m->len };
}

/* All fields read, nothing left over. */
static int
done(const struct vs_unpack *r)
{
	return r->bad || r->left ? -1 : 0;
}

int
vs_parse_hello(const struct vs_msg *m, struct vs_hello *h)
{
	struct vs_unpack r = reader(m);
	const uint8_t *magic = vs_get(&r, 8);

	if (m->type != VS_MSG_HELLO || !magic ||
	    memcmp(magic, VS_PROTO_MAGIC, 8) != 0)
		return -1;
	h->version = vs_get_u32(&r);
	h->codecs = vs_get_u32(&r);
	h->hash = vs_get_u32(&r);
	return done(&r);
}

int
vs_parse_error(const struct vs_msg *m, struct vs_error_msg *e)
{
	struct vs_unpack r = reader(m);
	char raw[VS_MSG_TEXT_MAX + 1];

	if (m->type != VS_MSG_ERROR)
		return -1;
	e->cat = vs_get_u32(&r);
	vs_get_str(&r, raw, VS_MSG_TEXT_MAX);
	/* Only the documented exit codes; control characters escaped, so a
	 * peer can neither drive the terminal nor fake a line. */
	if (e->cat < VS_EXIT_USAGE || e->cat > VS_EXIT_LOCKED)
		r.bad = true;
	vs_escape(r.bad ? "" : raw, e->text, sizeof(e->text));
	return done(&r);
}

int
vs_parse_open(const struct vs_msg *m, struct vs_open *o)
{
	struct vs_unpack r = reader(m);

	if (m->type != VS_MSG_OPEN)
		return -1;
	o->direction = vs_get_u32(&r);
	o->flags = vs_get_u32(&r);
	o->block_size = vs_get_u32(&r);
	o->codec = vs_get_u32(&r);
	o->level = (int32_t)vs_get_u32(&r);
	o->mode = vs_get_u32(&r);
	o->mtime_sec = (int64_t)vs_get_u64(&r);
	o->mtime_nsec = (int64_t)vs_get_u64(&r);
	vs_get_str(&r, o->path, VS_PATH_MAX);
	vs_get_str(&r, o->name, VS_PATH_MAX);
	vs_get_str(&r, o->format, sizeof(o->format) - 1);
	vs_get_str(&r, o->output, sizeof(o->output) - 1);
	o->keep = vs_get_u32(&r);
	vs_get_str(&r, o->snapshot_dir, VS_PATH_MAX);
	vs_get_str(&r, o->recorded, sizeof(o->recorded) - 1);
	if ((o->direction != VS_PUSH && o->direction != VS_PULL) ||
	    (o->flags & ~(VS_OPEN_DRY_RUN | VS_OPEN_CHECKSUM |
	    VS_OPEN_SNAPSHOT | VS_OPEN_LIVE | VS_OPEN_FORCE)) ||
	    o->codec > VS_WIRE_ZSTD || o->level < -100 || o->level > 100 ||
	    o->mtime_nsec < 0 || o->mtime_nsec > 999999999 || !o->path[0] ||
	    strchr(o->name, '/'))
		return -1;
	return done(&r);
}

int
vs_parse_opened(const struct vs_msg *m, struct vs_opened *o)
{
	struct vs_unpack r = reader(m);

	if (m->type != VS_MSG_OPENED)
		return -1;
	o->size = vs_get_u64(&r);
	o->mode = vs_get_u32(&r);
	o->mtime_sec = (int64_t)vs_get_u64(&r);
	o->mtime_nsec = (int64_t)vs_get_u64(&r);
	vs_get_str(&r, o->name, VS_PATH_MAX);
	vs_get_str(&r, o->format, sizeof(o->format) - 1);
	if (o->mtime_nsec < 0 || o->mtime_nsec > 999999999)
		return -1;
	return done(&r);
}

static bool
range_ok(uint64_t first, uint64_t n)
{
	return n >= 1 && n <= VS_PROTO_MAX_ENTRIES && first + n > first;
}

int
vs_parse_req(const struct vs_msg *m, struct vs_req *q)
{
	struct vs_unpack r = reader(m);

	memset(q, 0, sizeof(*q));
	q->type = m->type;
	switch (m->type) {
	case VS_MSG_BEGIN:
		q->a = vs_get_u64(&r);
		vs_get_str(&r, q->format, sizeof(q->format) - 1);
		q->b = vs_get_u64(&r);
		if (q->a > (1ull << 62) || q->b > q->a)
			return -1;
		break;
	case VS_MSG_DIGESTS:
		q->a = vs_get_u64(&r);
		q->b = vs_get_u32(&r);
		q->per = vs_get_u32(&r);
		if (!range_ok(q->a, q->b) || q->per == 0 ||
		    q->per > VS_PROTO_MAX_ENTRIES)
			return -1;
		break;
	case VS_MSG_SUMMARIES:
		q->a = vs_get_u64(&r);
		q->b = vs_get_u32(&r);
		if (!range_ok(q->a, q->b))
			return -1;
		break;
	case VS_MSG_WRITE:
		q->a = vs_get_u64(&r);
		q->b = vs_get_u32(&r);
		q->codec = vs_get_u8(&r);
		q->data_len = r.left;
		q->data = vs_get(&r, r.left);
		if (q->b == 0 || q->b > VS_CHUNK || q->codec > VS_WIRE_ZSTD ||
		    q->a + q->b < q->a ||
		    (q->codec == VS_WIRE_NONE && q->data_len != q->b))
			return -1;
		break;
	case VS_MSG_PUNCH:
		q->a = vs_get_u64(&r);
		q->b = vs_get_u64(&r);
		if (q->b == 0 || q->a + q->b < q->a)
			return -1;
		break;
	case VS_MSG_RECORD:
		q->a = vs_get_u64(&r);
		q->b = vs_get_u32(&r);
		q->count = vs_get_u32(&r);
		q->data_len = (size_t)q->count * 36;
		if (!range_ok(q->a, q->b) || q->count > q->b ||
		    q->data_len != r.left)
			return -1;
		q->data = vs_get(&r, q->data_len);
		/* Indexes strictly increasing and inside the range. */
		for (uint32_t i = 0, prev = 0; q->data && i < q->count; i++) {
			const uint8_t *e = q->data + 36 * (size_t)i;
			uint32_t k = vs_le32(e);

			if (k >= q->b || (i && k <= prev))
				return -1;
			prev = k;
		}
		break;
	case VS_MSG_COMMIT: {
		const uint8_t *v = vs_get(&r, sizeof(q->view.b));

		if (v)
			memcpy(q->view.b, v, sizeof(q->view.b));
		break;
	}
	default:
		return -1;
	}
	return done(&r);
}

int
vs_parse_begun(const struct vs_msg *m, struct vs_begun *b)
{
	struct vs_unpack r = reader(m);
	const uint8_t *view;
	uint8_t flags;

	if (m->type != VS_MSG_BEGUN)
		return -1;
	b->block_size = vs_get_u32(&r);
	b->seed = vs_get_u64(&r);
	flags = vs_get_u8(&r);
	b->trusted = flags & VS_BEGUN_TRUSTED;
	b->hashes_target = flags & VS_BEGUN_HASHES;
	vs_get_str(&r, b->state, sizeof(b->state) - 1);
	view = vs_get(&r, sizeof(b->view.b));
	if (view)
		memcpy(b->view.b, view, sizeof(b->view.b));
	if (!vs_is_pow2(b->block_size) || b->block_size < VS_SECTOR ||
	    b->block_size > VS_CHUNK)
		return -1;
	return done(&r);
}

int
vs_parse_hashes(const struct vs_msg *m, uint32_t type, size_t count,
    struct vs_hash *out)
{
	if ((type != VS_MSG_DIGESTS_R && type != VS_MSG_SUMMARIES_R) ||
	    m->type != type || count > VS_PROTO_MAX_ENTRIES ||
	    m->len != count * sizeof(*out))
		return -1;
	memcpy(out, m->p, m->len);
	return 0;
}

int
vs_parse_done(const struct vs_msg *m, struct vs_done *d)
{
	struct vs_unpack r = reader(m);

	if (m->type != VS_MSG_DONE)
		return -1;
	d->read = vs_get_u64(&r);
	d->written = vs_get_u64(&r);
	d->punched = vs_get_u64(&r);
	d->unchanged = vs_get_u64(&r);
	return done(&r);
}

int
vs_parse_stats(const struct vs_msg *m, struct vs_stats_msg *st)
{
	struct vs_unpack r = reader(m);

	if (m->type != VS_MSG_STATS)
		return -1;
	st->virtual_size = vs_get_u64(&r);
	st->data_bytes = vs_get_u64(&r);
	st->read_bytes = vs_get_u64(&r);
	st->skipped_bytes = vs_get_u64(&r);
	st->usec = vs_get_u64(&r);
	return done(&r);
}

int
vs_send_snapshot(struct vs_wire *w, const struct vs_snapshot_req *q)
{
	size_t cap = 2 * VS_PATH_MAX + 64 + (size_t)q->n *
	    (VS_NAME_MAX + 8);
	struct vs_pack p = { .p = malloc(cap), .cap = cap };
	int rc;

	if (!p.p) {
		vs_errno(VS_EXIT_INTERNAL, w->peer, "SNAPSHOT");
		return -1;
	}
	vs_put_u32(&p, q->keep);
	vs_put_str(&p, q->dir);
	vs_put_str(&p, q->path);
	vs_put_u32(&p, q->n);
	for (uint32_t i = 0; i < q->n; i++) {
		vs_put_str(&p, q->images[i].name);
		vs_put_u8(&p, q->images[i].synced);
	}
	rc = send_packed(w, VS_MSG_SNAPSHOT, &p);
	free(p.p);
	return rc;
}

int
vs_send_snapped(struct vs_wire *w, uint32_t taken)
{
	uint8_t buf[SMALL];
	struct vs_pack p = { .p = buf, .cap = sizeof(buf) };

	vs_put_u32(&p, taken);
	return send_packed(w, VS_MSG_SNAPPED, &p);
}

int
vs_parse_snapshot(const struct vs_msg *m, struct vs_snapshot_req *q)
{
	struct vs_unpack r = reader(m);

	q->images = NULL;
	if (m->type != VS_MSG_SNAPSHOT)
		return -1;
	q->keep = vs_get_u32(&r);
	vs_get_str(&r, q->dir, VS_PATH_MAX);
	vs_get_str(&r, q->path, VS_PATH_MAX);
	q->n = vs_get_u32(&r);
	if (r.bad || !q->path[0] || q->n < 1 || q->n > VS_SNAPSHOT_MAX ||
	    !(q->images = calloc(q->n, sizeof(*q->images))))
		return -1;
	for (uint32_t i = 0; i < q->n && !r.bad; i++) {
		uint8_t synced;

		vs_get_str(&r, q->images[i].name, VS_NAME_MAX);
		synced = vs_get_u8(&r);
		q->images[i].synced = synced == 1;
		if (synced > 1 || strchr(q->images[i].name, '/') ||
		    !strcmp(q->images[i].name, ".") ||
		    !strcmp(q->images[i].name, ".."))
			r.bad = true;
	}
	if (done(&r) == 0)
		return 0;
	free(q->images);
	q->images = NULL;
	return -1;
}

int
vs_parse_snapped(const struct vs_msg *m, uint32_t *taken)
{
	struct vs_unpack r = reader(m);

	if (m->type != VS_MSG_SNAPPED)
		return -1;
	*taken = vs_get_u32(&r);
	return done(&r);
}
