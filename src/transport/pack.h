/*
 * pack.h - little-endian encoding of message payloads, with bounds checks.
 *
 * A reader that runs past the end sets ->bad and returns zeros, so a parser
 * checks once at the end instead of after every field.
 */
#ifndef VS_PACK_H
#define VS_PACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct vs_unpack {
	const uint8_t *p;	/* next byte */
	size_t left;		/* bytes left */
	bool bad;		/* ran past the end, or a bad value */
};

struct vs_pack {
	uint8_t *p;		/* buffer */
	size_t len;		/* bytes used */
	size_t cap;		/* its size */
	bool bad;		/* overflowed */
};

/* Little-endian u32 at @b, and the other way. */
static inline uint32_t
vs_le32(const uint8_t *b)
{
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
	    (uint32_t)b[3] << 24;
}

static inline void
vs_set_le32(uint8_t *b, uint32_t v)
{
	for (int i = 0; i < 4; i++, v >>= 8)
		b[i] = (uint8_t)v;
}

static inline void
vs_put(struct vs_pack *w, const void *src, size_t n)
{
	if (w->bad || n > w->cap - w->len) {
		w->bad = true;
		return;
	}
	memcpy(w->p + w->len, src, n);
	w->len += n;
}

static inline void
vs_put_u64(struct vs_pack *w, uint64_t v)
{
	uint8_t b[8];

	for (int i = 0; i < 8; i++, v >>= 8)
		b[i] = (uint8_t)v;
	vs_put(w, b, 8);
}

static inline void
vs_put_u32(struct vs_pack *w, uint32_t v)
{
	uint8_t b[4];

	vs_set_le32(b, v);
	vs_put(w, b, 4);
}

static inline void
vs_put_u8(struct vs_pack *w, uint8_t v)
{
	vs_put(w, &v, 1);
}

/* A string: u32 length, bytes, no NUL.  NULL is the empty string. */
static inline void
vs_put_str(struct vs_pack *w, const char *s)
{
	size_t n = s ? strlen(s) : 0;

	vs_put_u32(w, (uint32_t)n);
	vs_put(w, s ? s : "", n);	/* memcpy() takes no NULL */
}

static inline const uint8_t *
vs_get(struct vs_unpack *r, size_t n)
{
	const uint8_t *p = r->p;

	if (r->bad || n > r->left) {
		r->bad = true;
		return NULL;
	}
	r->p += n;
	r->left -= n;
	return p;
}

static inline uint64_t
vs_get_u64(struct vs_unpack *r)
{
	const uint8_t *b = vs_get(r, 8);
	uint64_t v = 0;

	for (int i = 7; b && i >= 0; i--)
		v = v << 8 | b[i];
	return v;
}

static inline uint32_t
vs_get_u32(struct vs_unpack *r)
{
	const uint8_t *b = vs_get(r, 4);

	return b ? vs_le32(b) : 0;
}

static inline uint8_t
vs_get_u8(struct vs_unpack *r)
{
	const uint8_t *b = vs_get(r, 1);

	return b ? b[0] : 0;
}

/* A string of at most @max bytes, copied NUL-terminated into @out
 * (@max + 1 bytes); NULs inside are refused. */
static inline void
vs_get_str(struct vs_unpack *r, char *out, size_t max)
{
	uint32_t n = vs_get_u32(r);
	const uint8_t *s;

	out[0] = 0;
	if (n > max) {
		r->bad = true;
		return;
	}
	s = vs_get(r, n);
	if (!s || memchr(s, 0, n)) {
		r->bad = true;
		return;
	}
	memcpy(out, s, n);
	out[n] = 0;
}

#endif
