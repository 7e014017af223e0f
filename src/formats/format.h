/*
 * format.h - source image formats and the containers they are read from.
 *
 * Design notes
 * - A format never opens files.  It reads its container through a
 *   struct vs_io (a file, a block device, or a memory buffer in unit tests),
 *   so later formats (qcow2, backing chains) stack on the same interface.
 *   A file the image refers to (backing, data file) is opened by the
 *   container's open_ref op, under the opener's policy (refs.c): the name
 *   stored in the image is never a path the format opens itself.
 * - map() answers block status without reading guest data.  It must cover
 *   [off, off + len) exactly with contiguous extents; the engine checks
 *   every reply, so a buggy or hostile format cannot make it loop.
 */
#ifndef VS_FORMAT_H
#define VS_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../vmsync.h"
#include "../vec.h"

VS_VECTOR(vs_extent_vec, struct vs_extent)

/* Where the bytes of a range of the image are stored in its container. */
struct vs_place {
	uint64_t off;		/* image offset */
	uint64_t len;		/* bytes */
	uint64_t host;		/* container offset of @off, or VS_NOWHERE */
};
/* Not a plain copy of container bytes: compressed, zero, a backing file's. */
#define VS_NOWHERE UINT64_MAX

VS_VECTOR(vs_place_vec, struct vs_place)

struct vs_io;

struct vs_io_ops {
	/* Read exactly @len bytes at @off; bytes past the end read as zero.
	 * Several threads may read at once. */
	int (*pread)(struct vs_io *, void *buf, size_t len, uint64_t off);
	/* Allocation of [off, off + len) in the container. */
	int (*map)(struct vs_io *, uint64_t off, uint64_t len,
	    struct vs_extent_vec *out);
	/* Hint: [off, off + len) will not be read again. */
	void (*drop_cache)(struct vs_io *, uint64_t off, uint64_t len);
	void (*close)(struct vs_io *);
	/* Open the file @name that the image in this container refers to
	 * (@what: "backing file", "data file", for messages), where the
	 * opener allows it.  NULL: such names are refused. */
	int (*open_ref)(struct vs_io *, const char *name, const char *what,
	    struct vs_io **out);
};

struct vs_refs;

struct vs_io {
	const struct vs_io_ops *ops;	/* how to reach the bytes */
	char *name;			/* path or label, for messages */
	uint64_t size;			/* bytes */
	bool is_block;			/* a block device */
	int fd;				/* file descriptor, or -1 */
	int direct_fd;			/* the same with O_DIRECT, or -1 */
	bool direct_refused;		/* O_DIRECT failed: not used (atomic) */
	uint32_t mode;			/* st_mode of the file, 0 if none */
	uint64_t dev, ino;		/* st_dev, st_ino; 0 if none */
	int64_t mtime_sec;		/* st_mtime, for the target's times */
	int64_t mtime_nsec;		/* st_mtime nanoseconds */
	const struct vs_refs *refs;	/* where open_ref may look, or NULL */
	bool alone;			/* open the image without its backing
					 * file: its own metadata only */
	char *dir;			/* directory relative names start
					 * from, or NULL: the refs' own */
};

/* Open @path read-only: a regular file or a block device. */
int vs_io_open_file(const char *path, struct vs_io **out);
/* The same for the open descriptor @fd, named @name; takes @fd, also on
 * failure. */
int vs_io_from_fd(int fd, const char *name, struct vs_io **out);
/* A read-only view of a memory buffer (unit tests); @buf is not copied. */
int vs_io_open_mem(const void *buf, size_t len, const char *name,
    struct vs_io **out);
void vs_io_close(struct vs_io *io);

/* refs.c: where the files images refer to may be opened.  @own_dir: the
 * directory of the image the user named (files directly in it); @dirs:
 * --backing-dir directories (files beneath them).  Opened through
 * vs_open(), so beneath --root on a server. */
