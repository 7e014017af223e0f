/*
 * tar.c - a regular-file entry of a tar archive (plain, gzip, zstd, xz,
 * bzip2; ustar, pax, GNU; sparse or not) read as a raw image, through
 * libarchive, from the archive's container.
 *
 * Design notes
 * - The archive is a stream: libarchive hands out an entry's data blocks
 *   in increasing offset order, once.  So the format is sequential
 *   (vs_format_ops.sequential: one reader thread), and read() keeps a
 *   cursor: bytes before a read that no read asked for are dropped, and a
 *   read behind the cursor is refused as an internal error.  Bytes no
 *   block holds (the holes of a sparse entry) read as zeros.
 * - The map: libarchive reads an entry's sparse map with its header, for
 *   every sparse layout (old GNU, pax 0.x, and pax 1.0, whose map sits at
 *   the start of the data but is parsed by archive_read_next_header()), so
 *   the map is the entry's sparse map: its runs DATA, the rest ZERO.  An
 *   entry without one maps as DATA everywhere, and the engine's zero
 *   detection makes holes of its zero blocks.  The map is checked first:
 *   runs in order, not overlapping, inside the declared size.  libarchive
 *   keeps only the runs it finds sane in the entry's map, but hands out
 *   data blocks by its own copy (an entry whose runs all went past its
 *   size looks unsparse): so vs_tar_scan() also reads every entry's
 *   blocks through, before anything is written, and every block (then
 *   and when read) must lie inside the size and in a run of the checked
 *   map, after the one before.  A sparse map holds at most
 *   VS_TAR_MAX_RUNS runs.
 * - Names and sizes come from the archive and are not trusted: an entry is
 *   one regular file with a plain name (vs_tar_name_ok(): no "/", not "."
 *   or "..", so never a name outside the target directory, and never an
 *   index or another of vmsync's own names), its size at most
 *   VS_TAR_MAX_SIZE.  Nothing is allocated from a declared size: the map
 *   is as long as the archive made it.
 * - The archive is read through its vs_io (a file, or memory in the
 *   fuzzer) in FEED_BLOCK reads, whose pages are dropped once read.
 *   Compression runs in-process: no filter that needs an external program.
 *   gzip is inflated here, not by libarchive, whose gzip reader does not
 *   check the CRC and length trailer: a damaged .tar.gz would import
 *   damaged bytes.  zstd, xz and bzip2 check their own.
 * - An archive must end with tar's end-of-archive blocks (GNU tar, bsdtar
 *   and vmsync write them): libarchive takes a stream that stops after an
 *   entry as complete, and a .tar.zst is a run of frames, so a cut at a
 *   frame boundary between entries would pass.
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "tar.h"
#include "../archive_lib.h"
#include "../util.h"

#define FEED_BLOCK (1u << 20)	/* bytes of the archive per read */

/* The archive's bytes for libarchive: its container, from the start. */
struct feed {
	struct vs_io *io;	/* the container */
	uint64_t pos;		/* next byte to read */
	uint8_t *buf;		/* FEED_BLOCK bytes */
	bool failed;		/* a read failed (reported) */
	bool gz;		/* gzip, inflated here */
	z_stream z;		/* its inflate state, once gz */
	uint8_t *in;		/* FEED_BLOCK + 1 bytes of gzip input */
	bool z_end;		/* the last member ended */
	char why[128];		/* why the feed failed, or "" */
};

/* The reader of one archive: libarchive and what it reads from. */
struct rd {
	struct archive *a;	/* the libarchive reader */
	struct feed f;		/* its input */
	const char *name;	/* the archive, for messages */
	size_t count;		/* headers read so far */
};

/* Where an entry's data blocks have got to, to check each next one. */
struct blocks {
	const struct vs_extent_vec *runs; /* the sparse map, or NULL */
	uint64_t size;			/* the entry's size */
	uint64_t stream;		/* end of the last block */
	size_t k;			/* the run it was in */
};

