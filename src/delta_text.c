/*
 * delta_text.c - the text entry of an incremental archive (delta.h).
 *
 * Design notes
 * - The text comes from an archive, so from anyone: it is parsed line by
 *   line from a buffer of at most VS_DELTA_MAX_TEXT bytes, each keyword in
 *   its fixed place, each number checked for overflow and each range for
 *   order and bounds, and the last line checks every byte before it.
 */
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "delta.h"
#include "delta_text.h"
#include "formats/tar.h"
#include "index.h"
#include "util.h"

#define DELTA_VERSION "1"
#define DELTA_NAME_MAX 255		/* bytes of NAME */

/* A growing text buffer. */
struct text {
	char *buf;			/* NUL-terminated */
	size_t len, cap;		/* bytes used, allocated */
};

static int __attribute__((format(printf, 2, 3)))
add(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
		va_end(ap);
		if (n < 0)
			return -1;
		if ((size_t)n < t->cap - t->len)
			break;
		char *p = realloc(t->buf, t->cap * 2 + (size_t)n);

		if (!p)
			return -1;
		t->buf = p;
		t->cap = t->cap * 2 + (size_t)n;
	}
	t->len += (size_t)n;
	return 0;
}

static void
hex(const struct vs_hash *h, char *out)
{
	for (int i = 0; i < VS_HASH_LEN; i++)
		sprintf(out + 2 * i, "%02x", h->b[i]);
}

int
vs_delta_format(const struct vs_delta *d, char **out, size_t *len)
{
	struct text t = { .buf = malloc(256), .cap = 256 };
	char dig[2 * VS_HASH_LEN + 1];
	int rc;

	*out = NULL;
	if (!t.buf)
		return -1;
	hex(&d->base_digest, dig);
	rc = add(&t, "vmsync-delta %s\nname %s\nbase-size %" PRIu64 "\n"
	    "base-seed %016" PRIx64 "\nbase-digest %s\nblock-size %" PRIu32
	    "\nsize %" PRIu64 "\n", DELTA_VERSION, d->name, d->base_size,
	    d->base_seed, dig, d->block_size, d->size);
	for (size_t i = 0; rc == 0 && i < d->holes.n; i++)
		rc = add(&t, "hole %" PRIu64 " %" PRIu64 "\n",
		    d->holes.v[i].off, d->holes.v[i].len);
	if (rc == 0)
		rc = add(&t, "end %016" PRIx64 "\n", vs_hash64(t.buf, t.len));
	if (rc < 0) {
		free(t.buf);
		errno = ENOMEM;
		return -1;
	}
	*out = t.buf;
	*len = t.len;
	return 0;
}

/* Where parsing stands. */
struct parse {
	const char *p, *end;		/* the rest of the text */
	const char *line;		/* the current line */
	size_t len;			/* its length, without "\n" */
	unsigned no;			/* its number, from 1 */
	const char *what;		/* the archive, for messages */
};

static int
fail(struct parse *ps, const char *why)
{
	vs_err(VS_EXIT_SOURCE, ps->what, "not a valid incremental archive: "
	    "line %u of its delta: %s", ps->no, why);
	return -1;
}

/* The next line; -1 at the end or on a line without "\n". */
static int
next_line(struct parse *ps)
{
	const char *nl;

	ps->no++;
	if (ps->p >= ps->end)
		return fail(ps, "missing (the text ends early)");
	if (!(nl = memchr(ps->p, '\n', (size_t)(ps->end - ps->p))))
		return fail(ps, "no end of line");
	ps->line = ps->p;
	ps->len = (size_t)(nl - ps->p);
	ps->p = nl + 1;
	if (memchr(ps->line, '\0', ps->len))
		return fail(ps, "a NUL byte");
	return 0;
}

/* Does the line start with "@key "?  Then *@rest is what follows. */
static bool
keyword(const struct parse *ps, const char *key, const char **rest,
    size_t *rlen)
{
	size_t k = strlen(key);

	if (ps->len <= k || strncmp(ps->line, key, k) || ps->line[k] != ' ')
		return false;
	*rest = ps->line + k + 1;
	*rlen = ps->len - k - 1;
	return true;
}

/* A decimal number of @n bytes at @s, all of it, without leading zeros. */
static bool
number(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;

	if (n == 0 || n > 20 || (n > 1 && s[0] == '0'))
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9' ||
		    __builtin_mul_overflow(v, 10, &v) ||
		    __builtin_add_overflow(v, (uint64_t)(s[i] - '0'), &v))
			return false;
	}
	*out = v;
	return true;
}

/* Exactly @n lowercase hex digits into @out (n / 2 bytes). */
static bool
hexbytes(const char *s, size_t len, size_t n, uint8_t *out)
{
	if (len != n)
		return false;
	for (size_t i = 0; i < n; i++) {
		int c = s[i], v = c >= '0' && c <= '9' ? c - '0' :
		    c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;

		if (v < 0)
			return false;
		out[i / 2] = (uint8_t)(i % 2 ? out[i / 2] | v : v << 4);
	}
	return true;
}

