/*
 * confine.c - keep the server beneath its --root directory.
 *
 * The server changes into DIR and opens every file with openat2(2) and
 * RESOLVE_BENEATH relative to it, so no path component -- "..", an
 * absolute symlink, a relative one climbing out -- can lead elsewhere.  An
 * absolute path from the client is accepted only if it names something
 * under DIR, and is made relative first.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "confine.h"
#include "util.h"
#include "vmsync.h"

static char *root;		/* canonical --root, NULL when not confined */
static struct stat root_st;	/* its identity */

int
vs_confine_init(const char *dir)
{
	if (!(root = realpath(dir, NULL)) || chdir(root) < 0 ||
	    stat(".", &root_st) < 0) {
		vs_errno(VS_EXIT_USAGE, dir, "--root directory");
		return -1;
	}
	return 0;
}

bool
vs_confine_is_root(const struct stat *st)
{
	return root && st->st_dev == root_st.st_dev &&
	    st->st_ino == root_st.st_ino;
}

int
vs_open(const char *path, int flags, mode_t mode)
{
	struct open_how how = {
		.flags = (uint64_t)flags,
		.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
	};

	if (!root)
		return open(path, flags, mode);
	return (int)syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof(how));
}

/* @path made relative to the root, or NULL if it is outside. */
static char *
relative(const char *path)
{
	size_t n = strlen(root);

	if (path[0] != '/')
		return strdup(path);
	if (strcmp(root, "/") == 0)
		return strdup(path[1] ? path + 1 : ".");
	if (strncmp(path, root, n) == 0 && (path[n] == 0 || path[n] == '/'))
		return strdup(path[n] && path[n + 1] ? path + n + 1 : ".");
	errno = EXDEV;
	return NULL;
}