struct tar {
	struct vs_image img;		/* base, first */
	struct rd rd;			/* the archive, at the entry */
	char *entry;			/* the entry's name */
	int64_t header;			/* its header's offset */
	bool sparse;			/* @runs is its map */
	struct vs_extent_vec runs;	/* its data runs, in order */
	const uint8_t *blk;		/* the data block read last ... */
	uint64_t boff;			/* ... its offset in the entry */
	size_t blen;			/* ... its bytes not yet passed */
	struct blocks b;		/* where the blocks have got to */
	uint64_t cursor;		/* reads start here or later */
	bool eof;			/* no data block follows */
	bool failed;			/* a read failed: so do later ones */
};

/* Is the file of @f now shorter than @end?  A file reads as zeros past
 * its end (io.c), which would be fed as the archive's bytes. */
static bool
cut_short(const struct feed *f, uint64_t end)
{
	struct stat st;

	return f->io->fd >= 0 && fstat(f->io->fd, &st) == 0 &&
	    S_ISREG(st.st_mode) && (uint64_t)st.st_size < end;
}

/* Read the next bytes of the container into @dst (FEED_BLOCK bytes): how
 * many, 0 at its end, -1 on failure (reported, or in f->why). */
static la_ssize_t
feed_raw(struct archive *a, struct feed *f, uint8_t *dst)
{
	size_t n = (size_t)(f->pos < f->io->size ?
	    vs_min(FEED_BLOCK, f->io->size - f->pos) : 0);

	if (n && f->io->ops->pread(f->io, dst, n, f->pos) < 0) {
		f->failed = true;
		archive_set_error(a, EIO, "read error");
		return -1;
	}
	/* Checked after the read: what it read was there. */
	if (n && cut_short(f, f->pos + n)) {
		snprintf(f->why, sizeof(f->why), "the archive was cut short "
		    "while it was read (at offset %llu of %llu bytes)",
		    (unsigned long long)f->pos,
		    (unsigned long long)f->io->size);
		archive_set_error(a, EIO, "%s", f->why);
		return -1;
	}
	if (n && f->io->ops->drop_cache)
		f->io->ops->drop_cache(f->io, f->pos, n);
	f->pos += n;
	return (la_ssize_t)n;
}

/* The next inflated bytes of a gzip container (members one after the
 * other; bytes after the last one that start no member are ignored, as
 * gzip does with padding). */
static la_ssize_t
feed_gunzip(struct archive *a, struct feed *f)
{
	z_stream *z = &f->z;
	int rc;

	z->next_out = f->buf;
	z->avail_out = FEED_BLOCK;
	while (z->avail_out == FEED_BLOCK && !f->z_end) {
		if (z->avail_in == 0) {
			la_ssize_t n = feed_raw(a, f, f->in);

			if (n < 0)
				return -1;
			if (n == 0) {
				snprintf(f->why, sizeof(f->why),
				    "gzip: truncated");
				archive_set_error(a, EIO, "%s", f->why);
				return -1;
			}
			z->next_in = f->in;
			z->avail_in = (uInt)n;
		}
		rc = inflate(z, Z_NO_FLUSH);
		if (rc == Z_STREAM_END) {
			/* Another member?  Its magic may straddle a read. */
			if (z->avail_in < 2 && f->pos < f->io->size) {
				size_t keep = z->avail_in;
				la_ssize_t n;

				if (keep)
					f->in[0] = z->next_in[0];
				if ((n = feed_raw(a, f, f->in + keep)) < 0)
					return -1;
				z->next_in = f->in;
				z->avail_in = (uInt)(keep + (size_t)n);
			}
			if (z->avail_in >= 2 && z->next_in[0] == 0x1f &&
			    z->next_in[1] == 0x8b)
				inflateReset(z);
			else
				f->z_end = true;
		} else if (rc != Z_OK && rc != Z_BUF_ERROR) {
			snprintf(f->why, sizeof(f->why), "gzip: %s",
			    z->msg ? z->msg : "invalid data");
			archive_set_error(a, EIO, "%s", f->why);
			return -1;
		}
	}
	return (la_ssize_t)(FEED_BLOCK - z->avail_out);
}

