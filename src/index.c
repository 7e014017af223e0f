/*
 * index.c - encode, validate, read and write the target hash index.
 *
 * The header layout is enum idx_offset in index.h; the rest of the 4 KiB
 * is zero.  Version 1 had no view id and its checksum at 112, version 2 no
 * source format and its checksum at 128, version 3 no sector records and
 * its checksum at 144; all are still read (as "no view", "no format
 * recorded", "no sector records"), and a run that writes migrates them.
 *
 * The rules that use the header live here too: when an index is trusted
 * (idx_trust), how a run marks it dirty before its first change to the
 * target's bytes (idx_begin_dirty; a resize may come before: it changes
 * the size the identity records) and the order of a clean commit
 * (idx_commit_clean), so that no target can get an index that claims more
 * than is durable.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY	/* XXH3_state_t on the stack */
#include <xxhash.h>

#include "index.h"
#include "util.h"
#include "confine.h"
#include "vmsync.h"

struct vs_index {
	int fd;			/* the index file */
	char *path;		/* for messages */
	bool has_header;	/* a valid header was read */
	const char *why;	/* why not, if !has_header */
	struct idx_header hdr;	/* as read or last written */
	uint64_t nblocks;	/* entries the file holds */
	uint8_t *rec;		/* sector records being read or written */
	size_t rec_cap;		/* its size */
	bool hold;		/* entry writes wait for idx_release() */
	struct idx_held *held;	/* those waiting, in the order written */
	size_t nheld, held_cap;
	uint8_t *bytes;		/* their bytes, one after another */
	size_t nbytes, bytes_cap;
};

/* A write that waits for the data it describes (idx_hold). */
struct idx_held {
	uint64_t off;		/* file offset */
	size_t len;		/* bytes */
	size_t at;		/* where in ix->bytes */
};

/* Room for the entries of an image that grows: the sector records start
 * past twice the entries (the file is sparse in between). */
#define IDX_ROOM_ALIGN (64u << 10)
/* Domain of a sector record's check. */
#define IDX_SECTOR_TAG 0x56534543u	/* "VSEC" */

uint64_t
idx_nblocks(uint64_t size, uint32_t block_size)
{
	return size / block_size + (size % block_size != 0);
}

static void
put32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static void
put64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

static uint32_t
get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

static uint64_t
get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return le64toh(v);
}

/* Where the checksum of a header of @version sits. */
static size_t
csum_offset(uint32_t version)
{
	return version == 1 ? IDX_OFF_CSUM_V1 : version == 2 ?
	    IDX_OFF_CSUM_V2 : version == 3 ? IDX_OFF_CSUM_V3 : IDX_OFF_CSUM;
}

/* A recorded format name: lower-case letters and digits, NUL-padded. */
static bool
format_ok(const uint8_t *p)
{
	size_t n = 0;

	while (n < IDX_FORMAT_LEN && p[n])
		if (!((p[n] >= 'a' && p[n] <= 'z') ||
		    (p[n] >= '0' && p[n] <= '9')) || ++n == IDX_FORMAT_LEN)
			return false;
	for (size_t i = n; i < IDX_FORMAT_LEN; i++)
		if (p[i])
			return false;
	return true;
}

size_t
idx_sectors_per_block(uint32_t block_size)
{
	return block_size / IDX_SECTOR;
}

/* Bytes of one block's sector record: the check, then its hashes. */
static size_t
record_len(uint32_t block_size)
{
	return 8 * (1 + idx_sectors_per_block(block_size));
}

/* The file offsets of entry @b and of its sector record. */
static uint64_t
entry_at(uint64_t b)
{
	return IDX_HEADER_SIZE + b * VS_HASH_LEN;
}

static uint64_t
record_at(const struct vs_index *ix, uint64_t b)
{
	return ix->hdr.sector_off + b * record_len(ix->hdr.block_size);
}

/* Do sector records at @off for @n blocks fit after their entries, and
 * below the largest file offset?  *end: the end of the last record. */
