/*
 * client.c - syncs with a remote side: push (the target is remote) and pull
 * (the source is remote), one session per image.
 *
 * A lost connection or a protocol failure counts as a target error (3)
 * when pushing and as a source error (2) when pulling; errors the server
 * reports keep the exit code it gives them.
 *
 * The server may be compromised: a pull writes only the name the client
 * asked for, what the server sends is bounded by serve.c, and its names
 * and messages are escaped before they are printed.
 *
 * --list and --verify of a host:path run on the server (LIST, VERIFY),
 * which sends back what it found; the client prints it as it prints a
 * local result, with the server's paths as host:path, so each is a SRC.
 * A listing is bounded (VS_LIST_MAX_BYTES) and shown image by image.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client.h"
#include "cli.h"
#include "engine.h"
#include "index.h"
#include "list.h"
#include "progress.h"
#include "source.h"
#include "transport/proto.h"
#include "transport/remote.h"
#include "transport/ssh.h"
#include "util.h"
#include "verify.h"

struct session {
	char *host, *path;	/* of the remote argument */
	struct vs_conn conn;	/* the ssh or -e process */
	struct vs_wire w;	/* framing over its pipes */
	uint32_t codec;		/* for blocks on the wire */
	uint32_t version;	/* of the protocol the session speaks */
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

/* The remote side hung up before its greeting: if the remote shell could
 * not run vmsync (exit 127, "command not found"), say what to do. */
static void
no_remote_vmsync(const struct vs_cli *cli, struct session *s,
    enum vs_exit cat)
{
	int status = 0;
	pid_t r = 0;

	/* It hung up, so it exits now; never wait long for one that did
	 * not (garbage instead of a greeting). */
	for (int i = 0; i < 100 && s->conn.pid > 0 &&
	    (r = waitpid(s->conn.pid, &status, WNOHANG)) == 0; i++)
		usleep(10000);
	if (r != s->conn.pid)
		return;
	s->conn.pid = 0;	/* reaped */
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 127)
		return;
	vs_err(cat, s->host, "no %s there to run: install vmsync on %s, or "
	    "name it with --remote-vmsync PATH", cli->remote_vmsync ?
	    cli->remote_vmsync : "vmsync", s->host);
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
	vs_wire_set_timeout(&s->w, cli->timeout > 0 ? (unsigned)cli->timeout :
	    0);
	s->w.bwlimit = cli->bwlimit;
	s->open = true;
	if (vs_send_hello(&s->w, &h) < 0 || vs_wire_recv(&s->w, &m) < 0) {
		if (s->w.wbroken)
			vs_remote_broken(&s->w);
		no_remote_vmsync(cli, s, cat);
		return -1;
	}
	if (m.type == VS_MSG_ERROR) {
		vs_remote_report(&s->w, &m);
		return -1;
	}
	if (vs_parse_hello(&m, &peer) < 0 ||
	    peer.version < VS_PROTO_MIN_VERSION || peer.hash != 1) {
		vs_err(cat, s->host, "the remote side does not speak the "
		    "vmsync protocol");
		return -1;
	}
	s->version = peer.version < h.version ? peer.version : h.version;
	return choose_codec(cli, s, peer.codecs);
}