static la_ssize_t
feed_read(struct archive *a, void *arg, const void **out)
{
	struct feed *f = arg;

	*out = f->buf;
	return f->gz ? feed_gunzip(a, f) : feed_raw(a, f, f->buf);
}

/* Skipping reads nothing; past the end it stops there, and libarchive
 * sees a truncated archive. */
static la_int64_t
feed_skip(struct archive *a, void *arg, la_int64_t req)
{
	struct feed *f = arg;
	uint64_t left = f->pos < f->io->size ? f->io->size - f->pos : 0;
	uint64_t n = req > 0 ? vs_min((uint64_t)req, left) : 0;

	(void)a;
	if (f->gz)
		return 0;	/* libarchive reads through instead */
	f->pos += n;
	return (la_int64_t)n;
}

/* libarchive's error on the archive, about the entry @entry (NULL: none
 * known) whose header is at @off, as the one line. */
static void
rd_fail(struct rd *r, const char *entry, int64_t off, const char *what)
{
	const char *s = r->f.why[0] ? r->f.why : archive_error_string(r->a);

	if (r->f.failed)
		return;		/* the container said why */
	if (entry)
		vs_err(VS_EXIT_SOURCE, r->name, "entry '%s' at offset %lld: "
		    "%s%s%s", entry, (long long)off, what, what[0] ? ": " : "",
		    s ? s : "damaged archive");
	else
		vs_err(VS_EXIT_SOURCE, r->name, "entry %zu at offset %lld: "
		    "%s%s%s", r->count + 1, (long long)off, what,
		    what[0] ? ": " : "", s ? s : "damaged archive");
}

/* One line about the entry @e of @r: @fmt says what is wrong. */
static void __attribute__((format(printf, 3, 4)))
bad_entry(struct rd *r, struct archive_entry *e, const char *fmt, ...)
{
	const char *name = archive_entry_pathname(e);
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	vs_err(VS_EXIT_SOURCE, r->name, "entry '%s' at offset %lld: %s",
	    name ? name : "", (long long)archive_read_header_position(r->a),
	    why);
}

/* A gzip container: inflated by the feed. */
static int
gz_start(struct rd *r)
{
	uint8_t magic[2];

	if (r->f.io->size < 2 ||
	    r->f.io->ops->pread(r->f.io, magic, 2, 0) < 0 ||
	    magic[0] != 0x1f || magic[1] != 0x8b)
		return 0;
	if (!(r->f.in = malloc(FEED_BLOCK + 1))) {
		vs_errno(VS_EXIT_INTERNAL, r->name, "archive");
		return -1;
	}
	/* 15 + 16: a gzip wrapper, whose CRC and length inflate checks. */
	if (inflateInit2(&r->f.z, 15 + 16) != Z_OK) {
		vs_err(VS_EXIT_INTERNAL, r->name, "inflateInit2 failed");
		return -1;
	}
	r->f.gz = true;
	return 0;
}