/* The next line, which must be "@key ...": what follows in *@rest. */
static int
key_line(struct parse *ps, const char *key, const char **rest, size_t *rlen)
{
	if (next_line(ps) < 0)
		return -1;
	if (!keyword(ps, key, rest, rlen))
		return fail(ps, key);
	return 0;
}

/* "KEY N": the number, at most @max. */
static int
num_line(struct parse *ps, const char *key, uint64_t max, uint64_t *out)
{
	const char *r;
	size_t n;

	if (key_line(ps, key, &r, &n) < 0)
		return -1;
	return number(r, n, out) && *out <= max ? 0 :
	    fail(ps, "a number out of range");
}

/* "KEY HEX" of @bytes bytes. */
static int
hex_line(struct parse *ps, const char *key, size_t bytes, uint8_t *out)
{
	const char *r;
	size_t n;

	return key_line(ps, key, &r, &n) < 0 ? -1 :
	    hexbytes(r, n, 2 * bytes, out) ? 0 :
	    fail(ps, "not hex digits of the right length");
}

static int
name_line(struct parse *ps, struct vs_delta *d)
{
	const char *r;
	size_t n;

	if (key_line(ps, "name", &r, &n) < 0)
		return -1;
	if (n > DELTA_NAME_MAX || memchr(r, '/', n) ||
	    (n == 1 && r[0] == '.') || (n == 2 && !strncmp(r, "..", 2)))
		return fail(ps, "not a file name");
	if (!(d->name = strndup(r, n))) {
		vs_errno(VS_EXIT_INTERNAL, ps->what, "delta");
		return -1;
	}
	if (!vs_plain_text(d->name))
		return fail(ps, "control characters in the name");
	/* Never vmsync's own files beside an image: the names a full
	 * archive's entries may have. */
	if (!vs_tar_name_ok(d->name))
		return fail(ps, "not an image name");
	return 0;
}

/* "hole OFF LEN" lines, then "end HEX". */
static int
hole_lines(struct parse *ps, struct vs_delta *d, const char *start)
{
	uint8_t sum[8];
	uint64_t prev = 0, want = 0;
	const char *r;
	size_t n;

	for (;;) {
		const char *sp;
		uint64_t off, len, end;

		if (next_line(ps) < 0)
			return -1;
		if (!keyword(ps, "hole", &r, &n))
			break;
		if (d->holes.n >= VS_DELTA_MAX_HOLES)
			return fail(ps, "too many hole lines");
		if (!(sp = memchr(r, ' ', n)) || !number(r, (size_t)(sp - r),
		    &off) || !number(sp + 1, n - (size_t)(sp - r) - 1, &len) ||
		    len == 0 || __builtin_add_overflow(off, len, &end) ||
		    end > d->size)
			return fail(ps, "a hole out of range");
		if (off < prev)
			return fail(ps, "holes out of order or overlapping");
		prev = end;
		if (vs_extent_add(&d->holes, off, len, VS_EXT_ZERO) < 0) {
			vs_errno(VS_EXIT_INTERNAL, ps->what, "delta");
			return -1;
		}
	}
	if (!keyword(ps, "end", &r, &n) || !hexbytes(r, n, 16, sum))
		return fail(ps, "neither a hole nor the end");
	for (int i = 0; i < 8; i++)
		want = want << 8 | sum[i];
	if (vs_hash64(start, (size_t)(ps->line - start)) != want)
		return fail(ps, "the checksum does not match");
	if (ps->p != ps->end)
		return fail(ps, "text after the end");
	return 0;
}

int
vs_delta_parse(const char *buf, size_t len, struct vs_delta *d,
    const char *what)
{
	struct parse ps = { .p = buf, .end = buf + len, .what = what };
	uint8_t seed[8];
	uint64_t bs;

	memset(d, 0, sizeof(*d));
	if (len > VS_DELTA_MAX_TEXT)
		return fail(&ps, "too long");
	if (next_line(&ps) < 0)
		return -1;
	if (ps.len != strlen("vmsync-delta " DELTA_VERSION) ||
	    strncmp(ps.line, "vmsync-delta " DELTA_VERSION, ps.len))
		return fail(&ps, "not \"vmsync-delta " DELTA_VERSION "\"");
	if (name_line(&ps, d) < 0 ||
	    num_line(&ps, "base-size", INT64_MAX, &d->base_size) < 0 ||
	    hex_line(&ps, "base-seed", 8, seed) < 0 ||
	    hex_line(&ps, "base-digest", VS_HASH_LEN, d->base_digest.b) < 0 ||
	    num_line(&ps, "block-size", IDX_MAX_BLOCK, &bs) < 0)
		return -1;
	if (bs < IDX_MIN_BLOCK || !vs_is_pow2(bs))
		return fail(&ps, "not a block size");
	d->block_size = (uint32_t)bs;
	for (int i = 0; i < 8; i++)	/* most significant first */
		d->base_seed = d->base_seed << 8 | seed[i];
	if (num_line(&ps, "size", INT64_MAX, &d->size) < 0)
		return -1;
	return hole_lines(&ps, d, buf);
}

void
vs_delta_free(struct vs_delta *d)
{
	free(d->name);
	vs_extent_vec_free(&d->holes);
	memset(d, 0, sizeof(*d));
}