static bool
sectors_fit(uint64_t off, uint64_t n, uint32_t block_size, uint64_t *end)
{
	uint64_t entries_end, bytes, e;

	if (off % IDX_SECTOR || !vs_mul_ok(n, VS_HASH_LEN, &entries_end) ||
	    !vs_add_ok(entries_end, IDX_HEADER_SIZE, &entries_end) ||
	    off < entries_end || !vs_mul_ok(n, record_len(block_size), &bytes) ||
	    !vs_add_ok(off, bytes, &e) || e > INT64_MAX)
		return false;
	if (end)
		*end = e;
	return true;
}

uint64_t
idx_sector_hash(const void *buf, size_t len, uint64_t seed)
{
	return XXH3_64bits_withSeed(buf, len, seed);
}

/* The check of block @b's record: it holds only with the entry @blk it
 * was made for, and the hashes as stored (@sec, little-endian). */
static uint64_t
record_check(uint64_t seed, uint64_t b, const struct vs_hash *blk,
    const uint8_t *sec, size_t len)
{
	XXH3_state_t st;
	uint8_t head[4 + 8];

	put32(head, IDX_SECTOR_TAG);
	put64(head + 4, b);
	/* A state on the stack: reset_withSeed() reads its old seed, and
	 * would keep a stale secret where that equals @seed. */
	XXH3_INITSTATE(&st);
	XXH3_64bits_reset_withSeed(&st, seed);
	XXH3_64bits_update(&st, head, sizeof(head));
	XXH3_64bits_update(&st, blk->b, VS_HASH_LEN);
	XXH3_64bits_update(&st, sec, len);
	return XXH3_64bits_digest(&st);
}

void
idx_header_seal(uint8_t *buf)
{
	size_t csum = csum_offset(get32(buf + IDX_OFF_VERSION));

	put64(buf + csum, vs_hash64(buf, csum));
}

void
idx_header_encode(const struct idx_header *h, uint8_t *buf)
{
	memset(buf, 0, IDX_HEADER_SIZE);
	memcpy(buf + IDX_OFF_MAGIC, IDX_MAGIC, 8);
	put32(buf + IDX_OFF_VERSION, IDX_VERSION);
	put32(buf + IDX_OFF_HEADER_SIZE, IDX_HEADER_SIZE);
	put32(buf + IDX_OFF_BLOCK_SIZE, h->block_size);
	put32(buf + IDX_OFF_FLAGS, h->flags);
	put64(buf + IDX_OFF_VIRTUAL_SIZE, h->virtual_size);
	put64(buf + IDX_OFF_SEED, h->seed);
	put64(buf + IDX_OFF_DEV, h->id.dev);
	put64(buf + IDX_OFF_INO, h->id.ino);
	put64(buf + IDX_OFF_SIZE, h->id.size);
	put64(buf + IDX_OFF_MTIME_SEC, (uint64_t)h->id.mtime_sec);
	put64(buf + IDX_OFF_MTIME_NSEC, (uint64_t)h->id.mtime_nsec);
	put64(buf + IDX_OFF_CTIME_SEC, (uint64_t)h->id.ctime_sec);
	put64(buf + IDX_OFF_CTIME_NSEC, (uint64_t)h->id.ctime_nsec);
	put64(buf + IDX_OFF_ENTRIES,
	    idx_nblocks(h->virtual_size, h->block_size));
	put64(buf + IDX_OFF_MEDIUM, h->id.medium);
	memcpy(buf + IDX_OFF_VIEW, h->view.b, sizeof(h->view.b));
	memcpy(buf + IDX_OFF_FORMAT, h->format,
	    strnlen(h->format, IDX_FORMAT_LEN - 1));
	put64(buf + IDX_OFF_SECTORS, h->sector_off);
	idx_header_seal(buf);
}

