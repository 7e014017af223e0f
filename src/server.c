/*
 * server.c - vmsync --server: the remote end of a session, on stdin and
 * stdout.
 *
 * Design notes
 * - Nothing but protocol goes to stdout; errors are sent to the client as
 *   ERROR messages (and not printed), so the user sees each one once.
 * - The client sends one OPEN per image.  A push makes this side the
 *   target (serve.c answers); a pull makes it the source (the engine runs
 *   here against a remote target that talks back to the client).
 * - With --root DIR every path is taken relative to DIR and resolved
 *   beneath it (see confine.c): "..", absolute paths elsewhere and
 *   symbolic links that lead out are refused.
 * - Snapshot retention is the server's: its --keep N is a floor that a
 *   client's --keep can raise, never lower.
 * - A client that stalls (nothing sent or read for --timeout, 600 s by
 *   default) ends the session, so its target's lock is released.
 * - A client that sends garbage is still sent one ERROR saying so.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "confine.h"
#include "engine.h"
#include "server.h"
#include "snapshot.h"
#include "source.h"
#include "transport/proto.h"
#include "transport/remote.h"
#include "util.h"

#define SERVER_TIMEOUT	600	/* seconds, when --timeout is not given */

static int
handshake(struct vs_wire *w)
{
	struct vs_hello h = vs_hello_local(), peer;
	struct vs_msg m;

	if (vs_wire_recv(w, &m) < 0)
		return -1;
	if (vs_parse_hello(&m, &peer) < 0) {
		vs_err(VS_EXIT_USAGE, w->peer, "not a vmsync client "
		    "(no valid HELLO)");
		return -1;
	}
	if (peer.version < VS_PROTO_VERSION || peer.hash != 1) {
		vs_err(VS_EXIT_USAGE, w->peer, "protocol version %u is not "
		    "spoken here", peer.version);
		return -1;
	}
	return vs_send_hello(w, &h) < 0 ? -1 : vs_wire_flush(w);
}

/* Retention is the server's policy (its --keep): a client may only ask
 * to keep more snapshots. */
static uint32_t
keep_policy(uint32_t client, uint32_t server)
{
	if (!server)
		return client;
	return client > server ? client : server;
}

/* A DEST directory ("dir/") whose last component is missing is made, as
 * rsync does: its parent, reached beneath --root, must exist, and the name
 * be printable (no control characters from a client).  Failures are left
 * to the target's open to report. */
static void
make_dest_dir(const char *path)
{
	size_t n = strlen(path);
	char *copy = n > 1 && path[n - 1] == '/' ? strndup(path, n - 1) : NULL;
	char *slash = copy ? strrchr(copy, '/') : NULL;
	const char *name = slash ? slash + 1 : copy;
	int pfd;

	if (!copy || !*name || !strcmp(name, ".") || !strcmp(name, "..") ||
	    !vs_plain_text(name)) {
		free(copy);
		return;
	}
	if (slash)
		*slash = 0;
	pfd = vs_open(slash ? (*copy ? copy : "/") : ".", O_PATH |
	    O_DIRECTORY | O_CLOEXEC, 0);
	if (pfd >= 0) {
		mkdirat(pfd, name, 0777);
		close(pfd);
	}
	free(copy);
}

/* Push: this side holds the target. */
static int
serve_push(struct vs_wire *w, const struct vs_open *o,
    const struct vs_cli *cli)
{
	struct vs_stats st = { .index_state = "-" };
	struct vs_target_opts topts = {
		.block_size = o->block_size,
		.dry_run = o->flags & VS_OPEN_DRY_RUN,
		.checksum = o->flags & VS_OPEN_CHECKSUM,
		.force = o->flags & VS_OPEN_FORCE,
		.src_mode = o->mode,
		.src_mtime_sec = o->mtime_sec,
		.src_mtime_nsec = o->mtime_nsec,
		.snapshot = {
			.take = o->flags & VS_OPEN_SNAPSHOT,
			.dir = o->snapshot_dir[0] ? o->snapshot_dir : NULL,
			.keep = keep_policy(o->keep, cli->keep),
		},
		.stats = &st,
	};
	struct vs_opened r = { 0 };
	struct vs_target *t = NULL;
	char *path;
	int rc = -1;

	if (!(o->flags & VS_OPEN_DRY_RUN))
		make_dest_dir(o->path);
	if (!(path = vs_confine_target(o->path, o->name)))
		return -1;
	if (o->block_size && !vs_block_size_ok(o->block_size)) {
		vs_err(VS_EXIT_USAGE, path, "invalid block size");
		goto out;
	}
	if (vs_local_open(path, &topts, &t) < 0)
		goto out;
	snprintf(r.name, sizeof(r.name), "%s", path);
	snprintf(r.format, sizeof(r.format), "%s", t->recorded_format);
	if (vs_send_opened(w, &r) < 0 || vs_wire_flush(w) < 0)
		goto out;
	rc = vs_serve_target(w, t);
out:
	if (t)
		t->ops->close(t);
	free(path);
	return rc;
}

/* The end of a push run with --snapshot: its targets' subvolumes, once
 * each. */
