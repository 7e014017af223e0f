/*
 * io.c - containers: files, block devices and memory buffers.
 *
 * The file map uses SEEK_DATA/SEEK_HOLE.  ENXIO from SEEK_DATA means the rest
 * is a hole; a filesystem that cannot answer (EINVAL, ENOTSUP) is mapped as
 * all data, and zero detection in the engine does the rest.  Block devices
 * have no holes to ask about.
 *
 * Reads that are aligned to 4 KiB go through a second descriptor opened
 * with O_DIRECT: the disk writes into our buffer, with no copy out of the
 * page cache and no cache to drop afterwards, and a backup run does not
 * evict the host's working set.  The kernel writes back dirty pages of the
 * range first, so these reads see what buffered ones would.  A file system
 * that refuses O_DIRECT (EINVAL) is read through the page cache.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format.h"
#include "../util.h"
#include "../confine.h"

#define DIRECT_ALIGN 4096u

static bool
direct_ok(const struct vs_io *io, const void *buf, size_t len, uint64_t off)
{
	return io->direct_fd >= 0 && !__atomic_load_n(&io->direct_refused,
	    __ATOMIC_RELAXED) && (off | len | (uintptr_t)buf) %
	    DIRECT_ALIGN == 0;
}

static int
file_pread(struct vs_io *io, void *buf, size_t len, uint64_t off)
{
	ssize_t r;

	if (!direct_ok(io, buf, len, off)) {
		r = vs_pread_full(io->fd, buf, len, off);
	} else if ((r = vs_pread_full(io->direct_fd, buf, len, off)) < 0 &&
	    errno == EINVAL) {
		/* Read through the cache from now on.  The descriptor stays
		 * open: another reader thread may be reading through it. */
		__atomic_store_n(&io->direct_refused, true, __ATOMIC_RELAXED);
		r = vs_pread_full(io->fd, buf, len, off);
	}

	if (r < 0) {
		vs_errno(VS_EXIT_SOURCE, io->name, "read at offset %llu",
		    (unsigned long long)off);
		return -1;
	}
	/* A file that shrank under us reads as zeros past its end. */
	if ((size_t)r < len)
		memset((char *)buf + r, 0, len - (size_t)r);
	return 0;
}

static int
file_map(struct vs_io *io, uint64_t off, uint64_t len,
    struct vs_extent_vec *out)
{
	uint64_t end = off + len, pos = off;

	if (io->is_block)
		return vs_extent_add(out, off, len, VS_EXT_DATA);
	while (pos < end) {
		off_t data = lseek(io->fd, (off_t)pos, SEEK_DATA), hole;

		if (data < 0 && errno == ENXIO)
			data = (off_t)end;
		else if (data < 0 && (errno == EINVAL || errno == ENOTSUP ||
		    errno == EOPNOTSUPP)) {
			if (vs_extent_add(out, pos, end - pos, VS_EXT_DATA))
				goto nomem;
			break;
		} else if (data < 0) {
			vs_errno(VS_EXIT_SOURCE, io->name,
			    "SEEK_DATA at offset %llu", (unsigned long long)pos);
			return -1;
		}
		if ((uint64_t)data > end)
			data = (off_t)end;
		if ((uint64_t)data > pos &&
		    vs_extent_add(out, pos, (uint64_t)data - pos, VS_EXT_ZERO))
			goto nomem;
		if ((uint64_t)data >= end)
			break;
		hole = lseek(io->fd, data, SEEK_HOLE);
		if (hole < 0 || hole <= data || (uint64_t)hole > end)
			hole = (off_t)end;	/* changed under us: read it */
		if (vs_extent_add(out, (uint64_t)data, (uint64_t)(hole - data),
		    VS_EXT_DATA))
			goto nomem;
		pos = (uint64_t)hole;
	}
	return 0;
nomem:
	vs_errno(VS_EXIT_INTERNAL, io->name, "extent map");
	return -1;
}

static void
file_drop_cache(struct vs_io *io, uint64_t off, uint64_t len)
{
	posix_fadvise(io->fd, (off_t)off, (off_t)len, POSIX_FADV_DONTNEED);
}

static void
file_close(struct vs_io *io)
{
	if (io->fd >= 0)
		close(io->fd);
	if (io->direct_fd >= 0)
		close(io->direct_fd);
}

static const struct vs_io_ops file_io_ops = {
	.pread = file_pread,
	.map = file_map,
	.drop_cache = file_drop_cache,
	.close = file_close,
	.open_ref = vs_refs_open_file,
};

/* The open file @fd again, with O_DIRECT, or -1.  Through /proc: the same
 * inode, whatever happened to its name since. */
static int
open_direct(int fd)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	return open(path, O_RDONLY | O_DIRECT | O_CLOEXEC | O_NOCTTY);
}

