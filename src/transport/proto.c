/*
 * proto.c - encode and parse protocol messages; every field is checked.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "pack.h"
#include "../util.h"

#define SMALL 256	/* encoding buffer for small messages */

/* Queue the payload packed in @p, then @tail_len bytes of @tail. */
static int
send_packed_tail(struct vs_wire *w, uint32_t type, const struct vs_pack *p,
    const void *tail, size_t tail_len)
{
	if (p->bad) {
		vs_err(VS_EXIT_INTERNAL, w->peer, "message too long to encode");
		return -1;
	}
	return vs_wire_send2(w, type, p->p, p->len, tail, tail_len);
}

static int
send_packed(struct vs_wire *w, uint32_t type, const struct vs_pack *p)
{
	return send_packed_tail(w, type, p, NULL, 0);
}

/* A hash: its bytes as stored. */
static void
put_hash(struct vs_pack *p, const struct vs_hash *h)
{
	vs_put(p, h->b, VS_PROTO_HASH_LEN);
}

struct vs_hello
vs_hello_local(void)
{
	return (struct vs_hello){ .version = VS_PROTO_VERSION,
	    .codecs = 1u << VS_WIRE_ZLIB | 1u << VS_WIRE_ZSTD, .hash = 1 };
}

bool
vs_block_size_ok(uint64_t bs)
{
	return vs_is_pow2(bs) && bs >= VS_PROTO_MIN_BLOCK &&
	    bs <= VS_PROTO_MAX_CHUNK;
}

