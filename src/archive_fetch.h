/*
 * archive_fetch.h - a remote source of an archive, pulled into a private
 * scratch directory first (the entry's sparse map precedes its data).
 */
#ifndef VS_ARCHIVE_FETCH_H
#define VS_ARCHIVE_FETCH_H

struct vs_cli;
struct vs_stats;

struct vs_fetched {
	char *dir;		/* the scratch directory, or NULL */
	int dir_fd;		/* it, opened when made, or -1 */
	char *path;		/* the pulled file in it, or NULL */
};

/* Pull the remote @src ("host:path") as `vmsync SRC DIR/` would, into a
 * new private directory beside the archive @dest ("-": in $TMPDIR, else
 * /var/tmp).  On failure nothing is left behind. */
int vs_archive_fetch(const struct vs_cli *cli, const char *src,
    const char *dest, struct vs_fetched *f, struct vs_stats *st);
/* Remove the scratch directory and what is in it. */
void vs_archive_fetched_free(struct vs_fetched *f);

#endif
