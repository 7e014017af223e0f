/*
 * refs.c - open the files an image refers to (backing and data files),
 * only where the user allows.
 *
 * Design notes
 * - The names come from the image's metadata, which whoever wrote the
 *   image controls, not the user.  A referenced file is opened only if it
 *   is a regular file directly in the directory of the image the user
 *   named, or beneath a --backing-dir.  Nothing else: no device node, no
 *   FIFO, no file reached through a symbolic link that leads out.
 * - Each allowed directory is opened once, through vs_open() (so beneath
 *   --root on a server).  A name is made absolute against the directory of
 *   the image naming it, ".." and "." removed by text, then opened with
 *   openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS) relative to the
 *   allowed directory whose path it starts with: its real path, or the
 *   path the user gave for it where that still names the same directory
 *   (through a symbolic link, as libvirt records backing files).  The file
 *   is opened with O_PATH first, checked with fstat(), and only then
 *   reopened for reading.
 * - The directory of the opened file, for the names it holds in turn, is
 *   where the kernel found it (/proc/self/fd), and that place is checked
 *   again: a symbolic link in the image's directory to a subdirectory of
 *   it is refused too.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "format.h"
#include "../confine.h"
#include "../util.h"

struct vs_refdir {
	int fd;			/* O_PATH descriptor of the directory */
	char *path;		/* where it is, canonical */
	char *named;		/* the path it was given as, absolute, where
				 * that differs (through a symbolic link), or
				 * NULL */
	bool beneath;		/* files beneath it, not only directly in it */
};

struct vs_refs {
	struct vs_refdir *dirs;	/* [0]: the image's own directory */
	size_t n;		/* entries in dirs */
};

/* The canonical path of the open file @fd, malloc'd, or NULL. */
static char *
fd_path(int fd)
{
	char link[64], buf[PATH_MAX];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, buf, sizeof(buf) - 1);
	if (n <= 0 || buf[0] != '/')
		return NULL;
	buf[n] = 0;
	return strdup(buf);
}

/* Remove ".", ".." and repeated slashes from the absolute path @p, in
 * place ("/.." stays "/"). */
static void
normalize(char *p)
{
	char *out = p, *in = p;

	while (*in) {
		char *end;
		size_t len;

		while (*in == '/')
			in++;
		if (!*in)
			break;
		end = strchr(in, '/');
		len = end ? (size_t)(end - in) : strlen(in);
		if (len == 1 && in[0] == '.') {
			/* nothing */
		} else if (len == 2 && in[0] == '.' && in[1] == '.') {
			while (out > p && *--out != '/')
				;
		} else {
			*out++ = '/';
			memmove(out, in, len);
			out += len;
		}
		in += len;
	}
	if (out == p)
		*out++ = '/';
	*out = 0;
}

/* @path, the directory @d was opened as, made absolute (from the working
 * directory as the shell names it, $PWD), if it spells another path than
 * the canonical one to that very directory (a symbolic link to it, as
 * libvirt records the backing files of an images directory that is a
 * link); else NULL.  Not under --root, whose names are relative to it. */
static char *
named_path(const struct vs_refdir *d, const char *path)
{
	char *cwd, *abs;
	struct stat a, b;

	if (vs_confined())
		return NULL;
	if (path[0] == '/') {
		abs = strdup(path);
	} else {
		if (!(cwd = get_current_dir_name()))
			return NULL;
		abs = vs_path_join(cwd, path);
		free(cwd);
	}
	if (!abs)
		return NULL;
	normalize(abs);
	if (strcmp(abs, d->path) == 0 || stat(abs, &a) < 0 ||
	    fstat(d->fd, &b) < 0 || a.st_dev != b.st_dev ||
	    a.st_ino != b.st_ino) {
		free(abs);
		return NULL;
	}
	return abs;
}

static int
add_dir(struct vs_refs *r, const char *path, bool beneath)
{
	struct vs_refdir *d = &r->dirs[r->n];
	char *rel = vs_confine_source(path);	/* relative to --root */

	if (!rel)
		return -1;
	d->fd = vs_open(rel, O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
	free(rel);
	if (d->fd < 0) {
		/* The image's own directory was there a moment ago. */
		vs_errno(beneath ? VS_EXIT_USAGE : VS_EXIT_SOURCE, path,
		    beneath ? "--backing-dir" : "directory");
		return -1;
	}
	if (!(d->path = fd_path(d->fd))) {
		vs_errno(VS_EXIT_INTERNAL, path, "backing directory");
		close(d->fd);
		return -1;
	}
	d->named = named_path(d, path);
	d->beneath = beneath;
	r->n++;
	return 0;
}

int
vs_refs_open(const char *own_dir, const char *const *dirs, size_t n,
    struct vs_refs **out)
{
	struct vs_refs *r = calloc(1, sizeof(*r));

	if (!r || !(r->dirs = calloc(n + 1, sizeof(*r->dirs)))) {
		free(r);
		vs_errno(VS_EXIT_INTERNAL, own_dir, "backing directories");
		return -1;
	}
	if (add_dir(r, own_dir, false) < 0)
		goto fail;
	for (size_t i = 0; i < n; i++)
		if (add_dir(r, dirs[i], true) < 0)
			goto fail;
	*out = r;
	return 0;
fail:
	vs_refs_free(r);
	return -1;
}

void
vs_refs_free(struct vs_refs *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++) {
		close(r->dirs[i].fd);
		free(r->dirs[i].path);
		free(r->dirs[i].named);
	}
	free(r->dirs);
	free(r);
}