static int
rd_open(struct rd *r, struct vs_io *io)
{
	memset(r, 0, sizeof(*r));
	r->name = io->name;
	r->f.io = io;
	if (!(r->f.buf = malloc(FEED_BLOCK))) {
		vs_errno(VS_EXIT_INTERNAL, io->name, "archive");
		return -1;
	}
	if (!(r->a = archive_read_new())) {
		vs_libarchive_failed(VS_EXIT_SOURCE, io->name);
		return -1;
	}
	if (gz_start(r) < 0)
		return -1;
	/* In-process decoders only; ARCHIVE_WARN would mean a program. */
	if (archive_read_support_format_tar(r->a) != ARCHIVE_OK ||
	    archive_read_support_filter_zstd(r->a) != ARCHIVE_OK ||
	    archive_read_support_filter_xz(r->a) != ARCHIVE_OK ||
	    archive_read_support_filter_bzip2(r->a) != ARCHIVE_OK ||
	    archive_read_set_read_callback(r->a, feed_read) != ARCHIVE_OK ||
	    archive_read_set_skip_callback(r->a, feed_skip) != ARCHIVE_OK ||
	    archive_read_set_callback_data(r->a, &r->f) != ARCHIVE_OK ||
	    archive_read_open1(r->a) != ARCHIVE_OK) {
		rd_fail(r, NULL, 0, "cannot read the archive");
		return -1;
	}
	return 0;
}

static void
rd_close(struct rd *r)
{
	if (r->a)
		archive_read_free(r->a);
	if (r->f.gz)
		inflateEnd(&r->f.z);
	free(r->f.buf);
	free(r->f.in);
	r->a = NULL;
	r->f.buf = NULL;
	r->f.in = NULL;
	r->f.gz = false;
}

/* The next header into *@e: 1, or 0 after the last, or -1 (reported). */
static int
rd_next(struct rd *r, struct archive_entry **e)
{
	int rc = archive_read_next_header(r->a, e);

	if (rc == ARCHIVE_EOF)
		return 0;
	/* WARN: something was wrong in a header libarchive read past. */
	/* Where the reader stopped: at or in the header it could not
	 * read. */
	if (rc != ARCHIVE_OK) {
		rd_fail(r, NULL, archive_filter_bytes(r->a, 0),
		    "damaged archive");
		return -1;
	}
	r->count++;
	return 1;
}

bool
vs_tar_name_ok(const char *name)
{
	static const char *const own[] = { ".vmsync-index",
	    VS_TAR_DELTA_SUFFIX };
	size_t n = name ? strlen(name) : 0;

	if (!n || strchr(name, '/') || strcmp(name, ".") == 0 ||
	    strcmp(name, "..") == 0 || strncmp(name, ".vmsync", 7) == 0)
		return false;
	for (size_t i = 0; i < sizeof(own) / sizeof(*own); i++) {
		size_t t = strlen(own[i]);

		if (n >= t && strcmp(name + n - t, own[i]) == 0)
			return false;
	}
	return true;
}

/* The entry's sparse map into @runs (reset first; empty if it has none),
 * checked against its size @size. */
static int
entry_map(struct rd *r, struct archive_entry *e, uint64_t size,
    struct vs_extent_vec *runs)
{
	la_int64_t off, len;
	uint64_t end = 0;

	vs_extent_vec_reset(runs);
	if (archive_entry_sparse_reset(e) == 0)
		return 0;
	while (archive_entry_sparse_next(e, &off, &len) == ARCHIVE_OK) {
		if (off < 0 || len < 0 || (uint64_t)off > size ||
		    (uint64_t)len > size - (uint64_t)off) {
			bad_entry(r, e, "sparse map: run of %lld bytes at "
			    "%lld exceeds the size %llu", (long long)len,
			    (long long)off, (unsigned long long)size);
			return -1;
		}
		if ((uint64_t)off < end) {
			bad_entry(r, e, "sparse map: runs overlap or are out "
			    "of order at %lld", (long long)off);
			return -1;
		}
		end = (uint64_t)off + (uint64_t)len;
		if (len && runs->n >= VS_TAR_MAX_RUNS) {
			bad_entry(r, e, "sparse map: more than %u runs",
			    VS_TAR_MAX_RUNS);
			return -1;
		}
		if (len && vs_extent_add(runs, (uint64_t)off, (uint64_t)len,
		    VS_EXT_DATA) < 0) {
			vs_errno(VS_EXIT_INTERNAL, r->name, "sparse map");
			return -1;
		}
	}
	return 0;
}

