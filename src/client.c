/*
 * client.c - syncs with a remote side: push (the target is remote) and pull
 * (the source is remote), one session per image.
 *
 * A lost connection or a protocol failure counts as a target error (3)
 * when pushing and as a source error (2) when pulling; errors the server
 * reports keep the exit code it gives them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "cli.h"
#include "engine.h"
#include "progress.h"
#include "source.h"
#include "transport/pack.h"
#include "transport/proto.h"
#include "transport/remote.h"
#include "transport/ssh.h"
#include "util.h"

struct session {
	char *host, *path;	/* of the remote argument */
	struct vs_conn conn;	/* the ssh or -e process */
	struct vs_wire w;	/* framing over its pipes */
	uint32_t codec;		/* for blocks on the wire */
	bool open;		/* conn and w are set up */
};

static int
choose_codec(const struct vs_cli *cli, struct session *s, uint32_t peer)
{
	static const char *const names[] = { "none", "zlib", "zstd" };

	if (cli->compress >= 0) {
		s->codec = (uint32_t)cli->compress;
		if (s->codec && !(peer & (1u << s->codec))) {
			vs_err(VS_EXIT_USAGE, s->host, "the remote vmsync has "
			    "no %s compression", names[s->codec]);
			return -1;
		}
		return 0;
	}
	s->codec = peer & (1u << VS_WIRE_ZSTD) ? VS_WIRE_ZSTD :
	    peer & (1u << VS_WIRE_ZLIB) ? VS_WIRE_ZLIB : VS_WIRE_NONE;
	return 0;
}

static int
session_start(const struct vs_cli *cli, const char *arg, enum vs_exit cat,
    struct session *s)
{
	const char *rsh = cli->rsh ? cli->rsh : getenv("VMSYNC_RSH");
	struct vs_hello h = vs_hello_local(), peer;
	struct vs_msg m;

	memset(s, 0, sizeof(*s));
	s->conn.rfd = s->conn.wfd = -1;
	if (vs_remote_split(arg, &s->host, &s->path) < 0) {
		vs_errno(VS_EXIT_INTERNAL, arg, "remote path");
		return -1;
	}
	if (vs_conn_open(rsh && *rsh ? rsh : "ssh", s->host,
	    cli->remote_vmsync ? cli->remote_vmsync : "vmsync", &s->conn) < 0)
		return -1;
	vs_wire_init(&s->w, s->conn.rfd, s->conn.wfd, s->host, cat);
	s->w.bwlimit = cli->bwlimit;
	s->open = true;
	if (vs_send_hello(&s->w, &h) < 0 || vs_wire_recv(&s->w, &m) < 0) {
		if (s->w.wbroken)
			vs_remote_broken(&s->w);
		return -1;
	}
	if (m.type == VS_MSG_ERROR) {
		vs_remote_report(&s->w, &m);
		return -1;
	}
	if (vs_parse_hello(&m, &peer) < 0 || peer.version < 1 ||
	    peer.hash != 1) {
		vs_err(cat, s->host, "the remote side does not speak the "
		    "vmsync protocol");
		return -1;
	}
	return choose_codec(cli, s, peer.codecs);
}

static void
session_end(struct session *s, struct vs_stats *st)
{
	if (s->open) {
		st->wire_sent += s->w.sent;
		st->wire_received += s->w.received;
		vs_wire_free(&s->w);
		vs_conn_close(&s->conn);
	}
	free(s->host);
	free(s->path);
	s->open = false;
}

static void
fill_open(const struct vs_cli *cli, const struct session *s,
    struct vs_open *o, uint32_t direction)
{
	memset(o, 0, sizeof(*o));
	o->direction = direction;
	o->flags = (cli->dry_run ? VS_OPEN_DRY_RUN : 0) |
	    (cli->checksum ? VS_OPEN_CHECKSUM : 0) |
	    (cli->snapshot ? VS_OPEN_SNAPSHOT : 0) |
	    (cli->source_live ? VS_OPEN_LIVE : 0);
	o->keep = cli->keep;
	snprintf(o->snapshot_dir, sizeof(o->snapshot_dir), "%s",
	    cli->snapshot_dir ? cli->snapshot_dir : "");
	o->block_size = cli->block_size;
	o->codec = s->codec;
	o->level = cli->compress_level;
	snprintf(o->path, sizeof(o->path), "%s", s->path);
}

/* "host:path" for messages and statistics. */
static char *
remote_name(const char *host, const char *path)
{
	char *out;

	return asprintf(&out, "%s:%s", host, path) < 0 ? NULL : out;
}

