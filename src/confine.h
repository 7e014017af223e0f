/*
 * confine.h - where the server may open files, and the open() every file
 * access of vmsync goes through.
 */
#ifndef VS_CONFINE_H
#define VS_CONFINE_H

#include <stdbool.h>
#include <sys/types.h>

/* Confine every later vs_open() beneath @root (vmsync --server --root). */
int vs_confine_init(const char *root);
/* open(2), but beneath the --root directory when confined: "..", absolute
 * paths and symbolic links that lead out fail with EXDEV. */
int vs_open(const char *path, int flags, mode_t mode);
/* Open the directory @path (through vs_open), making it with @mode first
 * if it is missing and @create.  -1 with errno set. */
int vs_open_dir(const char *path, bool create, mode_t mode);
/* The target path for DEST @path and file @name (DEST/name when DEST is a
 * directory), checked against the confinement; malloc'd, NULL on error
 * (reported). */
char *vs_confine_target(const char *path, const char *name);
/* A source path, checked the same way. */
char *vs_confine_source(const char *path);

#endif
