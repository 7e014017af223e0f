/*
 * view.c - clone the source into the state directory, name views, find the
 * base.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "btrfs.h"
#include "confine.h"
#include "transport/transport.h"
#include "util.h"
#include "view.h"
#include "vmsync.h"

#define VIEW_XATTR "user.vmsync.view"
#define VIEW_SEED 0x766d7379766965ull
#define STATE_DIR ".vmsync"
#define VIEW_BASES 4		/* bases kept per image: one per target */

const struct vs_hash vs_view_none;

/* The id of the point-in-time view open as @fd: a clone's xattr, or the
 * read-only snapshot's UUID and the inode.  Zero if it has none. */
static void
view_id_of(int fd, struct vs_hash *id)
{
	struct vs_subvol sv;
	uint8_t buf[24];
	struct stat st;

	*id = vs_view_none;
	if (fgetxattr(fd, VIEW_XATTR, id->b, sizeof(id->b)) ==
	    (ssize_t)sizeof(id->b))
		return;
	*id = vs_view_none;
	if (!vs_on_btrfs(fd) || vs_btrfs_subvol(fd, &sv) < 0 ||
	    !sv.read_only || fstat(fd, &st) < 0)
		return;
	memcpy(buf, sv.uuid, 16);
	memcpy(buf + 16, &st.st_ino, 8);
	vs_hash_block(buf, sizeof(buf), VIEW_SEED, id);
}

/* "<dir>/<name><suffix>", malloc'd. */
static char *
state_path(const char *dir, const char *name, const char *suffix)
{
	char *out;

	return asprintf(&out, "%s/%s%s", dir, name, suffix) < 0 ? NULL : out;
}

/* Lock the image's state against another vmsync reading the same image. */
static int
lock_state(struct vs_view *v, const char *dir)
{
	char *lock = state_path(".", v->name, ".lock");
	struct stat held, named;

	if (!lock)
		return -1;
	v->lock_fd = openat(v->dir_fd, lock, O_RDWR | O_CREAT | O_CLOEXEC |
	    O_NOFOLLOW, 0600);
	if (v->lock_fd < 0) {
		vs_errno(VS_EXIT_SOURCE, dir, "state directory lock");
		free(lock);
		return -1;
	}
	errno = 0;
	/* A lock file is removed by the run that held it (vs_view_finish):
	 * one that lost its name meanwhile is another run's. */
	if (flock(v->lock_fd, LOCK_EX | LOCK_NB) < 0 ||
	    fstat(v->lock_fd, &held) < 0 || fstatat(v->dir_fd, lock, &named,
	    AT_SYMLINK_NOFOLLOW) < 0 || held.st_ino != named.st_ino) {
		if (errno == EWOULDBLOCK || errno == ENOENT || !errno)
			vs_err(VS_EXIT_LOCKED, v->src, "another vmsync is "
			    "reading this image (lock in %s)", dir);
		else
			vs_errno(VS_EXIT_SOURCE, dir, "state directory lock");
		close(v->lock_fd);	/* not ours to remove */
		v->lock_fd = -1;
		free(lock);
		return -1;
	}
	free(lock);
	return 0;
}

/* A state directory that cannot be used: an error if the user named it,
 * else a warning (errno says why). */
static void
state_error(const struct vs_view_opts *o, const char *dir, const char *what)
{
	if (o->state_dir)
		vs_errno(VS_EXIT_SOURCE, dir, "%s", what);
	else
		vs_warn(dir, "%s: %s", what, strerror(errno));
}

/* A source read live while a running VM writes it can be torn: say so
 * once, with what to do instead. */
static void
warn_torn(const struct vs_view *v, int fd)
{
	if (vs_qemu_locked(fd, VS_QEMU_HOLDS))
		vs_warn(v->src, "a running VM (qemu) writes this image and it "
		    "cannot be cloned here: the copy may be torn (sync from a "
		    "snapshot of it, or pause the guest)");
}

/* Clone @fd into "<name>.new" of the state directory and name it; with
 * @keep, it becomes the next base.  Returns 1 if cloned, 0 if the source
 * is to be read live, -1 on an error. */