/* Check the entry just read: one regular file of a plain name and a
 * possible size and map (into @runs). */
static int
check_entry(struct rd *r, struct archive_entry *e, struct vs_extent_vec *runs)
{
	const char *name = archive_entry_pathname(e);
	la_int64_t size = archive_entry_size(e);

	if (!vs_tar_name_ok(name)) {
		bad_entry(r, e, "%s", !name || !name[0] ? "no name" :
		    "not a plain file name (a path, or a name of vmsync's "
		    "own files)");
		return -1;
	}
	if (archive_entry_filetype(e) != AE_IFREG ||
	    archive_entry_hardlink(e) || archive_entry_symlink(e)) {
		bad_entry(r, e, "not a regular file");
		return -1;
	}
	if (!archive_entry_size_is_set(e) || size < 0 ||
	    (uint64_t)size > VS_TAR_MAX_SIZE) {
		bad_entry(r, e, "declared size %lld is out of range",
		    (long long)size);
		return -1;
	}
	return entry_map(r, e, (uint64_t)size, runs);
}

/* Is the data block [off, off + n) the next one it can be: after the
 * last, inside the size and inside a run of the sparse map?  Else why
 * not.  libarchive hands out the blocks its own copy of the map says,
 * and keeps no map it finds wrong in the entry's: a block outside that
 * one is a map that overlaps or runs past the size. */
static const char *
block_check(struct blocks *b, la_int64_t off, size_t n)
{
	uint64_t o = (uint64_t)off;

	if (off < 0 || o < b->stream)
		return "data blocks overlap or are out of order";
	if (o > b->size || n > b->size - o)
		return "data past the size";
	b->stream = o + n;
	if (!b->runs || n == 0)
		return NULL;
	while (b->k < b->runs->n && b->runs->v[b->k].off +
	    b->runs->v[b->k].len <= o)
		b->k++;
	if (b->k == b->runs->n || b->runs->v[b->k].off > o ||
	    o + n > b->runs->v[b->k].off + b->runs->v[b->k].len)
		return "data outside the sparse map (its runs overlap or "
		    "exceed the size)";
	return NULL;
}

/* Read the data blocks of an entry through, checking each against its
 * sparse map @runs (NULL: none) and its size. */
static int
check_blocks(struct rd *r, struct archive_entry *e,
    const struct vs_extent_vec *runs)
{
	struct blocks b = { .runs = runs, .size = (uint64_t)
	    archive_entry_size(e) };
	const char *why;
	const void *p;
	size_t n;
	la_int64_t off;
	int rc;

	while ((rc = archive_read_data_block(r->a, &p, &n, &off)) ==
	    ARCHIVE_OK) {
		if ((why = block_check(&b, off, n))) {
			bad_entry(r, e, "sparse map: %s at %lld", why,
			    (long long)off);
			return -1;
		}
	}
	if (rc != ARCHIVE_EOF) {
		rd_fail(r, archive_entry_pathname(e),
		    archive_read_header_position(r->a), "");
		return -1;
	}
	return 0;
}

void
vs_tar_entries_free(struct vs_tar_entry *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i].name);
	free(v);
}

static int
add_entry(struct vs_tar_entry **v, size_t *n, struct rd *r,
    struct archive_entry *e)
{
	struct vs_tar_entry *nv;

	if (*n >= VS_TAR_MAX_ENTRIES) {
		bad_entry(r, e, "more than %d entries", VS_TAR_MAX_ENTRIES);
		return -1;
	}
	/* Two files for one target: which one would win is not ours to
	 * guess. */
	for (size_t i = 0; i < *n; i++)
		if (strcmp((*v)[i].name, archive_entry_pathname(e)) == 0) {
			bad_entry(r, e, "a second file of that name (the "
			    "first at offset %lld)", (long long)(*v)[i].header);
			return -1;
		}
	if (!(nv = realloc(*v, (*n + 1) * sizeof(**v)))) {
		vs_errno(VS_EXIT_INTERNAL, r->name, "entries");
		return -1;
	}
	*v = nv;
	nv[*n] = (struct vs_tar_entry){
		.name = strdup(archive_entry_pathname(e)),
		.size = (uint64_t)archive_entry_size(e),
		.header = archive_read_header_position(r->a),
	};
	if (!nv[*n].name) {
		vs_errno(VS_EXIT_INTERNAL, r->name, "entries");
		return -1;
	}
	(*n)++;
	return 0;
}