int
idx_header_decode(const uint8_t *buf, size_t len, struct idx_header *h,
    const char **why)
{
	uint64_t entries;
	size_t csum;

	if (len < IDX_HEADER_SIZE) {
		*why = "index header is truncated";
		return -1;
	}
	if (memcmp(buf + IDX_OFF_MAGIC, IDX_MAGIC, 8) != 0) {
		*why = "not a vmsync index (bad magic)";
		return -1;
	}
	h->version = get32(buf + IDX_OFF_VERSION);
	if (h->version < 1 || h->version > IDX_VERSION) {
		*why = "unsupported index version";
		return -1;
	}
	csum = csum_offset(h->version);
	if (get64(buf + csum) != vs_hash64(buf, csum)) {
		*why = "index header checksum mismatch";
		return -1;
	}
	memset(&h->view, 0, sizeof(h->view));
	if (h->version >= 2)
		memcpy(h->view.b, buf + IDX_OFF_VIEW, sizeof(h->view.b));
	memset(h->format, 0, sizeof(h->format));
	if (h->version >= 3) {
		if (!format_ok(buf + IDX_OFF_FORMAT)) {
			*why = "bad source format in index";
			return -1;
		}
		memcpy(h->format, buf + IDX_OFF_FORMAT, IDX_FORMAT_LEN);
	}
	if (get32(buf + IDX_OFF_HEADER_SIZE) != IDX_HEADER_SIZE) {
		*why = "bad index header size";
		return -1;
	}
	h->block_size = get32(buf + IDX_OFF_BLOCK_SIZE);
	if (!vs_is_pow2(h->block_size) || h->block_size < IDX_MIN_BLOCK ||
	    h->block_size > IDX_MAX_BLOCK) {
		*why = "bad block size in index";
		return -1;
	}
	h->flags = get32(buf + IDX_OFF_FLAGS);
	if (h->flags & ~IDX_FLAG_DIRTY) {
		*why = "unknown flags in index";
		return -1;
	}
	h->virtual_size = get64(buf + IDX_OFF_VIRTUAL_SIZE);
	h->seed = get64(buf + IDX_OFF_SEED);
	h->id.dev = get64(buf + IDX_OFF_DEV);
	h->id.ino = get64(buf + IDX_OFF_INO);
	h->id.size = get64(buf + IDX_OFF_SIZE);
	h->id.mtime_sec = (int64_t)get64(buf + IDX_OFF_MTIME_SEC);
	h->id.mtime_nsec = (int64_t)get64(buf + IDX_OFF_MTIME_NSEC);
	h->id.ctime_sec = (int64_t)get64(buf + IDX_OFF_CTIME_SEC);
	h->id.ctime_nsec = (int64_t)get64(buf + IDX_OFF_CTIME_NSEC);
	h->id.medium = get64(buf + IDX_OFF_MEDIUM);
	entries = get64(buf + IDX_OFF_ENTRIES);
	if (entries != idx_nblocks(h->virtual_size, h->block_size)) {
		*why = "index entry count does not match its size";
		return -1;
	}
	h->sector_off = h->version >= 4 ? get64(buf + IDX_OFF_SECTORS) : 0;
	if (h->sector_off && !sectors_fit(h->sector_off, entries,
	    h->block_size, NULL)) {
		*why = "bad sector record offset in index";
		return -1;
	}
	return 0;
}

bool
idx_identity_eq(const struct idx_identity *a, const struct idx_identity *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	    a->mtime_sec == b->mtime_sec && a->mtime_nsec == b->mtime_nsec &&
	    a->ctime_sec == b->ctime_sec && a->ctime_nsec == b->ctime_nsec &&
	    a->medium == b->medium;
}

/* Open @path as an index only once fstat() of an O_PATH descriptor says
 * it is a regular file: a FIFO or device planted as the index is never
 * opened, and a symbolic link is never followed.  A missing file is made
 * with @create.  -1 with errno set: ELOOP for a link, EINVAL for anything
 * else that is not a regular file. */
static int
open_checked(const char *path, bool create, struct stat *st)
{
	int flags = (create ? O_RDWR : O_RDONLY) | O_CLOEXEC;
	int pfd = vs_open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC, 0), fd;

	if (pfd < 0 && errno == ENOENT && create) {
		fd = vs_open(path, flags | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
		if (fd >= 0 && fstat(fd, st) < 0) {
			close(fd);
			return -1;
		}
		if (fd >= 0 || errno != EEXIST)
			return fd;
		/* Made by someone else meanwhile: look at it first. */
		pfd = vs_open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC, 0);
	}
	if (pfd < 0)
		return -1;
	if (fstat(pfd, st) < 0 || !S_ISREG(st->st_mode)) {
		int e = S_ISLNK(st->st_mode) ? ELOOP : EINVAL;

		close(pfd);
		errno = e;
		return -1;
	}
	fd = vs_reopen(pfd, flags);
	close(pfd);
	return fd;
}

