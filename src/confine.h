/*
 * confine.h - where the server may open files, and the open() every file
 * access of vmsync goes through.
 */
#ifndef VS_CONFINE_H
#define VS_CONFINE_H

#include <stdbool.h>
#include <sys/stat.h>
#include <sys/types.h>

/* Confine every later vs_open() beneath @root (vmsync --server --root). */
int vs_confine_init(const char *root);
/* open(2), but beneath the --root directory when confined: "..", absolute
 * paths and symbolic links that lead out fail with EXDEV. */
int vs_open(const char *path, int flags, mode_t mode);
/* Is @st the --root directory?  Always false when not confined. */
bool vs_confine_is_root(const struct stat *st);
/* The path of the open @fd as vs_open() takes it (relative to the root
 * when confined), malloc'd; NULL with errno set (EXDEV: outside). */
char *vs_confine_fd_path(int fd);
/* Open the directory @path, relative to @at (AT_FDCWD, or a directory
 * fd: then beneath it when confined), for vmsync's own files, making it
 * with @mode if missing and @create.  Its last component is never
 * followed as a symbolic link, and it must belong to the running user (or
 * root) and be writable by no one else.  Returns the fd, -1 with errno
 * set, or -2 with *@why saying why it is refused. */
int vs_open_state_dir(int at, const char *path, bool create, mode_t mode,
    const char **why);
/* Open the directory @path (through vs_open), making it with @mode first
 * if it is missing and @create.  -1 with errno set. */
int vs_open_dir(const char *path, bool create, mode_t mode);
/* The target path for DEST @path and file @name (DEST/name when DEST is a
 * directory), checked against the confinement; malloc'd, NULL on error
 * (reported). */
char *vs_confine_target(const char *path, const char *name);
/* A source path, checked the same way. */
char *vs_confine_source(const char *path);
/* @path as vs_open() takes it: relative to the --root directory when
 * confined (NULL with errno EXDEV if it is outside), else as it is;
 * malloc'd.  Nothing is opened or reported. */
char *vs_confine_path(const char *path);
/* The path vs_open() takes as @path, absolute when confined (beneath the
 * --root directory; "." is that directory), for messages and listings;
 * malloc'd. */
char *vs_confine_absolute(const char *path);
/* True once vs_confine_init() confined this process (--root). */
bool vs_confined(void);
/* openat(2) of @name relative to the directory @dirfd; beneath @dirfd
 * when confined, like vs_open(). */
int vs_openat(int dirfd, const char *name, int flags, mode_t mode);
/* Open again, with @flags (no O_CREAT), the file that @fd (an O_PATH
 * descriptor, say) refers to: the same inode whatever its path is now. */
int vs_reopen(int fd, int flags);

#endif