/* Inflate a gzip container to its end after the archive's last block,
 * which libarchive does not read: its CRC and length trailer are checked
 * too, and a cut one is a truncated archive. */
static int
drain_gzip(struct rd *r)
{
	la_ssize_t n;

	while (r->f.gz && (n = feed_gunzip(r->a, &r->f)) != 0)
		if (n < 0) {
			if (!r->f.failed)
				vs_err(VS_EXIT_SOURCE, r->name, "offset %llu "
				    "of the gzip stream, after the last "
				    "entry: %s", (unsigned long long)r->f.pos,
				    r->f.why);
			return -1;
		}
	return 0;
}

/* Did the archive stop after the data at @data_end (the last entry's),
 * without its end-of-archive blocks?  libarchive takes that as the end,
 * but a cut there (between entries, or between the frames of a .tar.zst)
 * would drop the entries after it unnoticed: refused, reported. */
static bool
end_missing(struct rd *r, int64_t data_end)
{
	int64_t end = archive_filter_bytes(r->a, 0);

	if (end - data_end >= 512)
		return false;
	vs_err(VS_EXIT_SOURCE, r->name, "offset %lld of the tar stream, after "
	    "entry %zu: the archive ends without its end-of-archive blocks "
	    "(cut short?)", (long long)end, r->count);
	return true;
}

struct vs_tar_reader {
	struct rd rd;		/* the archive */
	struct vs_io *io;	/* its file */
};

int
vs_tar_reader_open(struct vs_io *io, struct vs_tar_reader **out,
    struct archive **a)
{
	struct vs_tar_reader *t = calloc(1, sizeof(*t));

	*out = NULL;
	if (!t) {
		vs_errno(VS_EXIT_INTERNAL, io->name, "archive");
		vs_io_close(io);
		return -1;
	}
	t->io = io;
	if (rd_open(&t->rd, t->io) < 0) {
		vs_tar_reader_close(t);
		return -1;
	}
	*a = t->rd.a;
	*out = t;
	return 0;
}

int
vs_tar_reader_end(struct vs_tar_reader *t)
{
	return drain_gzip(&t->rd);
}

void
vs_tar_reader_close(struct vs_tar_reader *t)
{
	if (!t)
		return;
	rd_close(&t->rd);
	if (t->io)
		vs_io_close(t->io);
	free(t);
}

/* Does the entry name @name mark an incremental archive? */
static bool
is_delta(const char *name)
{
	size_t n = name ? strlen(name) : 0, s = strlen(VS_TAR_DELTA_SUFFIX);

	return n > s && strcmp(name + n - s, VS_TAR_DELTA_SUFFIX) == 0;
}

int
vs_tar_probe(struct vs_io *io)
{
	struct rd r;
	int rc = rd_open(&r, io);

	rd_close(&r);
	return rc;
}

