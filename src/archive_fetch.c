/*
 * archive_fetch.c - a remote source of an archive, fetched first.
 *
 * Design notes
 * - An archive entry needs its sparse map before its data, and a pull
 *   sends the data as the remote engine finds it, with no map ahead.  So
 *   a host:path source is pulled first, exactly as `vmsync host:path DIR/`
 *   pulls it (the same view, name, checks and protocol), into a private
 *   directory (mode 0700) beside the archive, or in $TMPDIR for stdout;
 *   the entry is then written from that file, and the directory removed.
 *   Memory stays bounded; the scratch space is the image's allocated
 *   bytes, on the archive's own filesystem where it has one.
 * - The pulled file is already the view asked for (the server read it as
 *   a sync reads it), so it is exported as raw bytes under the name the
 *   pull gave it, without a point-in-time clone.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive_fetch.h"
#include "cli.h"
#include "client.h"
#include "util.h"

/* Where the scratch directory of an archive at @dest goes. */
static char *
scratch_parent(const char *dest)
{
	const char *tmp = getenv("TMPDIR");
	char *copy, *dir;

	if (strcmp(dest, "-") == 0)
		return strdup(tmp && *tmp ? tmp : "/var/tmp");
	if (!(copy = strdup(dest)))
		return NULL;
	dir = strdup(dirname(copy));
	free(copy);
	return dir;
}

/* Remove what the pull left in the private directory @dir: its files, and
 * one level of directories (nothing else can write there). */
static void
remove_tree(int dfd, int depth)
{
	DIR *d = fdopendir(dfd);
	struct dirent *de;

	if (!d) {
		close(dfd);
		return;
	}
	while ((de = readdir(d))) {
		struct stat st;
		int sub;

		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0 ||
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (!S_ISDIR(st.st_mode)) {
			unlinkat(dirfd(d), de->d_name, 0);
			continue;
		}
		if (depth > 0 && (sub = openat(dirfd(d), de->d_name,
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) >= 0)
			remove_tree(sub, depth - 1);
		unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR);
	}
	closedir(d);
}

/* Is the directory at @path still the one open as @fd?  Another program
 * that can write beside the archive may have put something else there. */
static bool
same_dir(int fd, const char *path)
{
	struct stat a, b;

	return fstat(fd, &a) == 0 && lstat(path, &b) == 0 &&
	    S_ISDIR(b.st_mode) && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

void
vs_archive_fetched_free(struct vs_fetched *f)
{
	/* Emptied through the descriptor taken when it was made, never
	 * through its name. */
	if (f->dir_fd >= 0) {
		bool same = same_dir(f->dir_fd, f->dir);

		remove_tree(f->dir_fd, 2);	/* closes it */
		if (same)
			rmdir(f->dir);
	}
	free(f->dir);
	free(f->path);
	*f = (struct vs_fetched){ .dir_fd = -1 };
}

int
vs_archive_fetch(const struct vs_cli *cli, const char *src,
    const char *dest, struct vs_fetched *f, struct vs_stats *st)
{
	char *parent = scratch_parent(dest);

	*f = (struct vs_fetched){ .dir_fd = -1 };
	if (!parent || !(f->dir = vs_path_join(parent,
	    ".vmsync-fetch-XXXXXX"))) {
		free(parent);
		vs_errno(VS_EXIT_INTERNAL, src, "scratch directory");
		return -1;
	}
	if (!mkdtemp(f->dir)) {
		vs_errno(VS_EXIT_TARGET, parent, "make a scratch directory "
		    "for the remote source");
		free(parent);
		free(f->dir);
		f->dir = NULL;
		return -1;
	}
	free(parent);
	f->dir_fd = open(f->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (f->dir_fd < 0) {
		vs_errno(VS_EXIT_TARGET, f->dir, "open scratch directory");
		rmdir(f->dir);
		free(f->dir);
		f->dir = NULL;
		return -1;
	}
	if (vs_pull(cli, src, f->dir, true, &f->path, st) < 0) {
		vs_archive_fetched_free(f);
		return -1;
	}
	return 0;
}