static int
serve_snapshot(struct vs_wire *w, const struct vs_msg *m,
    const struct vs_cli *cli)
{
	struct vs_snapshot_req *q = malloc(sizeof(*q));
	struct vs_snapshot_item *v = NULL;
	struct vs_snapshot_opts so;
	uint32_t n = 0;
	int rc = -1, taken;

	if (!q || vs_parse_snapshot(m, q) < 0) {
		if (q)
			vs_err(VS_EXIT_USAGE, "client", "malformed SNAPSHOT "
			    "message");
		else
			vs_errno(VS_EXIT_INTERNAL, "server", "snapshot");
		free(q);
		return -1;
	}
	so = (struct vs_snapshot_opts){
		.take = true,
		.dir = q->dir[0] ? q->dir : NULL,
		.keep = keep_policy(q->keep, cli->keep),
	};
	if (!(v = calloc(q->n, sizeof(*v)))) {
		vs_errno(VS_EXIT_INTERNAL, "server", "snapshot");
		goto out;
	}
	for (; n < q->n; n++) {
		v[n].synced = q->images[n].synced;
		if (!(v[n].target = vs_confine_target(q->path,
		    q->images[n].name)))
			goto out;
	}
	if ((taken = vs_snapshot_run(v, n, &so)) < 0)
		goto out;
	rc = vs_send_snapped(w, (uint32_t)taken) < 0 ? -1 : vs_wire_flush(w);
out:
	while (n > 0)
		free((char *)v[--n].target);
	free(v);
	free(q->images);
	free(q);
	return rc;
}

/* Pull: this side holds the source and runs the engine. */
static int
serve_pull(struct vs_wire *w, const struct vs_open *o,
    const struct vs_cli *cli)
{
	struct vs_stats st = { .index_state = "-" };
	struct vs_target_opts topts = { 0 };
	struct vs_source_opts sopts = {
		.format = o->format[0] ? o->format : NULL,
		.output = o->output[0] ? o->output : NULL,
		.view = {
			.never = o->flags & VS_OPEN_LIVE,
			.dry_run = o->flags & VS_OPEN_DRY_RUN,
		},
		/* The server's own, beneath --root: never the client's. */
		.backing_dirs = cli->backing_dirs,
		.nbacking_dirs = cli->nbacking_dirs,
	};
	struct vs_sync_view view;
	struct vs_source so;
	struct vs_opened r = { 0 };
	struct vs_target *t = NULL;
	char *path = vs_confine_source(o->path), *name = NULL;
	struct vs_stats_msg sm;
	int rc = -1;

	if (!path)
		return -1;
	if (vs_source_open(path, &sopts, &topts, &so) < 0 ||
	    vs_source_confirm(&so, path, &sopts, &topts, o->recorded,
	    "a pulling client") < 0)
		goto out;
	if (!(name = vs_target_name(path, so.to_raw))) {
		vs_errno(VS_EXIT_INTERNAL, path, "name");
		goto out;
	}
	r.size = so.img->size;
	r.mode = topts.src_mode;
	r.mtime_sec = topts.src_mtime_sec;
	r.mtime_nsec = topts.src_mtime_nsec;
	snprintf(r.name, sizeof(r.name), "%s", name);
	if (so.choice.unconfirmed)	/* the client says it */
		snprintf(r.format, sizeof(r.format), "%s", so.choice.probed);
	if (vs_send_opened(w, &r) < 0 || vs_wire_flush(w) < 0 ||
	    vs_remote_target(w, path, o->codec, o->level, &st, &t) < 0)
		goto out;
	t->src_format = so.choice.format;
	view = vs_source_sync_view(&so);
	if (vs_sync(so.img, t, NULL, &view) < 0)
		goto out;
	/* The engine's counters; the target side has its own. */
	sm = (struct vs_stats_msg){ .virtual_size = st.virtual_size,
	    .data_bytes = st.data_bytes, .read_bytes = st.read_bytes,
	    .skipped_bytes = st.skipped_bytes,
	    .usec = (uint64_t)(st.elapsed * 1e6) };
	rc = vs_send_stats(w, &sm) < 0 ? -1 : vs_wire_flush(w);
out:
	if (t)
		t->ops->close(t);
	vs_source_close(&so, rc == 0);
	free(name);
	free(path);
	return rc;
}

int
vs_server(const struct vs_cli *cli)
{
	struct vs_wire w;
	struct vs_msg m;
	struct vs_open *o = malloc(sizeof(*o));
	int rc = VS_EXIT_OK;

	vs_err_quiet = true;
	vs_verbose = -1;
	vs_wire_init(&w, 0, 1, "client", VS_EXIT_USAGE);
	vs_wire_set_timeout(&w, cli->timeout < 0 ? SERVER_TIMEOUT :
	    (unsigned)cli->timeout);
	if (!o) {
		vs_errno(VS_EXIT_INTERNAL, "server", "open");
		goto fail;
	}
	if (cli->root && vs_confine_init(cli->root) < 0)
		goto fail;
	if (handshake(&w) < 0)
		goto fail;
	for (;;) {
		int r = vs_wire_recv_or_eof(&w, &m);

		if (r == 1)
			break;		/* the client hung up between images */
		if (r < 0)
			goto fail;
		if (m.type == VS_MSG_SNAPSHOT) {
			w.cat = VS_EXIT_TARGET;
			if (serve_snapshot(&w, &m, cli) < 0)
				goto fail;
			w.cat = VS_EXIT_USAGE;
			continue;
		}
		if (vs_parse_open(&m, o) < 0) {
			vs_err(VS_EXIT_USAGE, "client", "malformed OPEN "
			    "message");
			goto fail;
		}
		/* A broken session is the target's failure when pushing, the
		 * source's when pulling, as the client counts it. */
		w.cat = o->direction == VS_PUSH ? VS_EXIT_TARGET :
		    VS_EXIT_SOURCE;
		r = o->direction == VS_PUSH ? serve_push(&w, o, cli) :
		    serve_pull(&w, o, cli);
		w.cat = VS_EXIT_USAGE;
		if (r < 0)
			goto fail;
	}
	goto out;
fail:
	if (!w.wbroken && (!w.failed || w.garbage))
		vs_remote_send_error(&w);
out:
	rc = vs_err_first();
	free(o);
	vs_wire_free(&w);
	return rc;
}