int
idx_open(const char *path, bool create, struct vs_index **out)
{
	struct vs_index *ix = NULL;
	uint8_t *buf = NULL;
	struct stat st;
	ssize_t r;
	int fd;

	*out = NULL;
	fd = open_checked(path, create, &st);
	if (fd < 0 && errno == ENOENT && !create)
		return 0;
	if (fd < 0 && errno == ELOOP) {
		vs_err(VS_EXIT_TARGET, path,
		    "index is a symbolic link; refusing it");
		return -1;
	}
	if (fd < 0 && errno == EINVAL) {
		vs_err(VS_EXIT_TARGET, path, "index is not a regular file");
		return -1;
	}
	if (fd < 0) {
		vs_errno(VS_EXIT_TARGET, path, "cannot open index");
		return -1;
	}
	ix = calloc(1, sizeof(*ix));
	buf = malloc(IDX_HEADER_SIZE);
	if (!ix || !buf || !(ix->path = strdup(path))) {
		vs_errno(VS_EXIT_INTERNAL, path, "open index");
		goto fail;
	}
	ix->fd = fd;
	r = vs_pread_full(fd, buf, IDX_HEADER_SIZE, 0);
	if (r < 0) {
		vs_errno(VS_EXIT_TARGET, path, "read index header");
		goto fail;
	}
	if (r == 0)
		ix->why = "index is empty";
	else if (idx_header_decode(buf, (size_t)r, &ix->hdr, &ix->why) == 0)
		ix->has_header = true;
	if (ix->has_header) {
		uint64_t need = idx_nblocks(ix->hdr.virtual_size,
		    ix->hdr.block_size), end = 0;

		ix->nblocks = ((uint64_t)st.st_size - IDX_HEADER_SIZE) /
		    VS_HASH_LEN;
		if (ix->hdr.sector_off) {
			/* Fits: checked by idx_header_decode(). */
			sectors_fit(ix->hdr.sector_off, need,
			    ix->hdr.block_size, &end);
			ix->nblocks = need;
		}
		if ((uint64_t)st.st_size < IDX_HEADER_SIZE ||
		    (uint64_t)st.st_size < end || ix->nblocks < need) {
			ix->has_header = false;
			ix->why = "index is shorter than its header says";
		}
	}
	free(buf);
	*out = ix;
	return 0;
fail:
	free(buf);
	if (ix)
		free(ix->path);
	free(ix);
	close(fd);
	return -1;
}

const struct idx_header *
idx_header(const struct vs_index *ix, const char **why)
{
	if (!ix->has_header) {
		*why = ix->why;
		return NULL;
	}
	return &ix->hdr;
}

int
idx_write_header(struct vs_index *ix, const struct idx_header *h)
{
	uint8_t buf[IDX_HEADER_SIZE];

	idx_header_encode(h, buf);
	if (vs_pwrite_full(ix->fd, buf, sizeof(buf), 0) < 0 ||
	    fdatasync(ix->fd) < 0) {
		vs_errno(VS_EXIT_TARGET, ix->path, "write index header");
		return -1;
	}
	ix->hdr = *h;
	ix->has_header = true;
	return 0;
}

/* Cut or extend the file to @bytes; new bytes read as zeros. */
static int
set_length(struct vs_index *ix, uint64_t bytes)
{
	if (ftruncate(ix->fd, (off_t)bytes) < 0) {
		vs_errno(VS_EXIT_TARGET, ix->path, "resize index");
		return -1;
	}
	return 0;
}

