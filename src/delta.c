/*
 * delta.c - incremental archives (delta.h): applying one onto its base.
 *
 * Design notes
 * - The archive is untrusted.  It is read whole before anything is
 *   written: the text is parsed with strict bounds, DIR/NAME is checked to
 *   be the base (its digest, from its trusted index or by hashing it),
 *   the data runs are copied into an unlinked file beside it and checked
 *   (sorted, within the size, apart from the hole lines), and the archive
 *   must end there.  Only then is DIR/NAME touched.
 * - Applying is a sync through the local target ops (transport.h), whose
 *   source is DIR/NAME overlaid with the delta: the target's index says
 *   what every block holds, so only the blocks the delta touches are read,
 *   hashed, written (the target writes only the sectors that differ) or
 *   punched, and their entries recorded; the index stays trusted.  Where
 *   the index is not trusted every block is read and recorded, as a sync
 *   rebuilding an index does.
 * - A block that reads as zeros after the overlay is punched, as a sync
 *   punches a zero block.
 * - XXX: the data file holds the delta's data runs, at most the new size
 *   (a compressed archive of zeros expands into it).  DIR/NAME is checked
 *   again once locked for writing; if it changed in between, an index
 *   that opening created for it is left behind.
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive.h"
#include "cli.h"
#include "delta.h"
#include "delta_text.h"
#include "formats/tar.h"
#include "import.h"
#include "index.h"
#include "transport/transport.h"
#include "util.h"

#define APPLY_BLOCKS 1024u		/* target blocks per record() */
#define MAX_RUNS (1u << 19)		/* data runs of a delta read back:
					 * twice what an export writes */

/* One application: the archive read, the delta, where its data waits. */
struct apply {
	const struct vs_cli *cli;
	struct vs_tar_reader *rd;	/* the archive being read ... */
	struct archive *a;		/* ... by libarchive */
	const char *aname;		/* its name, for messages */
	struct vs_delta d;		/* the parsed text entry */
	char *path;			/* DIR/NAME */
	int fd;				/* DIR/NAME, read-only */
	struct stat st;			/* DIR/NAME when it was checked */
	int data_fd;			/* the delta's data runs, unlinked */
	struct vs_extent_vec runs;	/* where they are */
	int64_t mtime_sec;		/* SRC's time, from the entry */
	long mtime_nsec;
};

/* Is @n (may be NULL) the name of a delta's text entry? */
static bool
is_delta_name(const char *n)
{
	size_t len = n ? strlen(n) : 0, t = strlen(VS_DELTA_SUFFIX);

	return len > t && strcmp(n + len - t, VS_DELTA_SUFFIX) == 0;
}

/* A malformed archive: one line, exit 2. */
static int
bad(const struct apply *ap, const char *what)
{
	vs_err(VS_EXIT_SOURCE, ap->aname, "not a valid incremental archive: "
	    "%s", what);
	return -1;
}

/* libarchive's error reading the archive, at the offset of the tar
 * stream (uncompressed) where it stopped. */
static int
read_fail(const struct apply *ap, const char *what)
{
	const char *s = archive_error_string(ap->a);

	vs_err(VS_EXIT_SOURCE, ap->aname, "offset %lld: %s: %s",
	    (long long)archive_filter_bytes(ap->a, 0), what, s ? s :
	    "damaged archive");
	return -1;
}

/* The archive, read as an import reads one (a gzip CRC checked). */
static int
open_archive(struct apply *ap, const char *archive)
{
	struct vs_io *io;

	if (vs_import_open_io(archive, &io) < 0)
		return -1;
	return vs_tar_reader_open(io, &ap->rd, &ap->a);
}

