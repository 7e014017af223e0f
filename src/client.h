/*
 * client.h - push to and pull from a remote vmsync.
 */
#ifndef VS_CLIENT_H
#define VS_CLIENT_H

#include <stdbool.h>

#include "vmsync.h"

struct vs_cli;

/* Sync local @src to the remote DEST @dest ("host:path"). */
int vs_push(const struct vs_cli *cli, const char *src, const char *dest,
    char **dstp, bool progress, struct vs_stats *st);
/* Sync the remote @src ("host:path") to local @dest. */
int vs_pull(const struct vs_cli *cli, const char *src, const char *dest,
    bool dest_is_dir, char **dstp, struct vs_stats *st);

#endif