int
vs_tar_scan(struct vs_io *io, struct vs_tar_entry **out, size_t *n,
    bool *delta)
{
	struct vs_extent_vec runs = { 0 };
	struct archive_entry *e;
	struct rd r;
	int64_t data_end = 0;
	int rc;

	*out = NULL;
	*n = 0;
	*delta = false;
	if (rd_open(&r, io) < 0)
		goto fail;
	while ((rc = rd_next(&r, &e)) > 0) {
		if (r.count == 1 && is_delta(archive_entry_pathname(e))) {
			*delta = true;
			break;
		}
		if (check_entry(&r, e, &runs) < 0 ||
		    add_entry(out, n, &r, e) < 0)
			goto fail;
		if (check_blocks(&r, e, archive_entry_sparse_count(e) > 0 ?
		    &runs : NULL) < 0)
			goto fail;
		data_end = archive_filter_bytes(r.a, 0);
	}
	if (rc < 0 || (rc == 0 && drain_gzip(&r) < 0))
		goto fail;
	if (rc == 0 && *n && end_missing(&r, data_end))
		goto fail;
	if (!*delta && *n == 0) {
		vs_err(VS_EXIT_SOURCE, io->name, "the archive holds no file");
		goto fail;
	}
	rd_close(&r);
	vs_extent_vec_free(&runs);
	return 0;
fail:
	rd_close(&r);
	vs_extent_vec_free(&runs);
	vs_tar_entries_free(*out, *n);
	*out = NULL;
	*n = 0;
	return -1;
}

/* One line about the data of the entry at entry offset @off. */
static int
data_fail(struct tar *t, uint64_t off, const char *why)
{
	t->failed = true;
	if (why)
		vs_err(VS_EXIT_SOURCE, t->rd.name, "entry '%s' at offset "
		    "%lld: data at %llu: %s", t->entry, (long long)t->header,
		    (unsigned long long)off, why);
	else
		rd_fail(&t->rd, t->entry, t->header, "");
	return -1;
}

/* The next data block of the entry into t->blk; t->eof after the last. */
static int
next_block(struct tar *t)
{
	const void *b;
	size_t n;
	la_int64_t off;
	const char *why;
	int rc = archive_read_data_block(t->rd.a, &b, &n, &off);

	if (rc == ARCHIVE_EOF) {
		t->eof = true;
		t->blen = 0;
		return 0;
	}
	if (rc != ARCHIVE_OK)
		return data_fail(t, t->b.stream, NULL);
	if ((why = block_check(&t->b, off, n)))
		return data_fail(t, off < 0 ? 0 : (uint64_t)off, why);
	t->blk = b;
	t->boff = (uint64_t)off;
	t->blen = n;
	return 0;
}

/* Read [off, off + len): the data blocks' bytes there, zeros elsewhere.
 * The blocks before @off are passed over. */
static int
tar_read(struct vs_image *img, void *buf, size_t len, uint64_t off)
{
	struct tar *t = (struct tar *)img;
	uint64_t end = off + len;

	if (t->failed)
		return -1;
	if (off < t->cursor || end < off || end > img->size) {
		t->failed = true;
		vs_err(VS_EXIT_INTERNAL, t->rd.name, "entry '%s': read of %zu "
		    "bytes at %llu behind the stream at %llu", t->entry, len,
		    (unsigned long long)off, (unsigned long long)t->cursor);
		return -1;
	}
	memset(buf, 0, len);
	for (;;) {
		uint64_t a, b;

		if (t->blen == 0 || t->boff + t->blen <= off) {
			t->blen = 0;
			if (t->eof)
				break;
			if (vs_interrupted)
				return -1;
			if (next_block(t) < 0)
				return -1;
			continue;
		}
		if (t->boff >= end)
			break;		/* for a later read */
		a = vs_max(t->boff, off);
		b = vs_min(t->boff + t->blen, end);
		memcpy((uint8_t *)buf + (a - off), t->blk + (a - t->boff),
		    b - a);
		if (t->boff + t->blen > end)
			break;		/* the rest for a later read */
		t->blen = 0;
	}
	t->cursor = end;
	return 0;
}

/* The map: the sparse map's runs DATA, the rest ZERO; all DATA without a
 * sparse map. */
static int
tar_map(struct vs_image *img, uint64_t off, uint64_t len,
    struct vs_extent_vec *out)
{
	struct tar *t = (struct tar *)img;
	uint64_t end = off + len, pos = off;
	size_t lo = 0, hi = t->runs.n;