static void
session_end(struct session *s, struct vs_stats *st)
{
	if (s->open) {
		/* A stuck remote side would never exit: end it. */
		if (s->w.timed_out && s->conn.pid > 0)
			kill(s->conn.pid, SIGTERM);
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
	    (cli->source_live ? VS_OPEN_LIVE : 0) |
	    (cli->force ? VS_OPEN_FORCE : 0);
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
    char **dstp, char **namep, bool progress, struct vs_stats *st)
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
	char *name = NULL, *shown = NULL;
	int ret = -1;

	if (vs_source_open(src, &sopts, &topts, &so) < 0)
		goto out;
	if (!o || !r) {
		vs_errno(VS_EXIT_INTERNAL, src, "push");
		goto out;
	}
	if (!(name = vs_target_name(src, so.to_raw))) {
		vs_target_name_failed(src);
		goto out;
	}
	if (!(*namep = strdup(name))) {
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
	/* Shown in messages and statistics: escaped. */
	if (!(shown = malloc(sizeof(r->name) * 4)) ||
	    !(*dstp = remote_name(s.host, vs_escape(r->name, shown,
	    sizeof(r->name) * 4)))) {
		vs_errno(VS_EXIT_INTERNAL, src, "target name");
		goto out;
	}
	s.w.image = shown;
	if (vs_remote_target(&s.w, *dstp, s.codec, cli->compress_level,
	    cli->compress < 0, st, &t) < 0 ||
	    vs_source_confirm(&so, src, &sopts, &topts, r->format, *dstp) < 0)
		goto out;
	t->src_format = so.choice.format;
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
	free(shown);
	free(o);
	free(r);
	return ret;
}

int
vs_push_snapshot(const struct vs_cli *cli, const char *dest,
    char *const *names, const bool *synced, size_t n)
{
	struct vs_snapshot_req *q = calloc(1, sizeof(*q));
	struct session s = { .open = false };
	struct vs_stats st = { 0 };
	struct vs_msg m;
	uint32_t taken;
	int ret = -1;

	if (!q || n > VS_SNAPSHOT_MAX ||
	    !(q->images = calloc(n ? n : 1, sizeof(*q->images)))) {
		vs_err(VS_EXIT_INTERNAL, dest, "snapshot: too many images");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (!names[i] || !names[i][0])
			continue;	/* failed before it had a target */
		snprintf(q->images[q->n].name, sizeof(q->images[q->n].name),
		    "%s", names[i]);
		q->images[q->n++].synced = synced[i];
	}
	q->keep = cli->keep;
	snprintf(q->dir, sizeof(q->dir), "%s", cli->snapshot_dir ?
	    cli->snapshot_dir : "");
	if (session_start(cli, dest, VS_EXIT_TARGET, &s) < 0)
		goto out;
	snprintf(q->path, sizeof(q->path), "%s", s.path);
	if (vs_send_snapshot(&s.w, q) < 0 ||
	    vs_remote_expect(&s.w, VS_MSG_SNAPPED, &m) < 0)
		goto out;
	if (vs_parse_snapped(&m, &taken) < 0) {
		vs_err(VS_EXIT_TARGET, s.host, "malformed SNAPPED message");
		goto out;
	}
	vs_info(1, "%s: %u snapshot%s taken", dest, taken, taken == 1 ? "" :
	    "s");
	ret = 0;
out:
	session_end(&s, &st);
	if (q)
		free(q->images);
	free(q);
	return ret;
}

/* The source side's counters, after a pull. */
static int
pull_stats(struct session *s, struct vs_stats *st)
{
	struct vs_stats_msg sm;
	struct vs_msg m;

	if (vs_remote_expect(&s->w, VS_MSG_STATS, &m) < 0)
		return -1;
	if (vs_parse_stats(&m, &sm) < 0) {
		vs_err(VS_EXIT_SOURCE, s->host, "malformed STATS message");
		return -1;
	}
	st->virtual_size = sm.virtual_size;
	st->data_bytes = sm.data_bytes;
	st->read_bytes = sm.read_bytes;
	st->skipped_bytes = sm.skipped_bytes;
	st->guest_size = sm.guest_size;
	st->elapsed = (double)sm.usec / 1e6;
	return 0;
}

/* A plain file name: no directory, not "." or "..". */
static bool
plain_name(const char *name)
{
	return name[0] && !strchr(name, '/') && strcmp(name, ".") != 0 &&
	    strcmp(name, "..") != 0;
}

/* The name a pull writes: the one the client asked for, the source's
 * basename or, with -O raw, its .raw form (a raw source keeps its name).
 * The server only confirms it: any other name it gives is refused. */
static char *
pull_name(const struct vs_cli *cli, const struct session *s,
    const char *said)
{
	bool raw = cli->output && strcmp(cli->output, "raw") == 0;
	char *plain = vs_target_name(s->path, false);
	char *alt = raw ? vs_target_name(s->path, true) : NULL;
	char *out = NULL, shown[4 * 64];

	if (!plain || (raw && !alt)) {
		vs_errno(VS_EXIT_INTERNAL, s->path, "target name");
	} else if (plain_name(plain) && strcmp(said, plain) == 0) {
		out = plain;
		plain = NULL;
	} else if (alt && plain_name(alt) && strcmp(said, alt) == 0) {
		out = alt;
		alt = NULL;
	} else {
		vs_err(VS_EXIT_SOURCE, s->host, "the server names the image "
		    "'%s', not %s as asked: nothing written",
		    vs_escape(said, shown, sizeof(shown)), plain);
	}
	free(plain);
	free(alt);
	return out;
}

/* The format the index of the local target of a pull records, for the
 * server to confirm the source's format with ("" if none).  Not with
 * -O raw, whose target is named after the view. */
static void
pull_record(const struct vs_cli *cli, const struct session *s,
    const char *dest, bool dest_is_dir, char *out, size_t len)
{
	char *name = vs_target_name(s->path, false), *target = NULL;
	char *index = NULL;
	const struct idx_header *h;
	struct vs_index *ix = NULL;
	const char *why;

	*out = 0;
	if (!name || (cli->output && strcmp(cli->output, "raw") == 0))
		goto out;
	target = dest_is_dir ? vs_path_join(dest, name) : strdup(dest);
	index = cli->index ? strdup(cli->index) :
	    target ? vs_local_index_path(target) : NULL;
	vs_err_demote(true);
	if (index && idx_open(index, false, &ix) == 0 && ix &&
	    (h = idx_header(ix, &why)))
		snprintf(out, len, "%s", h->format);
	vs_err_demote(false);
out:
	idx_close(ix);
	free(index);
	free(target);
	free(name);
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
	char *name = NULL;
	int ret = -1;

	if (!o || !r) {
		vs_errno(VS_EXIT_INTERNAL, src, "pull");
		goto out;
	}
	if (session_start(cli, src, VS_EXIT_SOURCE, &s) < 0)
		goto out;
	s.w.image = s.path;
	fill_open(cli, &s, o, VS_PULL);
	snprintf(o->format, sizeof(o->format), "%s", cli->format ?
	    cli->format : "");
	snprintf(o->output, sizeof(o->output), "%s", cli->output ?
	    cli->output : "");
	pull_record(cli, &s, dest, dest_is_dir, o->recorded,
	    sizeof(o->recorded));
	if (vs_send_open(&s.w, o) < 0 ||
	    vs_remote_expect(&s.w, VS_MSG_OPENED, &m) < 0)
		goto out;
	if (vs_parse_opened(&m, r) < 0) {
		vs_err(VS_EXIT_SOURCE, s.host, "malformed OPENED message");
		goto out;
	}
	if (!(name = pull_name(cli, &s, r->name)))
		goto out;
	if (r->format[0]) {
		struct vs_format_choice c = { .format = "raw",
		    .unconfirmed = true };
		char shown[4 * sizeof(r->format)];

		c.probed = vs_escape(r->format, shown, sizeof(shown));
		vs_format_warn_unconfirmed(src, &c);
	}
	topts.src_mode = r->mode;
	topts.src_mtime_sec = r->mtime_sec;
	topts.src_mtime_nsec = r->mtime_nsec;
	*dstp = dest_is_dir ? vs_path_join(dest, name) : strdup(dest);
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
	free(name);
	free(o);
	free(r);
	return ret;
}

/* A session for --list or --verify (@what) of @arg, whose path is sent
 * as @path (VS_PATH_MAX + 1 bytes). */
static int
check_start(const struct vs_cli *cli, const char *arg, const char *what,
    struct session *s, char *path)
{
	if (session_start(cli, arg, VS_EXIT_SOURCE, s) < 0)
		return -1;
	if (s->version < VS_PROTO_LIST_VERSION) {
		vs_err(VS_EXIT_USAGE, s->host, "remote vmsync is too old for "
		    "%s; upgrade it", what);
		return -1;
	}
	/* What the server would refuse: say why here. */
	if (strlen(s->path) > VS_PATH_MAX || !vs_plain_text(s->path)) {
		vs_err(VS_EXIT_USAGE, arg, "%s: the path is too long or has "
		    "control characters", what);
		return -1;
	}
	snprintf(path, VS_PATH_MAX + 1, "%s", s->path);
	return 0;
}

/* A reply of type @a or @b; an ERROR is reported with its category. */
static int
expect_either(struct vs_wire *w, uint32_t a, uint32_t b, struct vs_msg *m)
{
	if (vs_wire_recv(w, m) < 0)
		return -1;
	if (m->type == VS_MSG_ERROR) {
		vs_remote_report(w, m);
		return -1;
	}
	if (m->type != a && m->type != b) {
		vs_err(w->cat, w->peer, "unexpected message %u (wanted %u or "
		    "%u)", m->type, a, b);
		w->failed = true;
		return -1;
	}
	return 0;
}

/* The generation @l as the client shows it: escaped, its path as
 * host:path; added to @im, which is first printed and emptied if it is
 * another image's. */
static int
add_listed(const struct session *s, const struct vs_listed *l,
    struct vs_list_image *im, FILE *json, bool *first)
{
	char name[4 * VS_NAME_MAX + 1], *path = malloc(4 * VS_PATH_MAX + 1);
	struct vs_list_gen g = {
		.time = { .tv_sec = (time_t)l->time_sec,
		    .tv_nsec = (long)l->time_nsec },
		.complete = l->flags & VS_LISTED_COMPLETE,
		.virtual_size = l->virtual_size,
		.allocated = l->allocated,
		.exclusive = l->exclusive,
		.has_exclusive = l->flags & VS_LISTED_EXCLUSIVE,
	};
	int rc = -1;

	vs_escape(l->name, name, sizeof(name));
	if (im->name && strcmp(im->name, name) != 0) {
		vs_list_print(im, json, first);
		vs_list_image_free(im);
	}
	if (path && (im->name || (im->name = strdup(name))) &&
	    (g.path = remote_name(s->host, vs_escape(l->path, path,
	    4 * VS_PATH_MAX + 1))) && vs_list_add(im, &g) == 0)
		rc = 0;
	else
		vs_errno(VS_EXIT_INTERNAL, s->host, "--list");
	free(g.path);
	free(path);
	return rc;
}

enum vs_exit
vs_remote_list(const struct vs_cli *cli, const char *arg, FILE *json,
    bool *first)
{
	struct vs_list_req *q = calloc(1, sizeof(*q));
	struct vs_listed *l = malloc(sizeof(*l));
	struct vs_list_image im = { 0 };
	struct session s = { .open = false };
	struct vs_stats st = { 0 };
	uint64_t bytes = 0;
	uint32_t n = 0, end;
	struct vs_msg m;
	int ret = -1;

	vs_err_reset();
	if (!q || !l) {
		vs_errno(VS_EXIT_INTERNAL, arg, "--list");
		goto out;
	}
	if (check_start(cli, arg, "--list", &s, q->path) < 0)
		goto out;
	snprintf(q->snapshot_dir, sizeof(q->snapshot_dir), "%s",
	    cli->snapshot_dir ? cli->snapshot_dir : "");
	if (vs_send_list(&s.w, q) < 0)
		goto out;
	for (;;) {
		if (expect_either(&s.w, VS_MSG_LISTED, VS_MSG_LIST_END,
		    &m) < 0)
			goto out;
		if (m.type == VS_MSG_LIST_END)
			break;
		if (vs_parse_listed(&m, l) < 0) {
			vs_err(VS_EXIT_SOURCE, s.host, "malformed LISTED "
			    "message");
			goto out;
		}
		if ((bytes += m.len) > VS_LIST_MAX_BYTES) {
			vs_err(VS_EXIT_SOURCE, arg, "--list: the listing is "
			    "larger than %u MiB; list a directory with fewer "
			    "images", VS_LIST_MAX_BYTES >> 20);
			goto out;
		}
		n++;
		if (add_listed(&s, l, &im, json, first) < 0)
			goto out;
	}
	if (vs_parse_list_end(&m, &end) < 0 || end != n) {
		vs_err(VS_EXIT_SOURCE, s.host, "malformed LIST_END message");
		goto out;
	}
	ret = 0;
out:
	/* What arrived before a failure is shown, as a local listing shows
	 * the images before one that fails. */
	if (im.n)
		vs_list_print(&im, json, first);
	vs_list_image_free(&im);
	session_end(&s, &st);
	free(q);
	free(l);
	if (ret == 0)
		return VS_EXIT_OK;
	return vs_err_first() != VS_EXIT_OK ? vs_err_first() :
	    VS_EXIT_INTERNAL;
}

enum vs_exit
vs_remote_verify(const struct vs_cli *cli, const char *arg, FILE *json)
{
	struct vs_verified *v = malloc(sizeof(*v));
	char *path = malloc(VS_PATH_MAX + 1);
	struct session s = { .open = false };
	struct vs_verify_result r;
	struct vs_stats st = { 0 };
	enum vs_exit rc;
	struct vs_msg m;

	vs_err_reset();
	if (vs_verify_result_init(&r) < 0 || !v || !path) {
		vs_errno(VS_EXIT_INTERNAL, arg, "--verify");
		goto out;
	}
	if (check_start(cli, arg, "--verify", &s, path) < 0 ||
	    vs_send_verify(&s.w, path) < 0 ||
	    vs_remote_expect(&s.w, VS_MSG_VERIFIED, &m) < 0)
		goto out;
	if (vs_parse_verified(&m, v) < 0) {
		vs_err(VS_EXIT_SOURCE, s.host, "malformed VERIFIED message");
		goto out;
	}
	/* The error that stopped or failed the check, as the server has
	 * it (escaped by the parser). */
	if (v->text[0] && v->status != VS_EXIT_OK)
		vs_err((enum vs_exit)v->status, s.host, "%s", v->text);
	r.status = (enum vs_exit)v->status;
	r.complete = v->flags & VS_VERIFIED_COMPLETE;
	r.partial = v->flags & VS_VERIFIED_PARTIAL;
	r.meta_bad = v->flags & VS_VERIFIED_META_BAD;
	r.virtual_size = v->virtual_size;
	r.read_bytes = v->read_bytes;
	r.bad_bytes = v->bad_bytes;
	r.more_bad = v->more_bad;
	for (uint32_t i = 0; i < v->nbad && r.bad; i++)
		r.bad[r.nbad++] = (struct vs_verify_bad){ .off = v->bad[i].off,
		    .len = v->bad[i].len,
		    .why = (enum vs_verify_why)v->bad[i].reason };
out:
	if (r.status == VS_EXIT_OK && vs_err_first() != VS_EXIT_OK)
		r.status = vs_err_first();	/* it could not be checked */
	session_end(&s, &st);
	vs_verify_report(arg, &r, json);
	rc = r.status;
	vs_verify_result_free(&r);
	free(v);
	free(path);
	return rc;
}
