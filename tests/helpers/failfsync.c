/*
 * failfsync.c - an LD_PRELOAD shim for the tests: fsync() of a directory
 * whose name is FAILFSYNC_DIR fails with EIO, as on a disk that fails
 * just after a rename, so that a test can see what vmsync makes of it.
 * Every other call goes through.
 */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Is @fd a directory named FAILFSYNC_DIR (its last path component)? */
static int
failing(int fd)
{
	const char *want = getenv("FAILFSYNC_DIR");
	char link[64], path[PATH_MAX];
	struct stat st;
	const char *base;
	ssize_t n;

	if (!want || fstat(fd, &st) < 0 || !S_ISDIR(st.st_mode))
		return 0;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	if ((n = readlink(link, path, sizeof(path) - 1)) < 0)
		return 0;
	path[n] = 0;
	base = strrchr(path, '/');
	return strcmp(base ? base + 1 : path, want) == 0;
}

int
fsync(int fd)
{
	static int (*real)(int);

	if (failing(fd)) {
		errno = EIO;
		return -1;
	}
	if (!real)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
	return real(fd);
}