	if (!t->sparse)
		goto data;
	/* The first run that ends after @off. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (t->runs.v[mid].off + t->runs.v[mid].len <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i < t->runs.n && pos < end; i++) {
		const struct vs_extent *r = &t->runs.v[i];
		uint64_t a = vs_max(r->off, pos), b = vs_min(r->off + r->len,
		    end);

		if (a >= end)
			break;
		if (a > pos && vs_extent_add(out, pos, a - pos, VS_EXT_ZERO))
			goto nomem;
		if (vs_extent_add(out, a, b - a, VS_EXT_DATA))
			goto nomem;
		pos = b;
	}
	if (pos < end && vs_extent_add(out, pos, end - pos, VS_EXT_ZERO))
		goto nomem;
	return 0;
data:
	if (vs_extent_add(out, off, len, VS_EXT_DATA) == 0)
		return 0;
nomem:
	vs_errno(VS_EXIT_INTERNAL, img->name, "extent map");
	return -1;
}

static void
tar_close(struct vs_image *img)
{
	struct tar *t = (struct tar *)img;

	rd_close(&t->rd);
	vs_extent_vec_free(&t->runs);
	free(t->entry);
	free((char *)t->img.name);
	vs_io_close(t->img.io);
	free(t);
}

/* Never chosen by content: only an archive source opens it. */
static bool
tar_probe(const uint8_t *head, size_t len)
{
	(void)head, (void)len;
	return false;
}

static int
tar_open_io(struct vs_io *io, const struct vs_chain *chain,
    struct vs_image **out)
{
	(void)chain, (void)out;
	vs_err(VS_EXIT_SOURCE, io->name, "an archive is imported by its name");
	vs_io_close(io);
	return -1;
}

int
vs_tar_open(struct vs_io *io, size_t index, const char *name,
    struct vs_image **out, uint32_t *mode, int64_t *mtime_sec,
    int64_t *mtime_nsec)
{
	struct tar *t = calloc(1, sizeof(*t));
	struct archive_entry *e = NULL;
	int rc = 0;

	if (!t || !(t->img.name = strdup(name))) {
		vs_errno(VS_EXIT_INTERNAL, io->name, "archive");
		free(t);
		vs_io_close(io);
		return -1;
	}
	t->img.ops = &vs_format_tar;
	t->img.io = io;
	if (rd_open(&t->rd, io) < 0)
		goto fail;
	while (t->rd.count <= index && (rc = rd_next(&t->rd, &e)) > 0)
		;
	if (rc < 0)
		goto fail;
	if (rc == 0) {
		vs_err(VS_EXIT_SOURCE, io->name, "entry %zu is gone: the "
		    "archive changed", index + 1);
		goto fail;
	}
	/* Checked again: the archive may have changed since it was listed. */
	if (check_entry(&t->rd, e, &t->runs) < 0)
		goto fail;
	if (!(t->entry = strdup(archive_entry_pathname(e)))) {
		vs_errno(VS_EXIT_INTERNAL, io->name, "archive");
		goto fail;
	}
	t->header = archive_read_header_position(t->rd.a);
	t->img.size = (uint64_t)archive_entry_size(e);
	t->sparse = archive_entry_sparse_count(e) > 0;
	t->b = (struct blocks){ .runs = t->sparse ? &t->runs : NULL,
	    .size = t->img.size };
	*mode = archive_entry_perm(e);
	*mtime_sec = archive_entry_mtime(e);
	*mtime_nsec = archive_entry_mtime_nsec(e);
	*out = &t->img;
	return 0;
fail:
	tar_close(&t->img);
	return -1;
}

const struct vs_format_ops vs_format_tar = {
	.name = "tar",
	.probe = tar_probe,
	.open = tar_open_io,
	.close = tar_close,
	.map = tar_map,
	.read = tar_read,
	.sequential = true,
};