int
idx_resize(struct vs_index *ix, uint64_t nblocks)
{
	uint64_t bytes;

	if (!vs_mul_ok(nblocks, VS_HASH_LEN, &bytes) ||
	    !vs_add_ok(bytes, IDX_HEADER_SIZE, &bytes) ||
	    bytes > INT64_MAX) {
		vs_err(VS_EXIT_TARGET, ix->path, "index of %llu entries is "
		    "too large", (unsigned long long)nblocks);
		return -1;
	}
	if (set_length(ix, bytes) < 0)
		return -1;
	ix->nblocks = nblocks;
	return 0;
}

/* Make [off, off + len) of the file read as zeros. */
static int
zero_bytes(struct vs_index *ix, uint64_t off, uint64_t len)
{
	static const uint8_t zeros[64 << 10];

	while (len) {
		size_t n = (size_t)vs_min(len, sizeof(zeros));

		if (vs_pwrite_full(ix->fd, zeros, n, off) < 0) {
			vs_errno(VS_EXIT_TARGET, ix->path, "clear index");
			return -1;
		}
		off += n;
		len -= n;
	}
	return 0;
}

/* Where the sector records of @n entries go when they move: past room
 * for twice the entries, so that an image that grows a little (a qcow2
 * file's view grows with each run) keeps its records in place. */
static bool
sector_area(uint64_t n, uint32_t block_size, uint64_t *off, uint64_t *end)
{
	uint64_t room;

	if (!vs_mul_ok(n, 2 * VS_HASH_LEN, &room) ||
	    !vs_add_ok(room, IDX_HEADER_SIZE + IDX_ROOM_ALIGN - 1, &room))
		return false;
	*off = room / IDX_ROOM_ALIGN * IDX_ROOM_ALIGN;
	return sectors_fit(*off, n, block_size, end);
}

/*
 * Held writes.  While a run changes the target, its data becomes durable
 * only at the next fdatasync, so an entry or sector record written at
 * once could reach the disk before the data it describes.  The index is
 * dirty then and so not trusted; holding the writes in memory until the
 * target's owner has made its data durable (idx_release) keeps even a
 * dirty index from describing data that a power cut lost.  Reads see the
 * held bytes.  The target bounds what is held (idx_held_full).
 */
#define IDX_HOLD_BYTES (8u << 20)	/* bytes held at most */
#define IDX_HOLD_RUNS 4096u		/* separate runs held at most */

void
idx_hold(struct vs_index *ix)
{
	ix->hold = true;
}

bool
idx_held_full(const struct vs_index *ix)
{
	return ix->nbytes >= IDX_HOLD_BYTES || ix->nheld >= IDX_HOLD_RUNS;
}

static void *
grow(void *p, size_t *cap, size_t need, size_t size)
{
	size_t n = *cap ? *cap : 64;

	while (n < need)
		n *= 2;
	if (n == *cap)
		return p;
	p = realloc(p, n * size);
	if (p)
		*cap = n;
	return p;
}

/* Write @len bytes at @off, or hold them. */
static int
put_bytes(struct vs_index *ix, const void *buf, size_t len, uint64_t off)
{
	struct idx_held *last = ix->nheld ? &ix->held[ix->nheld - 1] : NULL;
	void *p;

	if (!ix->hold)
		return vs_pwrite_full(ix->fd, buf, len, off) < 0 ? -1 : 0;
	if (!(p = grow(ix->bytes, &ix->bytes_cap, ix->nbytes + len, 1)))
		return -1;
	ix->bytes = p;
	memcpy(ix->bytes + ix->nbytes, buf, len);
	/* Writes in order extend one run. */
	if (last && last->off + last->len == off &&
	    last->at + last->len == ix->nbytes) {
		last->len += len;
	} else {
		if (!(p = grow(ix->held, &ix->held_cap, ix->nheld + 1,
		    sizeof(*ix->held))))
			return -1;
		ix->held = p;
		ix->held[ix->nheld++] = (struct idx_held){ off, len,
		    ix->nbytes };
	}
	ix->nbytes += len;
	return 0;
}

