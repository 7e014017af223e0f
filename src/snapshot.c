/*
 * snapshot.c - snapshot the target's subvolume (libbtrfsutil), prune.
 *
 * Everything after the target's directory is reached through directory
 * fds: the subvolume by walking up "..", never past the --root directory,
 * and the snapshot directory beneath the subvolume (or the root).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdint.h>
#include <sys/file.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <btrfsutil.h>

#include "btrfs.h"
#include "confine.h"
#include "index.h"
#include "transport/transport.h"
#include "snapshot.h"
#include "util.h"
#include "vmsync.h"

#define SNAP_XATTR "user.vmsync.snapshot-of"
#define IMAGE_XATTR "user.vmsync.snapshot-for"
#define SNAP_DIR ".vmsync-snapshots"
#define SNAP_TMP ".tmp-"
#define SUBVOL_INO 256		/* root directory of every btrfs subvolume */
#define SNAP_MAX 100000		/* entries looked at in the directory */
#define GATE_NAME ".vmsync.lock"	/* in the subvolume's root directory */
#define MARK_LEN 16		/* one image's mark */
#define MARKS_MAX 256		/* images one snapshot is marked for: the
				 * xattr must fit in a btrfs leaf */

struct snap {
	char *name;		/* in the snapshot directory */
	struct timespec otime;	/* creation time */
};

/* Whose snapshots retention may delete: those taken of one subvolume for
 * images all of which this run synced. */
struct owner {
	uint8_t uuid[16];	/* the subvolume's */
	size_t n;		/* images this run synced there */
	uint8_t image[MARKS_MAX][MARK_LEN]; /* each target's inode number and
				 * generation, which its copy in a snapshot
				 * keeps */
};

/* Walk up from the directory @fd to the root directory of its subvolume
 * (btrfs gives each subvolume its own st_dev): 1 and its fd in *@out, 0
 * if there is none, -1 if it is above the --root directory, which is
 * never passed.  Takes @fd. */
