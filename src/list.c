/*
 * list.c - vmsync --list: the backups in a directory and their generations.
 *
 * Design notes
 * - An image is a file with a vmsync index beside it.  Its generations are
 *   the live copy and its copies in the snapshots of the subvolume holding
 *   it: vmsync's own (.vmsync-snapshots/, or --snapshot-dir) and snapper's
 *   (.snapshots/N/snapshot/), at the same path below the subvolume.
 * - A generation's time is when its index was last written (the commit of
 *   its sync); it is complete when its index is clean and describes a file
 *   of its size, partial otherwise.
 * - Exclusive bytes are those on extents no other file shares (FIEMAP), as
 *   btrfs filesystem du counts them: what deleting the generation frees.
 * - Only names are listed and files stat'ed or read: nothing is written.
 * - Every file is reached through vs_open(), so vmsync --server --root DIR
 *   lists beneath DIR only: the walk up to the subvolume stops at DIR, and
 *   a snapshot directory outside it is refused.  Paths are opened as
 *   vs_open() takes them (relative to DIR) and shown absolute.
 * - Gathering and printing are apart: the server gathers and sends each
 *   generation (LISTED), the client prints them as it prints its own.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "confine.h"
#include "index.h"
#include "list.h"
#include "physmap.h"
#include "progress.h"
#include "transport/transport.h"
#include "util.h"

#define SUBVOL_INO 256		/* root directory of a btrfs subvolume */
#define LIST_MAX 100000		/* directory entries looked at */

/* Oldest first.  A snapshot taken after the live copy's last sync holds
 * the same index, so the same time: the live copy goes after it, wherever
 * the snapshot directory lies. */
static int
by_time(const void *a, const void *b)
{
	const struct vs_list_gen *x = a, *y = b;
	int c = vs_timespec_cmp(&x->time, &y->time);

	if (!c)
		c = (int)x->live - (int)y->live;
	return c ? c : strcmp(x->path, y->path);
}

/* @dir/@name, where "." is the directory vs_open() starts from. */
static char *
join(const char *dir, const char *name)
{
	return strcmp(dir, ".") == 0 ? strdup(name) : vs_path_join(dir, name);
}

int
vs_list_add(struct vs_list_image *im, const struct vs_list_gen *g)
{
	struct vs_list_gen e = *g;

	if (im->n == im->cap) {
		size_t cap = im->cap ? im->cap * 2 : 8;
		struct vs_list_gen *nv = realloc(im->v, cap * sizeof(*nv));

		if (!nv)
			return -1;
		im->v = nv;
		im->cap = cap;
	}
	if (!(e.path = strdup(g->path)))
		return -1;
	im->v[im->n++] = e;
	return 0;
}

void
vs_list_image_free(struct vs_list_image *im)
{
	for (size_t k = 0; k < im->n; k++)
		free(im->v[k].path);
	free(im->v);
	free(im->name);
	memset(im, 0, sizeof(*im));
}

/* A file that is not a symbolic link (lstat(2), through vs_open()):
 * its O_PATH descriptor, or -1. */
static int
open_regular(const char *path, struct stat *st)
{
	int fd = vs_open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC, 0);

	if (fd >= 0 && (fstat(fd, st) < 0 || !S_ISREG(st->st_mode))) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* Add the generation at @path, if it is one (a file with its index);
 * @live: the live copy. */