/* Held bytes over [off, off + len) of @buf, later ones over earlier. */
static void
overlay_held(const struct vs_index *ix, void *buf, size_t len, uint64_t off)
{
	for (size_t i = 0; i < ix->nheld; i++) {
		const struct idx_held *h = &ix->held[i];
		uint64_t lo = vs_max(off, h->off);
		uint64_t hi = vs_min(off + len, h->off + h->len);

		if (lo < hi)
			memcpy((uint8_t *)buf + (lo - off),
			    ix->bytes + h->at + (lo - h->off), hi - lo);
	}
}

int
idx_release(struct vs_index *ix)
{
	for (size_t i = 0; i < ix->nheld; i++) {
		const struct idx_held *h = &ix->held[i];

		if (vs_pwrite_full(ix->fd, ix->bytes + h->at, h->len,
		    h->off) < 0) {
			vs_errno(VS_EXIT_TARGET, ix->path,
			    "write index at byte %llu",
			    (unsigned long long)h->off);
			return -1;
		}
	}
	ix->nheld = ix->nbytes = 0;
	return 0;
}

int
idx_read(struct vs_index *ix, uint64_t first, size_t n, struct vs_hash *out)
{
	size_t have = first < ix->nblocks ?
	    (size_t)vs_min(n, ix->nblocks - first) : 0;
	ssize_t r;

	r = vs_pread_full(ix->fd, out, have * VS_HASH_LEN, entry_at(first));
	if (r < 0) {
		vs_errno(VS_EXIT_TARGET, ix->path, "read index at entry %llu",
		    (unsigned long long)first);
		return -1;
	}
	/* A file cut short reads as holes: callers only trust it when the
	 * header matched, and the header checks the length. */
	memset((char *)out + r, 0, n * VS_HASH_LEN - (size_t)r);
	overlay_held(ix, out, n * VS_HASH_LEN, entry_at(first));
	return 0;
}

int
idx_write(struct vs_index *ix, uint64_t first, size_t n,
    const struct vs_hash *old, const struct vs_hash *new)
{
	size_t i = 0;

#define OLD(k) (old ? &old[k] : &vs_hash_hole)
	while (i < n) {
		size_t j;

		if (vs_hash_eq(OLD(i), &new[i])) {
			i++;
			continue;
		}
		for (j = i + 1; j < n && !vs_hash_eq(OLD(j), &new[j]); j++)
			;
		if (put_bytes(ix, &new[i], (j - i) * VS_HASH_LEN,
		    entry_at(first + i)) < 0) {
			vs_errno(VS_EXIT_TARGET, ix->path,
			    "write index at entry %llu",
			    (unsigned long long)(first + i));
			return -1;
		}
		i = j;
	}
#undef OLD
	return 0;
}

int
idx_fd(const struct vs_index *ix)
{
	return ix->fd;
}

void
idx_where(const struct vs_index *ix, uint64_t first, size_t n,
    uint64_t off[2], uint64_t len[2])
{
	uint64_t have = first < ix->nblocks ? vs_min(n, ix->nblocks - first) :
	    0;
	bool records = ix->has_header && ix->hdr.sector_off;

	off[0] = entry_at(first);
	len[0] = have * VS_HASH_LEN;
	off[1] = records ? record_at(ix, first) : 0;
	len[1] = records ? have * record_len(ix->hdr.block_size) : 0;
}

/* Scratch for @n records of the index's block size. */
static uint8_t *
rec_buf(struct vs_index *ix, size_t n)
{
	size_t need = n * record_len(ix->hdr.block_size);

	if (need > ix->rec_cap) {
		uint8_t *p = realloc(ix->rec, need);

		if (!p) {
			vs_errno(VS_EXIT_INTERNAL, ix->path, "buffer");
			return NULL;
		}
		ix->rec = p;
		ix->rec_cap = need;
	}
	return ix->rec;
}