/* The directory part of @path must resolve beneath the root. */
static int
check_dir(const char *path)
{
	char *copy = strdup(path), *slash;
	int fd;

	if (!copy)
		return -1;
	slash = strrchr(copy, '/');
	if (slash)
		*slash = 0;
	fd = vs_open(slash ? (copy[0] ? copy : "/") : ".",
	    O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
	free(copy);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

static char *
confined(const char *path)
{
	char *rel;

	if (!root)
		return strdup(path);
	if (!(rel = relative(path)) || check_dir(rel) < 0) {
		if (errno == EXDEV || errno == ELOOP)
			vs_err(VS_EXIT_USAGE, path, "outside the directory "
			    "this server is confined to");
		else
			vs_errno(VS_EXIT_TARGET, path, "directory");
		free(rel);
		return NULL;
	}
	return rel;
}

char *
vs_confine_target(const char *path, const char *name)
{
	size_t n = strlen(path);
	bool is_dir = n && path[n - 1] == '/';
	char *p, *out;
	struct stat st;
	int fd;

	if (!is_dir && name[0]) {
		fd = root ? vs_open(path, O_PATH | O_CLOEXEC, 0) : -1;
		is_dir = root ? fd >= 0 && fstat(fd, &st) == 0 &&
		    S_ISDIR(st.st_mode) : stat(path, &st) == 0 &&
		    S_ISDIR(st.st_mode);
		if (fd >= 0)
			close(fd);
	}
	p = is_dir && name[0] ? vs_path_join(path, name) : strdup(path);
	if (!p) {
		vs_errno(VS_EXIT_INTERNAL, path, "target path");
		return NULL;
	}
	out = confined(p);
	free(p);
	return out;
}

char *
vs_confine_source(const char *path)
{
	return confined(path);
}

char *
vs_confine_path(const char *path)
{
	return root ? relative(path) : strdup(path);
}

char *
vs_confine_absolute(const char *path)
{
	if (!root || path[0] == '/')
		return strdup(path);
	if (strcmp(path, ".") == 0)
		return strdup(root);
	return vs_path_join(root, strncmp(path, "./", 2) == 0 ? path + 2 :
	    path);
}

bool
vs_confined(void)
{
	return root != NULL;
}

int
vs_openat(int dirfd, const char *name, int flags, mode_t mode)
{
	struct open_how how = {
		.flags = (uint64_t)flags,
		.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
	};

	if (!root)
		return openat(dirfd, name, flags, mode);
	return (int)syscall(SYS_openat2, dirfd, name, &how, sizeof(how));
}

/* Through /proc/self/fd, the only way to open an O_PATH descriptor's
 * inode with other flags; O_NOFOLLOW would refuse the magic link. */
int
vs_reopen(int fd, int flags)
{
	char p[64];

	snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
	return open(p, flags & ~(O_NOFOLLOW | O_CREAT), 0);
}

int
vs_open_dir(const char *path, bool create, mode_t mode)
{
	int fd = vs_open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0), pfd;
	char *copy, *copy2;

	if (fd >= 0 || errno != ENOENT || !create)
		return fd;
	copy = strdup(path);
	copy2 = strdup(path);
	pfd = copy && copy2 ? vs_open(dirname(copy), O_PATH | O_DIRECTORY |
	    O_CLOEXEC, 0) : -1;
	if (pfd >= 0 && (mkdirat(pfd, basename(copy2), mode) == 0 ||
	    errno == EEXIST))
		fd = vs_open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (pfd >= 0)
		close(pfd);
	free(copy);
	free(copy2);
	return fd;
}

char *
vs_confine_fd_path(int fd)
{
	char link[64], buf[PATH_MAX];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	if ((n = readlink(link, buf, sizeof(buf) - 1)) < 0)
		return NULL;
	buf[n] = 0;
	if (buf[0] != '/') {	/* not a path: "anon_inode:", a pipe */
		errno = ENOENT;
		return NULL;
	}
	return root ? relative(buf) : strdup(buf);
}

/* Split @path into its directory and last name, both malloc'd; a last
 * name ".", ".." or none stands for the directory itself (@path, "."). */
static int
split(const char *path, char **dirp, char **namep)
{
	size_t n = strlen(path), len;
	const char *name;

	while (n > 1 && path[n - 1] == '/')
		n--;
	for (name = path + n; name > path && name[-1] != '/'; name--)
		;
	len = (size_t)(path + n - name);
	if (!len || (len == 1 && name[0] == '.') ||
	    (len == 2 && name[0] == '.' && name[1] == '.')) {
		*dirp = n ? strndup(path, n) : strdup(".");
		*namep = strdup(".");
	} else {
		*dirp = name == path ? strdup(".") : name == path + 1 ?
		    strdup("/") : strndup(path, (size_t)(name - path - 1));
		*namep = strndup(name, len);
	}
	if (*dirp && *namep)
		return 0;
	free(*dirp);
	free(*namep);
	return -1;
}

/* May vmsync keep its own files in the directory @st?  Like OpenSSH's
 * StrictModes: owned by the running user (or root) and writable by no
 * one else, so no one else can plant or swap entries in it. */
static const char *
unsafe(const struct stat *st)
{
	if (S_ISLNK(st->st_mode))
		return "is a symbolic link";
	if (st->st_uid != geteuid() && st->st_uid != 0)
		return "belongs to another user";
	if (st->st_mode & (S_IWGRP | S_IWOTH))
		return "is writable by group or others";
	return NULL;
}

int
vs_open_state_dir(int at, const char *path, bool create, mode_t mode,
    const char **why)
{
	char *rel = NULL, *dir = NULL, *name = NULL;
	int pfd = -1, dfd = -1, fd = -1;
	struct stat st;

	*why = NULL;
	/* An absolute path under the root is taken relative to it. */
	rel = root && at == AT_FDCWD ? relative(path) : strdup(path);
	if (!rel || split(rel, &dir, &name) < 0)
		goto out;
	if ((pfd = vs_openat(at, dir, O_PATH | O_DIRECTORY | O_CLOEXEC,
	    0)) < 0)
		goto out;
	dfd = openat(pfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0 && errno == ENOENT && create &&
	    (mkdirat(pfd, name, mode) == 0 || errno == EEXIST))
		dfd = openat(pfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0 || fstat(dfd, &st) < 0)
		goto out;
	if (!S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode)) {
		errno = ENOTDIR;
		goto out;
	}
	if ((*why = unsafe(&st))) {
		errno = EPERM;
		goto out;
	}
	fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
out:
	if (dfd >= 0)
		close(dfd);
	if (pfd >= 0)
		close(pfd);
	free(rel);
	free(dir);
	free(name);
	return fd < 0 && *why ? -2 : fd;
}
