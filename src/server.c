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
 * - LIST and VERIFY (version 5) read backups beneath --root as --list and
 *   --verify do here, and send what they find, never the files: one
 *   LISTED per generation, one VERIFIED per backup.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "confine.h"
#include "engine.h"
#include "list.h"
#include "server.h"
#include "snapshot.h"
#include "source.h"
#include "transport/proto.h"
#include "transport/remote.h"
#include "util.h"
#include "verify.h"

#define SERVER_TIMEOUT	600	/* seconds, when --timeout is not given */

/* The reasons of bad ranges cross the wire as they are numbered. */
_Static_assert(VS_BAD_UNKNOWN == VS_VERIFIED_REASONS &&
    VS_VERIFY_BAD_KEPT == VS_VERIFY_MAX_BAD, "VERIFIED carries a result");

/* HELLO both ways; *@version: the one the session speaks. */
static int
handshake(struct vs_wire *w, uint32_t *version)
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
	if (peer.version < VS_PROTO_MIN_VERSION || peer.hash != 1) {
		vs_err(VS_EXIT_USAGE, w->peer, "protocol version %u is not "
		    "spoken here", peer.version);
		return -1;
	}
	*version = peer.version < h.version ? peer.version : h.version;
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

/* Pull: this side holds the source and runs the engine; the session
 * speaks protocol @version. */
static int
serve_pull(struct vs_wire *w, const struct vs_open *o,
    const struct vs_cli *cli, uint32_t version)
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
		vs_target_name_failed(path);
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
	    vs_remote_target(w, path, o->codec, o->level, false, &st, &t) < 0)
		goto out;
	t->src_format = so.choice.format;
	view = vs_source_sync_view(&so);
	if (vs_sync(so.img, t, NULL, &view) < 0)
		goto out;
	/* The engine's counters; the target side has its own. */
	sm = (struct vs_stats_msg){ .virtual_size = st.virtual_size,
	    .data_bytes = st.data_bytes, .read_bytes = st.read_bytes,
	    .skipped_bytes = st.skipped_bytes,
	    .usec = (uint64_t)(st.elapsed * 1e6), .guest_size = st.guest_size };
	rc = vs_send_stats(w, &sm, version) < 0 ? -1 : vs_wire_flush(w);
out:
	if (t)
		t->ops->close(t);
	vs_source_close(&so, rc == 0);
	free(name);
	free(path);
	return rc;
}

/* LIST: each generation as it is gathered. */
struct listing {
	struct vs_wire *w;		/* the session */
	struct vs_listed l;		/* one LISTED */
	uint32_t n;			/* LISTED sent */
};

static int
send_image(void *arg, const struct vs_list_image *im)
{
	struct listing *a = arg;
	struct vs_listed *l = &a->l;

	for (size_t i = 0; i < im->n; i++) {
		const struct vs_list_gen *e = &im->v[i];

		if (strlen(im->name) > VS_NAME_MAX ||
		    strlen(e->path) > VS_PATH_MAX) {
			vs_err(VS_EXIT_INTERNAL, e->path, "--list: path too "
			    "long to send");
			return -1;
		}
		memset(l, 0, sizeof(*l));
		snprintf(l->name, sizeof(l->name), "%s", im->name);
		snprintf(l->path, sizeof(l->path), "%s", e->path);
		l->time_sec = e->time.tv_sec;
		l->time_nsec = (uint32_t)e->time.tv_nsec;
		l->virtual_size = e->virtual_size;
		l->allocated = e->allocated;
		l->exclusive = e->exclusive;
		l->flags = (e->complete ? VS_LISTED_COMPLETE : 0) |
		    (e->has_exclusive ? VS_LISTED_EXCLUSIVE : 0);
		if (vs_send_listed(a->w, l) < 0)
			return -1;
		a->n++;
	}
	return 0;
}

/* LIST: the images of a directory beneath --root, as --list finds
 * them. */
