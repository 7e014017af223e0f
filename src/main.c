/*
 * main.c - vmsync: parse, sync every SRC into DEST, map errors to exit codes.
 */
#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive.h"
#include "cli.h"
#include "delta.h"
#include "engine.h"
#include "import.h"
#include "progress.h"
#include "client.h"
#include "server.h"
#include "snapshot.h"
#include "source.h"
#include "list.h"
#include "transport/ssh.h"
#include "verify.h"
#include "util.h"

static void
on_signal(int sig)
{
	(void)sig;
	vs_interrupted = 1;
}

static void
setup_signals(void)
{
	struct sigaction sa = { .sa_handler = on_signal };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* DEST/NAME when DEST is a directory, else DEST. */
static char *
target_path(const char *src, const char *dest, bool dest_is_dir, bool to_raw)
{
	char *name, *out;

	if (!dest_is_dir)
		return strdup(dest);
	if (!(name = vs_target_name(src, to_raw)))
		return NULL;
	out = vs_path_join(dest, name);
	free(name);
	return out;
}

static int
sync_one(const struct vs_cli *cli, const char *src, const char *dest,
    bool dest_is_dir, char *const *taken, char **dstp, bool progress,
    struct vs_stats *st)
{
	struct vs_target_opts topts = vs_cli_target_opts(cli, st);
	struct vs_source_opts sopts = vs_cli_source_opts(cli);
	struct vs_sync_view view;
	struct vs_source s;
	struct vs_target *t = NULL;
	struct vs_progress *p = NULL;
	char *dst, *real = NULL;
	int ret = -1;

	if (vs_source_open(src, &sopts, &topts, &s) < 0)
		goto out;
	if (!(*dstp = dst = target_path(src, dest, dest_is_dir, s.to_raw))) {
		vs_target_name_failed(src);
		goto out;
	}
	for (; taken && *taken; taken++)
		if (strcmp(*taken, dst) == 0) {
			vs_err(VS_EXIT_USAGE, src, "another source of this run "
			    "was synced to the same target %s", dst);
			goto out;
		}
	if (vs_local_open(dst, &topts, &t) < 0)
		goto out;
	/* The target as the base kept for it is named: however DEST was
	 * spelled. */
	real = realpath(dst, NULL);
	if (vs_source_confirm(&s, src, &sopts, &topts, t->recorded_format,
	    real ? real : dst) < 0)
		goto out;
	t->src_format = s.choice.format;
	if (progress && !(p = vs_progress_new(stderr, src))) {
		vs_errno(VS_EXIT_INTERNAL, src, "progress");
		goto out;
	}
	vs_info(1, "%s -> %s%s", src, dst, cli->dry_run ? " (dry run)" : "");
	view = vs_source_sync_view(&s);
	view.bwlimit = cli->bwlimit;
	ret = vs_sync(s.img, t, p, &view);
out:
	free(real);
	vs_progress_free(p);
	if (t)
		t->ops->close(t);
	vs_source_close(&s, ret == 0);
	return ret;
}

/* Two sources that would land on one target: refuse before doing any. */
static bool
same_basenames(const struct vs_cli *cli, int nsrc)
{
	for (int i = 0; i < nsrc; i++)
		for (int j = i + 1; j < nsrc; j++) {
			/* An NBD URI is named after its export. */
			char *a = vs_target_name(cli->paths[i], false);
			char *b = vs_target_name(cli->paths[j], false);
			bool same = a && b && strcmp(a, b) == 0;

			if (same)
				fprintf(stderr, "vmsync: %s and %s would both be "
				    "synced to the same target %s\n",
				    cli->paths[i], cli->paths[j], a);
			free(a);
			free(b);
			if (same)
				return true;
		}
	return false;
}

/* --snapshot, after the last image: the local targets of the run (synced
 * here or pulled), then the remote ones, each subvolume once.  The exit
 * category of a failure, or VS_EXIT_OK. */
static enum vs_exit
snapshot_run(const struct vs_cli *cli, const char *dest, bool remote_dest,
    char *const *targets, char *const *names, const bool *synced, size_t n)
{
	struct vs_snapshot_item *v = calloc(n ? n : 1, sizeof(*v));
	struct vs_snapshot_opts o = vs_cli_target_opts(cli, NULL).snapshot;
	size_t k = 0;
	bool any = false;
	int rc;

	for (size_t i = 0; i < n; i++)
		any |= synced[i];
	if (!any || cli->dry_run || vs_interrupted) {
		free(v);
		return VS_EXIT_OK;
	}
	vs_err_reset();
	if (!v) {
		vs_errno(VS_EXIT_INTERNAL, dest, "snapshot");
		return VS_EXIT_INTERNAL;
	}
	if (remote_dest) {
		rc = vs_push_snapshot(cli, dest, names, synced, n);
	} else {
		for (size_t i = 0; i < n; i++)
			if (targets[i])
				v[k++] = (struct vs_snapshot_item){
					.target = targets[i],
					.index = cli->index,
					.synced = synced[i],
				};
		rc = vs_snapshot_run(v, k, &o);
	}
	free(v);
	return rc < 0 ? vs_err_first() : VS_EXIT_OK;
}

/* --verify PATH... or --list DEST...: each path in turn, local or
 * host:path (run by the server there), one JSON object for all.  0, or
 * the first failure's code. */
static int
check_all(const struct vs_cli *cli)
{
	enum vs_exit rc = VS_EXIT_OK;
	bool first = true;

	if (cli->json)
		fputs("{\"version\":1,\"images\":[", stdout);
	else if (cli->list && !cli->quiet)
		printf("%-16s %-20s %10s %10s %10s  %-8s %s\n", "IMAGE",
		    "TIME (UTC)", "SIZE", "ALLOCATED", "EXCLUSIVE", "STATE",
		    "PATH");
	for (int i = 0; i < cli->npaths && !vs_interrupted; i++) {
		enum vs_exit one;

		bool remote = vs_is_remote(cli->paths[i]);

		if (remote && cli->index) {
			vs_err(VS_EXIT_USAGE, cli->paths[i], "--index names a "
			    "local index; the remote side keeps its own");
			one = VS_EXIT_USAGE;
		} else if (cli->list) {
			one = remote ? vs_remote_list(cli, cli->paths[i],
			    cli->json ? stdout : NULL, &first) :
			    vs_list(cli->paths[i], cli->snapshot_dir,
			    cli->json ? stdout : NULL, &first);
		} else {
			if (cli->json && !first)
				fputc(',', stdout);
			first = false;
			one = remote ? vs_remote_verify(cli, cli->paths[i],
			    cli->json ? stdout : NULL) :
			    vs_verify(cli->paths[i], cli->index,
			    cli->json ? stdout : NULL);
		}
		if (rc == VS_EXIT_OK)
			rc = one;
	}
	if (cli->json)
		printf("],\"exit_code\":%d}\n", rc);
	return rc;
}

/* A dry run's line per image, in the units of --stats. */
static void
dry_summary(const char *src, const char *dst, const struct vs_stats *st)
{
	char w[32], p[32];

	printf("%s -> %s (dry run): would write %s (%llu bytes), would punch "
	    "%s (%llu bytes)\n", src, dst,
	    vs_fmt_bytes(st->written_bytes, w, sizeof(w)),
	    (unsigned long long)st->written_bytes,
	    vs_fmt_bytes(st->punched_bytes, p, sizeof(p)),
	    (unsigned long long)st->punched_bytes);
}

static void
add_stats(struct vs_stats *sum, const struct vs_stats *st)
{
	sum->virtual_size += st->virtual_size;
	sum->data_bytes += st->data_bytes;
	sum->read_bytes += st->read_bytes;
	sum->target_read_bytes += st->target_read_bytes;
	sum->unchanged_bytes += st->unchanged_bytes;
	sum->skipped_bytes += st->skipped_bytes;
	sum->written_bytes += st->written_bytes;
	sum->punched_bytes += st->punched_bytes;
	sum->wire_sent += st->wire_sent;
	sum->wire_received += st->wire_received;
	sum->elapsed += st->elapsed;
}

int
main(int argc, char **argv)
{
	struct vs_cli cli;
	struct vs_stats total = { .index_state = "-" };
	enum vs_exit first_fail = VS_EXIT_OK;
	const char *dest;
	bool dest_is_dir, progress, remote_dest, done;
	int nsrc, ok = 0, rc, ntaken = 0;
	char **taken, **names = NULL, **targets = NULL;
	bool *synced = NULL;
	enum vs_exit snap = VS_EXIT_OK;
	struct stat st;

	rc = vs_cli_parse(argc, (const char **)argv, &cli);
	if (rc != 0)
		return rc > 0 ? VS_EXIT_OK : VS_EXIT_USAGE;
	if (cli.server) {
		signal(SIGPIPE, SIG_IGN);
		rc = vs_server(&cli);
		vs_cli_free(&cli);
		return rc;
	}
	vs_verbose = cli.quiet ? -1 : cli.verbose;
	progress = cli.progress == VS_AUTO ? (!cli.quiet && isatty(2)) :
	    cli.progress == VS_ON;
	setup_signals();
	if (cli.verify || cli.list) {
		rc = check_all(&cli);
		vs_cli_free(&cli);
		return rc;
	}
	if (cli.archive) {
		rc = cli.since ? vs_delta_export(&cli, progress) :
		    vs_archive_export(&cli, progress);
		vs_cli_free(&cli);
		return rc;
	}
	/* An archive SRC stands for its entries. */
	if ((rc = vs_import_expand(&cli, &done)) != VS_EXIT_OK || done) {
		vs_cli_free(&cli);
		return rc;
	}

	nsrc = cli.npaths - 1;
	dest = cli.paths[nsrc];
	remote_dest = vs_is_remote(dest);
	for (int i = 0; i < nsrc; i++)
		if (vs_is_remote(cli.paths[i]) && (remote_dest ||
		    (cli.index && nsrc > 1))) {
			fprintf(stderr, "vmsync: %s: a remote source needs a "
			    "local DEST\n", cli.paths[i]);
			vs_cli_free(&cli);
			return VS_EXIT_USAGE;
		}
	for (int i = 0; i < nsrc; i++)
		if (vs_is_remote(cli.paths[i]) && (cli.since ||
		    cli.state_dir)) {
			fprintf(stderr, "vmsync: %s: --since and --state-dir "
			    "name local files; a remote source keeps its "
			    "state beside the image\n", cli.paths[i]);
			vs_cli_free(&cli);
			return VS_EXIT_USAGE;
		}
	if (remote_dest && cli.index) {
		fprintf(stderr, "vmsync: --index names a local index; the "
		    "remote side keeps its own\n");
		vs_cli_free(&cli);
		return VS_EXIT_USAGE;
	}
	/* A remote DEST is a directory if the server finds one there. */
	dest_is_dir = remote_dest ||
	    (strlen(dest) && dest[strlen(dest) - 1] == '/') ||
	    (stat(dest, &st) == 0 && S_ISDIR(st.st_mode));
	/* As rsync does, a missing last component of DEST is made (a dry
	 * run only says so). */
	if (dest_is_dir && !remote_dest && stat(dest, &st) < 0 &&
	    !(errno == ENOENT && (cli.dry_run || mkdir(dest, 0777) == 0))) {
		vs_errno(VS_EXIT_TARGET, dest, "target directory");
		vs_cli_free(&cli);
		return VS_EXIT_TARGET;
	}
	if (!dest_is_dir && nsrc > 1) {
		fprintf(stderr, "vmsync: %s: with several sources, DEST must "
		    "be a directory\n", dest);
		vs_cli_free(&cli);
		return VS_EXIT_USAGE;
	}
	if (dest_is_dir && same_basenames(&cli, nsrc)) {
		vs_cli_free(&cli);
		return VS_EXIT_USAGE;
	}
	if (!(taken = calloc((size_t)nsrc + 1, sizeof(*taken))) ||
	    !(names = calloc((size_t)nsrc + 1, sizeof(*names))) ||
	    !(targets = calloc((size_t)nsrc + 1, sizeof(*targets))) ||
	    !(synced = calloc((size_t)nsrc + 1, sizeof(*synced)))) {
		perror("vmsync");
		free(taken);
		free(names);
		free(targets);
		vs_cli_free(&cli);
		return VS_EXIT_INTERNAL;
	}
	if (cli.json)
		fputs("{\"version\":1,\"images\":[", stdout);
	for (int i = 0; i < nsrc && !vs_interrupted; i++) {
		struct vs_stats one = { 0 };
		char *dst = NULL;
		enum vs_exit cat;

		vs_err_reset();
		if (remote_dest)
			rc = vs_push(&cli, cli.paths[i], dest, &dst, &names[i],
			    progress, &one);
		else if (vs_is_remote(cli.paths[i]))
			rc = vs_pull(&cli, cli.paths[i], dest, dest_is_dir,
			    &dst, &one);
		else
			rc = sync_one(&cli, cli.paths[i], dest, dest_is_dir,
			    taken, &dst, progress, &one);
		if (rc == 0)
			ok++;
		synced[i] = rc == 0;
		if (dst)
			taken[ntaken++] = strdup(dst);
		if (dst && !remote_dest)
			targets[i] = strdup(dst);
		if (remote_dest && !names[i])
			names[i] = strdup("");
		cat = vs_err_first();
		/* A failure nobody reported must not pass for a success. */
		if (rc != 0 && cat == VS_EXIT_OK && !vs_interrupted) {
			vs_err(VS_EXIT_INTERNAL, cli.paths[i], "failed, and no "
			    "cause was reported (a bug)");
			cat = VS_EXIT_INTERNAL;
		}
		if (cat != VS_EXIT_OK && first_fail == VS_EXIT_OK)
			first_fail = cat;
		one.dry_run = total.dry_run = cli.dry_run;
		add_stats(&total, &one);
		if (cli.stats && cat == VS_EXIT_OK)
			vs_stats_print(stdout, cli.paths[i], dst ? dst : "",
			    &one, cli.dry_run);
		else if (cli.dry_run && !cli.json && !cli.quiet &&
		    cat == VS_EXIT_OK)
			dry_summary(cli.paths[i], dst ? dst : "", &one);
		if (cli.json) {
			if (i)
				fputc(',', stdout);
			vs_stats_json(stdout, cli.paths[i], dst ? dst : "",
			    &one, cat);
		}
		free(dst);
	}
	if (cli.snapshot)
		snap = snapshot_run(&cli, dest, remote_dest, targets, names,
		    synced, (size_t)nsrc);
	while (ntaken > 0)
		free(taken[--ntaken]);
	for (int i = 0; i < nsrc; i++) {
		free(names[i]);
		free(targets[i]);
	}
	free(taken);
	free(names);
	free(targets);
	free(synced);
	/* A signal after the last check: what finished is complete, but say
	 * why the run stops here. */
	if (vs_interrupted && first_fail == VS_EXIT_OK) {
		fputs("vmsync: interrupted\n", stderr);
		first_fail = VS_EXIT_PARTIAL;
	}
	/* A run whose every image synced but whose snapshot failed exits
	 * with the snapshot's code. */
	rc = first_fail == VS_EXIT_OK ? (int)snap :
	    ok > 0 || vs_interrupted ? VS_EXIT_PARTIAL : (int)first_fail;
	if (cli.json) {
		fputs("],\"totals\":", stdout);
		vs_stats_json(stdout, "", "", &total, rc);
		printf(",\"exit_code\":%d}\n", rc);
	}
	vs_cli_free(&cli);
	return rc;
}
