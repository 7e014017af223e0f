/*
 * physmap.c - FIEMAP extents of a file, one span at a time.
 */
#include <errno.h>
#include <linux/fiemap.h>
#include <sys/stat.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "physmap.h"
#include "util.h"
#include "vmsync.h"

/* Extents fetched per ioctl, and kept per file. */
#define PHYS_BATCH 512
#define PHYS_MAX_EXTENTS 16384
/* Bytes of the file mapped per refill, unless fragmentation stops it. */
#define PHYS_SPAN (1ull << 30)

/* Flags under which an extent's physical address does not tell its data. */
#define PHYS_INEXACT (FIEMAP_EXTENT_UNKNOWN | FIEMAP_EXTENT_DELALLOC | \
	FIEMAP_EXTENT_ENCODED | FIEMAP_EXTENT_DATA_ENCRYPTED | \
	FIEMAP_EXTENT_NOT_ALIGNED | FIEMAP_EXTENT_DATA_INLINE | \
	FIEMAP_EXTENT_DATA_TAIL)

struct phys_ext {
	uint64_t logical;	/* file offset */
	uint64_t len;		/* bytes */
	uint64_t physical;	/* disk address of @logical */
	uint32_t flags;		/* FIEMAP_EXTENT_* */
};

struct vs_physmap {
	int fd;				/* the file */
	const char *name;		/* for messages */
	uint64_t lo, hi;		/* the span the extents describe */
	struct phys_ext *ext;		/* its extents, in order */
	size_t n;			/* how many */
	struct fiemap *fm;		/* ioctl buffer */
};

int
vs_physmap_open(int fd, const char *name, struct vs_physmap **out)
{
	struct vs_physmap *m = calloc(1, sizeof(*m));

	if (!m || !(m->ext = malloc(PHYS_MAX_EXTENTS * sizeof(*m->ext))) ||
	    /* Zeroed: valgrind does not see the kernel fill the extents. */
	    !(m->fm = calloc(1, sizeof(*m->fm) +
	    PHYS_BATCH * sizeof(struct fiemap_extent)))) {
		vs_errno(VS_EXIT_INTERNAL, name, "extent map");
		vs_physmap_close(m);
		return -1;
	}
	m->fd = fd;
	m->name = name;
	*out = m;
	return 0;
}

void
vs_physmap_close(struct vs_physmap *m)
{
	if (!m)
		return;
	free(m->ext);
	free(m->fm);
	free(m);
}

/* Map [off, off + PHYS_SPAN), or less if the extents do not fit. */
static int
refill(struct vs_physmap *m, uint64_t off)
{
	uint64_t pos = off, end = off + PHYS_SPAN;
	bool last = false, full = false;

	m->n = 0;
	m->lo = off;
	while (pos < end && !last) {
		struct fiemap *fm = m->fm;

		if (m->n + PHYS_BATCH > PHYS_MAX_EXTENTS) {
			full = true;	/* extents were added: pos > off */
			break;
		}
		memset(fm, 0, sizeof(*fm));
		fm->fm_start = pos;
		fm->fm_length = end - pos;
		fm->fm_flags = FIEMAP_FLAG_SYNC;
		fm->fm_extent_count = PHYS_BATCH;
		if (ioctl(m->fd, FS_IOC_FIEMAP, fm) < 0) {
			vs_errno(VS_EXIT_SOURCE, m->name, "extent map (FIEMAP) "
			    "at offset %llu", (unsigned long long)pos);
			return -1;
		}
		if (fm->fm_mapped_extents == 0)
			break;
		for (uint32_t i = 0; i < fm->fm_mapped_extents; i++) {
			const struct fiemap_extent *fe = &fm->fm_extents[i];
			uint64_t fe_end = fe->fe_logical + fe->fe_length;

			if (fe_end <= pos || fe->fe_length == 0)
				continue;	/* overlap from a merged report */
			m->ext[m->n++] = (struct phys_ext){
				.logical = fe->fe_logical,
				.len = fe->fe_length,
				.physical = fe->fe_physical,
				.flags = fe->fe_flags,
			};
			pos = fe_end;
			last = fe->fe_flags & FIEMAP_EXTENT_LAST;
		}
		if (fm->fm_mapped_extents < PHYS_BATCH)
			break;		/* the span holds no more */
	}
	/* Past the last extent all is hole; stopped for room, the span
	 * ends where the extents do. */
	m->hi = last ? UINT64_MAX : full ? pos : end;
	return 0;
}