static int
add_gen(struct vs_list_image *im, const char *path, bool live)
{
	char *ipath = vs_local_index_path(path), *shown = NULL;
	const struct idx_header *h;
	struct vs_index *ix = NULL;
	struct stat st, ist;
	const char *why;
	struct vs_list_gen e = { .live = live };
	int pfd = -1, ifd = -1, fd = -1, rc = 0;

	if (!ipath)
		return -1;
	/* Looked at before it is opened: never a FIFO or a device. */
	if ((pfd = open_regular(path, &st)) < 0 ||
	    (ifd = open_regular(ipath, &ist)) < 0 ||
	    (fd = vs_reopen(pfd, O_RDONLY | O_NONBLOCK | O_NOCTTY |
	    O_CLOEXEC)) < 0)
		goto out;	/* not a generation */
	vs_err_demote(true);
	if (idx_open(ipath, false, &ix) == 0 && ix &&
	    (h = idx_header(ix, &why))) {
		e.virtual_size = h->virtual_size;
		e.complete = !(h->flags & IDX_FLAG_DIRTY) &&
		    h->virtual_size == (uint64_t)st.st_size;
	}
	e.has_exclusive = vs_physmap_exclusive(fd, path, &e.exclusive) == 0;
	vs_err_demote(false);
	e.time = ist.st_mtim;
	e.allocated = (uint64_t)st.st_blocks * 512;
	if (!(e.path = shown = vs_confine_absolute(path)) ||
	    vs_list_add(im, &e) < 0)
		rc = -1;
out:
	idx_close(ix);
	if (fd >= 0)
		close(fd);
	if (ifd >= 0)
		close(ifd);
	if (pfd >= 0)
		close(pfd);
	free(shown);
	free(ipath);
	return rc;
}

/* The root of the btrfs subvolume holding the directory @dfd, as vs_open()
 * takes it, or NULL: the nearest directory up from it with the inode
 * number of a subvolume root, on the same device, never above the --root
 * directory. */