static int
walk_up(int fd, int *out)
{
	struct stat st, here;

	*out = -1;
	if (fstat(fd, &here) < 0)
		goto none;
	for (st = here;;) {
		int up;

		if (st.st_ino == SUBVOL_INO) {
			*out = fd;
			return 1;
		}
		if (vs_confine_is_root(&st)) {
			close(fd);
			return -1;
		}
		up = openat(fd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		close(fd);
		fd = up;
		if (fd < 0 || fstat(fd, &st) < 0 || st.st_dev != here.st_dev)
			goto none;
	}
none:
	if (fd >= 0)
		close(fd);
	return 0;
}

/* The directory holding @target, opened as vs_open() does. */
static int
target_dir(const char *target)
{
	char *copy = strdup(target);
	int fd;

	if (!copy)
		return -1;
	fd = vs_open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	free(copy);
	return fd;
}

/* The root directory of the subvolume holding @target, in *@fd; reports
 * and returns -1 if there is none vmsync may use. */
static int
find_subvol(const char *target, int *fd)
{
	int r, dfd = target_dir(target);

	r = dfd >= 0 && vs_on_btrfs(dfd) ? walk_up(dfd, fd) : 0;
	if (dfd >= 0 && r == 0)
		close(dfd);
	if (r < 0)
		vs_err(VS_EXIT_USAGE, target, "--snapshot: the target's btrfs "
		    "subvolume is above the directory this server is confined "
		    "to");
	else if (r == 0)
		vs_err(VS_EXIT_TARGET, target, "cannot find the btrfs "
		    "subvolume holding the target");
	return r > 0 ? 0 : -1;
}

int
vs_snapshot_check(const char *target)
{
	int fd = target_dir(target), ok = fd >= 0 && vs_on_btrfs(fd);

	if (fd >= 0)
		close(fd);
	if (!ok) {
		vs_err(VS_EXIT_USAGE, target, "--snapshot needs a target on "
		    "btrfs");
		return -1;
	}
	if (find_subvol(target, &fd) < 0)
		return -1;
	close(fd);
	return 0;
}

/* How messages name @dir, relative to the subvolume @sfd unless
 * absolute. */
static char *
display_name(int sfd, const char *dir)
{
	char *sub, *out;

	if (dir[0] == '/' || !(sub = vs_confine_fd_path(sfd)))
		return strdup(dir);
	out = vs_path_join(sub, dir);
	free(sub);
	return out;
}

/* Open (making it if missing) the snapshot directory: @dir, relative to
 * the subvolume @sfd, or its default there.  *@namep names it in
 * messages. */
static int
open_snapdir(int sfd, const char *dir, char **namep)
{
	const char *why;
	int fd;

	if (!dir)
		dir = SNAP_DIR;
	fd = vs_open_state_dir(dir[0] == '/' ? AT_FDCWD : sfd, dir, true,
	    0755, &why);
	if (!(*namep = fd >= 0 ? vs_confine_fd_path(fd) : NULL) &&
	    !(*namep = display_name(sfd, dir))) {
		if (fd >= 0)
			close(fd);
		vs_errno(VS_EXIT_INTERNAL, dir, "snapshot directory");
		return -1;
	}
	if (fd == -2)
		vs_err(VS_EXIT_TARGET, *namep, "snapshot directory %s; "
		    "refusing it", why);
	else if (fd < 0 && errno == EXDEV && vs_confined())
		vs_err(VS_EXIT_USAGE, dir, "outside the directory this "
		    "server is confined to");
	else if (fd < 0)
		vs_errno(VS_EXIT_TARGET, *namep, "snapshot directory");
	return fd;
}

/* The image mark of @target: its inode number and generation. */
static int
image_mark(const char *target, uint8_t mark[16])
{
	char *copy = strdup(target);
	int dfd = target_dir(target), fd = -1, gen = 0;
	uint64_t ino;
	struct stat st;
	bool ok;

	if (copy && dfd >= 0)
		fd = openat(dfd, basename(copy), O_RDONLY | O_NOFOLLOW |
		    O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	ok = fd >= 0 && fstat(fd, &st) == 0 &&
	    ioctl(fd, FS_IOC_GETVERSION, &gen) == 0;
	if (ok) {
		ino = (uint64_t)st.st_ino;
		memset(mark, 0, 16);
		memcpy(mark, &ino, 8);
		memcpy(mark + 8, &gen, sizeof(gen));
	}
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	free(copy);
	return ok ? 0 : -1;
}

/* Was the snapshot @fd taken for images all of which @who synced? */
static bool
marked_for(int fd, const struct owner *who)
{
	uint8_t marks[MARKS_MAX][MARK_LEN];
	ssize_t len = fgetxattr(fd, IMAGE_XATTR, marks, sizeof(marks));

	if (len <= 0 || len % MARK_LEN)
		return false;
	for (size_t i = 0; i < (size_t)len / MARK_LEN; i++) {
		size_t j = 0;

		while (j < who->n && memcmp(marks[i], who->image[j], MARK_LEN))
			j++;
		if (j == who->n)
			return false;
	}
	return true;
}

/* Is @name in @dfd a snapshot vmsync took of @who's subvolume?  Fills
 * @s->otime; *@ro tells whether it is complete (read-only), *@mine
 * whether it was taken for @who's image. */
static bool
is_ours(int dfd, const char *name, const struct owner *who, struct snap *s,
    bool *ro, bool *mine)
{
	struct btrfs_util_subvolume_info info;
	const uint8_t *uuid = who->uuid;
	uint8_t mark[16];
	struct stat st;
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	bool ours;

	if (fd < 0)
		return false;
	/* The mark is copied into a snapshot of a snapshot: only a direct
	 * snapshot of the subvolume is ours. */
	ours = fstat(fd, &st) == 0 && st.st_ino == SUBVOL_INO &&
	    fgetxattr(fd, SNAP_XATTR, mark, sizeof(mark)) ==
	    (ssize_t)sizeof(mark) && memcmp(mark, uuid, 16) == 0 &&
	    btrfs_util_subvolume_info_fd(fd, 0, &info) == BTRFS_UTIL_OK &&
	    memcmp(info.parent_uuid, uuid, 16) == 0;
	if (ours) {
		s->otime = info.otime;
		*ro = info.flags & 1;
		*mine = marked_for(fd, who);
	}
	close(fd);
	return ours;
}

static int
older_first(const void *a, const void *b)
{
	const struct snap *x = a, *y = b;
	int c = vs_timespec_cmp(&x->otime, &y->otime);

	return c ? c : strcmp(x->name, y->name);
}

static int
delete_snapshot(int dfd, const char *dir, const char *name)
{
	enum btrfs_util_error e = btrfs_util_delete_subvolume_fd(dfd, name, 0);

	if (e != BTRFS_UTIL_OK) {
		vs_err(VS_EXIT_TARGET, dir, "cannot delete snapshot %s: %s%s%s",
		    name, btrfs_util_strerror(e), errno ? ": " : "",
		    errno ? strerror(errno) : "");
		return -1;
	}
	vs_info(1, "%s/%s: snapshot deleted", dir, name);
	return 0;
}

/* A half-made snapshot whose run is gone (not another run's, in progress). */
static bool
abandoned(const char *name)
{
	char *end;
	long pid;

	if (strncmp(name, SNAP_TMP, strlen(SNAP_TMP)) != 0)
		return false;
	pid = strtol(name + strlen(SNAP_TMP), &end, 10);
	return *end || pid <= 0 || pid == (long)getpid() ||
	    (kill((pid_t)pid, 0) < 0 && errno == ESRCH);
}

/* Remove half-made snapshots, and complete ones taken for this run's
 * images beyond @keep (0: none): each run counts once. */
static int
prune(int dfd, const char *dir, const struct owner *who, uint32_t keep)
{
	struct snap *v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	/* A new open: a dup'ed one may not list the snapshot just renamed
	 * in. */
	int ret = 0, d2 = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = d2 >= 0 ? fdopendir(d2) : NULL;

	if (!d) {
		if (d2 >= 0)
			close(d2);
		vs_errno(VS_EXIT_TARGET, dir, "snapshot directory");
		return -1;
	}
	while ((de = readdir(d)) && n < SNAP_MAX) {
		struct snap s = { 0 };
		bool ro = false, mine = false;

		if (de->d_name[0] == '.' && (!de->d_name[1] ||
		    strcmp(de->d_name, "..") == 0))
			continue;
		if (!is_ours(dfd, de->d_name, who, &s, &ro, &mine))
			continue;
		if (!ro) {	/* interrupted between make and finish */
			if (abandoned(de->d_name) &&
			    delete_snapshot(dfd, dir, de->d_name) < 0)
				ret = -1;
			continue;
		}
		if (!keep || !mine)	/* other images' are theirs to prune */
			continue;
		if (n == cap) {
			struct snap *nv = realloc(v, (cap = cap ? cap * 2 :
			    16) * sizeof(*v));

			if (!nv)
				break;
			v = nv;
		}
		if (!(s.name = strdup(de->d_name)))
			break;
		v[n++] = s;
	}
	closedir(d);
	if (n)
		qsort(v, n, sizeof(*v), older_first);
	for (size_t i = 0; keep && i + keep < n; i++)
		if (delete_snapshot(dfd, dir, v[i].name) < 0)
			ret = -1;
	for (size_t i = 0; i < n; i++)
		free(v[i].name);
	free(v);
	return ret;
}

/* Give @tmp in @dfd its final name: the UTC time, with ".N" if another
 * run took that name, in this second or at the same moment (the rename
 * never replaces: the name is taken by whoever renames first). */
static int
final_name(int dfd, const char *tmp, char *name, size_t len)
{
	time_t now = time(NULL);
	struct tm tm;
	char stamp[32];

	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H%M%SZ", &tm);
	for (int i = 0; i < 1000; i++) {
		if (i)
			snprintf(name, len, "%s.%d", stamp, i);
		else
			snprintf(name, len, "%s", stamp);
		if (renameat2(dfd, tmp, dfd, name, RENAME_NOREPLACE) == 0)
			return 0;
		if (errno != EEXIST)
			return -1;
	}
	errno = EEXIST;
	return -1;
}

/* Snapshot @sfd into @dfd as @name, marked as @who's. */
static int
make_snapshot(int sfd, int dfd, const char *dir, const struct owner *who,
    char *name, size_t len)
{
	char tmp[64];
	enum btrfs_util_error e;
	int fd;

	snprintf(tmp, sizeof(tmp), SNAP_TMP "%ld", (long)getpid());
	e = btrfs_util_create_snapshot_fd2(sfd, dfd, tmp, 0, NULL, NULL);
	if (e != BTRFS_UTIL_OK) {
		vs_err(VS_EXIT_TARGET, dir, "cannot snapshot the target's "
		    "subvolume: %s%s%s", btrfs_util_strerror(e),
		    errno ? ": " : "", errno ? strerror(errno) : "");
		return -1;
	}
	fd = openat(dfd, tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fsetxattr(fd, SNAP_XATTR, who->uuid, 16, 0) < 0 ||
	    fsetxattr(fd, IMAGE_XATTR, who->image, who->n * MARK_LEN, 0) < 0 ||
	    btrfs_util_set_subvolume_read_only_fd(fd, true) != BTRFS_UTIL_OK ||
	    final_name(dfd, tmp, name, len) < 0) {
		vs_errno(VS_EXIT_TARGET, dir, "cannot finish snapshot %s", tmp);
		if (fd >= 0)
			close(fd);
		btrfs_util_delete_subvolume_fd(dfd, tmp, 0);	/* no debris */
		return -1;
	}
	close(fd);
	/* Its name durable before older snapshots are pruned for it. */
	if (fsync(dfd) < 0) {
		vs_errno(VS_EXIT_TARGET, dir, "snapshot %s made, but the "
		    "directory cannot be synced; no snapshot pruned", name);
		return -1;
	}
	return 0;
}

/* flock(@fd, @op), waiting as long as it takes unless the run is
 * interrupted. */
static int
lock_wait(int fd, int op)
{
	while (flock(fd, op) < 0)
		if (errno != EINTR || vs_interrupted)
			return -1;
	return 0;
}

/* The gate of the subvolume @sfd: a file in its root directory that a
 * snapshot holds exclusively from before it waits for the writers, so
 * that new writers queue behind it and cannot starve it. */
static int
open_gate(int sfd, const char *target)
{
	struct stat st;
	int fd = openat(sfd, GATE_NAME, O_RDONLY | O_CREAT | O_NOFOLLOW |
	    O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0644);

	if (fd < 0 && (errno == EACCES || errno == EROFS)) {
		fd = openat(sfd, GATE_NAME, O_RDONLY | O_NOFOLLOW |
		    O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
		if (fd < 0 && errno == ENOENT)
			return -2;	/* none, and not ours to make */
	}
	if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))) {
		close(fd);
		vs_err(VS_EXIT_TARGET, target, "the subvolume's %s is not a "
		    "regular file; refusing it", GATE_NAME);
		return -1;
	}
	if (fd < 0)
		vs_errno(VS_EXIT_TARGET, target, "subvolume lock %s",
		    GATE_NAME);
	return fd;
}

