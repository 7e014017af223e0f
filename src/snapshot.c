/*
 * snapshot.c - snapshot the target's subvolume (libbtrfsutil), prune.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <btrfsutil.h>

#include "btrfs.h"
#include "confine.h"
#include "snapshot.h"
#include "util.h"
#include "vmsync.h"

#define SNAP_XATTR "user.vmsync.snapshot-of"
#define SNAP_DIR ".vmsync-snapshots"
#define SNAP_TMP ".tmp-"
#define SUBVOL_INO 256		/* root directory of every btrfs subvolume */
#define SNAP_MAX 100000		/* entries looked at in the directory */

struct snap {
	char *name;		/* in the snapshot directory */
	struct timespec otime;	/* creation time */
};

/* The subvolume holding @target: its path (malloc'd) and open fd. */
static int
find_subvol(const char *target, char **path, int *fd)
{
	char *copy = strdup(target), *dir;
	struct stat st, here;

	*path = NULL;
	*fd = -1;
	if (!copy)
		return -1;
	dir = realpath(dirname(copy), NULL);
	free(copy);
	if (!dir)
		return -1;
	if (stat(dir, &here) < 0) {
		free(dir);
		return -1;
	}
	/* Walk up while in the same subvolume (btrfs gives each its own
	 * st_dev) until its root directory. */
	for (;;) {
		int d = vs_open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
		char *slash;

		if (d < 0 || fstat(d, &st) < 0 || st.st_dev != here.st_dev) {
			if (d >= 0)
				close(d);
			break;
		}
		if (st.st_ino == SUBVOL_INO) {
			*path = dir;
			*fd = d;
			return 0;
		}
		close(d);
		slash = strrchr(dir, '/');
		if (!slash || slash == dir)
			break;
		*slash = 0;
	}
	free(dir);
	errno = ENOENT;
	return -1;
}

int
vs_snapshot_check(const char *target)
{
	char *copy = strdup(target), *path;
	int fd = -1, ok;

	if (!copy) {
		vs_errno(VS_EXIT_INTERNAL, target, "snapshot");
		return -1;
	}
	fd = vs_open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	ok = fd >= 0 && vs_on_btrfs(fd);
	if (fd >= 0)
		close(fd);
	free(copy);
	if (!ok) {
		vs_err(VS_EXIT_USAGE, target, "--snapshot needs a target on "
		    "btrfs");
		return -1;
	}
	if (find_subvol(target, &path, &fd) < 0) {
		vs_err(VS_EXIT_TARGET, target, "cannot find the btrfs "
		    "subvolume holding the target");
		return -1;
	}
	close(fd);
	free(path);
	return 0;
}

/* Open (making it if missing) the snapshot directory. */
static int
open_snapdir(const char *subvol, const char *dir, char **pathp)
{
	char *path;

	if (!dir)
		path = vs_path_join(subvol, SNAP_DIR);
	else if (dir[0] == '/')
		path = strdup(dir);
	else
		path = vs_path_join(subvol, dir);
	*pathp = path;
	if (!path)
		return -1;
	return vs_open_dir(path, true, 0755);
}

/* Is @name in @dfd a snapshot vmsync took of subvolume @uuid?  Fills
 * @s->otime; *@ro tells whether it is complete (read-only). */
static bool
is_ours(int dfd, const char *name, const uint8_t uuid[16], struct snap *s,
    bool *ro)
{
	struct btrfs_util_subvolume_info info;
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
	}
	close(fd);
	return ours;
}

static int
older_first(const void *a, const void *b)
{
	const struct snap *x = a, *y = b;

	if (x->otime.tv_sec != y->otime.tv_sec)
		return x->otime.tv_sec < y->otime.tv_sec ? -1 : 1;
	if (x->otime.tv_nsec != y->otime.tv_nsec)
		return x->otime.tv_nsec < y->otime.tv_nsec ? -1 : 1;
	return strcmp(x->name, y->name);
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

/* Remove half-made snapshots, and complete ones beyond @keep (0: none). */
static int
prune(int dfd, const char *dir, const uint8_t uuid[16], uint32_t keep)
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
		bool ro = false;

		if (de->d_name[0] == '.' && (!de->d_name[1] ||
		    strcmp(de->d_name, "..") == 0))
			continue;
		if (!is_ours(dfd, de->d_name, uuid, &s, &ro))
			continue;
		if (!ro) {	/* interrupted between make and finish */
			if (abandoned(de->d_name) &&
			    delete_snapshot(dfd, dir, de->d_name) < 0)
				ret = -1;
			continue;
		}
		if (!keep)
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

/* A free final name: the UTC time, with ".N" if taken this second. */
static int
final_name(int dfd, char *name, size_t len)
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
		if (faccessat(dfd, name, F_OK, AT_SYMLINK_NOFOLLOW) < 0 &&
		    errno == ENOENT)
			return 0;
	}
	errno = EEXIST;
	return -1;
}

/* Snapshot @sfd (subvolume @uuid) into @dfd as @name, marked as ours. */
static int
make_snapshot(int sfd, int dfd, const char *dir, const uint8_t uuid[16],
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
	if (fd < 0 || fsetxattr(fd, SNAP_XATTR, uuid, 16, 0) < 0 ||
	    btrfs_util_set_subvolume_read_only_fd(fd, true) != BTRFS_UTIL_OK ||
	    final_name(dfd, name, len) < 0 ||
	    renameat(dfd, tmp, dfd, name) < 0) {
		vs_errno(VS_EXIT_TARGET, dir, "cannot finish snapshot %s", tmp);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	fsync(dfd);
	return 0;
}

int
vs_snapshot_take(const char *target, const struct vs_snapshot_opts *o)
{
	char *subvol = NULL, *dir = NULL, name[64];
	struct vs_subvol sv;
	int sfd = -1, dfd = -1, ret = -1;

	if (find_subvol(target, &subvol, &sfd) < 0 ||
	    vs_btrfs_subvol(sfd, &sv) < 0) {
		vs_err(VS_EXIT_TARGET, target, "cannot find the btrfs "
		    "subvolume holding the target");
		goto out;
	}
	if ((dfd = open_snapdir(subvol, o->dir, &dir)) < 0) {
		vs_errno(VS_EXIT_TARGET, dir ? dir : subvol, "snapshot "
		    "directory");
		goto out;
	}
	if (make_snapshot(sfd, dfd, dir, sv.uuid, name, sizeof(name)) < 0)
		goto out;
	vs_info(1, "%s: snapshot %s/%s", target, dir, name);
	ret = prune(dfd, dir, sv.uuid, o->keep);
out:
	if (sfd >= 0)
		close(sfd);
	if (dfd >= 0)
		close(dfd);
	free(subvol);
	free(dir);
	return ret;
}
