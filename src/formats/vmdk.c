/*
 * vmdk.c - check a vmdk image, and open the files it names, before qemu
 * reads it (nbd.c).
 *
 * Design notes
 * - qemu's vmdk driver opens every file a descriptor names, by name,
 *   relative to the descriptor, and it reads any file that is neither a
 *   sparse extent nor a recognised header as a descriptor.  A descriptor
 *   is a small text file that whoever writes the image controls, so
 *   qemu never sees the user's one: vmsync parses it (one line at a time,
 *   every number and name bounded, a line it does not understand
 *   refused), opens each extent file itself through the image's refs
 *   policy (refs.c: directly in the image's directory or beneath a
 *   --backing-dir, a regular file), and writes a new descriptor into a
 *   memfd naming those open files as /proc/self/fd/N in qemu's process.
 *   The descriptor it writes has no blank line before an extent line:
 *   qemu's sscanf skips newlines, so an extent after a blank line counts
 *   twice there.
 * - Only what qemu 7.2 reads as written is accepted: RW extents of type
 *   FLAT, VMFS (flat from offset 0) and SPARSE.  qemu skips RDONLY,
 *   NOACCESS and ZERO lines, which would make it read another disk than
 *   the descriptor describes: refused.
 * - A hosted sparse extent ("KDMV") whose capacity is 0 tells qemu to
 *   read the descriptor embedded in it instead, and to open the files that
 *   one names: refused, for the image itself and for every SPARSE
 *   extent.
 * - parentFileNameHint names a backing file, in a descriptor or in the
 *   descriptor embedded in a sparse image: its name is handed to nbd.c,
 *   which opens it under the same policy and gives it to qemu as a node.
 *   The descriptor vmsync writes names no parent.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "vmdk.h"
#include "../util.h"

#define DESC_MAGIC "# Disk DescriptorFile"
#define DESC_MAX (1u << 20)		/* qemu reads no more of one */
#define MAX_EXTENTS 2048		/* 4 TiB of 2 GiB extents */
#define MAX_NAME 511			/* qemu's own bound */
#define MAX_SECTORS (UINT64_C(1) << 50)	/* per extent and in all */
#define SPARSE_MAGIC "KDMV"
#define SPARSE_CAPACITY 12		/* u64 LE in the sparse header */
#define SPARSE_DESC_OFFSET 28		/* u64 LE, sectors: the embedded
					 * descriptor */
#define SPARSE_DESC_SIZE 36		/* u64 LE, sectors */

struct extent {
	bool sparse;		/* SPARSE, else flat (FLAT, VMFS) */
	uint64_t sectors;	/* its size, 512-byte sectors */
	uint64_t offset;	/* flat: sectors into the file */
	char *name;		/* as stored, in the descriptor's buffer */
};

struct desc {
	const struct vs_io *io;	/* the descriptor, for messages */
	bool embedded;		/* in a sparse image: extents are not read */
	char *text;		/* its bytes, NUL-terminated */
	unsigned line;		/* line being parsed, from 1 */
	char *create_type;	/* createType's value, or NULL */
	char *parent;		/* parentFileNameHint's value, or NULL */
	char *cid, *parent_cid;	/* CID, parentCID (hex), or NULL */
	struct extent *ext;	/* extent lines, in order */
	size_t n;		/* entries in ext */
	uint64_t sectors;	/* their sum */
};

static int
bad(const struct desc *d, const char *fmt, ...)
{
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	vs_err(VS_EXIT_SOURCE, d->io->name, "vmdk descriptor line %u: %s",
	    d->line, why);
	return -1;
}