int
vs_push(const struct vs_cli *cli, const char *src, const char *dest,
    char **dstp, bool progress, struct vs_stats *st)
{
	struct vs_target_opts topts = { .stats = st };
	struct vs_source_opts sopts = vs_cli_source_opts(cli);
	struct vs_sync_view view;
	struct vs_source so;
	struct vs_target *t = NULL;
	struct vs_progress *p = NULL;
	struct vs_open *o = malloc(sizeof(*o));
	struct vs_opened *r = malloc(sizeof(*r));
	struct session s = { .open = false };
	struct vs_msg m;
	char *name = NULL;
	int ret = -1;

	if (vs_source_open(src, &sopts, &topts, &so) < 0)
		goto out;
	if (!o || !r) {
		vs_errno(VS_EXIT_INTERNAL, src, "push");
		goto out;
	}
	if (!(name = vs_target_name(src, so.to_raw))) {
		vs_errno(VS_EXIT_INTERNAL, src, "target name");
		goto out;
	}
	if (session_start(cli, dest, VS_EXIT_TARGET, &s) < 0)
		goto out;
	fill_open(cli, &s, o, VS_PUSH);
	snprintf(o->name, sizeof(o->name), "%s", name);
	o->mode = topts.src_mode;
	o->mtime_sec = topts.src_mtime_sec;
	o->mtime_nsec = topts.src_mtime_nsec;
	if (vs_send_open(&s.w, o) < 0 ||
	    vs_remote_expect(&s.w, VS_MSG_OPENED, &m) < 0)
		goto out;
	if (vs_parse_opened(&m, r) < 0 || !r->name[0]) {
		vs_err(VS_EXIT_TARGET, s.host, "malformed OPENED message");
		goto out;
	}
	if (!(*dstp = remote_name(s.host, r->name)) ||
	    vs_remote_target(&s.w, *dstp, s.codec, cli->compress_level, st,
	    &t) < 0)
		goto out;
	if (progress && !(p = vs_progress_new(stderr, src))) {
		vs_errno(VS_EXIT_INTERNAL, src, "progress");
		goto out;
	}
	vs_info(1, "%s -> %s%s", src, *dstp, cli->dry_run ? " (dry run)" : "");
	view = vs_source_sync_view(&so);
	ret = vs_sync(so.img, t, p, &view);
out:
	vs_progress_free(p);
	if (t)
		t->ops->close(t);
	session_end(&s, st);
	vs_source_close(&so, ret == 0);
	free(name);
	free(o);
	free(r);
	return ret;
}

/* The source side's counters, after a pull. */
static int
pull_stats(struct session *s, struct vs_stats *st)
{
	struct vs_unpack r;
	struct vs_msg m;

	if (vs_remote_expect(&s->w, VS_MSG_STATS, &m) < 0)
		return -1;
	r = (struct vs_unpack){ .p = m.p, .left = m.len };
	st->virtual_size = vs_get_u64(&r);
	st->data_bytes = vs_get_u64(&r);
	st->read_bytes = vs_get_u64(&r);
	st->skipped_bytes = vs_get_u64(&r);
	st->elapsed = (double)vs_get_u64(&r) / 1e6;
	if (r.bad || r.left) {
		vs_err(VS_EXIT_SOURCE, s->host, "malformed STATS message");
		return -1;
	}
	return 0;
}

int
vs_pull(const struct vs_cli *cli, const char *src, const char *dest,
    bool dest_is_dir, char **dstp, struct vs_stats *st)
{
	struct vs_target_opts topts = vs_cli_target_opts(cli, st);
	struct vs_open *o = malloc(sizeof(*o));
	struct vs_opened *r = malloc(sizeof(*r));
	struct session s = { .open = false };
	struct vs_target *t = NULL;
	struct vs_msg m;
	int ret = -1;

	if (!o || !r) {
		vs_errno(VS_EXIT_INTERNAL, src, "pull");
		goto out;
	}
	if (session_start(cli, src, VS_EXIT_SOURCE, &s) < 0)
		goto out;
	fill_open(cli, &s, o, VS_PULL);
	snprintf(o->format, sizeof(o->format), "%s", cli->format ?
	    cli->format : "");
	snprintf(o->output, sizeof(o->output), "%s", cli->output ?
	    cli->output : "");
	if (vs_send_open(&s.w, o) < 0 ||
	    vs_remote_expect(&s.w, VS_MSG_OPENED, &m) < 0)
		goto out;
	/* The name comes from the other side: a plain file name only. */
	if (vs_parse_opened(&m, r) < 0 || !r->name[0] ||
	    strchr(r->name, '/') || strcmp(r->name, ".") == 0 ||
	    strcmp(r->name, "..") == 0) {
		vs_err(VS_EXIT_SOURCE, s.host, "malformed OPENED message");
		goto out;
	}
	topts.src_mode = r->mode;
	topts.src_mtime_sec = r->mtime_sec;
	topts.src_mtime_nsec = r->mtime_nsec;
	*dstp = dest_is_dir ? vs_path_join(dest, r->name) : strdup(dest);
	if (!*dstp) {
		vs_errno(VS_EXIT_INTERNAL, src, "target path");
		goto out;
	}
	vs_info(1, "%s -> %s%s", src, *dstp, cli->dry_run ? " (dry run)" : "");
	if (vs_local_open(*dstp, &topts, &t) < 0) {
		/* Tell the other side why, then hang up. */
		vs_remote_send_error(&s.w);
		goto out;
	}
	if (vs_serve_target(&s.w, t) < 0 || pull_stats(&s, st) < 0)
		goto out;
	ret = 0;
out:
	if (t)
		t->ops->close(t);
	session_end(&s, st);
	free(o);
	free(r);
	return ret;
}