/* Only a regular file or a block device is a disk image. */
static int
check_kind(const struct stat *st, const char *name)
{
	if (S_ISREG(st->st_mode) || S_ISBLK(st->st_mode))
		return 0;
	if (S_ISDIR(st->st_mode))
		vs_err(VS_EXIT_SOURCE, name,
		    "source is a directory, not a disk image");
	else
		vs_err(VS_EXIT_SOURCE, name,
		    "source is not a regular file or a block device");
	return -1;
}

int
vs_io_open_file(const char *path, struct vs_io **out)
{
	struct stat st;
	int pfd, fd = -1;

	/* Looked at before it is opened: opening a FIFO waits for a writer,
	 * opening a device node other than a disk can act on the device. */
	pfd = vs_open(path, O_PATH | O_CLOEXEC, 0);
	if (pfd < 0 || fstat(pfd, &st) < 0) {
		vs_errno(VS_EXIT_SOURCE, path, "cannot open source");
	} else if (check_kind(&st, path) == 0 &&
	    (fd = vs_reopen(pfd, O_RDONLY | O_NOCTTY | O_CLOEXEC)) < 0) {
		vs_errno(VS_EXIT_SOURCE, path, "cannot open source");
	}
	if (pfd >= 0)
		close(pfd);
	return fd < 0 ? -1 : vs_io_from_fd(fd, path, out);
}

int
vs_io_from_fd(int fd, const char *name, struct vs_io **out)
{
	struct vs_io *io = NULL;
	struct stat st;

	if (fstat(fd, &st) < 0) {
		vs_errno(VS_EXIT_SOURCE, name, "stat");
		goto fail;
	}
	io = calloc(1, sizeof(*io));
	if (!io || !(io->name = strdup(name))) {
		vs_errno(VS_EXIT_INTERNAL, name, "open");
		goto fail;
	}
	io->ops = &file_io_ops;
	io->fd = fd;
	io->direct_fd = -1;
	io->mode = st.st_mode;
	io->dev = st.st_dev;
	io->ino = st.st_ino;
	io->mtime_sec = st.st_mtim.tv_sec;
	io->mtime_nsec = st.st_mtim.tv_nsec;
	if (S_ISREG(st.st_mode)) {
		io->size = (uint64_t)st.st_size;
	} else if (S_ISBLK(st.st_mode)) {
		io->is_block = true;
		if (ioctl(fd, BLKGETSIZE64, &io->size) < 0) {
			vs_errno(VS_EXIT_SOURCE, name, "BLKGETSIZE64");
			goto fail;
		}
	} else {
		check_kind(&st, name);
		goto fail;
	}
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0) {
		vs_errno(VS_EXIT_SOURCE, name, "fcntl");
		goto fail;
	}
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	io->direct_fd = open_direct(fd);
	*out = io;
	return 0;
fail:
	if (io)
		free(io->name);
	free(io);
	close(fd);
	return -1;
}

struct mem_io {
	struct vs_io io;	/* base, first */
	const uint8_t *buf;	/* the caller's bytes */
};

static int
mem_pread(struct vs_io *io, void *buf, size_t len, uint64_t off)
{
	struct mem_io *m = (struct mem_io *)io;
	uint64_t avail = off < io->size ? io->size - off : 0;
	size_t n = (size_t)vs_min(len, avail);

	memcpy(buf, m->buf + off, n);
	memset((char *)buf + n, 0, len - n);
	return 0;
}

static int
mem_map(struct vs_io *io, uint64_t off, uint64_t len,
    struct vs_extent_vec *out)
{
	(void)io;
	return vs_extent_add(out, off, len, VS_EXT_DATA);
}

static void
mem_drop_cache(struct vs_io *io, uint64_t off, uint64_t len)
{
	(void)io, (void)off, (void)len;
}

static void
mem_close(struct vs_io *io)
{
	(void)io;
}

static const struct vs_io_ops mem_io_ops = {
	.pread = mem_pread,
	.map = mem_map,
	.drop_cache = mem_drop_cache,
	.close = mem_close,
};

int
vs_io_open_mem(const void *buf, size_t len, const char *name,
    struct vs_io **out)
{
	struct mem_io *m = calloc(1, sizeof(*m));

	if (!m || !(m->io.name = strdup(name))) {
		free(m);
		vs_errno(VS_EXIT_INTERNAL, name, "open");
		return -1;
	}
	m->io.ops = &mem_io_ops;
	m->io.size = len;
	m->io.fd = -1;
	m->io.direct_fd = -1;
	m->buf = buf;
	*out = &m->io;
	return 0;
}

void
vs_io_close(struct vs_io *io)
{
	if (!io)
		return;
	io->ops->close(io);
	free(io->dir);
	free(io->name);
	free(io);
}