static int
serve_list(struct vs_wire *w, const struct vs_msg *m)
{
	struct vs_list_req *q = malloc(sizeof(*q));
	struct listing *a = malloc(sizeof(*a));
	char *path = NULL;
	int rc = -1;

	if (!q || !a) {
		vs_errno(VS_EXIT_INTERNAL, "server", "--list");
		goto out;
	}
	if (vs_parse_list(m, q) < 0) {
		vs_err(VS_EXIT_USAGE, "client", "malformed LIST message");
		goto out;
	}
	*a = (struct listing){ .w = w };
	if (!(path = vs_confine_source(q->path)) ||
	    vs_list_gather(path, q->snapshot_dir[0] ? q->snapshot_dir : NULL,
	    send_image, a) != VS_EXIT_OK)
		goto out;
	rc = vs_send_list_end(w, a->n) < 0 ? -1 : vs_wire_flush(w);
out:
	free(path);
	free(q);
	free(a);
	return rc;
}

/* VERIFY: check a backup beneath --root as --verify does, and send what
 * it found; a check that could not run is a result too. */
static int
serve_verify(struct vs_wire *w, const struct vs_msg *m)
{
	struct vs_list_req *q = malloc(sizeof(*q));
	struct vs_verified *v = calloc(1, sizeof(*v));
	struct vs_verify_result r = { 0 };
	char *path = NULL;
	int rc = -1, fd;

	if (!q || !v || vs_verify_result_init(&r) < 0) {
		vs_errno(VS_EXIT_INTERNAL, "server", "--verify");
		goto out;
	}
	if (vs_parse_list(m, q) < 0) {
		vs_err(VS_EXIT_USAGE, "client", "malformed VERIFY message");
		goto out;
	}
	if (!(path = vs_confine_source(q->path)))
		goto out;
	/* A symbolic link out is refused as a path out is (the check's own
	 * opens are beneath --root too). */
	if ((fd = vs_open(path, O_PATH | O_CLOEXEC, 0)) < 0 &&
	    (errno == EXDEV || errno == ELOOP) && vs_confined()) {
		vs_err(VS_EXIT_USAGE, q->path, "outside the directory this "
		    "server is confined to");
		goto out;
	}
	if (fd >= 0)
		close(fd);
	v->status = vs_verify_check(path, NULL, &r);
	v->flags = (r.complete ? VS_VERIFIED_COMPLETE : 0) |
	    (r.partial ? VS_VERIFIED_PARTIAL : 0) |
	    (r.meta_bad ? VS_VERIFIED_META_BAD : 0);
	v->virtual_size = r.virtual_size;
	v->read_bytes = r.read_bytes;
	v->bad_bytes = r.bad_bytes;
	v->more_bad = r.more_bad;
	snprintf(v->text, sizeof(v->text), "%s", vs_err_text());
	v->nbad = (uint32_t)r.nbad;
	for (size_t i = 0; i < r.nbad; i++)
		v->bad[i] = (struct vs_verified_bad){ .off = r.bad[i].off,
		    .len = r.bad[i].len, .reason = (uint8_t)r.bad[i].why };
	/* Sent as a result, not as this session's failure. */
	vs_err_reset();
	rc = vs_send_verified(w, v) < 0 ? -1 : vs_wire_flush(w);
out:
	vs_verify_result_free(&r);
	free(path);
	free(q);
	free(v);
	return rc;
}

int
vs_server(const struct vs_cli *cli)
{
	struct vs_wire w;
	struct vs_msg m;
	struct vs_open *o = malloc(sizeof(*o));
	uint32_t version = 0;
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
	if (handshake(&w, &version) < 0)
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
		if (m.type == VS_MSG_LIST || m.type == VS_MSG_VERIFY) {
			if (version < VS_PROTO_LIST_VERSION) {
				vs_err(VS_EXIT_USAGE, "client", "%s in a "
				    "session of protocol version %u",
				    m.type == VS_MSG_LIST ? "LIST" : "VERIFY",
				    version);
				goto fail;
			}
			w.cat = VS_EXIT_SOURCE;
			r = m.type == VS_MSG_LIST ? serve_list(&w, &m) :
			    serve_verify(&w, &m);
			w.cat = VS_EXIT_USAGE;
			if (r < 0)
				goto fail;
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
		    serve_pull(&w, o, cli, version);
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