int vs_refs_open(const char *own_dir, const char *const *dirs, size_t n,
    struct vs_refs **out);
void vs_refs_free(struct vs_refs *r);
/* The own directory, canonical. */
const char *vs_refs_own_dir(const struct vs_refs *r);
/* The file io's open_ref: @name resolved against io->dir, opened if
 * io->refs allows it, else one line naming the image, the name and why. */
int vs_refs_open_file(struct vs_io *io, const char *name, const char *what,
    struct vs_io **out);

struct vs_image;

/* The images above one being opened as a backing file: for loops and depth. */
struct vs_chain {
	uint64_t dev, ino;		/* the image above */
	unsigned depth;			/* 1 for the top image's backing file */
	const struct vs_chain *up;	/* further up, or NULL */
};

struct vs_format_ops {
	const char *name;	/* "raw", ... */
	/* Pure: does this header belong to the format?  No I/O. */
	bool (*probe)(const uint8_t *head, size_t len);
	/* @chain is NULL for the image named by the user. */
	int (*open)(struct vs_io *, const struct vs_chain *chain,
	    struct vs_image **);
	void (*close)(struct vs_image *);
	/* Never reads data; covers [off, off + len) exactly. */
	int (*map)(struct vs_image *, uint64_t off, uint64_t len,
	    struct vs_extent_vec *out);
	/* Read guest bytes of [off, off + len). */
	int (*read)(struct vs_image *, void *buf, size_t len, uint64_t off);
	/* Hint: guest bytes [off, off + len) will not be read again. */
	void (*drop_cache)(struct vs_image *, uint64_t off, uint64_t len);
	/* File view, for formats with metadata: which bytes of the container
	 * are live (DATA) or dead (ZERO) in [off, off + len).  NULL when the
	 * container is the disk itself (raw). */
	int (*host_live)(struct vs_image *, uint64_t off, uint64_t len,
	    struct vs_extent_vec *out);
	/* Where [off, off + len) is stored in the container, covering it
	 * exactly (change detection compares the containers' extents there).
	 * NULL: not known, every data range is read. */
	int (*place)(struct vs_image *, uint64_t off, uint64_t len,
	    struct vs_place_vec *out);
	/* An external file the image needs besides its container (a data
	 * file), or NULL. */
	const char *(*external)(struct vs_image *);
	/* Where the guest bytes of [off, off + len) can be read as they are
	 * from the container, covering it exactly; VS_NOWHERE where only
	 * read() makes them (compressed, backing file, dead bytes).  Readers
	 * then read the container directly, several at once.  NULL: read()
	 * for everything. */
	int (*locate)(struct vs_image *, uint64_t off, uint64_t len,
	    struct vs_place_vec *out);
	/* A stream (an archive entry): read() must be called in increasing
	 * offset order, so one reader thread reads it. */
	bool sequential;
};

struct vs_image {
	const struct vs_format_ops *ops;	/* the format */
	const char *name;			/* for messages (the io's) */
	uint64_t size;				/* virtual size, bytes */
	struct vs_io *io;			/* the container, owned */
};

/* Probe @io (or use @forced, a format name, if not NULL) and open it.
 * Takes ownership of @io, also on failure. */
int vs_image_open(struct vs_io *io, const char *forced, struct vs_image **out);
/* The same for a backing file of the image described by @chain. */
int vs_image_open_chain(struct vs_io *io, const char *forced,
    const struct vs_chain *chain, struct vs_image **out);
/* The file view of @img: its container's live bytes, dead ones as holes.
 * Takes ownership of @img, also on failure. */
int vs_fileview_open(struct vs_image *img, struct vs_image **out);
/* If @img is a file view: its guest disk's virtual size; else 0. */
uint64_t vs_fileview_guest_size(const struct vs_image *img);
void vs_image_close(struct vs_image *img);
/* Map through the format and check the reply (contiguous, exact cover). */
int vs_image_map(struct vs_image *img, uint64_t off, uint64_t len,
    struct vs_extent_vec *out);