int
idx_read_sectors(struct vs_index *ix, uint64_t first, size_t n,
    const struct vs_hash *blk, uint64_t *out, bool *valid)
{
	size_t per = idx_sectors_per_block(ix->hdr.block_size);
	size_t rl = record_len(ix->hdr.block_size), have;
	uint8_t *rec;
	ssize_t r;

	for (size_t i = 0; i < n; i++)
		valid[i] = false;
	have = first < ix->nblocks ? (size_t)vs_min(n, ix->nblocks - first) :
	    0;
	if (!ix->has_header || !ix->hdr.sector_off || !have)
		return 0;
	if (!(rec = rec_buf(ix, have)))
		return -1;
	r = vs_pread_full(ix->fd, rec, have * rl, record_at(ix, first));
	if (r < 0) {
		vs_errno(VS_EXIT_TARGET, ix->path,
		    "read sector records at entry %llu",
		    (unsigned long long)first);
		return -1;
	}
	/* Past the end: zeros, whose check fails. */
	memset(rec + r, 0, have * rl - (size_t)r);
	overlay_held(ix, rec, have * rl, record_at(ix, first));
	for (size_t i = 0; i < have; i++) {
		const uint8_t *p = rec + i * rl;

		if (vs_hash_eq(&blk[i], &vs_hash_hole) ||
		    vs_hash_eq(&blk[i], &vs_hash_unknown) ||
		    get64(p) != record_check(ix->hdr.seed, first + i, &blk[i],
		    p + 8, rl - 8))
			continue;
		for (size_t k = 0; k < per; k++)
			out[i * per + k] = get64(p + 8 + 8 * k);
		valid[i] = true;
	}
	return 0;
}

int
idx_write_sectors(struct vs_index *ix, uint64_t first, size_t n,
    const struct vs_hash *blk, const uint64_t *sec, const bool *have)
{
	size_t per = idx_sectors_per_block(ix->hdr.block_size);
	size_t rl = record_len(ix->hdr.block_size), i = 0;
	uint8_t *rec;

	if (!ix->hdr.sector_off)
		return 0;
	n = first < ix->nblocks ? (size_t)vs_min(n, ix->nblocks - first) : 0;
	while (i < n) {
		size_t j;

		if (!have[i]) {
			i++;
			continue;
		}
		for (j = i + 1; j < n && have[j]; j++)
			;
		if (!(rec = rec_buf(ix, j - i)))
			return -1;
		for (size_t b = i; b < j; b++) {
			uint8_t *p = rec + (b - i) * rl;

			for (size_t k = 0; k < per; k++)
				put64(p + 8 + 8 * k, sec[b * per + k]);
			put64(p, record_check(ix->hdr.seed, first + b, &blk[b],
			    p + 8, rl - 8));
		}
		if (put_bytes(ix, rec, (j - i) * rl, record_at(ix, first + i)) <
		    0) {
			vs_errno(VS_EXIT_TARGET, ix->path,
			    "write sector records at entry %llu",
			    (unsigned long long)(first + i));
			return -1;
		}
		i = j;
	}
	return 0;
}

int
idx_sync(struct vs_index *ix)
{
	if (fdatasync(ix->fd) < 0) {
		vs_errno(VS_EXIT_TARGET, ix->path, "sync index");
		return -1;
	}
	return 0;
}

void
idx_close(struct vs_index *ix)
{
	if (!ix)
		return;
	/* Held writes are dropped: their data may not be durable, and the
	 * index stays dirty. */
	close(ix->fd);
	free(ix->path);
	free(ix->rec);
	free(ix->held);
	free(ix->bytes);
	free(ix);
}

const char *
idx_mismatch(const struct idx_header *h, const struct idx_target *t)
{
	if (t->checksum)
		return "--checksum given";
	if (h->flags & IDX_FLAG_DIRTY)
		return "an earlier run did not finish";
	if (!idx_identity_eq(&h->id, &t->id))
		return "the target changed since the last run";
	if (!t->is_block && h->virtual_size != t->size)
		return "the index does not match the target's size";
	/* A device keeps its size: a shorter source leaves a tail alone. */
	if (t->is_block && h->virtual_size > t->size)
		return "the index is larger than the device";
	if (t->block_size && h->block_size != t->block_size)
		return "a different --block-size was asked for";
	return NULL;
}

int
idx_trust(const struct vs_index *ix, const struct idx_target *t,
    struct idx_verdict *out)
{
	const struct idx_header *h = NULL;