/* Take the subvolume @sfd's lock, @op (LOCK_SH for a writer, LOCK_EX for
 * a snapshot), through its gate.  A writer holds the gate only while it
 * queues; a snapshot until it is taken, in *@gate. */
static int
subvol_lock(int sfd, int op, const char *target, int *gate)
{
	int g = open_gate(sfd, target);

	*gate = -1;
	if (g == -2 && op == LOCK_EX)
		vs_err(VS_EXIT_TARGET, target, "cannot make the subvolume's "
		    "%s", GATE_NAME);
	/* A writer that may not make the gate still holds the subvolume
	 * (only queueing is lost); a snapshot needs both. */
	if (g == -1 || (g == -2 && op == LOCK_EX))
		return -1;
	if ((g >= 0 && lock_wait(g, op) < 0) || lock_wait(sfd, op) < 0) {
		vs_errno(VS_EXIT_TARGET, target, "subvolume lock");
		if (g >= 0)
			close(g);
		return -1;
	}
	if (op == LOCK_EX)
		*gate = g;
	else if (g >= 0)
		close(g);	/* releases the gate */
	return 0;
}

int
vs_subvol_hold(int dir_fd, const char *target, int *hold)
{
	int gate, sfd, fd = dir_fd >= 0 && vs_on_btrfs(dir_fd) ?
	    fcntl(dir_fd, F_DUPFD_CLOEXEC, 0) : -1;

	*hold = -1;
	if (fd < 0 || walk_up(fd, &sfd) <= 0)
		return 0;	/* no subvolume a snapshot could take */
	/* Its own open file description: a lock per hold. */
	fd = openat(sfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	close(sfd);
	if (fd < 0) {
		vs_errno(VS_EXIT_TARGET, target, "subvolume");
		return -1;
	}
	if (subvol_lock(fd, LOCK_SH, target, &gate) < 0) {
		close(fd);
		return -1;
	}
	*hold = fd;
	return 0;
}

void
vs_subvol_release(int hold)
{
	if (hold >= 0)
		close(hold);
}

/* Did the last sync of @it end before it finished (its index dirty)? */
static bool
partial(const struct vs_snapshot_item *it)
{
	char *path = it->index ? strdup(it->index) :
	    vs_local_index_path(it->target);
	const struct idx_header *h;
	struct vs_index *ix = NULL;
	const char *why;
	bool dirty = false;

	vs_err_demote(true);
	if (path && idx_open(path, false, &ix) == 0 && ix &&
	    (h = idx_header(ix, &why)))
		dirty = h->flags & IDX_FLAG_DIRTY;
	vs_err_demote(false);
	idx_close(ix);
	free(path);
	return dirty;
}

/* One subvolume of the run: its root, and the run's images in it. */
struct group {
	int sfd;
	struct owner who;
	const struct vs_snapshot_item *first;	/* for messages */
	bool synced;		/* the run synced one of them */
};

/* Snapshot the subvolume of group @k, with no writer in it, if none of
 * the run's images there (@v[i] with @in[i] == @k) was left half
 * written; then retention. */
static int
snapshot_group(struct group *g, size_t k, const struct vs_snapshot_item *v,
    const size_t *in, size_t n, const struct vs_snapshot_opts *o)
{
	const char *target = g->first->target;
	char *dir = NULL, name[64];
	int gate = -1, dfd = -1, ret = -1;

	if (subvol_lock(g->sfd, LOCK_EX, target, &gate) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (in[i] == k && partial(&v[i])) {
			vs_err(VS_EXIT_TARGET, v[i].target, "index dirty (a "
			    "sync that did not finish, or a write by another "
			    "program): no snapshot of its subvolume, which "
			    "would hold it so");
			goto out;
		}
	if ((dfd = open_snapdir(g->sfd, o->dir, &dir)) < 0 ||
	    make_snapshot(g->sfd, dfd, dir, &g->who, name, sizeof(name)) < 0)
		goto out;
	flock(g->sfd, LOCK_UN);	/* writers may go on */
	close(gate);
	gate = -1;
	vs_info(1, "%s: snapshot %s/%s", target, dir, name);
	ret = prune(dfd, dir, &g->who, o->keep);
out:
	if (gate >= 0) {
		flock(g->sfd, LOCK_UN);
		close(gate);
	}
	if (dfd >= 0)
		close(dfd);
	free(dir);
	return ret;
}

/* Put @v's subvolume in @g (a new group or the one it shares), its
 * number in *@k. */
static int
add_to_group(const struct vs_snapshot_item *v, struct group *g, size_t *ng,
    size_t *k)
{
	struct vs_subvol sv;
	int sfd;

	if (find_subvol(v->target, &sfd) < 0)
		return -1;
	if (vs_btrfs_subvol(sfd, &sv) < 0) {
		close(sfd);
		vs_errno(VS_EXIT_TARGET, v->target, "snapshot");
		return -1;
	}
	for (*k = 0; *k < *ng && memcmp(g[*k].who.uuid, sv.uuid, 16); ++*k)
		;
	if (*k < *ng) {
		close(sfd);
		return 0;
	}
	g[*k].sfd = sfd;
	g[*k].first = v;
	memcpy(g[*k].who.uuid, sv.uuid, 16);
	++*ng;
	return 0;
}

int
vs_snapshot_run(const struct vs_snapshot_item *v, size_t n,
    const struct vs_snapshot_opts *o)
{
	struct group *g = calloc(n ? n : 1, sizeof(*g));
	size_t *in = calloc(n ? n : 1, sizeof(*in)), ng = 0;
	int ret = 0, taken = 0;

	if (!g || !in) {
		vs_errno(VS_EXIT_INTERNAL, n ? v[0].target : "snapshot",
		    "snapshot");
		ret = -1;
		goto out;
	}
	/* Group the run's images by subvolume: one snapshot each.  An image
	 * that did not sync matters only where it lies in a group. */
	for (size_t i = 0; i < n; i++) {
		uint8_t mark[MARK_LEN];
		struct group *gk;
		int r;

		vs_err_demote(!v[i].synced);
		r = add_to_group(&v[i], g, &ng, &in[i]);
		vs_err_demote(false);
		if (r < 0) {
			in[i] = SIZE_MAX;
			if (v[i].synced)
				ret = -1;
			continue;
		}
		if (!v[i].synced)
			continue;
		gk = &g[in[i]];
		if (image_mark(v[i].target, mark) < 0) {
			vs_errno(VS_EXIT_TARGET, v[i].target, "snapshot");
			ret = -1;
			continue;
		}
		if (!gk->synced)
			gk->first = &v[i];
		gk->synced = true;
		if (gk->who.n < MARKS_MAX)
			memcpy(gk->who.image[gk->who.n++], mark, MARK_LEN);
	}
	for (size_t k = 0; k < ng; k++) {
		if (!g[k].synced)
			continue;
		if (snapshot_group(&g[k], k, v, in, n, o) < 0)
			ret = -1;
		else
			taken++;
	}
out:
	for (size_t k = 0; k < ng; k++)
		close(g[k].sfd);
	free(g);
	free(in);
	return ret < 0 ? -1 : taken;
}
