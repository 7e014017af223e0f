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

int
vs_confine_init(const char *dir)
{
	if (!(root = realpath(dir, NULL)) || chdir(root) < 0) {
		vs_errno(VS_EXIT_USAGE, dir, "--root directory");
		return -1;
	}
	return 0;
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
