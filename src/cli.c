/*
 * cli.c - the popt option table, validation and exclusive options.
 */
#include <popt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "archive.h"
#include "cli.h"
#include "index.h"
#include "source.h"
#include "transport/transport.h"
#include "util.h"
#include "vmsync.h"

enum {
	OPT_VERBOSE = 1, OPT_PROGRESS, OPT_NO_PROGRESS, OPT_VERSION, OPT_HELP,
	OPT_BLOCK_SIZE, OPT_FORMAT, OPT_INDEX, OPT_OUTPUT, OPT_RSH,
	OPT_REMOTE_VMSYNC, OPT_COMPRESS, OPT_COMPRESS_LEVEL, OPT_BWLIMIT,
	OPT_ROOT, OPT_SOURCE_SNAPSHOT, OPT_STATE_DIR, OPT_SINCE,
	OPT_SNAPSHOT_DIR, OPT_KEEP, OPT_TIMEOUT, OPT_BACKING_DIR, OPT_ARCHIVE,
};

/* Take a string option's value; a repeated option replaces the earlier. */
static void
take_arg(poptContext pc, char **slot)
{
	free(*slot);
	*slot = poptGetOptArg(pc);
}

/* Append a --backing-dir value (the option may be repeated). */
static int
add_backing_dir(poptContext pc, struct vs_cli *cli)
{
	const char **v = realloc(cli->backing_dirs,
	    (cli->nbacking_dirs + 1) * sizeof(*v));
	char *dir = poptGetOptArg(pc);

	if (!v || !dir) {
		free(dir);
		if (v)
			cli->backing_dirs = v;
		return -1;
	}
	v[cli->nbacking_dirs++] = dir;
	cli->backing_dirs = v;
	return 0;
}

/* A format name from @allowed (NULL-terminated), as a static string. */
static const char *
known_format(const char *name, const char *const *allowed)
{
	for (size_t i = 0; allowed[i]; i++)
		if (strcmp(name, allowed[i]) == 0)
			return allowed[i];
	return NULL;
}

static const char *const source_formats[] = { "auto", "raw", "qcow2",
    "vmdk", "vdi", "vhdx", "vpc", "qed", NULL };
static const char *const output_formats[] = { "raw", "qcow2", NULL };
static const char *const codecs[] = { "none", "zlib", "zstd", NULL };

/* An archive DEST: the options of a sync into a target that it has
 * not, or NULL if none is set. */
static const char *
archive_conflict(const struct vs_cli *cli, bool block, bool bw)
{
	const struct {
		bool set;		/* given */
		const char *name;	/* for the message */
	} opt[] = {
		{ cli->dry_run, "--dry-run" },
		{ cli->checksum, "--checksum" },
		{ block, "--block-size" },
		{ cli->index != NULL, "--index" },
		{ cli->snapshot, "--snapshot" },
		{ cli->stats, "--stats" },
		{ cli->json, "--json" },
		{ bw, "--bwlimit" },
		{ cli->verify, "--verify" },
		{ cli->list, "--list" },
	};

	for (size_t i = 0; i < sizeof(opt) / sizeof(opt[0]); i++)
		if (opt[i].set)
			return opt[i].name;
	return NULL;
}

/* Pairs that make no sense together. */
static const struct {
	size_t a, b;		/* offsets of the bool/int fields */
	const char *text;	/* message */
} excl[] = {
	{ offsetof(struct vs_cli, quiet), offsetof(struct vs_cli, verbose),
	  "--quiet and --verbose" },
	{ offsetof(struct vs_cli, json), offsetof(struct vs_cli, stats),
	  "--json and --stats (--json already carries the statistics)" },
};

static int
usage_error(poptContext pc, const char *fmt, const char *arg)
{
	fputs("vmsync: ", stderr);
	fprintf(stderr, fmt, arg);
	fputs(" (see vmsync --help)\n", stderr);
	(void)pc;
	return -1;
}

static bool
field_set(const struct vs_cli *cli, size_t off)
{
	if (off == offsetof(struct vs_cli, verbose))
		return cli->verbose > 0;
	return *(const bool *)((const char *)cli + off);
}

