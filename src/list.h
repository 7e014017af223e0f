/*
 * list.h - vmsync --list: the backups in a directory and their
 * generations.
 */
#ifndef VS_LIST_H
#define VS_LIST_H

#include <stdbool.h>
#include <stdio.h>

#include "vmsync.h"

/* List the images in the directory @dest and their generations, newest
 * last: as a table on stdout, or with @json as JSON image objects there
 * (comma-separated; *@first says whether one was written yet).
 * @snapshot_dir: where vmsync's snapshots are (NULL: the default). */
enum vs_exit vs_list(const char *dest, const char *snapshot_dir, FILE *json,
    bool *first);

#endif
