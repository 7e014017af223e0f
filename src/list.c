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
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "index.h"
#include "list.h"
#include "physmap.h"
#include "progress.h"
#include "transport/transport.h"
#include "util.h"

#define SUBVOL_INO 256		/* root directory of a btrfs subvolume */
#define LIST_MAX 100000		/* directory entries looked at */

struct gen {
	char *path;
	struct timespec time;	/* its index's mtime */
	bool complete;
	uint64_t virtual_size, allocated, exclusive;
	bool has_exclusive;
};

struct gens {
	struct gen *v;
	size_t n, cap;
};

static int
by_time(const void *a, const void *b)
{
	const struct gen *x = a, *y = b;
	int c = vs_timespec_cmp(&x->time, &y->time);

	return c ? c : strcmp(x->path, y->path);
}

/* Add the generation at @path, if it is one (a file with its index). */
static int
add_gen(struct gens *g, const char *path)
{
	char *ipath = vs_local_index_path(path);
	const struct idx_header *h;
	struct vs_index *ix = NULL;
	struct stat st, ist;
	const char *why;
	struct gen e = { 0 };
	int fd = -1, rc = 0;

	if (!ipath)
		return -1;
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY |
	    O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    lstat(ipath, &ist) < 0 || !S_ISREG(ist.st_mode))
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
	if (g->n == g->cap) {
		struct gen *nv = realloc(g->v, (g->cap = g->cap ? g->cap * 2 :
		    8) * sizeof(*nv));

		if (!nv) {
			rc = -1;
			goto out;
		}
		g->v = nv;
	}
	if (!(e.path = strdup(path))) {
		rc = -1;
		goto out;
	}
	g->v[g->n++] = e;
out:
	idx_close(ix);
	if (fd >= 0)
		close(fd);
	free(ipath);
	return rc;
}

/* The root of the btrfs subvolume holding the directory @dir (a real
 * path), or NULL: the longest prefix that is a subvolume root on the same
 * device. */
static char *
subvol_root(const char *dir)
{
	struct stat here, st;
	char *p = strdup(dir), *slash;

	if (!p || stat(p, &here) < 0) {
		free(p);
		return NULL;
	}
	for (;;) {
		if (stat(p, &st) < 0 || st.st_dev != here.st_dev)
			break;
		if (st.st_ino == SUBVOL_INO)
			return p;
		if (!(slash = strrchr(p, '/')) || slash == p)
			break;
		*slash = 0;
	}
	free(p);
	return NULL;
}

/* Every snapshot in @snapdir (each a directory holding the subvolume's
 * tree) whose copy of @rel exists; @inner: the tree is in its
 * "snapshot" subdirectory (snapper). */
static int
add_snapshots(struct gens *g, const char *snapdir, const char *inner,
    const char *rel)
{
	DIR *d = opendir(snapdir);
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
		    inner ? "/" : "", inner ? inner : "", rel) < 0)
			rc = -1;
		else
			rc = add_gen(g, path);
		free(path);
	}
	closedir(d);
	return rc;
}

/* The generations of the image @name in the directory @dir. */
static int
find_gens(const char *dir, const char *name, const char *snapshot_dir,
    struct gens *g)
{
	char *live = vs_path_join(dir, name), *root = subvol_root(dir);
	char *rel = NULL, *vmsnap = NULL, *snapper = NULL;
	int rc = -1;

	if (!live || add_gen(g, live) < 0)
		goto out;
	if (!root) {
		rc = 0;
		goto out;
	}
	if (asprintf(&rel, "%s%s%s", dir + strlen(root), dir[strlen(root)] ?
	    "/" : "", name) < 0) {
		rel = NULL;
		goto out;
	}
	if (rel[0] == '/')
		memmove(rel, rel + 1, strlen(rel));
	vmsnap = snapshot_dir && snapshot_dir[0] == '/' ?
	    strdup(snapshot_dir) : vs_path_join(root, snapshot_dir ?
	    snapshot_dir : ".vmsync-snapshots");
	snapper = vs_path_join(root, ".snapshots");
	if (!vmsnap || !snapper ||
	    add_snapshots(g, vmsnap, NULL, rel) < 0 ||
	    add_snapshots(g, snapper, "snapshot", rel) < 0)
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
print_table(const char *name, const struct gens *g)
{
	for (size_t i = 0; i < g->n; i++) {
		const struct gen *e = &g->v[i];
		char t[32], vs[32], al[32], ex[32];

		print_time(&e->time, t, sizeof(t));
		vs_fmt_bytes(e->virtual_size, vs, sizeof(vs));
		vs_fmt_bytes(e->allocated, al, sizeof(al));
		if (e->has_exclusive)
			vs_fmt_bytes(e->exclusive, ex, sizeof(ex));
		else
			snprintf(ex, sizeof(ex), "-");
		printf("%-16s %-20s %10s %10s %10s  %-8s %s\n", name, t, vs, al,
		    ex, e->complete ? "complete" : "partial", e->path);
	}
}

static void
print_json(FILE *fp, const char *name, const struct gens *g)
{
	fputs("{\"name\":", fp);
	vs_json_string(fp, name);
	fputs(",\"generations\":[", fp);
	for (size_t i = 0; i < g->n; i++) {
		const struct gen *e = &g->v[i];
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

static int
by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The images of @dir: files with an index beside them, sorted. */
static int
find_images(const char *dir, char ***out, size_t *n)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t cap = 0, seen = 0;
	char **v = NULL;

	*n = 0;
	if (!d) {
		vs_errno(VS_EXIT_USAGE, dir, "--list");
		return -1;
	}
	while ((de = readdir(d)) && seen++ < LIST_MAX) {
		char *path, *ipath;
		struct stat st;
		bool image;

		if (de->d_name[0] == '.' || !(path = vs_path_join(dir,
		    de->d_name)))
			continue;
		ipath = vs_local_index_path(path);
		image = ipath && lstat(path, &st) == 0 && S_ISREG(st.st_mode) &&
		    lstat(ipath, &st) == 0 && S_ISREG(st.st_mode);
		free(ipath);
		free(path);
		if (!image)
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
vs_list(const char *dest, const char *snapshot_dir, FILE *json, bool *first)
{
	char *dir = realpath(dest, NULL), **names = NULL;
	size_t n = 0;
	enum vs_exit rc = VS_EXIT_OK;

	if (!dir) {
		vs_errno(VS_EXIT_USAGE, dest, "--list");
		return VS_EXIT_USAGE;
	}
	if (find_images(dir, &names, &n) < 0) {
		free(dir);
		return VS_EXIT_USAGE;
	}
	for (size_t i = 0; i < n; i++) {
		struct gens g = { 0 };

		if (find_gens(dir, names[i], snapshot_dir, &g) < 0) {
			vs_errno(VS_EXIT_INTERNAL, names[i], "--list");
			rc = VS_EXIT_INTERNAL;
		}
		if (g.n)
			qsort(g.v, g.n, sizeof(*g.v), by_time);
		if (json) {
			if (!*first)
				fputc(',', json);
			*first = false;
			print_json(json, names[i], &g);
		} else {
			print_table(names[i], &g);
		}
		for (size_t k = 0; k < g.n; k++)
			free(g.v[k].path);
		free(g.v);
		free(names[i]);
	}
	free(names);
	free(dir);
	return rc;
}