/* What lies at @off: a hole (*e NULL) or an extent, and for how long. */
static int
lookup(struct vs_physmap *m, uint64_t off, const struct phys_ext **e,
    uint64_t *len)
{
	size_t lo = 0, hi;

	if (off < m->lo || off >= m->hi)
		if (refill(m, off) < 0)
			return -1;
	hi = m->n;
	while (lo < hi) {		/* first extent ending after @off */
		size_t mid = (lo + hi) / 2;

		if (m->ext[mid].logical + m->ext[mid].len <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < m->n && m->ext[lo].logical <= off) {
		*e = &m->ext[lo];
		*len = (*e)->logical + (*e)->len - off;
	} else {
		*e = NULL;
		*len = (lo < m->n ? m->ext[lo].logical : m->hi) - off;
	}
	*len = vs_min(*len, m->hi - off);
	return 0;
}

int
vs_physmap_cmp(struct vs_physmap *a, struct vs_physmap *b, uint64_t off,
    uint64_t max, bool *same, uint64_t *n)
{
	const struct phys_ext *ea, *eb;
	uint64_t la, lb;

	if (lookup(a, off, &ea, &la) < 0 || lookup(b, off, &eb, &lb) < 0)
		return -1;
	*n = vs_min(max, vs_min(la, lb));
	if (!ea || !eb)
		*same = !ea && !eb;
	else
		*same = !((ea->flags | eb->flags) & PHYS_INEXACT) &&
		    ((ea->flags ^ eb->flags) & FIEMAP_EXTENT_UNWRITTEN) == 0 &&
		    ea->physical + (off - ea->logical) ==
		    eb->physical + (off - eb->logical);
	return 0;
}

int
vs_physmap_exclusive(int fd, const char *name, uint64_t *bytes)
{
	struct vs_physmap *m;
	struct stat st;
	uint64_t off = 0;
	int rc = 0;

	*bytes = 0;
	if (fstat(fd, &st) < 0) {
		vs_errno(VS_EXIT_SOURCE, name, "stat");
		return -1;
	}
	if (vs_physmap_open(fd, name, &m) < 0)
		return -1;
	while (off < (uint64_t)st.st_size) {
		if (refill(m, off) < 0) {
			rc = -1;
			break;
		}
		for (size_t i = 0; i < m->n; i++)
			if (!(m->ext[i].flags & FIEMAP_EXTENT_SHARED))
				*bytes += m->ext[i].len;
		if (m->hi == UINT64_MAX)
			break;
		off = m->hi;
	}
	vs_physmap_close(m);
	return rc;
}

#define UNWRITTEN_BATCH 32	/* extents asked for per ioctl */

int
vs_physmap_unwritten(int fd, uint64_t off, uint64_t len, uint64_t *uoff,
    uint64_t *ulen)
{
	union {
		struct fiemap fm;
		uint8_t space[sizeof(struct fiemap) +
		    UNWRITTEN_BATCH * sizeof(struct fiemap_extent)];
	} u;
	uint64_t pos = off, end = off + len;

	memset(&u, 0, sizeof(u));	/* as in vs_physmap_open() */
	while (pos < end) {
		struct fiemap *fm = &u.fm;
		uint32_t i;

		memset(fm, 0, sizeof(*fm));
		fm->fm_start = pos;
		fm->fm_length = end - pos;
		/* Written back first: ext4 reports data still in the page
		 * cache on an unwritten extent as unwritten, and a punch
		 * there drops that data. */
		fm->fm_flags = FIEMAP_FLAG_SYNC;
		fm->fm_extent_count = UNWRITTEN_BATCH;
		if (ioctl(fd, FS_IOC_FIEMAP, fm) < 0 || !fm->fm_mapped_extents)
			return 0;
		for (i = 0; i < fm->fm_mapped_extents; i++) {
			const struct fiemap_extent *x = &fm->fm_extents[i];
			uint64_t lo = vs_max(x->fe_logical, off);
			uint64_t hi = vs_min(x->fe_logical + x->fe_length, end);

			if ((x->fe_flags & FIEMAP_EXTENT_UNWRITTEN) && lo < hi) {
				*uoff = lo;
				*ulen = hi - lo;
				return 1;
			}
			if (x->fe_flags & FIEMAP_EXTENT_LAST)
				return 0;
		}
		i = fm->fm_mapped_extents - 1;
		if (fm->fm_extents[i].fe_logical + fm->fm_extents[i].fe_length <=
		    pos)
			return 0;	/* no progress: give up */
		pos = fm->fm_extents[i].fe_logical + fm->fm_extents[i].fe_length;
	}
	return 0;
}
