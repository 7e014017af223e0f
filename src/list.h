/*
 * list.h - vmsync --list: the backups in a directory and their
 * generations.
 */
#ifndef VS_LIST_H
#define VS_LIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "vmsync.h"

/* One generation of a backup: the live copy or a copy in a snapshot. */
struct vs_list_gen {
	char *path;			/* a SRC that restores it */
	struct timespec time;		/* its index's mtime: its sync */
	bool complete;			/* its index is clean and describes
					 * a file of its size */
	uint64_t virtual_size;		/* bytes of the disk */
	uint64_t allocated;		/* bytes allocated */
	uint64_t exclusive;		/* bytes no other file shares */
	bool has_exclusive;		/* exclusive is known */
	bool live;			/* the live copy, not a snapshot's */
};

/* A backup image and its generations, oldest first. */
struct vs_list_image {
	char *name;			/* its file name in DEST */
	struct vs_list_gen *v;		/* its generations */
	size_t n, cap;			/* used, allocated */
};

/* Called with each image gathered; -1 (reported) stops the listing. */
typedef int (*vs_list_fn)(void *arg, const struct vs_list_image *im);

/* Append a copy of @g (its path copied) to @im; -1 if out of memory. */
int vs_list_add(struct vs_list_image *im, const struct vs_list_gen *g);
/* Free @im's name and generations, and zero it. */
void vs_list_image_free(struct vs_list_image *im);
/* Gather the images in the directory @dest (as vs_open() takes it), in
 * name order, and call @fn with each that has a generation.
 * @snapshot_dir: where vmsync's snapshots are (NULL: the default).
 * VS_EXIT_OK, or the category of the first failure (reported). */
enum vs_exit vs_list_gather(const char *dest, const char *snapshot_dir,
    vs_list_fn fn, void *arg);
/* Print @im: as table rows on stdout, or with @json as a JSON image
 * object there (comma-separated; *@first says whether one was written
 * yet). */
void vs_list_print(const struct vs_list_image *im, FILE *json, bool *first);
/* Gather and print each image of @dest, newest generation last. */
enum vs_exit vs_list(const char *dest, const char *snapshot_dir, FILE *json,
    bool *first);

#endif
