/*
 * client.h - push to and pull from a remote vmsync.
 */
#ifndef VS_CLIENT_H
#define VS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "vmsync.h"

struct vs_cli;

/* Sync local @src to the remote DEST @dest ("host:path"); *@namep is
 * the target name asked for under DEST, once known. */
int vs_push(const struct vs_cli *cli, const char *src, const char *dest,
    char **dstp, char **namep, bool progress, struct vs_stats *st);
/* After a push run with --snapshot: have the server snapshot, once per
 * subvolume, the @n targets @names under @dest (@synced: which synced). */
int vs_push_snapshot(const struct vs_cli *cli, const char *dest,
    char *const *names, const bool *synced, size_t n);
/* Sync the remote @src ("host:path") to local @dest. */
int vs_pull(const struct vs_cli *cli, const char *src, const char *dest,
    bool dest_is_dir, char **dstp, struct vs_stats *st);
/* --list of the remote directory @arg ("host:path"): as vs_list() prints
 * a local one, each generation's path as host:path. */
enum vs_exit vs_remote_list(const struct vs_cli *cli, const char *arg,
    FILE *json, bool *first);
/* --verify of the remote backup @arg: checked there, reported here as
 * vs_verify() reports a local one. */
enum vs_exit vs_remote_verify(const struct vs_cli *cli, const char *arg,
    FILE *json);

#endif