int
vs_send_hello(struct vs_wire *w, const struct vs_hello *h)
{
	uint8_t buf[SMALL];
	struct vs_pack p = { .p = buf, .cap = sizeof(buf) };

	vs_put(&p, VS_PROTO_MAGIC, VS_PROTO_MAGIC_LEN);
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

int
vs_send_begin(struct vs_wire *w, uint64_t size, const char *format,
    uint64_t data_bytes)
{
	uint8_t buf[SMALL];
	struct vs_pack p = { .p = buf, .cap = sizeof(buf) };

	vs_put_u64(&p, size);
	vs_put_str(&p, format);
	vs_put_u64(&p, data_bytes);
	return send_packed(w, VS_MSG_BEGIN, &p);
}

/* DIGESTS, or SUMMARIES (no group size). */
static int
send_entries(struct vs_wire *w, uint32_t type, uint64_t first, uint32_t n,
    uint32_t per)
{
	uint8_t buf[SMALL];
	struct vs_pack p = { .p = buf, .cap = sizeof(buf) };

	vs_put_u64(&p, first);
	vs_put_u32(&p, n);
	if (type == VS_MSG_DIGESTS)
		vs_put_u32(&p, per);
	return send_packed(w, type, &p);
}

int
vs_send_digests(struct vs_wire *w, uint64_t first, uint32_t n, uint32_t per)
{
	return send_entries(w, VS_MSG_DIGESTS, first, n, per);
}

int
vs_send_summaries(struct vs_wire *w, uint64_t first, uint32_t n)
{
	return send_entries(w, VS_MSG_SUMMARIES, first, n, 0);
}

/* A message of @n u64 fields (PUNCH, DONE, STATS). */
static int
send_u64s(struct vs_wire *w, uint32_t type, const uint64_t *v, size_t n)
{
	uint8_t buf[SMALL];
	struct vs_pack p = { .p = buf, .cap = sizeof(buf) };

	for (size_t i = 0; i < n; i++)
		vs_put_u64(&p, v[i]);
	return send_packed(w, type, &p);
}

/* The data goes from @data to the wire's buffer: no copy in between. */
int
vs_send_write(struct vs_wire *w, uint64_t off, uint32_t len, uint32_t codec,
    const void *data, size_t data_len)
{
	uint8_t hdr[VS_PROTO_WRITE_HDR];
	struct vs_pack p = { .p = hdr, .cap = sizeof(hdr) };

	vs_put_u64(&p, off);
	vs_put_u32(&p, len);
	vs_put_u8(&p, (uint8_t)codec);
	return send_packed_tail(w, VS_MSG_WRITE, &p, data, data_len);
}

int
vs_send_punch(struct vs_wire *w, uint64_t off, uint64_t len)
{
	const uint64_t v[] = { off, len };

	return send_u64s(w, VS_MSG_PUNCH, v, sizeof(v) / sizeof(v[0]));
}

int
vs_send_prefetch(struct vs_wire *w, uint64_t off, uint64_t len)
{
	const uint64_t v[] = { off, len };

	return send_u64s(w, VS_MSG_PREFETCH, v, sizeof(v) / sizeof(v[0]));
}

/* Only the entries that changed travel, each with its index in the
 * range. */
int
vs_send_record(struct vs_wire *w, uint64_t first, uint32_t n,
    const struct vs_hash *old, const struct vs_hash *new)
{
	struct vs_pack p = { .p = NULL };
	uint32_t count = 0;
	int rc;

	for (uint32_t i = 0; i < n; i++)
		count += !vs_hash_eq(&old[i], &new[i]);
	if (!count)
		return 0;
	p.cap = VS_PROTO_RECORD_HDR + (size_t)count * VS_PROTO_RECORD_ENTRY;
	if (!(p.p = malloc(p.cap))) {
		vs_errno(VS_EXIT_INTERNAL, w->peer, "RECORD");
		return -1;
	}
	vs_put_u64(&p, first);
	vs_put_u32(&p, n);
	vs_put_u32(&p, count);
	for (uint32_t i = 0; i < n; i++) {
		if (vs_hash_eq(&old[i], &new[i]))
			continue;
		vs_put_u32(&p, i);
		put_hash(&p, &old[i]);
		put_hash(&p, &new[i]);
	}
	rc = send_packed(w, VS_MSG_RECORD, &p);
	free(p.p);
	return rc;
}

int
vs_send_commit(struct vs_wire *w, const struct vs_hash *view)
{
	uint8_t buf[VS_PROTO_HASH_LEN];
	struct vs_pack p = { .p = buf, .cap = sizeof(buf) };

	put_hash(&p, view ? view : &vs_hash_hole);
	return send_packed(w, VS_MSG_COMMIT, &p);
}

int
vs_send_begun(struct vs_wire *w, const struct vs_begun *b)
{
	uint8_t buf[SMALL];
	struct vs_pack p = { .p = buf, .cap = sizeof(buf) };

	vs_put_u32(&p, b->block_size);
	vs_put_u64(&p, b->seed);
	vs_put_u8(&p, (b->trusted ? VS_BEGUN_TRUSTED : 0) |
	    (b->hashes_target ? VS_BEGUN_HASHES : 0));
	vs_put_str(&p, b->state);
	put_hash(&p, &b->view);
	return send_packed(w, VS_MSG_BEGUN, &p);
}

/* The hashes as stored, straight from @h. */
int
vs_send_hashes(struct vs_wire *w, uint32_t type, const struct vs_hash *h,
    size_t count)
{
	return vs_wire_send(w, type, h, count * VS_PROTO_HASH_LEN);
}

int
vs_send_done(struct vs_wire *w, const struct vs_done *d)
{
	const uint64_t v[] = { d->read, d->written, d->punched,
	    d->unchanged };

	return send_u64s(w, VS_MSG_DONE, v, sizeof(v) / sizeof(v[0]));
}

int
vs_send_stats(struct vs_wire *w, const struct vs_stats_msg *st,
    uint32_t version)
{
	const uint64_t v[] = { st->virtual_size, st->data_bytes,
	    st->read_bytes, st->skipped_bytes, st->usec, st->guest_size };
	size_t n = sizeof(v) / sizeof(v[0]);

	return send_u64s(w, VS_MSG_STATS, v,
	    version >= VS_PROTO_GUEST_SIZE_VERSION ? n : n - 1);
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

/* A hash into @h, which is left alone if the payload is short. */
static void
get_hash(struct vs_unpack *r, struct vs_hash *h)
{
	const uint8_t *b = vs_get(r, VS_PROTO_HASH_LEN);

	if (b)
		memcpy(h->b, b, VS_PROTO_HASH_LEN);
}

int
vs_parse_hello(const struct vs_msg *m, struct vs_hello *h)
{
	struct vs_unpack r = reader(m);
	const uint8_t *magic = vs_get(&r, VS_PROTO_MAGIC_LEN);

	if (m->type != VS_MSG_HELLO || !magic ||
	    memcmp(magic, VS_PROTO_MAGIC, VS_PROTO_MAGIC_LEN) != 0)
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

/* The request parsers below set r->bad on a value out of range. */
static void
parse_begin(struct vs_unpack *r, struct vs_req *q)
{
	q->a = vs_get_u64(r);
	vs_get_str(r, q->format, sizeof(q->format) - 1);
	q->b = vs_get_u64(r);
	if (q->a > VS_PROTO_MAX_SIZE || q->b > q->a)
		r->bad = true;
}

/* DIGESTS, or SUMMARIES (no group size). */
static void
parse_entries(struct vs_unpack *r, struct vs_req *q)
{
	bool digests = q->type == VS_MSG_DIGESTS;

	q->a = vs_get_u64(r);
	q->b = vs_get_u32(r);
	if (digests)
		q->per = vs_get_u32(r);
	if (!range_ok(q->a, q->b) || (digests && (q->per == 0 ||
	    q->per > VS_PROTO_MAX_ENTRIES)))
		r->bad = true;
}

static void
parse_write(struct vs_unpack *r, struct vs_req *q)
{
	q->a = vs_get_u64(r);
	q->b = vs_get_u32(r);
	q->codec = vs_get_u8(r);
	q->data_len = r->left;
	q->data = vs_get(r, r->left);
	if (q->b == 0 || q->b > VS_PROTO_MAX_CHUNK ||
	    q->codec > VS_WIRE_ZSTD || q->a + q->b < q->a ||
	    (q->codec == VS_WIRE_NONE && q->data_len != q->b))
		r->bad = true;
}

static void
parse_punch(struct vs_unpack *r, struct vs_req *q)
{
	q->a = vs_get_u64(r);
	q->b = vs_get_u64(r);
	if (q->b == 0 || q->a + q->b < q->a)
		r->bad = true;
}

static void
parse_record(struct vs_unpack *r, struct vs_req *q)
{
	q->a = vs_get_u64(r);
	q->b = vs_get_u32(r);
	q->count = vs_get_u32(r);
	q->data_len = (size_t)q->count * VS_PROTO_RECORD_ENTRY;
	if (!range_ok(q->a, q->b) || q->count > q->b ||
	    q->data_len != r->left) {
		r->bad = true;
		return;
	}
	q->data = vs_get(r, q->data_len);
	/* Indexes strictly increasing and inside the range. */
	for (uint32_t i = 0, prev = 0; q->data && i < q->count; i++) {
		uint32_t k = vs_le32(q->data +
		    (size_t)i * VS_PROTO_RECORD_ENTRY);

		if (k >= q->b || (i && k <= prev)) {
			r->bad = true;
			return;
		}
		prev = k;
	}
}

int
vs_parse_req(const struct vs_msg *m, struct vs_req *q)
{
	struct vs_unpack r = reader(m);

	memset(q, 0, sizeof(*q));
	q->type = m->type;
	switch (m->type) {
	case VS_MSG_BEGIN:
		parse_begin(&r, q);
		break;
	case VS_MSG_DIGESTS:
	case VS_MSG_SUMMARIES:
		parse_entries(&r, q);
		break;
	case VS_MSG_WRITE:
		parse_write(&r, q);
		break;
	case VS_MSG_PUNCH:
	case VS_MSG_PREFETCH:	/* the same range */
		parse_punch(&r, q);
		break;
	case VS_MSG_RECORD:
		parse_record(&r, q);
		break;
	case VS_MSG_COMMIT:
		get_hash(&r, &q->view);
		break;
	default:
		return -1;
	}
	return done(&r);
}

void
vs_record_entries(const struct vs_req *q, struct vs_hash *old,
    struct vs_hash *new)
{
	struct vs_unpack r = { .p = q->data, .left = q->data_len };

	memset(old, 0, q->b * sizeof(*old));
	memset(new, 0, q->b * sizeof(*new));
	for (uint32_t i = 0; i < q->count; i++) {
		uint32_t k = vs_get_u32(&r);	/* checked by the parser */

		get_hash(&r, &old[k]);
		get_hash(&r, &new[k]);
	}
}

int
vs_parse_begun(const struct vs_msg *m, struct vs_begun *b)
{
	struct vs_unpack r = reader(m);
	uint8_t flags;

	if (m->type != VS_MSG_BEGUN)
		return -1;
	b->block_size = vs_get_u32(&r);
	b->seed = vs_get_u64(&r);
	flags = vs_get_u8(&r);
	b->trusted = flags & VS_BEGUN_TRUSTED;
	b->hashes_target = flags & VS_BEGUN_HASHES;
	vs_get_str(&r, b->state, sizeof(b->state) - 1);
	get_hash(&r, &b->view);
	if (!vs_block_size_ok(b->block_size))
		return -1;
	return done(&r);
}

int
vs_parse_hashes(const struct vs_msg *m, uint32_t type, size_t count,
    struct vs_hash *out)
{
	if ((type != VS_MSG_DIGESTS_R && type != VS_MSG_SUMMARIES_R) ||
	    m->type != type || count > VS_PROTO_MAX_ENTRIES ||
	    m->len != count * VS_PROTO_HASH_LEN)
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
	/* Version 5 adds the guest size; version 4 ends here. */
	st->guest_size = r.left ? vs_get_u64(&r) : 0;
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

/* LIST and VERIFY: a path on the server, and LIST's snapshot
 * directory. */
static int
send_list_req(struct vs_wire *w, uint32_t type, const struct vs_list_req *q)
{
	uint8_t buf[2 * VS_PATH_MAX + 16];
	struct vs_pack p = { .p = buf, .cap = sizeof(buf) };

	vs_put_str(&p, q->path);
	if (type == VS_MSG_LIST)
		vs_put_str(&p, q->snapshot_dir);
	return send_packed(w, type, &p);
}

int
vs_send_list(struct vs_wire *w, const struct vs_list_req *q)
{
	return send_list_req(w, VS_MSG_LIST, q);
}

int
vs_send_verify(struct vs_wire *w, const char *path)
{
	struct vs_list_req q = { .snapshot_dir = "" };

	snprintf(q.path, sizeof(q.path), "%s", path);
	return send_list_req(w, VS_MSG_VERIFY, &q);
}

int
vs_send_listed(struct vs_wire *w, const struct vs_listed *l)
{
	uint8_t buf[VS_NAME_MAX + VS_PATH_MAX + VS_PROTO_LISTED_FIELDS + 8];
	struct vs_pack p = { .p = buf, .cap = sizeof(buf) };

	vs_put_str(&p, l->name);
	vs_put_str(&p, l->path);
	vs_put_u64(&p, (uint64_t)l->time_sec);
	vs_put_u32(&p, l->time_nsec);
	vs_put_u64(&p, l->virtual_size);
	vs_put_u64(&p, l->allocated);
	vs_put_u64(&p, l->exclusive);
	vs_put_u8(&p, (uint8_t)l->flags);
	return send_packed(w, VS_MSG_LISTED, &p);
}

int
vs_send_list_end(struct vs_wire *w, uint32_t generations)
{
	uint8_t buf[SMALL];
	struct vs_pack p = { .p = buf, .cap = sizeof(buf) };

	vs_put_u32(&p, generations);
	return send_packed(w, VS_MSG_LIST_END, &p);
}

int
vs_send_verified(struct vs_wire *w, const struct vs_verified *v)
{
	size_t cap = VS_PROTO_VERIFIED_FIELDS + VS_MSG_TEXT_MAX + 8 +
	    (size_t)VS_VERIFY_MAX_BAD * VS_PROTO_BAD_ENTRY;
	struct vs_pack p = { .p = malloc(cap), .cap = cap };
	char t[VS_MSG_TEXT_MAX + 1];
	uint32_t n = v->nbad < VS_VERIFY_MAX_BAD ? v->nbad :
	    VS_VERIFY_MAX_BAD;
	size_t tlen = strnlen(v->text, VS_MSG_TEXT_MAX);
	int rc;

	if (!p.p) {
		vs_errno(VS_EXIT_INTERNAL, w->peer, "VERIFIED");
		return -1;
	}
	memcpy(t, v->text, tlen);	/* cut as an ERROR's is */
	t[tlen] = 0;
	vs_put_u32(&p, v->status);
	vs_put_u8(&p, (uint8_t)v->flags);
	vs_put_u64(&p, v->virtual_size);
	vs_put_u64(&p, v->read_bytes);
	vs_put_u64(&p, v->bad_bytes);
	vs_put_u64(&p, v->more_bad);
	vs_put_str(&p, t);
	vs_put_u32(&p, n);
	for (uint32_t i = 0; i < n; i++) {
		vs_put_u64(&p, v->bad[i].off);
		vs_put_u64(&p, v->bad[i].len);
		vs_put_u8(&p, v->bad[i].reason);
	}
	rc = send_packed(w, VS_MSG_VERIFIED, &p);
	free(p.p);
	return rc;
}

int
vs_parse_list(const struct vs_msg *m, struct vs_list_req *q)
{
	struct vs_unpack r = reader(m);

	if (m->type != VS_MSG_LIST && m->type != VS_MSG_VERIFY)
		return -1;
	q->snapshot_dir[0] = 0;
	vs_get_str(&r, q->path, VS_PATH_MAX);
	if (m->type == VS_MSG_LIST)
		vs_get_str(&r, q->snapshot_dir, VS_PATH_MAX);
	/* Names the server may print or make: no control characters. */
	if (!q->path[0] || !vs_plain_text(q->path) ||
	    !vs_plain_text(q->snapshot_dir))
		return -1;
	return done(&r);
}

int
vs_parse_listed(const struct vs_msg *m, struct vs_listed *l)
{
	struct vs_unpack r = reader(m);

	if (m->type != VS_MSG_LISTED)
		return -1;
	vs_get_str(&r, l->name, VS_NAME_MAX);
	vs_get_str(&r, l->path, VS_PATH_MAX);
	l->time_sec = (int64_t)vs_get_u64(&r);
	l->time_nsec = vs_get_u32(&r);
	l->virtual_size = vs_get_u64(&r);
	l->allocated = vs_get_u64(&r);
	l->exclusive = vs_get_u64(&r);
	l->flags = vs_get_u8(&r);
	if (!l->name[0] || strchr(l->name, '/') || !l->path[0] ||
	    l->time_nsec > 999999999 ||
	    (l->flags & ~(VS_LISTED_COMPLETE | VS_LISTED_EXCLUSIVE)))
		return -1;
	return done(&r);
}

int
vs_parse_list_end(const struct vs_msg *m, uint32_t *generations)
{
	struct vs_unpack r = reader(m);

	if (m->type != VS_MSG_LIST_END)
		return -1;
	*generations = vs_get_u32(&r);
	return done(&r);
}

int
vs_parse_verified(const struct vs_msg *m, struct vs_verified *v)
{
	struct vs_unpack r = reader(m);
	char raw[VS_MSG_TEXT_MAX + 1];

	if (m->type != VS_MSG_VERIFIED)
		return -1;
	v->status = vs_get_u32(&r);
	v->flags = vs_get_u8(&r);
	v->virtual_size = vs_get_u64(&r);
	v->read_bytes = vs_get_u64(&r);
	v->bad_bytes = vs_get_u64(&r);
	v->more_bad = vs_get_u64(&r);
	vs_get_str(&r, raw, VS_MSG_TEXT_MAX);
	v->nbad = vs_get_u32(&r);
	if (v->status > VS_EXIT_DIFFERS || (v->flags &
	    ~(VS_VERIFIED_COMPLETE | VS_VERIFIED_PARTIAL |
	    VS_VERIFIED_META_BAD)) || v->nbad > VS_VERIFY_MAX_BAD ||
	    r.left != (size_t)v->nbad * VS_PROTO_BAD_ENTRY)
		r.bad = true;
	for (uint32_t i = 0; i < v->nbad && !r.bad; i++) {
		struct vs_verified_bad *b = &v->bad[i];

		b->off = vs_get_u64(&r);
		b->len = vs_get_u64(&r);
		b->reason = vs_get_u8(&r);
		if (b->len == 0 || b->off + b->len < b->off ||
		    b->off + b->len > v->virtual_size ||
		    b->reason < 1 || b->reason > VS_VERIFIED_REASONS)
			r.bad = true;
	}
	vs_escape(r.bad ? "" : raw, v->text, sizeof(v->text));
	if (r.bad)
		v->nbad = 0;
	return done(&r);
}
