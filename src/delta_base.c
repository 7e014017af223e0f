/*
 * delta_base.c - the identity of an incremental archive's base
 * (delta.h): its digest, from a trusted index without reading, or by
 * reading the file.
 *
 * Design notes
 * - An index is taken as describing its file when it is clean and
 *   records the file's size and times: a read-only snapshot keeps them
 *   (under another device and the same inode), so the generations a
 *   backup keeps are compared through their indexes.
 * - The digest is over the same per-block values the index holds (the
 *   hole value for zeros, else the seeded XXH3-128 of the block), so the
 *   two ways give the same digest for the same contents.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "delta.h"
#include "index.h"
#include "transport/transport.h"
#include "util.h"

#define DIGEST_ENTRIES 4096u		/* index entries read per step */
#define READ_CHUNK (1u << 20)		/* bytes read per step, at least */

struct vs_delta_digest {
	XXH3_state_t *st;		/* XXH3-128, seed 0 */
};

static void
put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

int
vs_delta_digest_new(uint32_t block_size, uint64_t size, uint64_t seed,
    struct vs_delta_digest **out)
{
	static const char tag[] = "vmsync-delta-base 1";
	struct vs_delta_digest *d = calloc(1, sizeof(*d));
	uint8_t head[20];

	*out = NULL;
	if (!d || !(d->st = XXH3_createState())) {
		free(d);
		errno = ENOMEM;
		return -1;
	}
	XXH3_128bits_reset(d->st);
	XXH3_128bits_update(d->st, tag, sizeof(tag));
	put_le(head, block_size, 4);
	put_le(head + 4, size, 8);
	put_le(head + 12, seed, 8);
	XXH3_128bits_update(d->st, head, sizeof(head));
	*out = d;
	return 0;
}

void
vs_delta_digest_add(struct vs_delta_digest *d, const struct vs_hash *entries,
    size_t n)
{
	XXH3_128bits_update(d->st, entries, n * sizeof(*entries));
}

void
vs_delta_digest_end(struct vs_delta_digest *d, struct vs_hash *out)
{
	XXH128_canonical_t c;

	XXH128_canonicalFromHash(&c, XXH3_128bits_digest(d->st));
	memcpy(out->b, c.digest, VS_HASH_LEN);
	XXH3_freeState(d->st);
	free(d);
}

const struct idx_header *
vs_delta_trusted(const char *path, const struct stat *st,
    struct vs_index **ix)
{
	char *ipath = vs_local_index_path(path);
	const struct idx_header *h = NULL;
	const char *why;

	*ix = NULL;
	vs_err_demote(true);
	if (ipath && idx_open(ipath, false, ix) == 0 && *ix)
		h = idx_header(*ix, &why);
	vs_err_demote(false);
	free(ipath);
	/* Not the device and inode: a snapshot holds the same file under
	 * another device (and the index beside it is its copy). */
	if (h && (h->flags & IDX_FLAG_DIRTY || h->virtual_size !=
	    (uint64_t)st->st_size || h->id.size != (uint64_t)st->st_size ||
	    h->id.mtime_sec != st->st_mtim.tv_sec ||
	    h->id.mtime_nsec != st->st_mtim.tv_nsec ||
	    h->id.ctime_sec != st->st_ctim.tv_sec ||
	    h->id.ctime_nsec != st->st_ctim.tv_nsec))
		h = NULL;
	return h;
}

/* The digest from the index: false in *@ok if an entry is unknown. */
static int
digest_from_index(struct vs_index *ix, struct vs_delta_digest *d,
    uint64_t nb, bool *ok)
{
	struct vs_hash *e = malloc(DIGEST_ENTRIES * sizeof(*e));

	*ok = true;
	if (!e)
		return -1;
	for (uint64_t b = 0; b < nb && *ok; b += DIGEST_ENTRIES) {
		size_t n = (size_t)vs_min(DIGEST_ENTRIES, nb - b);

		if (idx_read(ix, b, n, e) < 0) {
			free(e);
			return -1;
		}
		for (size_t i = 0; i < n; i++)
			if (vs_hash_eq(&e[i], &vs_hash_unknown))
				*ok = false;
		vs_delta_digest_add(d, e, n);
	}
	free(e);
	return 0;
}

/* The digest by reading every block of @fd. */
static int
digest_by_reading(int fd, const char *path, uint64_t size, uint32_t bs,
    uint64_t seed, struct vs_delta_digest *d, uint64_t *read)
{
	size_t chunk = vs_max(READ_CHUNK, bs);
	uint8_t *buf = malloc(chunk);

	if (!buf) {
		vs_errno(VS_EXIT_INTERNAL, path, "buffer");
		return -1;
	}
	for (uint64_t off = 0; off < size; off += chunk) {
		size_t len = (size_t)vs_min(chunk, size - off);
		ssize_t r = vs_pread_full(fd, buf, len, off);

		if (r < 0 || vs_interrupted) {
			if (r < 0)
				vs_errno(VS_EXIT_TARGET, path, "read at offset "
				    "%llu", (unsigned long long)off);
			else
				vs_err(VS_EXIT_PARTIAL, path, "interrupted");
			free(buf);
			return -1;
		}
		memset(buf + r, 0, len - (size_t)r);
		*read += (uint64_t)r;
		for (size_t at = 0; at < len; at += bs) {
			size_t n = (size_t)vs_min(bs, len - at);
			struct vs_hash h = vs_hash_hole;

			if (!vs_is_zero(buf + at, n))
				vs_hash_block(buf + at, n, seed, &h);
			vs_delta_digest_add(d, &h, 1);
		}
	}
	free(buf);
	return 0;
}

int
vs_delta_base_digest(int fd, const char *path, uint64_t size,
    uint32_t block_size, uint64_t seed, struct vs_index *ix,
    const struct idx_header *h, struct vs_hash *out, uint64_t *read)
{
	struct vs_delta_digest *d;
	bool ok = false;

	if (vs_delta_digest_new(block_size, size, seed, &d) < 0) {
		vs_errno(VS_EXIT_INTERNAL, path, "digest");
		return -1;
	}
	if (h && h->block_size == block_size && h->seed == seed &&
	    h->virtual_size == size) {
		if (digest_from_index(ix, d, idx_nblocks(size, block_size),
		    &ok) < 0) {
			vs_delta_digest_end(d, out);
			return -1;
		}
		if (!ok) {	/* start again, reading */
			vs_delta_digest_end(d, out);
			if (vs_delta_digest_new(block_size, size, seed, &d) < 0) {
				vs_errno(VS_EXIT_INTERNAL, path, "digest");
				return -1;
			}
		}
	}
	if (!ok && digest_by_reading(fd, path, size, block_size, seed, d,
	    read) < 0) {
		vs_delta_digest_end(d, out);
		return -1;
	}
	vs_info(1, "%s: base digest %s", path, ok ? "from its index" :
	    "by reading it");
	vs_delta_digest_end(d, out);
	return 0;
}