/* Is DEST an archive (--archive, or its name ends as one and it is not a
 * directory)?  Then refuse the options of a sync into a target. */
static int
archive_dest(poptContext pc, struct vs_cli *cli, const char *block,
    const char *bw)
{
	const char *dest, *bad;
	struct stat st;

	if (cli->verify || cli->list || cli->npaths < 2) {
		if (cli->archive && (bad = archive_conflict(cli, block != NULL,
		    bw != NULL)))
			return usage_error(pc, "%s cannot be used with "
			    "--archive", bad);
		return 0;
	}
	dest = cli->paths[cli->npaths - 1];
	if (!cli->archive && vs_archive_format_by_name(dest) &&
	    !(stat(dest, &st) == 0 && S_ISDIR(st.st_mode)))
		cli->archive = vs_archive_format_by_name(dest);
	if (!cli->archive && strcmp(dest, "-") == 0)
		return usage_error(pc, "%s", "DEST '-' (stdout) is an "
		    "archive: give its format with --archive=FORMAT");
	if (cli->archive && (bad = archive_conflict(cli, block != NULL,
	    bw != NULL)))
		return usage_error(pc, "%s cannot be used when writing an "
		    "archive", bad);
	return 0;
}

int
vs_cli_parse(int argc, const char **argv, struct vs_cli *cli)
{
	int dry = 0, quiet = 0, stats = 0, json = 0, checksum = 0, force = 0;
	char *block = NULL, *format = NULL, *index = NULL, *output = NULL;
	char *rsh = NULL, *rvm = NULL, *comp = NULL, *level = NULL;
	char *bw = NULL, *root = NULL;
	char *srcsnap = NULL, *state = NULL, *since = NULL, *snapdir = NULL;
	char *keep = NULL, *timeout = NULL, *archive = NULL;
	int server = 0, snapshot = 0, verify = 0, list = 0;
	const char **rest;
	poptContext pc;
	int rc, ret = -1;
	struct poptOption table[] = {
		{ "dry-run", 'n', POPT_ARG_NONE, &dry, 0,
		  "show what would be written and punched; change nothing",
		  NULL },
		{ "verbose", 'v', POPT_ARG_NONE, NULL, OPT_VERBOSE,
		  "say more (repeat for more)", NULL },
		{ "quiet", 'q', POPT_ARG_NONE, &quiet, 0,
		  "print errors only", NULL },
		{ "progress", '\0', POPT_ARG_NONE, NULL, OPT_PROGRESS,
		  "show progress (default when stderr is a terminal)", NULL },
		{ "no-progress", '\0', POPT_ARG_NONE, NULL, OPT_NO_PROGRESS,
		  "never show progress", NULL },
		{ "stats", '\0', POPT_ARG_NONE, &stats, 0,
		  "print statistics of each image", NULL },
		{ "json", '\0', POPT_ARG_NONE, &json, 0,
		  "print statistics as one JSON object on stdout", NULL },
		{ "block-size", 'B', POPT_ARG_STRING, NULL, OPT_BLOCK_SIZE,
		  "index block size, a power of two from 4K to 4M "
		  "(default 64K)", "SIZE" },
		{ "checksum", 'c', POPT_ARG_NONE, &checksum, 0,
		  "ignore the index: read and compare the target", NULL },
		{ "force", '\0', POPT_ARG_NONE, &force, 0,
		  "write the target even if a running VM (qemu) holds it or "
		  "its filesystem seems too small", NULL },
		{ "format", 'f', POPT_ARG_STRING, NULL, OPT_FORMAT,
		  "source format: auto, raw, qcow2, or vmdk, vdi, vhdx, vpc, qed "
		  "(read through qemu-storage-daemon, with -O raw) "
		  "(default auto)", "FMT" },
		{ "output-format", 'O', POPT_ARG_STRING, NULL, OPT_OUTPUT,
		  "raw: sync the guest disk of a qcow2 image to a raw image "
		  "(NAME.raw); qcow2: sync the qcow2 file itself (the default)",
		  "FMT" },
		{ "source-snapshot", '\0', POPT_ARG_STRING, NULL,
		  OPT_SOURCE_SNAPSHOT, "auto: read a source on btrfs through "
		  "a reflink clone, and skip what it shares with the last "
		  "one (default); never: read it live", "WHEN" },
		{ "state-dir", '\0', POPT_ARG_STRING, NULL, OPT_STATE_DIR,
		  "where the clones live (default .vmsync beside SRC)",
		  "DIR" },
		{ "since", '\0', POPT_ARG_STRING, NULL, OPT_SINCE,
		  "change-detection base: the image as last synced (a file "
		  "in a read-only snapshot); with an archive DEST, the "
		  "generation an incremental archive starts from", "PATH" },
		{ "backing-dir", '\0', POPT_ARG_STRING, NULL,
		  OPT_BACKING_DIR, "backing and data files may also be "
		  "beneath DIR (besides the image's own directory); "
		  "repeatable", "DIR" },
		{ "snapshot", '\0', POPT_ARG_NONE, &snapshot, 0,
		  "after the run's last image, snapshot the btrfs subvolume "
		  "holding the targets read-only (once per run)", NULL },
		{ "snapshot-dir", '\0', POPT_ARG_STRING, NULL,
		  OPT_SNAPSHOT_DIR, "where --snapshot puts snapshots "
		  "(default .vmsync-snapshots in the subvolume)", "DIR" },
		{ "keep", '\0', POPT_ARG_STRING, NULL, OPT_KEEP,
		  "with --snapshot: delete the oldest snapshots vmsync made "
		  "for the run's images beyond N runs (with --server: at "
		  "least N are kept, whatever the client asks)", "N" },
		{ "archive", '\0', POPT_ARG_STRING, NULL, OPT_ARCHIVE,
		  "write SRC... into one sparse pax archive DEST (\"-\": "
		  "stdout) of FORMAT: tar, tar.gz (tgz), tar.zst (tzst) or "
		  "tar.xz (txz) "
		  "(default: as DEST's name ends)", "FORMAT" },
		{ "list", '\0', POPT_ARG_NONE, &list, 0,
		  "list the backups in each directory DEST and their "
		  "generations (the live copy and its snapshots)", NULL },
		{ "verify", '\0', POPT_ARG_NONE, &verify, 0,
		  "check each PATH (a backup: a target with its index) "
		  "against its index, without the source", NULL },
		{ "index", '\0', POPT_ARG_STRING, NULL, OPT_INDEX,
		  "index file (needed to keep an index for a block device)",
		  "PATH" },
		{ "rsh", 'e', POPT_ARG_STRING, NULL, OPT_RSH,
		  "remote shell command (default ssh, or $VMSYNC_RSH)", "CMD" },
		{ "remote-vmsync", '\0', POPT_ARG_STRING, NULL,
		  OPT_REMOTE_VMSYNC, "vmsync program on the remote host",
		  "PATH" },
		{ "compress", '\0', POPT_ARG_STRING, NULL, OPT_COMPRESS,
		  "compression on the wire: none, zlib or zstd (default: zstd "
		  "if both sides have it)", "CODEC" },
		{ "compress-level", '\0', POPT_ARG_STRING, NULL,
		  OPT_COMPRESS_LEVEL, "compression level (zlib 1-9, zstd "
		  "1-19)", "N" },
		{ "bwlimit", '\0', POPT_ARG_STRING, NULL, OPT_BWLIMIT,
		  "limit the data sent to RATE bytes per second (K, M, G)",
		  "RATE" },
		{ "server", '\0', POPT_ARG_NONE | POPT_ARGFLAG_DOC_HIDDEN,
		  &server, 0, "the remote end of a session (started by vmsync)",
		  NULL },
		{ "root", '\0', POPT_ARG_STRING, NULL, OPT_ROOT,
		  "with --server: open nothing outside DIR", "DIR" },
		{ "timeout", '\0', POPT_ARG_STRING, NULL, OPT_TIMEOUT,
		  "end a remote session when nothing arrives or leaves for "
		  "SECONDS (0: never; --server default 600)", "SECONDS" },
		{ "version", 'V', POPT_ARG_NONE, NULL, OPT_VERSION,
		  "print the version and exit", NULL },
		{ NULL, 'h', POPT_ARG_NONE | POPT_ARGFLAG_DOC_HIDDEN, NULL,
		  OPT_HELP, "show this help (as --help)", NULL },
		POPT_AUTOHELP
		POPT_TABLEEND
	};

	memset(cli, 0, sizeof(*cli));
	cli->progress = VS_AUTO;
	cli->timeout = -1;
	pc = poptGetContext("vmsync", argc, argv, table, 0);
	poptSetOtherOptionHelp(pc, "[OPTION...] SRC... DEST | SRC... "
	    "ARCHIVE | ARCHIVE|- DIR/ | --verify PATH... | --list DEST...");
	while ((rc = poptGetNextOpt(pc)) > 0) {
		switch (rc) {
		case OPT_VERBOSE:
			cli->verbose++;
			break;
		case OPT_PROGRESS:
			cli->progress = VS_ON;
			break;
		case OPT_NO_PROGRESS:
			cli->progress = VS_OFF;
			break;
		case OPT_VERSION:
			printf("vmsync %s\n", VS_VERSION);
			ret = 1;
			goto out;
		case OPT_HELP:
			poptPrintHelp(pc, stdout, 0);
			ret = 1;
			goto out;
		case OPT_INDEX:
			take_arg(pc, &index);
			break;
		case OPT_BLOCK_SIZE: {
			uint64_t v;

			take_arg(pc, &block);
			if (!vs_parse_size(block, &v) || !vs_is_pow2(v) ||
			    v < IDX_MIN_BLOCK || v > IDX_MAX_BLOCK) {
				usage_error(pc, "--block-size '%s': want a power "
				    "of two from 4K to 4M", block);
				goto out;
			}
			cli->block_size = (uint32_t)v;
			break;
		}
		case OPT_FORMAT:
			take_arg(pc, &format);
			if (!known_format(format, source_formats)) {
				usage_error(pc, "--format '%s': supported "
				    "formats are auto, raw, qcow2, vmdk, vdi, vhdx, "
				    "vpc and qed", format);
				goto out;
			}
			break;
		case OPT_RSH:
			take_arg(pc, &rsh);
			break;
		case OPT_REMOTE_VMSYNC:
			take_arg(pc, &rvm);
			break;
		case OPT_ROOT:
			take_arg(pc, &root);
			break;
		case OPT_SOURCE_SNAPSHOT:
			take_arg(pc, &srcsnap);
			if (strcmp(srcsnap, "auto") != 0 &&
			    strcmp(srcsnap, "never") != 0) {
				usage_error(pc, "--source-snapshot '%s': want "
				    "auto or never", srcsnap);
				goto out;
			}
			cli->source_live = strcmp(srcsnap, "never") == 0;
			break;
		case OPT_STATE_DIR:
			take_arg(pc, &state);
			break;
		case OPT_SINCE:
			take_arg(pc, &since);
			break;
		case OPT_ARCHIVE:
			take_arg(pc, &archive);
			if (!(cli->archive = vs_archive_format(archive))) {
				usage_error(pc, "--archive '%s': want tar, "
				    "tar.gz, tgz, tar.zst, tzst, tar.xz or txz",
				    archive);
				goto out;
			}
			break;
		case OPT_SNAPSHOT_DIR:
			take_arg(pc, &snapdir);
			break;
		case OPT_BACKING_DIR:
			if (add_backing_dir(pc, cli) < 0)
				goto out;
			break;
		case OPT_KEEP: {
			char *end;
			long v;

			take_arg(pc, &keep);
			v = strtol(keep, &end, 10);
			if (!*keep || *end || v < 1 || v > 100000) {
				usage_error(pc, "--keep '%s': want a number of "
				    "snapshots from 1", keep);
				goto out;
			}
			cli->keep = (uint32_t)v;
			break;
		}
		case OPT_TIMEOUT: {
			char *end;
			long v;

			take_arg(pc, &timeout);
			v = strtol(timeout, &end, 10);
			if (!*timeout || *end || v < 0 || v > 86400 * 365) {
				usage_error(pc, "--timeout '%s': want a number "
				    "of seconds, 0 for none", timeout);
				goto out;
			}
			cli->timeout = (int)v;
			break;
		}
		case OPT_COMPRESS:
			take_arg(pc, &comp);
			if (!known_format(comp, codecs)) {
				usage_error(pc, "--compress '%s': want none, "
				    "zlib or zstd", comp);
				goto out;
			}
			break;
		case OPT_COMPRESS_LEVEL: {
			char *end;
			long v;

			take_arg(pc, &level);
			v = strtol(level, &end, 10);
			if (!*level || *end || v < 1 || v > 19) {
				usage_error(pc, "--compress-level '%s': want a "
				    "number from 1 to 19", level);
				goto out;
			}
			cli->compress_level = (int)v;
			break;
		}
		case OPT_BWLIMIT:
			take_arg(pc, &bw);
			if (!vs_parse_size(bw, &cli->bwlimit) ||
			    cli->bwlimit == 0) {
				usage_error(pc, "--bwlimit '%s': want a rate in "
				    "bytes per second, such as 10M", bw);
				goto out;
			}
			break;
		case OPT_OUTPUT:
			take_arg(pc, &output);
			if (!(cli->output = known_format(output,
			    output_formats))) {
				usage_error(pc, "--output-format '%s': supported "
				    "formats are raw and qcow2", output);
				goto out;
			}
			break;
		}
	}
	if (rc < -1) {
		fprintf(stderr, "vmsync: %s: %s (see vmsync --help)\n",
		    poptBadOption(pc, POPT_BADOPTION_NOALIAS), poptStrerror(rc));
		goto out;
	}
	cli->server = server;
	cli->compress = -1;
	if (comp)
		cli->compress = strcmp(comp, "none") == 0 ? 0 :
		    strcmp(comp, "zlib") == 0 ? 1 : 2;
	if (cli->compress_level && cli->compress == 1 &&
	    cli->compress_level > 9) {
		usage_error(pc, "%s", "--compress-level: zlib levels are 1 to 9");
		goto out;
	}
	if (root && !server) {
		usage_error(pc, "%s", "--root is an option of --server");
		goto out;
	}
	if ((rsh && !(cli->rsh = strdup(rsh))) ||
	    (rvm && !(cli->remote_vmsync = strdup(rvm))) ||
	    (root && !(cli->root = strdup(root))))
		goto out;
	if (server) {
		ret = 0;
		goto out;
	}
	cli->dry_run = dry;
	cli->quiet = quiet;
	cli->stats = stats;
	cli->json = json;
	cli->checksum = checksum;
	cli->force = force;
	if (format && strcmp(format, "auto") != 0)
		cli->format = known_format(format, source_formats);
	for (size_t i = 0; i < sizeof(excl) / sizeof(excl[0]); i++)
		if (field_set(cli, excl[i].a) && field_set(cli, excl[i].b)) {
			usage_error(pc, "%s cannot be used together",
			    excl[i].text);
			goto out;
		}
	if (cli->quiet && cli->progress == VS_ON) {
		usage_error(pc, "%s cannot be used together",
		    "--quiet and --progress");
		goto out;
	}
	rest = poptGetArgs(pc);
	while (rest && rest[cli->npaths])
		cli->npaths++;
	cli->verify = verify;
	cli->list = list;
	if (list && (verify || !cli->npaths || dry || snapshot || checksum ||
	    force || format || output || since || state || block || index ||
	    keep)) {
		usage_error(pc, "%s", cli->npaths ? "--list takes directories "
		    "and only --json, --snapshot-dir and -v/-q" :
		    "--list: missing DEST");
		goto out;
	}
	if (verify && (!cli->npaths || dry || snapshot || checksum || force ||
	    format || output || since || state || block)) {
		usage_error(pc, "%s", cli->npaths ? "--verify takes PATHs and "
		    "only --index, --json and -v/-q" : "--verify: missing PATH");
		goto out;
	}
	if (verify && index && cli->npaths > 1) {
		usage_error(pc, "%s", "--index names the index of one target: "
		    "give a single PATH");
		goto out;
	}
	if (!verify && !list && cli->npaths < 2) {
		usage_error(pc, "%s", cli->npaths ? "missing DEST" :
		    "missing SRC and DEST");
		goto out;
	}
	cli->snapshot = snapshot;
	if ((keep || snapdir) && !snapshot && !list) {
		usage_error(pc, "%s", "--keep and --snapshot-dir go with "
		    "--snapshot");
		goto out;
	}
	if (since && cli->npaths > 2) {
		usage_error(pc, "%s", "--since names the base of one image: "
		    "give a single SRC");
		goto out;
	}
	if (since && cli->source_live) {
		usage_error(pc, "%s", "--since needs a point-in-time source, "
		    "not --source-snapshot=never");
		goto out;
	}
	if ((state && !(cli->state_dir = strdup(state))) ||
	    (since && !(cli->since = strdup(since))) ||
	    (snapdir && !(cli->snapshot_dir = strdup(snapdir))))
		goto out;
	if (index && cli->npaths > 2) {
		usage_error(pc, "%s", "--index names the index of one target: "
		    "give a single SRC");
		goto out;
	}
	cli->paths = calloc((size_t)cli->npaths, sizeof(*cli->paths));
	if (!cli->paths)
		goto out;
	for (int i = 0; i < cli->npaths; i++)
		if (!(cli->paths[i] = strdup(rest[i])))
			goto out;
	if (index && !(cli->index = strdup(index)))
		goto out;
	if (archive_dest(pc, cli, block, bw) < 0)
		goto out;
	ret = 0;
out:
	free(block);
	free(format);
	free(output);
	free(rsh);
	free(rvm);
	free(comp);
	free(level);
	free(bw);
	free(root);
	free(index);
	free(srcsnap);
	free(state);
	free(since);
	free(snapdir);
	free(keep);
	free(timeout);
	free(archive);
	poptFreeContext(pc);
	if (ret < 0)
		vs_cli_free(cli);
	return ret;
}