const char *
vs_refs_own_dir(const struct vs_refs *r)
{
	return r->dirs[0].path;
}

/* Does @abs lie in directory @dir (beneath it if @beneath)?  *@rest: the
 * rest of @abs below it. */
static bool
lies_in(const char *dir, bool beneath, const char *abs, const char **rest)
{
	size_t n = strcmp(dir, "/") == 0 ? 0 : strlen(dir);

	if (strncmp(abs, dir, n) != 0 || abs[n] != '/' || !abs[n + 1])
		return false;
	if (!beneath && strchr(abs + n + 1, '/'))
		return false;
	*rest = abs + n + 1;
	return true;
}

/* The allowed directory @abs lies in, by its real path or the one it was
 * given as, and the rest of @abs below it. */
static const struct vs_refdir *
find_dir(const struct vs_refs *r, const char *abs, const char **rest)
{
	for (size_t i = 0; i < r->n; i++) {
		const struct vs_refdir *d = &r->dirs[i];

		if (lies_in(d->path, d->beneath, abs, rest) || (d->named &&
		    lies_in(d->named, d->beneath, abs, rest)))
			return d;
	}
	return NULL;
}

/* Open @rest beneath @d with O_PATH: resolution never leaves @d. */
static int
open_beneath(const struct vs_refdir *d, const char *rest)
{
	struct open_how how = {
		.flags = O_PATH | O_CLOEXEC,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
	};

	return (int)syscall(SYS_openat2, d->fd, rest, &how, sizeof(how));
}

/* Refuse @name of @io: one line naming the image, the name and why. */
static int
refuse(const struct vs_io *io, const char *what, const char *name,
    const char *why)
{
	char shown[4 * 1024];

	vs_escape(name, shown, sizeof(shown));
	vs_err(VS_EXIT_SOURCE, io->name, "%s '%s' refused: %s", what, shown,
	    why);
	return -1;
}

/* The O_PATH descriptor @pfd, checked, as a readable vs_io named by
 * where it is. */
static int
reopen(const struct vs_io *from, const struct vs_refs *r, int pfd,
    const char *what, const char *name, struct vs_io **out)
{
	char link[64], *real, *shown = NULL, *slash;
	const char *rest;
	struct stat st;
	int fd;

	if (fstat(pfd, &st) < 0) {
		vs_errno(VS_EXIT_SOURCE, from->name, "%s", what);
		return -1;
	}
	if (!S_ISREG(st.st_mode))
		return refuse(from, what, name, "not a regular file");
	if (!(real = fd_path(pfd)) || !find_dir(r, real, &rest)) {
		free(real);
		return refuse(from, what, name, "it leads out of the image's "
		    "directory and the --backing-dir directories");
	}
	/* The same inode, through its magic link: not vs_open(), which
	 * would resolve /proc beneath --root. */
	snprintf(link, sizeof(link), "/proc/self/fd/%d", pfd);
	fd = open(link, O_RDONLY | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		vs_errno(VS_EXIT_SOURCE, from->name, "%s %s", what, real);
		free(real);
		return -1;
	}
	if ((shown = malloc(4 * strlen(real) + 1)))
		vs_escape(real, shown, 4 * strlen(real) + 1);
	if (!shown || vs_io_from_fd(fd, shown, out) < 0) {
		if (!shown)
			vs_errno(VS_EXIT_INTERNAL, from->name, "%s", what);
		free(shown);
		free(real);
		return -1;
	}
	free(shown);
	if ((*out)->dev != (uint64_t)st.st_dev ||
	    (*out)->ino != (uint64_t)st.st_ino) {
		vs_io_close(*out);
		free(real);
		return refuse(from, what, name, "it changed while opened");
	}
	slash = strrchr(real, '/');
	if (slash == real)	/* a file in / */
		slash++;
	*slash = 0;
	(*out)->dir = real;
	(*out)->refs = r;
	return 0;
}

int
vs_refs_open_file(struct vs_io *io, const char *name, const char *what,
    struct vs_io **out)
{
	const struct vs_refs *r = io->refs;
	const struct vs_refdir *d;
	const char *base = io->dir ? io->dir : r ? vs_refs_own_dir(r) : "/";
	char *abs = NULL;
	const char *rest;
	int pfd, rc;

	if (!r)
		return refuse(io, what, name, "files named by this image are "
		    "not followed");
	if (!name[0])
		return refuse(io, what, name, "empty name");
	if (name[0] == '/')
		abs = strdup(name);
	else
		abs = vs_path_join(base, name);
	if (!abs) {
		vs_errno(VS_EXIT_INTERNAL, io->name, "%s", what);
		return -1;
	}
	normalize(abs);
	if (!(d = find_dir(r, abs, &rest))) {
		free(abs);
		return refuse(io, what, name, "not in the image's directory "
		    "nor beneath a --backing-dir");
	}
	pfd = open_beneath(d, rest);
	free(abs);
	if (pfd < 0 && (errno == EXDEV || errno == ELOOP))
		return refuse(io, what, name, "a symbolic link leads out of "
		    "the allowed directory");
	if (pfd < 0) {
		char shown[4 * 1024];

		vs_escape(name, shown, sizeof(shown));
		vs_errno(VS_EXIT_SOURCE, io->name, "%s '%s'", what, shown);
		return -1;
	}
	rc = reopen(io, r, pfd, what, name, out);
	close(pfd);
	return rc;
}