/* The place (or locate) op's answer for [off, off + len) into @out
 * (reset first), checked to cover it exactly. */
int vs_image_place(struct vs_image *img, uint64_t off, uint64_t len,
    struct vs_place_vec *out);
int vs_image_locate(struct vs_image *img, uint64_t off, uint64_t len,
    struct vs_place_vec *out);

/* Map the whole image once, so that damaged metadata is refused before a
 * target is touched.  Reads no guest data; a long hole costs little, and
 * a signal stops it (exit status 4). */
int vs_image_validate(struct vs_image *img);
/* The same, counting the bytes the image maps as DATA into *@data. */
int vs_image_data_bytes(struct vs_image *img, uint64_t *data);

/* Append a placement, merging with the previous one when it continues it. */
int vs_place_add(struct vs_place_vec *vec, uint64_t off, uint64_t len,
    uint64_t host);
/* The identity placement: the container's bytes are the image's. */
int vs_place_identity(struct vs_image *img, uint64_t off, uint64_t len,
    struct vs_place_vec *out);

/* Append an extent, merging with the previous one when it continues it. */
int vs_extent_add(struct vs_extent_vec *vec, uint64_t off, uint64_t len,
    enum vs_extent_type type);
/* Check that @vec covers [off, off + len) exactly, in order; 0 if so. */
int vs_extent_check(const struct vs_extent_vec *vec, uint64_t off,
    uint64_t len);

extern const struct vs_format_ops vs_format_raw;
extern const struct vs_format_ops vs_format_qcow2;
/* nbd.c: read through a child qemu-storage-daemon, guest view only. */
extern const struct vs_format_ops vs_format_vmdk;
extern const struct vs_format_ops vs_format_vdi;
extern const struct vs_format_ops vs_format_vhdx;
extern const struct vs_format_ops vs_format_vpc;
extern const struct vs_format_ops vs_format_qed;
/* nbd.c: an NBD export named by a URI, read as it is served. */
extern const struct vs_format_ops vs_format_nbd;
/* Does @src look like an NBD URI (nbd://, nbd+unix://, nbds://...)? */
bool vs_nbd_is_uri(const char *src);
/* Connect to the export at @uri (nbd:// or nbd+unix:// only): its guest
 * view; one line naming @uri on failure. */
int vs_nbd_open_uri(const char *uri, struct vs_image **out);

/* Which format an image is read as (choose.c: the guest's bytes alone
 * never make it anything but raw). */
struct vs_format_choice {
	const char *format;	/* what to read it as: "raw", "qcow2" */
	const char *probed;	/* what its content looks like */
	const char *basis;	/* what confirmed it, for -v */
	bool unconfirmed;	/* content says another format: read as raw */
};
/* Read through qemu (nbd.c): only its guest disk can be synced. */
bool vs_format_guest_only(const char *format);
/* The format a file name says ("qcow2", "vmdk", ...), or NULL. */
const char *vs_format_by_name(const char *name);
/* What @io's first bytes look like: "raw" unless a known magic. */
int vs_format_probe(struct vs_io *io, const char **out);
/* Decide for the image named @name whose content looks like @probed,
 * given --format (@forced, or NULL) and the format the target recorded
 * (@recorded, "" or NULL: none).  -1 (reported) when the name or record
 * disagrees with the content. */
int vs_format_decide(const char *name, const char *forced,
    const char *recorded, const char *probed, struct vs_format_choice *c);
/* The same for the image in @io, probed first unless @forced. */
int vs_format_choose(struct vs_io *io, const char *name, const char *forced,
    const char *recorded, struct vs_format_choice *c);
/* The one warning for an image copied as raw whose content says
 * otherwise; nothing if @c is confirmed. */
void vs_format_warn_unconfirmed(const char *name,
    const struct vs_format_choice *c);

#endif
