/*
 * cli.h - command line parsing (popt) and validation.
 */
#ifndef VS_CLI_H
#define VS_CLI_H

#include <stdbool.h>
#include <stdint.h>

enum vs_tristate { VS_AUTO = -1, VS_OFF = 0, VS_ON = 1 };

struct vs_cli {
	bool dry_run;		/* -n */
	int verbose;		/* -v count */
	bool quiet;		/* -q */
	int progress;		/* --progress/--no-progress, VS_AUTO */
	bool stats;		/* --stats */
	bool json;		/* --json */
	uint32_t block_size;	/* --block-size, 0 if not given */
	bool checksum;		/* -c */
	bool force;		/* --force: write a target a VM holds */
	const char *format;	/* -f, NULL for auto */
	const char *output;	/* -O: "raw", "qcow2", NULL for the same */
	const char *index;	/* --index */
	const char *rsh;	/* -e: remote shell command, NULL for ssh */
	const char *remote_vmsync; /* --remote-vmsync, NULL for "vmsync" */
	int compress;		/* --compress: -1 auto, else enum vs_codec_id */
	int compress_level;	/* --compress-level, 0: the codec's default */
	uint64_t bwlimit;	/* --bwlimit, bytes per second, 0: none */
	bool server;		/* --server: the remote end, on stdin/stdout */
	const char *root;	/* --root: confine the server to this directory */
	int timeout;		/* --timeout seconds, 0: none, -1: not given */
	bool source_live;	/* --source-snapshot=never */
	const char *state_dir;	/* --state-dir, NULL: .vmsync beside SRC */
	const char *since;	/* --since: change-detection base */
	bool snapshot;		/* --snapshot */
	bool verify;		/* --verify: paths are backups to check */
	bool list;		/* --list: paths are directories to list */
	const char *snapshot_dir; /* --snapshot-dir, NULL: the default */
	uint32_t keep;		/* --keep, 0: keep every snapshot */
	const char **backing_dirs; /* --backing-dir (malloc'd array) */
	size_t nbacking_dirs;	/* entries in backing_dirs */
	const char *archive;	/* --archive, or DEST's ending: the archive
				 * format to write (static); NULL: a sync */
	const char **paths;	/* SRC... DEST (malloc'd array) */
	int npaths;		/* entries in paths */
};

struct vs_stats;
struct vs_target_opts;
struct vs_source_opts;

/* The target options the command line gives (source fields left 0). */
struct vs_target_opts vs_cli_target_opts(const struct vs_cli *cli,
    struct vs_stats *st);

/* Parse argv.  Returns 0 to run, 1 when done (--help, --version printed),
 * -1 on a usage error (message printed). */
int vs_cli_parse(int argc, const char **argv, struct vs_cli *cli);
void vs_cli_free(struct vs_cli *cli);
/* The source options the command line gives. */
struct vs_source_opts vs_cli_source_opts(const struct vs_cli *cli);

#endif