/* The first entry: the text, parsed. */
static int
read_text(struct apply *ap)
{
	struct archive_entry *e;
	const char *n;
	char *buf = NULL;
	la_int64_t size;
	size_t got = 0;
	int ret = -1;

	if (archive_read_next_header(ap->a, &e) != ARCHIVE_OK)
		return read_fail(ap, "first entry");
	n = archive_entry_pathname(e);
	size = archive_entry_size(e);
	if (!is_delta_name(n) || archive_entry_filetype(e) != AE_IFREG)
		return bad(ap, "its first entry is not NAME" VS_DELTA_SUFFIX);
	if (size <= 0 || size > VS_DELTA_MAX_TEXT)
		return bad(ap, "the size of its first entry");
	if (!(buf = malloc((size_t)size + 1))) {
		vs_errno(VS_EXIT_INTERNAL, ap->aname, "buffer");
		return -1;
	}
	while (got < (size_t)size) {
		la_ssize_t r = archive_read_data(ap->a, buf + got,
		    (size_t)size - got);

		if (r < 0) {
			read_fail(ap, n);
			goto out;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	if (got != (size_t)size) {
		bad(ap, "its first entry is truncated");
		goto out;
	}
	if (vs_delta_parse(buf, got, &ap->d, ap->aname) < 0)
		goto out;
	if (strlen(n) != strlen(ap->d.name) + strlen(VS_DELTA_SUFFIX) ||
	    strncmp(n, ap->d.name, strlen(ap->d.name)) != 0) {
		bad(ap, "its first entry is not named after the image");
		goto out;
	}
	ret = 0;
out:
	free(buf);
	return ret;
}

/* Is DIR/NAME the base?  Checked before anything is written. */
static int
check_base(struct apply *ap, const char *dir)
{
	struct vs_index *ix = NULL;
	const struct idx_header *h;
	struct vs_hash got;
	uint64_t read = 0;
	int rc;

	if (!(ap->path = vs_path_join(dir, ap->d.name))) {
		vs_errno(VS_EXIT_INTERNAL, dir, "path");
		return -1;
	}
	if ((ap->fd = open(ap->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW |
	    O_NONBLOCK)) < 0 || fstat(ap->fd, &ap->st) < 0) {
		vs_errno(VS_EXIT_TARGET, ap->path, "no base to apply %s to; "
		    "nothing written", ap->aname);
		return -1;
	}
	if (!S_ISREG(ap->st.st_mode)) {
		vs_err(VS_EXIT_TARGET, ap->path, "not a regular file; nothing "
		    "written");
		return -1;
	}
	if ((uint64_t)ap->st.st_size != ap->d.base_size) {
		vs_err(VS_EXIT_TARGET, ap->path, "not the base of %s (%llu "
		    "bytes, the base has %llu); nothing written", ap->aname,
		    (unsigned long long)ap->st.st_size,
		    (unsigned long long)ap->d.base_size);
		return -1;
	}
	h = vs_delta_trusted(ap->path, &ap->st, &ix);
	rc = vs_delta_base_digest(ap->fd, ap->path, ap->d.base_size,
	    ap->d.block_size, ap->d.base_seed, ix, h, &got, &read);
	idx_close(ix);
	if (rc < 0)
		return -1;
	if (!vs_hash_eq(&got, &ap->d.base_digest)) {
		vs_err(VS_EXIT_TARGET, ap->path, "not the base of %s (its "
		    "contents differ); nothing written", ap->aname);
		return -1;
	}
	return 0;
}

/* A file beside DIR/NAME, already unlinked, for the delta's data. */
static int
open_data(struct apply *ap, const char *dir)
{
	char *tmp = NULL;

	ap->data_fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (ap->data_fd >= 0)
		return 0;
	if (asprintf(&tmp, "%s.delta-XXXXXX", ap->path) < 0) {
		vs_errno(VS_EXIT_INTERNAL, dir, "temporary file");
		return -1;
	}
	if ((ap->data_fd = mkostemp(tmp, O_CLOEXEC)) >= 0)
		unlink(tmp);
	else
		vs_errno(VS_EXIT_TARGET, tmp, "temporary file");
	free(tmp);
	return ap->data_fd < 0 ? -1 : 0;
}

/* Note the data run [off, off + len), after the ones before it. */
static int
add_data_run(struct apply *ap, uint64_t off, uint64_t len)
{
	struct vs_extent *last = ap->runs.n ? &ap->runs.v[ap->runs.n - 1] :
	    NULL;
	uint64_t end;

	if (__builtin_add_overflow(off, len, &end) || end > ap->d.size)
		return bad(ap, "data beyond the image's size");
	if (last && off < last->off + last->len)
		return bad(ap, "data runs out of order");
	if (ap->runs.n >= MAX_RUNS && !(last && off == last->off + last->len))
		return bad(ap, "too many data runs");
	if (vs_extent_add(&ap->runs, off, len, VS_EXT_DATA) < 0) {
		vs_errno(VS_EXIT_INTERNAL, ap->aname, "data runs");
		return -1;
	}
	return 0;
}

/* The second entry: NAME, SIZE bytes; its data runs into ap->data_fd. */
static int
read_data(struct apply *ap)
{
	struct archive_entry *e;
	const void *buf;
	size_t len;
	la_int64_t off;
	int r;

	if (archive_read_next_header(ap->a, &e) != ARCHIVE_OK)
		return read_fail(ap, "second entry");
	if (!archive_entry_pathname(e) ||
	    strcmp(archive_entry_pathname(e), ap->d.name) != 0 ||
	    archive_entry_filetype(e) != AE_IFREG ||
	    archive_entry_size(e) != (la_int64_t)ap->d.size)
		return bad(ap, "its second entry is not NAME of SIZE bytes");
	ap->mtime_sec = archive_entry_mtime(e);
	ap->mtime_nsec = archive_entry_mtime_nsec(e);
	while ((r = archive_read_data_block(ap->a, &buf, &len, &off)) ==
	    ARCHIVE_OK) {
		if (vs_interrupted) {
			vs_err(VS_EXIT_PARTIAL, ap->aname, "interrupted");
			return -1;
		}
		if (off < 0)
			return bad(ap, "a data run at a negative offset");
		if (!len)
			continue;
		if (add_data_run(ap, (uint64_t)off, len) < 0)
			return -1;
		if (vs_pwrite_full(ap->data_fd, buf, len, (uint64_t)off) < 0) {
			vs_errno(VS_EXIT_TARGET, ap->path, "temporary file");
			return -1;
		}
	}
	if (r != ARCHIVE_EOF)
		return read_fail(ap, ap->d.name);
	r = archive_read_next_header(ap->a, &e);
	if (r == ARCHIVE_OK)
		return bad(ap, "more than two entries");
	if (r != ARCHIVE_EOF)
		return read_fail(ap, "end");
	return vs_tar_reader_end(ap->rd);
}

/* Do the data runs keep out of the hole lines? */
static int
check_overlap(struct apply *ap)
{
	size_t k = 0;

	for (size_t i = 0; i < ap->d.holes.n; i++) {
		const struct vs_extent *h = &ap->d.holes.v[i];

		while (k < ap->runs.n && ap->runs.v[k].off +
		    ap->runs.v[k].len <= h->off)
			k++;
		if (k < ap->runs.n && ap->runs.v[k].off < h->off + h->len)
			return bad(ap, "a hole line overlaps a data run");
	}
	return 0;
}

/* Has DIR/NAME changed since it was checked? */
static int
still_base(struct apply *ap)
{
	struct stat now;

	if (fstat(ap->fd, &now) < 0 || now.st_size != ap->st.st_size ||
	    vs_timespec_cmp(&now.st_mtim, &ap->st.st_mtim) != 0 ||
	    vs_timespec_cmp(&now.st_ctim, &ap->st.st_ctim) != 0) {
		vs_err(VS_EXIT_TARGET, ap->path, "changed while the delta was "
		    "read; nothing written");
		return -1;
	}
	return 0;
}

/* Lay the extents of @v (sorted; *@k: the first that may meet the block)
 * over the block @buf of [off, off + len): the delta's data read back from
 * the data file, or zeros for hole lines (@zero). */
static int
overlay(struct apply *ap, const struct vs_extent_vec *v, size_t *k,
    uint8_t *buf, uint64_t off, uint64_t len, bool zero)
{
	while (*k < v->n && v->v[*k].off + v->v[*k].len <= off)
		(*k)++;
	for (size_t i = *k; i < v->n && v->v[i].off < off + len; i++) {
		uint64_t a = vs_max(v->v[i].off, off);
		uint64_t b = vs_min(v->v[i].off + v->v[i].len, off + len);

		if (zero) {
			memset(buf + (a - off), 0, b - a);
		} else if (vs_pread_full(ap->data_fd, buf + (a - off), b - a,
		    a) != (ssize_t)(b - a)) {
			vs_errno(VS_EXIT_TARGET, ap->path, "temporary file");
			return -1;
		}
	}
	return 0;
}

/* Does [off, off + len) meet an extent of @v at or after *@k? */
static bool
meets(const struct vs_extent_vec *v, size_t k, uint64_t off, uint64_t len)
{
	while (k < v->n && v->v[k].off + v->v[k].len <= off)
		k++;
	return k < v->n && v->v[k].off < off + len;
}

/* Punch the pending run of zero blocks, if any. */
static int
flush_punch(struct vs_target *t, uint64_t *off, uint64_t *len)
{
	int rc = *len ? t->ops->punch(t, *off, *len) : 0;

	*len = 0;
	return rc;
}

/* Block [off, off + len) becomes zeros: join the pending punch. */
static int
punch_later(struct vs_target *t, uint64_t *poff, uint64_t *plen,
    uint64_t off, uint64_t len)
{
	if (*plen && *poff + *plen == off) {
		*plen += len;
		return 0;
	}
	if (flush_punch(t, poff, plen) < 0)
		return -1;
	*poff = off;
	*plen = len;
	return 0;
}

/* Read block [off, off + len) of DIR/NAME into @buf and lay the delta
 * over it. */
static int
new_block(struct apply *ap, uint8_t *buf, uint64_t off, size_t len,
    size_t *kd, size_t *kh)
{
	ssize_t r = vs_pread_full(ap->fd, buf, len, off);

	if (r < 0) {
		vs_errno(VS_EXIT_TARGET, ap->path, "read at offset %llu",
		    (unsigned long long)off);
		return -1;
	}
	memset(buf + r, 0, len - (size_t)r);
	if (overlay(ap, &ap->runs, kd, buf, off, len, false) < 0 ||
	    overlay(ap, &ap->d.holes, kh, buf, off, len, true) < 0)
		return -1;
	return 0;
}

/* Blocks [first, first + n) of @bs bytes: the new contents of each the
 * delta touches (or whose entry is unknown), written or punched. */
static int
apply_blocks(struct apply *ap, struct vs_target *t, uint32_t bs,
    uint64_t seed, uint64_t first, size_t n, struct vs_hash *old,
    struct vs_hash *new, uint8_t *buf, size_t *kd, size_t *kh)
{
	uint64_t poff = 0, plen = 0;

	if (t->ops->summaries(t, first, n, old) < 0)
		return -1;
	/* Where the index is not trusted, every block is read. */
	if (vs_hash_eq(&old[0], &vs_hash_unknown))
		posix_fadvise(ap->fd, (off_t)(first * bs), (off_t)(n * bs),
		    POSIX_FADV_WILLNEED);
	for (size_t i = 0; i < n; i++) {
		uint64_t off = (first + i) * bs;
		size_t len = (size_t)vs_min(bs, ap->d.size - off);
		int rc;

		new[i] = old[i];
		if (!vs_hash_eq(&old[i], &vs_hash_unknown) &&
		    !meets(&ap->runs, *kd, off, len) &&
		    !meets(&ap->d.holes, *kh, off, len))
			continue;
		if (new_block(ap, buf, off, len, kd, kh) < 0)
			return -1;
		new[i] = vs_hash_hole;
		if (!vs_is_zero(buf, len))
			vs_hash_block(buf, len, seed, &new[i]);
		if (vs_hash_eq(&new[i], &old[i]))
			continue;
		if (vs_hash_eq(&new[i], &vs_hash_hole))
			rc = punch_later(t, &poff, &plen, off, len);
		else if ((rc = flush_punch(t, &poff, &plen)) == 0)
			rc = t->ops->write(t, buf, len, off);
		if (rc < 0)
			return -1;
	}
	if (flush_punch(t, &poff, &plen) < 0)
		return -1;
	return t->ops->record(t, first, n, old, new);
}

/* The sync of DIR/NAME overlaid with the delta, through the local target
 * ops: begin (the index dirty, the size set), the blocks, commit. */
static int
apply_target(struct apply *ap)
{
	struct vs_stats st = { .index_state = "-" };
	struct vs_target_opts topts = vs_cli_target_opts(ap->cli, &st);
	struct vs_target_info info = { 0 };
	struct vs_target *t = NULL;
	struct vs_hash *old = NULL, *new = NULL;
	uint8_t *buf = NULL;
	size_t kd = 0, kh = 0;
	int ret = -1;

	topts.src_mtime_sec = ap->mtime_sec;
	topts.src_mtime_nsec = ap->mtime_nsec;
	topts.src_mode = ap->st.st_mode;
	if (vs_local_open(ap->path, &topts, &t) < 0 || still_base(ap) < 0)
		goto out;
	t->src_format = t->recorded_format[0] ? t->recorded_format : NULL;
	if (t->ops->begin(t, ap->d.size, &info) < 0)
		goto out;
	vs_info(1, "%s: applying %s (index %s)", ap->path, ap->aname,
	    info.trusted ? "trusted: only the blocks it changes are read" :
	    "not trusted: every block is read");
	old = calloc(APPLY_BLOCKS, sizeof(*old));
	new = calloc(APPLY_BLOCKS, sizeof(*new));
	buf = malloc(info.block_size);
	if (!old || !new || !buf) {
		vs_errno(VS_EXIT_INTERNAL, ap->path, "buffers");
		goto out;
	}
	for (uint64_t b = 0, nb = idx_nblocks(ap->d.size, info.block_size);
	    b < nb; b += APPLY_BLOCKS) {
		if (vs_interrupted) {
			vs_err(VS_EXIT_PARTIAL, ap->path, "interrupted");
			goto out;
		}
		if (apply_blocks(ap, t, info.block_size, info.seed, b,
		    (size_t)vs_min(APPLY_BLOCKS, nb - b), old, new, buf, &kd,
		    &kh) < 0)
			goto out;
	}
	if (t->ops->commit(t, NULL) < 0)
		goto out;
	ret = 0;
out:
	if (t)
		t->ops->close(t);
	free(old);
	free(new);
	free(buf);
	return ret;
}

int
vs_delta_apply(const struct vs_cli *cli, const char *archive, const char *dir)
{
	struct apply ap = { .cli = cli, .aname = archive, .fd = -1,
	    .data_fd = -1 };
	int ret = -1;

	vs_err_reset();
	if (open_archive(&ap, archive) == 0 && read_text(&ap) == 0 &&
	    check_base(&ap, dir) == 0 && open_data(&ap, dir) == 0 &&
	    read_data(&ap) == 0 && check_overlap(&ap) == 0 &&
	    apply_target(&ap) == 0)
		ret = 0;
	vs_tar_reader_close(ap.rd);
	if (ap.fd >= 0)
		close(ap.fd);
	if (ap.data_fd >= 0)
		close(ap.data_fd);
	free(ap.path);
	vs_delta_free(&ap.d);
	vs_extent_vec_free(&ap.runs);
	if (ret == 0)
		return VS_EXIT_OK;
	return vs_err_first() != VS_EXIT_OK ? vs_err_first() :
	    VS_EXIT_INTERNAL;
}