static int
make_clone(struct vs_view *v, int fd, const struct vs_view_opts *o,
    bool keep)
{
	char *dir = NULL, *copy = NULL, *newname = NULL;
	const char *why;
	uint64_t r[2];
	int nfd = -1, ret = -1;

	/* Beside the file itself, whatever path or symlink led to it, so
	 * every path to an image shares its lock and base. */
	if (o->state_dir)
		dir = strdup(o->state_dir);
	else if ((copy = strdup(v->real)))
		dir = vs_path_join(dirname(copy), STATE_DIR);
	if (!dir || !(newname = state_path(".", v->name, ".new")))
		goto nomem;
	if ((v->dir_fd = vs_open_state_dir(AT_FDCWD, dir, !o->dry_run, 0700,
	    &why)) == -2) {
		/* Another user could make it name files elsewhere. */
		vs_err(VS_EXIT_SOURCE, dir, "state directory %s; refusing it",
		    why);
		goto out;
	}
	if (v->dir_fd < 0) {
		if (errno == ENOENT && o->dry_run) {
			ret = 0;	/* a dry run makes no state directory */
			goto out;
		}
		state_error(o, dir, "state directory");
		goto live;
	}
	if (lock_state(v, dir) < 0)
		goto out;
	unlinkat(v->dir_fd, newname, 0);
	nfd = openat(v->dir_fd, newname, O_RDWR | O_CREAT | O_EXCL |
	    O_CLOEXEC | O_NOFOLLOW, 0600);
	if (nfd < 0 || vs_btrfs_clone(fd, nfd) < 0) {
		state_error(o, dir, "cannot clone the source here");
		if (nfd >= 0)
			unlinkat(v->dir_fd, newname, 0);
		goto live;
	}
	if (vs_random64(&r[0]) < 0 || vs_random64(&r[1]) < 0)
		goto nomem;
	memcpy(v->id.b, r, sizeof(v->id.b));
	/* Durable before the target records the id. */
	if (fsetxattr(nfd, VIEW_XATTR, v->id.b, sizeof(v->id.b), 0) < 0 ||
	    fsync(nfd) < 0) {
		v->id = vs_view_none;
		vs_warn(dir, "cannot name the clone of %s (%s); no change "
		    "detection next time", v->src, strerror(errno));
	}
	v->cloned = true;
	v->keeps_base = keep;
	if (!(v->read_path = state_path(dir, v->name, ".new")))
		goto nomem;
	v->state_dir = dir;
	v->own_state = !o->state_dir;
	dir = NULL;
	ret = 1;
	goto out;
live:
	/* Only an explicit --state-dir makes this an error. */
	ret = o->state_dir ? -1 : 0;
	if (ret == 0) {
		vs_warn(v->src, "reading the live image, not a point-in-time "
		    "clone");
		warn_torn(v, fd);
	}
	goto out;
nomem:
	vs_errno(VS_EXIT_INTERNAL, v->src, "state directory");
out:
	if (nfd >= 0)
		close(nfd);
	free(dir);
	free(copy);
	free(newname);
	return ret;
}

/* The real path of the source open as @fd (symlinks resolved, as
 * vs_open() takes it), and its file name. */
static int
real_name(struct vs_view *v, int fd)
{
	char *copy;

	/* The inode opened, not the name looked up again: confined, the
	 * path stays beneath the root. */
	v->real = fd >= 0 ? vs_confine_fd_path(fd) : NULL;
	if (!v->real && !(v->real = strdup(v->src)))
		goto nomem;
	if (!(copy = strdup(v->real)))
		goto nomem;
	v->name = strdup(basename(copy));
	free(copy);
	if (v->name)
		return 0;
nomem:
	vs_errno(VS_EXIT_INTERNAL, v->src, "view");
	return -1;
}

/* Is the source open as @fd a backup vmsync wrote (an index beside it,
 * and no VM running on it: an image restored in place and booted again
 * is a live disk)?  Then it is read as it is, never cloned into the
 * backup's subvolume: reading a backup writes nothing there.  A shared
 * lock on it (a sync writing it holds an exclusive one) keeps it still
 * while it is read.  1 if so, 0 if not, -1 if it is being written. */