static char *
skip_blanks(char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* A decimal number of at most @max at *@p (no sign), then blanks. */
static int
parse_number(char **p, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	char *s = *p;

	if (*s < '0' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (v > (max - (uint64_t)(*s - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	*p = skip_blanks(s);
	return 0;
}

/* A word of letters at *@p, NUL-terminated in place, then blanks. */
static char *
parse_word(char **p)
{
	char *s = *p, *w = s;

	while ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z'))
		s++;
	if (s == w || (*s && *s != ' ' && *s != '\t'))
		return NULL;
	if (*s)
		*s++ = 0;
	*p = skip_blanks(s);
	return w;
}

/* A "quoted" string at *@p, of 1..MAX_NAME bytes, unquoted in place. */
static char *
parse_quoted(char **p)
{
	char *s = *p, *end;

	if (*s != '"' || !(end = strchr(s + 1, '"')) || end == s + 1 ||
	    end - s - 1 > MAX_NAME)
		return NULL;
	*end = 0;
	*p = skip_blanks(end + 1);
	return s + 1;
}

/* ACCESS SECTORS TYPE "NAME" [OFFSET] */
static int
parse_extent(struct desc *d, char *p)
{
	struct extent e = { 0 };
	char *access, *type;
	bool has_offset;

	if (!(access = parse_word(&p)) || strcmp(access, "RW") != 0)
		return bad(d, "extent access '%s' is not read by qemu (RW "
		    "only)", access ? access : "?");
	if (parse_number(&p, MAX_SECTORS, &e.sectors) < 0 || e.sectors == 0)
		return bad(d, "bad extent size");
	if (!(type = parse_word(&p)))
		return bad(d, "bad extent type");
	if (strcmp(type, "SPARSE") != 0 && strcmp(type, "FLAT") != 0 &&
	    strcmp(type, "VMFS") != 0)
		return bad(d, "extent type '%.16s' is not supported (FLAT, "
		    "VMFS and SPARSE are)", type);
	if (!(e.name = parse_quoted(&p)))
		return bad(d, "bad extent file name");
	has_offset = *p != 0;
	if (has_offset && parse_number(&p, MAX_SECTORS, &e.offset) < 0)
		return bad(d, "bad extent offset");
	if (*p)
		return bad(d, "trailing characters after the extent");
	if (has_offset != (strcmp(type, "FLAT") == 0))
		return bad(d, has_offset ? "offset given for a %s extent" :
		    "no offset for a FLAT extent", type);
	e.sparse = strcmp(type, "SPARSE") == 0;
	if (d->n == MAX_EXTENTS)
		return bad(d, "more than %d extents", MAX_EXTENTS);
	if (e.sectors > MAX_SECTORS - d->sectors)
		return bad(d, "the extents add up to too large a disk");
	d->sectors += e.sectors;
	d->ext[d->n++] = e;
	return 0;
}

/* A content ID: 1 to 8 hex digits.  qemu compares an image's parentCID
 * with its backing file's CID, so both are kept. */
static int
parse_cid(struct desc *d, char **slot, char *v, const char *key)
{
	size_t n = strspn(v, "0123456789abcdefABCDEF");

	if (*slot || n == 0 || n > 8 || v[n])
		return bad(d, "bad %s", key);
	*slot = v;
	return 0;
}

/* key = value, value "quoted" for the keys that matter. */
static int
parse_setting(struct desc *d, char *p)
{
	char *eq = strchr(p, '='), *k = p, *v;
	char **slot = NULL;

	if (!eq)
		return bad(d, "not a setting, an extent or a comment");
	for (; k < eq; k++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVW"
		    "XYZ0123456789._ \t", *k))
			break;
	if (k < eq || eq == p)
		return bad(d, "not a setting, an extent or a comment");
	while (k > p && (k[-1] == ' ' || k[-1] == '\t'))
		k--;
	v = skip_blanks(eq + 1);
	if (((size_t)(k - p) == 3 && strncmp(p, "CID", 3) == 0) ||
	    ((size_t)(k - p) == 9 && strncmp(p, "parentCID", 9) == 0))
		return parse_cid(d, p[0] == 'C' ? &d->cid : &d->parent_cid, v,
		    p[0] == 'C' ? "CID" : "parentCID");
	if ((size_t)(k - p) == 10 && strncmp(p, "createType", 10) == 0)
		slot = &d->create_type;
	else if ((size_t)(k - p) == 18 &&
	    strncmp(p, "parentFileNameHint", 18) == 0)
		slot = &d->parent;
	if (!slot)
		return 0;
	if (*slot || !(*slot = parse_quoted(&v)) || *v)
		return bad(d, "bad %.*s", (int)(k - p), p);
	return 0;
}

static bool
is_extent_line(const char *p)
{
	static const char *const access[] = { "RW", "RDONLY", "NOACCESS" };

	for (size_t i = 0; i < sizeof(access) / sizeof(*access); i++) {
		size_t n = strlen(access[i]);

		if (strncmp(p, access[i], n) == 0 &&
		    (p[n] == ' ' || p[n] == '\t'))
			return true;
	}
	return false;
}

static int
parse_lines(struct desc *d)
{
	char *p = d->text;

	for (d->line = 1; *p; d->line++) {
		char *nl = strchr(p, '\n'), *next = nl ? nl + 1 : p + strlen(p);
		char *line = skip_blanks(p);
		size_t len;

		if (nl)
			*nl = 0;
		len = strlen(line);
		while (len > 0 && (line[len - 1] == '\r' ||
		    line[len - 1] == ' ' || line[len - 1] == '\t'))
			line[--len] = 0;
		if (!*line || *line == '#')
			;
		else if (is_extent_line(line)) {
			if (!d->embedded && parse_extent(d, line) < 0)
				return -1;
		} else if (parse_setting(d, line) < 0)
			return -1;
		p = next;
	}
	return 0;
}

/* The descriptor at [@off, @off + @len) in memory, up to its first NUL
 * byte.  qemu-img pads it with NUL bytes to a sector, and qemu reads it
 * as a string, up to the first: when qemu rewrites a descriptor whose
 * CID got shorter in hex, the old text's last bytes stay after the NUL.
 * What follows it is ignored here as there. */
static int
read_text(struct desc *d, struct vs_io *io, uint64_t off, uint64_t len)
{
	if (len > DESC_MAX) {
		vs_err(VS_EXIT_SOURCE, io->name, "vmdk descriptor larger than "
		    "%u bytes", DESC_MAX);
		return -1;
	}
	if (!(d->text = malloc((size_t)len + 1))) {
		vs_errno(VS_EXIT_INTERNAL, io->name, "vmdk descriptor");
		return -1;
	}
	if (io->ops->pread(io, d->text, (size_t)len, off) < 0)
		return -1;
	d->text[len] = 0;
	return 0;
}

static int
parse_desc(struct desc *d, struct vs_io *io)
{
	static const char *const types[] = { "monolithicFlat", "vmfs",
	    "twoGbMaxExtentSparse", "twoGbMaxExtentFlat" };
	char shown[4 * MAX_NAME + 1];
	size_t i;

	d->io = io;
	if (read_text(d, io, 0, io->size) < 0)
		return -1;
	if (!(d->ext = calloc(MAX_EXTENTS, sizeof(*d->ext)))) {
		vs_errno(VS_EXIT_INTERNAL, io->name, "vmdk descriptor");
		return -1;
	}
	if (parse_lines(d) < 0)
		return -1;
	for (i = 0; d->create_type && i < sizeof(types) / sizeof(*types); i++)
		if (strcmp(d->create_type, types[i]) == 0)
			break;
	if (!d->create_type || i == sizeof(types) / sizeof(*types)) {
		vs_escape(d->create_type ? d->create_type : "", shown,
		    sizeof(shown));
		vs_err(VS_EXIT_SOURCE, io->name, "vmdk descriptor: createType "
		    "'%s' is not supported (monolithicFlat, vmfs, "
		    "twoGbMaxExtentSparse, twoGbMaxExtentFlat are)", shown);
		return -1;
	}
	if (d->n == 0) {
		vs_err(VS_EXIT_SOURCE, io->name, "vmdk descriptor names no "
		    "extent");
		return -1;
	}
	return 0;
}

/* A sparse vmdk header in @io must be one qemu reads as it is, not one
 * that defers to an embedded descriptor. */
static uint64_t
le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* The parent named in the descriptor embedded in the sparse image @io
 * (header @h), into v->parent. */
static int
sparse_parent(struct vs_io *io, const uint8_t *h, struct vs_vmdk *v)
{
	uint64_t off = le64(h + SPARSE_DESC_OFFSET);
	uint64_t len = le64(h + SPARSE_DESC_SIZE);
	struct desc d = { .io = io, .embedded = true };
	int rc = -1;

	if (off == 0 || len == 0)
		return 0;
	if (off > io->size / 512 || len > DESC_MAX / 512 ||
	    off * 512 + len * 512 > io->size) {
		vs_err(VS_EXIT_SOURCE, io->name, "embedded vmdk descriptor "
		    "out of the file");
		return -1;
	}
	if (read_text(&d, io, off * 512, len * 512) == 0 &&
	    parse_lines(&d) == 0) {
		if (d.parent && !(v->parent = strdup(d.parent)))
			vs_errno(VS_EXIT_INTERNAL, io->name, "vmdk");
		else
			rc = 0;
	}
	free(d.text);
	return rc;
}

static int
check_sparse(struct vs_io *io, const char *who, const char *extent,
    struct vs_vmdk *v)
{
	uint8_t h[SPARSE_DESC_SIZE + 8];
	uint64_t capacity;
	const char *why;

	if (io->size < sizeof(h)) {
		memset(h, 0, sizeof(h));
	} else if (io->ops->pread(io, h, sizeof(h), 0) < 0)
		return -1;
	capacity = le64(h + SPARSE_CAPACITY);
	if (memcmp(h, SPARSE_MAGIC, 4) != 0)
		why = "not a hosted sparse vmdk extent";
	else if (capacity == 0)
		why = "a sparse vmdk header of capacity 0 (qemu would read the "
		    "descriptor embedded in it instead): refused";
	else
		return v ? sparse_parent(io, h, v) : 0;
	if (extent)
		vs_err(VS_EXIT_SOURCE, who, "extent file '%s': %s", extent,
		    why);
	else
		vs_err(VS_EXIT_SOURCE, who, "%s", why);
	return -1;
}

/* Room for @n more descriptors: raise the soft limit if it is too low. */
static void
make_room(size_t n)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY ||
	    rl.rlim_cur >= n + 256)
		return;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > n + 256 ?
	    n + 256 : rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
}

/* Open every extent file through @io's policy; keep one descriptor of
 * each. */
static int
open_extents(const struct desc *d, struct vs_io *io, struct vs_vmdk *v)
{
	char shown[4 * MAX_NAME + 1];

	make_room(d->n);
	if (!(v->fds = malloc(d->n * sizeof(*v->fds)))) {
		vs_errno(VS_EXIT_INTERNAL, io->name, "vmdk extents");
		return -1;
	}
	for (size_t i = 0; i < d->n; i++) {
		struct vs_io *x;
		int fd;

		if (!io->ops->open_ref) {
			vs_escape(d->ext[i].name, shown, sizeof(shown));
			vs_err(VS_EXIT_SOURCE, io->name, "extent file '%s' "
			    "refused: files named by this image are not "
			    "followed", shown);
			return -1;
		}
		if (io->ops->open_ref(io, d->ext[i].name, "extent file",
		    &x) < 0)
			return -1;
		vs_escape(d->ext[i].name, shown, sizeof(shown));
		if (d->ext[i].sparse &&
		    check_sparse(x, io->name, shown, NULL) < 0) {
			vs_io_close(x);
			return -1;
		}
		fd = fcntl(x->fd, F_DUPFD_CLOEXEC, 0);
		if (fd < 0)
			vs_errno(VS_EXIT_INTERNAL, io->name, "extent file "
			    "'%s'", shown);
		vs_io_close(x);
		if (fd < 0)
			return -1;
		v->fds[v->nfds++] = fd;
	}
	return 0;
}

/* The descriptor qemu reads: the extents, named by their open files. */
static int
write_desc(const struct desc *d, struct vs_io *io, int first_fd,
    struct vs_vmdk *v)
{
	size_t cap = 256 + d->n * 96, len;
	char *buf = malloc(cap);
	int rc = -1;

	if (!buf) {
		vs_errno(VS_EXIT_INTERNAL, io->name, "vmdk descriptor");
		return -1;
	}
	len = (size_t)snprintf(buf, cap, "%s\nversion=1\nCID=%s\n"
	    "parentCID=%s\ncreateType=\"%s\"\n", DESC_MAGIC,
	    d->cid ? d->cid : "fffffffe",
	    d->parent_cid ? d->parent_cid : "ffffffff", d->create_type);
	for (size_t i = 0; i < d->n; i++) {
		const struct extent *e = &d->ext[i];

		if (e->sparse)
			len += (size_t)snprintf(buf + len, cap - len, "RW %llu "
			    "SPARSE \"/proc/self/fd/%d\"\n",
			    (unsigned long long)e->sectors, first_fd + (int)i);
		else
			len += (size_t)snprintf(buf + len, cap - len, "RW %llu "
			    "FLAT \"/proc/self/fd/%d\" %llu\n",
			    (unsigned long long)e->sectors, first_fd + (int)i,
			    (unsigned long long)e->offset);
	}
	if ((v->desc_fd = memfd_create("vmsync-vmdk", MFD_CLOEXEC)) < 0 ||
	    vs_pwrite_full(v->desc_fd, buf, len, 0) < 0)
		vs_errno(VS_EXIT_INTERNAL, io->name, "vmdk descriptor");
	else
		rc = 0;
	free(buf);
	return rc;
}

void
vs_vmdk_release(struct vs_vmdk *v)
{
	if (v->desc_fd >= 0)
		close(v->desc_fd);
	for (size_t i = 0; i < v->nfds; i++)
		close(v->fds[i]);
	free(v->fds);
	free(v->parent);
	v->desc_fd = -1;
	v->fds = NULL;
	v->parent = NULL;
	v->nfds = 0;
}

int
vs_vmdk_prepare(struct vs_io *io, int first_fd, struct vs_vmdk *out)
{
	struct desc d = { 0 };
	char head[sizeof(DESC_MAGIC) - 1];
	int rc = -1;

	memset(out, 0, sizeof(*out));
	out->desc_fd = -1;
	if (io->size >= sizeof(head) &&
	    io->ops->pread(io, head, sizeof(head), 0) < 0)
		return -1;
	if (io->size < sizeof(head) ||
	    memcmp(head, DESC_MAGIC, sizeof(head)) != 0) {
		if (check_sparse(io, io->name, NULL, out) < 0) {
			vs_vmdk_release(out);
			return -1;
		}
		return 0;
	}
	if (parse_desc(&d, io) == 0 && open_extents(&d, io, out) == 0 &&
	    write_desc(&d, io, first_fd, out) == 0) {
		if (d.parent && !(out->parent = strdup(d.parent)))
			vs_errno(VS_EXIT_INTERNAL, io->name, "vmdk");
		else
			rc = 0;
	}
	if (rc == 0)
		vs_info(1, "%s: vmdk descriptor (%s), %zu extent file%s",
		    io->name, d.create_type, d.n, d.n == 1 ? "" : "s");
	if (rc < 0)
		vs_vmdk_release(out);
	free(d.ext);
	free(d.text);
	return rc;
}