static char *
subvol_root(int dfd)
{
	struct stat here, st;
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	char *p = NULL;

	if (fd < 0 || fstat(fd, &here) < 0)
		goto out;
	for (st = here;;) {
		struct stat prev = st;
		int up;

		if (st.st_ino == SUBVOL_INO) {
			p = vs_confine_fd_path(fd);
			break;
		}
		if (vs_confine_is_root(&st))
			break;
		up = openat(fd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		close(fd);
		fd = up;
		/* Another device, or "/" (its own parent): none. */
		if (fd < 0 || fstat(fd, &st) < 0 || st.st_dev != here.st_dev ||
		    st.st_ino == prev.st_ino)
			break;
	}
out:
	if (fd >= 0)
		close(fd);
	return p;
}

/* @dir below @top (both as vs_confine_fd_path() gives them): the rest,
 * "" for @top itself, or NULL. */
static const char *
below(const char *dir, const char *top)
{
	size_t n = strlen(top);

	if (strcmp(top, ".") == 0)
		return strcmp(dir, ".") == 0 ? "" : dir[0] != '/' ? dir : NULL;
	if (strcmp(top, "/") == 0)
		return dir[0] == '/' ? dir + 1 : NULL;
	if (strncmp(dir, top, n) != 0 || (dir[n] && dir[n] != '/'))
		return NULL;
	return dir[n] ? dir + n + 1 : "";
}

/* The directory @path, for reading its entries, through vs_open(). */
static DIR *
open_dir(const char *path)
{
	int fd = vs_open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;

	if (fd >= 0 && !d)
		close(fd);
	return d;
}

/* Every snapshot in @snapdir (each a directory holding the subvolume's
 * tree) whose copy of @rel exists; @inner: the tree is in its
 * "snapshot" subdirectory (snapper). */
static int
add_snapshots(struct vs_list_image *im, const char *snapdir,
    const char *inner, const char *rel)
{
	DIR *d = open_dir(snapdir);
	struct dirent *de;
	size_t seen = 0;
	int rc = 0;

	if (!d)
		return 0;
	while ((de = readdir(d)) && seen++ < LIST_MAX && rc == 0) {
		char *path;

		if (de->d_name[0] == '.')
			continue;
		if (asprintf(&path, "%s/%s%s%s/%s", snapdir, de->d_name,
		    inner ? "/" : "", inner ? inner : "", rel) < 0) {
			rc = -1;
			break;
		}
		rc = add_gen(im, path, false);
		free(path);
	}
	closedir(d);
	return rc;
}

/* The generations of the image @name in the directory @dir (open as
 * @dfd); @snapdir: vmsync's snapshot directory, as vs_open() takes it,
 * or relative to the subvolume. */
static int
find_gens(int dfd, const char *dir, const char *name, const char *snapdir,
    bool snapdir_abs, struct vs_list_image *im)
{
	char *live = join(dir, name), *root = subvol_root(dfd);
	char *rel = NULL, *vmsnap = NULL, *snapper = NULL;
	const char *sub = root ? below(dir, root) : NULL;
	int rc = -1;

	if (!live || add_gen(im, live, true) < 0)
		goto out;
	if (!sub) {
		rc = 0;
		goto out;
	}
	if (asprintf(&rel, "%s%s%s", sub, sub[0] ? "/" : "", name) < 0) {
		rel = NULL;
		goto out;
	}
	vmsnap = snapdir_abs ? strdup(snapdir) : join(root, snapdir);
	snapper = join(root, ".snapshots");
	if (!vmsnap || !snapper ||
	    add_snapshots(im, vmsnap, NULL, rel) < 0 ||
	    add_snapshots(im, snapper, "snapshot", rel) < 0)
		goto out;
	rc = 0;
out:
	free(live);
	free(root);
	free(rel);
	free(vmsnap);
	free(snapper);
	return rc;
}

static void
print_time(const struct timespec *t, char *buf, size_t len)
{
	struct tm tm;

	gmtime_r(&t->tv_sec, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void
print_table(const struct vs_list_image *im)
{
	for (size_t i = 0; i < im->n; i++) {
		const struct vs_list_gen *e = &im->v[i];
		char t[32], vs[32], al[32], ex[32];

		print_time(&e->time, t, sizeof(t));
		vs_fmt_bytes(e->virtual_size, vs, sizeof(vs));
		vs_fmt_bytes(e->allocated, al, sizeof(al));
		if (e->has_exclusive)
			vs_fmt_bytes(e->exclusive, ex, sizeof(ex));
		else
			snprintf(ex, sizeof(ex), "-");
		printf("%-16s %-20s %10s %10s %10s  %-8s %s\n", im->name, t,
		    vs, al, ex, e->complete ? "complete" : "partial", e->path);
	}
}

static void
print_json(FILE *fp, const struct vs_list_image *im)
{
	fputs("{\"name\":", fp);
	vs_json_string(fp, im->name);
	fputs(",\"generations\":[", fp);
	for (size_t i = 0; i < im->n; i++) {
		const struct vs_list_gen *e = &im->v[i];
		char t[32];

		print_time(&e->time, t, sizeof(t));
		fprintf(fp, "%s{\"path\":", i ? "," : "");
		vs_json_string(fp, e->path);
		fprintf(fp, ",\"time\":\"%s\",\"complete\":%s,"
		    "\"virtual_size\":%llu,\"allocated_bytes\":%llu", t,
		    e->complete ? "true" : "false",
		    (unsigned long long)e->virtual_size,
		    (unsigned long long)e->allocated);
		if (e->has_exclusive)
			fprintf(fp, ",\"exclusive_bytes\":%llu",
			    (unsigned long long)e->exclusive);
		fputc('}', fp);
	}
	fputs("]}", fp);
}

void
vs_list_print(const struct vs_list_image *im, FILE *json, bool *first)
{
	if (json) {
		if (!*first)
			fputc(',', json);
		*first = false;
		print_json(json, im);
	} else {
		print_table(im);
	}
}

static int
by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The images of @dir: files with an index beside them, sorted. */
static int
find_images(const char *dir, const char *shown, char ***out, size_t *n)
{
	DIR *d = open_dir(dir);
	struct dirent *de;
	size_t cap = 0, seen = 0;
	char **v = NULL;

	*n = 0;
	if (!d) {
		vs_errno(VS_EXIT_USAGE, shown, "--list");
		return -1;
	}
	while ((de = readdir(d)) && seen++ < LIST_MAX) {
		char *path, *ipath;
		struct stat st;
		int fd = -1, ifd = -1;

		if (de->d_name[0] == '.' || !(path = join(dir, de->d_name)))
			continue;
		ipath = vs_local_index_path(path);
		if (ipath && (fd = open_regular(path, &st)) >= 0)
			ifd = open_regular(ipath, &st);
		if (fd >= 0)
			close(fd);
		if (ifd >= 0)
			close(ifd);
		free(ipath);
		free(path);
		if (ifd < 0)
			continue;
		if (*n == cap) {
			char **nv = realloc(v, (cap = cap ? cap * 2 : 16) *
			    sizeof(*v));

			if (!nv)
				break;
			v = nv;
		}
		if (!(v[*n] = strdup(de->d_name)))
			break;
		++*n;
	}
	closedir(d);
	if (*n)
		qsort(v, *n, sizeof(*v), by_name);
	*out = v;
	return 0;
}

enum vs_exit
vs_list_gather(const char *dest, const char *snapshot_dir, vs_list_fn fn,
    void *arg)
{
	const char *snapdir = snapshot_dir ? snapshot_dir :
	    ".vmsync-snapshots";
	bool snapdir_abs = snapdir[0] == '/';
	char *dir = NULL, *snap = NULL, **names = NULL;
	int dfd = vs_open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	size_t n = 0, i = 0;
	enum vs_exit rc = VS_EXIT_OK;

	if (dfd < 0 && (errno == EXDEV || errno == ELOOP) && vs_confined()) {
		vs_err(VS_EXIT_USAGE, dest, "outside the directory this server "
		    "is confined to");
		rc = VS_EXIT_USAGE;
		goto out;
	}
	if (dfd < 0 || !(dir = vs_confine_fd_path(dfd))) {
		vs_errno(VS_EXIT_USAGE, dest, "--list");
		rc = VS_EXIT_USAGE;
		goto out;
	}
	/* An absolute snapshot directory, as vs_open() takes it. */
	if (snapdir_abs && !(snap = vs_confine_path(snapdir))) {
		if (errno == EXDEV)
			vs_err(VS_EXIT_USAGE, snapdir, "outside the directory "
			    "this server is confined to");
		else
			vs_errno(VS_EXIT_INTERNAL, snapdir, "--snapshot-dir");
		rc = errno == EXDEV ? VS_EXIT_USAGE : VS_EXIT_INTERNAL;
		goto out;
	}
	if (find_images(dir, dest, &names, &n) < 0) {
		rc = VS_EXIT_USAGE;
		goto out;
	}
	for (; i < n; i++) {
		struct vs_list_image im = { .name = names[i] };

		names[i] = NULL;
		if (find_gens(dfd, dir, im.name, snap ? snap : snapdir,
		    snapdir_abs, &im) < 0) {
			vs_errno(VS_EXIT_INTERNAL, im.name, "--list");
			rc = VS_EXIT_INTERNAL;
		}
		if (im.n)
			qsort(im.v, im.n, sizeof(*im.v), by_time);
		/* None left: deleted since the directory was read. */
		if (im.n && fn(arg, &im) < 0) {
			vs_list_image_free(&im);
			rc = vs_err_first() != VS_EXIT_OK ? vs_err_first() :
			    VS_EXIT_INTERNAL;
			break;
		}
		vs_list_image_free(&im);
	}
out:
	for (; i < n; i++)
		free(names[i]);
	free(names);
	free(snap);
	free(dir);
	if (dfd >= 0)
		close(dfd);
	return rc;
}

/* Print one image as it is gathered. */
struct print_arg {
	FILE *json;		/* NULL: a table on stdout */
	bool *first;		/* no JSON image written yet */
};

static int
print_one(void *arg, const struct vs_list_image *im)
{
	struct print_arg *a = arg;

	vs_list_print(im, a->json, a->first);
	return 0;
}

enum vs_exit
vs_list(const char *dest, const char *snapshot_dir, FILE *json, bool *first)
{
	struct print_arg a = { .json = json, .first = first };

	return vs_list_gather(dest, snapshot_dir, print_one, &a);
}