static int
hold_backup(struct vs_view *v, int fd)
{
	char *ipath = vs_local_index_path(v->real);
	int ifd = ipath ? vs_open(ipath, O_PATH | O_NOFOLLOW | O_CLOEXEC, 0) :
	    -1;
	struct stat st;
	bool backup = ifd >= 0 && fstat(ifd, &st) == 0 && S_ISREG(st.st_mode);

	if (ifd >= 0)
		close(ifd);
	free(ipath);
	if (!backup || vs_qemu_locked(fd, VS_QEMU_HOLDS))
		return 0;
	if ((v->backup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0 ||
	    flock(v->backup_fd, LOCK_SH | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			vs_err(VS_EXIT_LOCKED, v->src, "a backup that another "
			    "vmsync run is writing; try again once it is done");
		else
			vs_errno(VS_EXIT_SOURCE, v->src, "lock");
		return -1;
	}
	vs_info(2, "%s: a vmsync backup: read as it is", v->src);
	return 1;
}

/* The id of the base at v->base_path (@since: the user named it). */
static int
read_base_id(struct vs_view *v, bool since)
{
	int fd = vs_open(v->base_path, O_RDONLY | O_NOCTTY | O_CLOEXEC |
	    O_NONBLOCK, 0);

	if (fd < 0) {
		vs_errno(since ? VS_EXIT_USAGE : VS_EXIT_SOURCE,
		    v->base_path, "change-detection base");
		return -1;
	}
	view_id_of(fd, &v->base_id);
	close(fd);
	if (since && vs_hash_eq(&v->base_id, &vs_view_none))
		vs_warn(v->base_path, "neither a vmsync base nor in a read-only "
		    "snapshot: no change detection");
	return 0;
}

/* The base --since names: its id, or a warning if it has none. */
static int
find_base(struct vs_view *v, const struct vs_view_opts *o)
{
	if (!o->since)
		return 0;
	if (!(v->base_path = strdup(o->since))) {
		vs_errno(VS_EXIT_INTERNAL, v->src, "base");
		return -1;
	}
	return read_base_id(v, true);
}

/* "<name>.<key>.base": the base kept for one target. */
static char *
base_name(const struct vs_view *v)
{
	return state_path(".", v->name, v->key);
}

int
vs_view_target(struct vs_view *v, const char *target)
{
	char *base;

	if (!v->cloned || !v->keeps_base || v->base_path)
		return 0;	/* no base kept, or --since's */
	snprintf(v->key, sizeof(v->key), ".%016llx.base",
	    (unsigned long long)vs_hash64(target, strlen(target)));
	if (!(base = base_name(v))) {
		vs_errno(VS_EXIT_INTERNAL, v->src, "base");
		return -1;
	}
	if (faccessat(v->dir_fd, base, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
		v->base_in_state = true;
		v->base_path = state_path(v->state_dir, v->name, v->key);
		if (!v->base_path || read_base_id(v, false) < 0) {
			free(base);
			return -1;
		}
	}
	free(base);
	return 0;
}

/* Keep at most VIEW_BASES bases of this image, the newest: targets that
 * are no longer synced (or a DEST spelled anew) do not pile them up. */
static void
cap_bases(struct vs_view *v)
{
	struct { char name[NAME_MAX + 1]; struct timespec t; } old[VIEW_BASES];
	int d2 = openat(v->dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = d2 >= 0 ? fdopendir(d2) : NULL;
	size_t n = 0, len = strlen(v->name);
	struct dirent *de;

	if (!d && d2 >= 0)
		close(d2);
	while (d && (de = readdir(d))) {
		const char *rest = de->d_name + len;
		struct stat st;
		size_t k, oldest = 0;

		if (strncmp(de->d_name, v->name, len) != 0 ||
		    strlen(rest) != 22 || rest[0] != '.' ||
		    strspn(rest + 1, "0123456789abcdef") != 16 ||
		    strcmp(rest + 17, ".base") != 0 ||
		    fstatat(v->dir_fd, de->d_name, &st,
		    AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (n < VIEW_BASES) {
			snprintf(old[n].name, sizeof(old[n].name), "%s",
			    de->d_name);
			old[n++].t = st.st_mtim;
			continue;
		}
		/* Full: drop the oldest of the kept and this one. */
		for (k = 1; k < n; k++)
			if (vs_timespec_cmp(&old[k].t, &old[oldest].t) < 0)
				oldest = k;
		if (vs_timespec_cmp(&st.st_mtim, &old[oldest].t) < 0) {
			unlinkat(v->dir_fd, de->d_name, 0);
		} else {
			unlinkat(v->dir_fd, old[oldest].name, 0);
			snprintf(old[oldest].name, sizeof(old[oldest].name),
			    "%s", de->d_name);
			old[oldest].t = st.st_mtim;
		}
	}
	if (d)
		closedir(d);
}

/* Remove the bases, in the state directory beside the images, of images
 * that no longer exist there: a deleted VM leaves nothing. */
static void
prune_state(struct vs_view *v)
{
	int parent = openat(v->dir_fd, "..", O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC);
	int d2 = openat(v->dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = d2 >= 0 ? fdopendir(d2) : NULL;
	struct dirent *de;

	if (!d && d2 >= 0)
		close(d2);
	while (d && parent >= 0 && (de = readdir(d))) {
		char *image = strdup(de->d_name), *dot;
		size_t n = strlen(de->d_name);
		bool ours = n > 5 && strcmp(de->d_name + n - 5, ".base") == 0;

		if (!image)
			break;
		dot = ours ? image + n - 5 : NULL;
		/* "<image>.<16 hex>.base", or the one base of older runs */
		if (dot && dot - image > 17 && dot[-17] == '.' &&
		    strspn(dot - 16, "0123456789abcdef") == 16)
			dot -= 17;
		if (dot) {
			*dot = 0;
			if (*image && faccessat(parent, image, F_OK,
			    AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT &&
			    unlinkat(v->dir_fd, de->d_name, 0) == 0)
				vs_info(1, "%s: removed the base of %s, which "
				    "is gone", v->state_dir, image);
		}
		free(image);
	}
	if (d)
		closedir(d);
	if (parent >= 0)
		close(parent);
}

int
vs_view_open(const char *src, const struct vs_view_opts *o,
    struct vs_view **out)
{
	struct vs_view *v = calloc(1, sizeof(*v));
	struct vs_subvol sv;
	struct stat st;
	int pfd = -1, fd = -1, backup;

	if (!v) {
		vs_errno(VS_EXIT_INTERNAL, src, "view");
		return -1;
	}
	v->src = src;
	v->dry = o->dry_run;
	v->dir_fd = v->lock_fd = v->backup_fd = -1;
	if (o->never && o->since) {
		vs_err(VS_EXIT_USAGE, src, "--since needs a point-in-time "
		    "source, not --source-snapshot=never");
		goto fail;
	}
	/* Looked at before it is opened: only a regular file is opened
	 * here; anything else is read as it is, and opening it as an image
	 * reports what is wrong with it. */
	pfd = vs_open(src, O_PATH | O_CLOEXEC, 0);
	if (real_name(v, pfd) < 0)
		goto fail;
	if (pfd >= 0 && fstat(pfd, &st) == 0 && S_ISREG(st.st_mode))
		fd = vs_reopen(pfd, O_RDONLY | O_NOCTTY | O_CLOEXEC);
	if (o->never || fd < 0) {
		vs_info(2, "%s: reading the image as it is", src);
		if (fd >= 0)
			warn_torn(v, fd);
	} else if (!vs_may_reflink(fd)) {
		vs_info(1, "%s: not on btrfs: reading the live image", src);
		warn_torn(v, fd);
	} else if (vs_on_btrfs(fd) && vs_btrfs_subvol(fd, &sv) == 0 &&
	    sv.read_only) {
		vs_info(2, "%s: in a read-only snapshot: read as it is", src);
		view_id_of(fd, &v->id);
	} else if ((backup = hold_backup(v, fd)) < 0) {
		goto fail;
	} else if (!backup && make_clone(v, fd, o, vs_on_btrfs(fd)) < 0) {
		goto fail;
	}
	if (!v->read_path && !(v->read_path = strdup(src))) {
		vs_errno(VS_EXIT_INTERNAL, src, "view");
		goto fail;
	}
	if (pfd >= 0 && !o->never && find_base(v, o) < 0)
		goto fail;
	if (fd >= 0)
		close(fd);
	if (pfd >= 0)
		close(pfd);
	*out = v;
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	if (pfd >= 0)
		close(pfd);
	vs_view_finish(v, false);
	return -1;
}

int
vs_view_open_plain(const char *src, struct vs_view **out)
{
	struct vs_view *v = calloc(1, sizeof(*v));

	if (!v || !(v->read_path = strdup(src))) {
		free(v);
		vs_errno(VS_EXIT_INTERNAL, src, "view");
		return -1;
	}
	v->src = src;
	v->dir_fd = v->lock_fd = v->backup_fd = -1;
	*out = v;
	return 0;
}

void
vs_view_finish(struct vs_view *v, bool ok)
{
	char *newname, *base, *legacy;

	if (!v)
		return;
	newname = v->name ? state_path(".", v->name, ".new") : NULL;
	base = v->name && v->key[0] ? base_name(v) : NULL;
	legacy = v->name ? state_path(".", v->name, ".base") : NULL;
	if (v->cloned && newname) {
		/* The clone becomes the target's base only once the target
		 * recorded its id: until then the old base stays,
		 * unmatched. */
		if (!ok || v->dry || !v->keeps_base || !base ||
		    renameat(v->dir_fd, newname, v->dir_fd, base) < 0) {
			unlinkat(v->dir_fd, newname, 0);
		} else {
			if (legacy)	/* one base per image, before */
				unlinkat(v->dir_fd, legacy, 0);
			cap_bases(v);
			fsync(v->dir_fd);
		}
	}
	if (v->cloned && ok && !v->dry && v->own_state)
		prune_state(v);
	if (v->lock_fd >= 0) {
		char *lock = state_path(".", v->name, ".lock");

		/* Held: no run is between opening and locking it. */
		if (lock)
			unlinkat(v->dir_fd, lock, 0);
		free(lock);
		close(v->lock_fd);
	}
	if (v->backup_fd >= 0)
		close(v->backup_fd);
	if (v->dir_fd >= 0)
		close(v->dir_fd);
	free(newname);
	free(base);
	free(legacy);
	free(v->state_dir);
	free(v->name);
	free(v->real);
	free(v->read_path);
	free(v->base_path);
	free(v);
}