	*out = (struct idx_verdict){ .why = "no index",
	    .spot_bad = UINT64_MAX };
	if (ix && (h = idx_header(ix, &out->why)))
		out->why = idx_mismatch(h, t);
	if (!h || out->why)
		return 0;
	/* Writes that kept the identity (times set back, a device replica
	 * mounted) show only in the blocks. */
	if (t->spot_check && t->spot_check(t->arg, h, &out->spot_bad) < 0)
		return -1;
	if (out->spot_bad != UINT64_MAX) {
		out->why = "spot check failed";
		return 0;
	}
	out->hdr = h;
	return 0;
}

void
idx_stale_range(const struct idx_header *h, uint64_t size, bool is_block,
    uint64_t *lo, uint64_t *hi)
{
	*lo = *hi = 0;
	if (size == h->virtual_size)
		return;
	/* The block that holds the old or new end changed length.  A file
	 * grows with a hole, which the new entries say; a device keeps
	 * whatever it held past the old end, so there nothing is known. */
	*lo = vs_min(size, h->virtual_size) / h->block_size;
	*hi = is_block ? UINT64_MAX : *lo + 1;
}

int
idx_begin_header(const struct idx_header *old, uint32_t block_size,
    const char *format, struct idx_header *out)
{
	if (old) {
		*out = *old;
	} else {
		*out = (struct idx_header){ .version = IDX_VERSION,
		    .block_size = block_size };
		/* A new seed: hashes of an old index never match by chance. */
		if (vs_random64(&out->seed) < 0)
			return -1;
	}
	memset(out->format, 0, sizeof(out->format));
	if (format)
		memcpy(out->format, format,
		    strnlen(format, sizeof(out->format) - 1));
	return 0;
}

int
idx_begin_dirty(struct vs_index *ix, struct idx_header *h, uint64_t size,
    bool keep)
{
	uint64_t old_n = idx_nblocks(h->virtual_size, h->block_size);
	uint64_t new_n = idx_nblocks(size, h->block_size);
	uint64_t keep_n = keep ? vs_min(old_n, new_n) : 0, end;
	bool move = !keep || !h->sector_off ||
	    !sectors_fit(h->sector_off, new_n, h->block_size, &end);

	if (move && !sector_area(new_n, h->block_size, &h->sector_off, &end)) {
		vs_err(VS_EXIT_TARGET, ix->path, "index of %llu entries is "
		    "too large", (unsigned long long)new_n);
		return -1;
	}
	h->version = IDX_VERSION;
	h->flags |= IDX_FLAG_DIRTY;
	h->virtual_size = size;
	/* Durably dirty before any entry or target byte changes. */
	if (idx_write_header(ix, h) < 0)
		return -1;
	/* Entries past the ones kept read as holes: cut off with the old
	 * records when these move, else cleared in place.  The bytes past
	 * the entries up to the records are always zero. */
	if (move ? set_length(ix, entry_at(keep_n)) < 0 :
	    keep_n < old_n && zero_bytes(ix, entry_at(keep_n),
	    (old_n - keep_n) * VS_HASH_LEN) < 0)
		return -1;
	if (set_length(ix, end) < 0)
		return -1;
	ix->nblocks = new_n;
	return 0;
}

int
idx_commit_clean(struct vs_index *ix, const struct idx_header *h,
    const struct vs_hash *view, const struct idx_commit_steps *steps,
    bool *clean)
{
	struct idx_header done = *h;
	bool foreign = false;

	*clean = false;
	/* Entries may be durable only once the data they describe is. */
	if (steps->sync_target(steps->arg) < 0 || idx_release(ix) < 0 ||
	    idx_sync(ix) < 0 ||
	    steps->identify(steps->arg, &done.id, &foreign) < 0)
		return -1;
	if (foreign)
		return 0;	/* left dirty: the next run compares */
	done.flags &= ~IDX_FLAG_DIRTY;
	memset(&done.view, 0, sizeof(done.view));
	if (view)
		done.view = *view;
	/* The header is the commit point, and its name must last too. */
	if (idx_write_header(ix, &done) < 0 ||
	    steps->sync_index_dir(steps->arg) < 0)
		return -1;
	*clean = true;
	return 0;
}