void
vs_cli_free(struct vs_cli *cli)
{
	for (int i = 0; cli->paths && i < cli->npaths; i++)
		free((char *)cli->paths[i]);
	free(cli->paths);
	for (size_t i = 0; i < cli->nbacking_dirs; i++)
		free((char *)cli->backing_dirs[i]);
	free(cli->backing_dirs);
	cli->backing_dirs = NULL;
	cli->nbacking_dirs = 0;
	free((char *)cli->index);
	free((char *)cli->rsh);
	free((char *)cli->remote_vmsync);
	free((char *)cli->root);
	free((char *)cli->state_dir);
	free((char *)cli->since);
	free((char *)cli->snapshot_dir);
	cli->state_dir = cli->since = cli->snapshot_dir = NULL;
	cli->paths = NULL;
	cli->index = NULL;
	cli->rsh = cli->remote_vmsync = cli->root = NULL;
	cli->npaths = 0;
}

struct vs_target_opts
vs_cli_target_opts(const struct vs_cli *cli, struct vs_stats *st)
{
	return (struct vs_target_opts){
		.block_size = cli->block_size,
		.dry_run = cli->dry_run,
		.checksum = cli->checksum,
		.force = cli->force,
		.index_path = cli->index,
		.snapshot = {
			.take = cli->snapshot,
			.dir = cli->snapshot_dir,
			.keep = cli->keep,
		},
		.stats = st,
	};
}

struct vs_source_opts
vs_cli_source_opts(const struct vs_cli *cli)
{
	return (struct vs_source_opts){
		.format = cli->format,
		.output = cli->output,
		.view = {
			.never = cli->source_live,
			.state_dir = cli->state_dir,
			.since = cli->since,
			.dry_run = cli->dry_run,
		},
		.backing_dirs = cli->backing_dirs,
		.nbacking_dirs = cli->nbacking_dirs,
	};
}
