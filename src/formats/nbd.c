/*
 * nbd.c - vmdk, vdi, vhdx, vpc and qed images, read through qemu.
 *
 * vmsync does not parse these formats: qemu reads them well.  Like
 * nbdcopy with [ qemu-nbd ... ], the image is opened by a child
 * qemu-storage-daemon (VMSYNC_QSD names another binary) and read over NBD
 * with libnbd.
 *
 * Design notes
 * - Only the guest view exists (no host_live op): the file view refuses
 *   these formats and says to add -O raw.  The format is chosen by name or
 *   --format only (choose.c); qemu opens the image with that driver named,
 *   so it never probes.
 * - The daemon gets the image as vmsync opened it (fd 3, opened by qemu as
 *   /proc/self/fd/3: the same file, the clone on btrfs), read-only, and a
 *   listening socket vmsync made (fd 4) in a private directory (0700).
 *   vmsync connects every handle at once, then removes the socket and the
 *   directory: nothing is left on disk even if vmsync is killed.
 * - Backing files: vmdk and qed name theirs in the image; qemu is told
 *   "backing": null so it never opens one, and an image that has one is
 *   refused (qemu-img info says so), as reading it alone would be wrong.
 * - The daemon runs in its own process group (a terminal's ^C reaches
 *   vmsync only, which then stops and closes the image) with
 *   PR_SET_PDEATHSIG: if vmsync dies the daemon does too.  Closing the
 *   image kills and reaps it.  Its stderr goes to a memfd: a failure shows
 *   its last line.
 * - The container the readers read (img->io) is the NBD export: map is
 *   NBD block status (base:allocation: hole or zero flags are holes),
 *   pread an NBD read on one of NBD_HANDLES connections, so the reader
 *   threads read in parallel (locate is the identity).
 * - The same export code reads an export someone else serves, named by an
 *   nbd:// or nbd+unix:// URI (vs_nbd_open_uri): no daemon then, and
 *   more than one connection only if the server advertises multi-conn
 *   (qemu-nbd without -e serves one client at a time).  libnbd's URI
 *   defaults are tightened: TCP and Unix sockets only, TLS off (an nbds://
 *   URI is refused before), no local files named by the URI.
 */
#include <errno.h>
#include <fcntl.h>
#include <libnbd.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "format.h"
#include "../util.h"

#define NBD_HANDLES 4			/* one per reader thread */
#define NBD_MAX_READ (4u << 20)		/* bytes per NBD read */
#define NBD_MAX_STATUS (1u << 30)	/* bytes per block status request */
#define CHILD_FD_IMAGE 3
#define CHILD_FD_LISTEN 4

struct conn {
	struct nbd_handle *h;
	pthread_mutex_t mu;
};

struct nbd_image {
	struct vs_image img;		/* img.io: the export */
	struct vs_io *file;		/* the image file, owned, or NULL */
	const char *uri;		/* the export's URI, or NULL: ours */
	const char *peer;		/* the server, for messages */
	pid_t pid;			/* the daemon, or 0 */
	int errfd;			/* the daemon's stderr (memfd), or -1 */
	struct conn conn[NBD_HANDLES];
	int nconn;
	atomic_uint next;		/* round robin over conn */
	atomic_bool failed;		/* a read failed: reported once */
};

/* The io of the export: reads go through the image's connections. */
struct nbd_io {
	struct vs_io io;
	struct nbd_image *ni;
};

static const char *
daemon_path(void)
{
	const char *p = getenv("VMSYNC_QSD");

	return p && *p ? p : "qemu-storage-daemon";
}

/* The last non-empty line the child wrote to @fd, into @buf. */
static const char *
last_line(int fd, char *buf, size_t size)
{
	char tail[1024];
	ssize_t n;
	off_t end;
	char *p, *start;

	buf[0] = '\0';
	if (fd < 0 || (end = lseek(fd, 0, SEEK_END)) <= 0)
		return buf;
	n = pread(fd, tail, sizeof(tail) - 1,
	    end > (off_t)sizeof(tail) - 1 ? end - (off_t)sizeof(tail) + 1 : 0);
	if (n <= 0)
		return buf;
	tail[n] = '\0';
	while (n > 0 && (tail[n - 1] == '\n' || tail[n - 1] == '\r'))
		tail[--n] = '\0';
	p = strrchr(tail, '\n');
	start = p ? p + 1 : tail;
	snprintf(buf, size, "%.*s", (int)(size - 1), start);
	return buf;
}

/* Fork and exec @argv with the image at fd 3, @listen_fd (or -1) at fd 4,
 * stdout to @outfd (or @errfd) and stderr to @errfd. */
static pid_t
spawn(char *const argv[], int image_fd, int listen_fd, int outfd, int errfd)
{
	pid_t parent = getpid(), pid;
	sigset_t all;

	pid = fork();
	if (pid != 0)
		return pid;
	/* The child: only async-signal-safe calls until exec. */
	setpgid(0, 0);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	signal(SIGPIPE, SIG_DFL);
	{
		int img = fcntl(image_fd, F_DUPFD, 10);
		int lis = listen_fd >= 0 ? fcntl(listen_fd, F_DUPFD, 10) : -1;
		int out = fcntl(outfd >= 0 ? outfd : errfd, F_DUPFD, 10);
		int err = fcntl(errfd, F_DUPFD, 10);
		int null = open("/dev/null", O_RDONLY);

		if (img < 0 || out < 0 || err < 0 || null < 0 ||
		    (listen_fd >= 0 && lis < 0))
			_exit(127);
		dup2(null, 0);
		dup2(out, 1);
		dup2(err, 2);
		dup2(img, CHILD_FD_IMAGE);
		if (lis >= 0)
			dup2(lis, CHILD_FD_LISTEN);
	}
	execvp(argv[0], argv);
	{
		const char *e = strerror(errno);

		if (write(2, "cannot run: ", 12) < 0 ||
		    write(2, e, strlen(e)) < 0 ||
		    write(2, "\n", 1) < 0)
			_exit(127);
	}
	_exit(127);
}

static int
reap(pid_t pid, bool kill_it)
{
	int st = 0;

	if (pid <= 0)
		return -1;
	if (kill_it)
		kill(pid, SIGKILL);
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return st;
}

static int
make_memfd(const char *name, const char *what)
{
	int fd = memfd_create("vmsync-qemu", MFD_CLOEXEC);

	if (fd < 0)
		vs_errno(VS_EXIT_INTERNAL, name, "%s", what);
	return fd;
}

/* vmdk and qed images may name a backing file: qemu-img info (which
 * never opens it) says whether they do.  Refused if so. */
static int
check_backing(struct vs_io *file, const char *format)
{
	char *argv[] = { "qemu-img", "info", "--output=json", "-f",
	    (char *)format, "/proc/self/fd/3", NULL };
	char line[512], out[65536];
	int outfd, errfd, st, rc = -1;
	const char *img = getenv("VMSYNC_QEMU_IMG");
	ssize_t n;
	char *b;
	pid_t pid;

	if (img && *img)
		argv[0] = (char *)img;
	if ((outfd = make_memfd(file->name, "qemu-img info")) < 0)
		return -1;
	if ((errfd = make_memfd(file->name, "qemu-img info")) < 0) {
		close(outfd);
		return -1;
	}
	if ((pid = spawn(argv, file->fd, -1, outfd, errfd)) < 0) {
		vs_errno(VS_EXIT_INTERNAL, file->name, "fork");
		goto out;
	}
	st = reap(pid, false);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		vs_err(VS_EXIT_SOURCE, file->name, "qemu-img cannot open this "
		    "%s image: %s", format, last_line(errfd, line,
		    sizeof(line))[0] ? line : "no message");
		goto out;
	}
	n = pread(outfd, out, sizeof(out) - 1, 0);
	out[n > 0 ? n : 0] = '\0';
	if ((b = strstr(out, "\"backing-filename\""))) {
		char *q = strchr(b + 18, '"'), *e = q ? strchr(q + 1, '"') :
		    NULL;

		vs_err(VS_EXIT_SOURCE, file->name, "this %s image has a "
		    "backing file (%.*s): vmsync reads %s images only "
		    "without one; merge it first (qemu-img convert)", format,
		    q && e ? (int)(e - q - 1) : 1, q && e ? q + 1 : "?",
		    format);
		goto out;
	}
	rc = 0;
out:
	close(outfd);
	close(errfd);
	return rc;
}

/* One line for a failure to reach the daemon: what it said, if it died. */
static void
report_daemon(struct nbd_image *ni, const char *what, const char *nbderr)
{
	char line[512];
	pid_t got = 0;
	int st;

	/* A daemon that closed the connection is exiting: wait for it a
	 * little, so that its own words are shown. */
	for (int i = 0; ni->pid > 0 && i < 100 && got == 0; i++) {
		got = waitpid(ni->pid, &st, WNOHANG);
		if (got == 0)
			usleep(10000);
	}
	if (ni->pid > 0 && got == ni->pid) {
		char *opts;

		ni->pid = 0;
		last_line(ni->errfd, line, sizeof(line));
		/* "qemu-storage-daemon: --blockdev {...}: why": the why. */
		if ((opts = strstr(line, "}: ")))
			memmove(line, opts + 3, strlen(opts + 3) + 1);
		if (!line[0])
			snprintf(line, sizeof(line), "%s",
			    WIFSIGNALED(st) ? "was killed" : "exited");
		vs_err(VS_EXIT_SOURCE, ni->img.name, "%s: %s: %s", what,
		    daemon_path(), line);
		return;
	}
	vs_err(VS_EXIT_SOURCE, ni->img.name, "%s: %s", what,
	    nbderr ? nbderr : "NBD error");
}

/* Connect @h to the daemon's socket @path, or to ni->uri, and wait for
 * the handshake, checking for an interrupt and for the daemon's death. */
static int
connect_one(struct nbd_image *ni, struct nbd_handle *h, const char *path)
{
	char what[64];

	snprintf(what, sizeof(what), "cannot connect to %s", ni->peer);
	if (ni->uri && (nbd_set_uri_allow_transports(h,
	    LIBNBD_ALLOW_TRANSPORT_TCP | LIBNBD_ALLOW_TRANSPORT_UNIX) < 0 ||
	    nbd_set_uri_allow_tls(h, LIBNBD_TLS_DISABLE) < 0 ||
	    nbd_set_uri_allow_local_file(h, false) < 0)) {
		vs_err(VS_EXIT_INTERNAL, ni->img.name, "libnbd: %s",
		    nbd_get_error());
		return -1;
	}
	if (nbd_add_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION) < 0 ||
	    (ni->uri ? nbd_aio_connect_uri(h, ni->uri) :
	    nbd_aio_connect_unix(h, path)) < 0) {
		report_daemon(ni, what, nbd_get_error());
		return -1;
	}
	while (!nbd_aio_is_ready(h)) {
		if (nbd_aio_is_dead(h) || nbd_aio_is_closed(h) ||
		    nbd_poll(h, 200) < 0) {
			report_daemon(ni, ni->uri ? what :
			    "qemu-storage-daemon cannot open it",
			    nbd_get_error());
			return -1;
		}
		if (vs_interrupted) {
			vs_err(VS_EXIT_PARTIAL, ni->img.name, "interrupted");
			return -1;
		}
	}
	return 0;
}

/* Connect up to @want handles (@path: as for connect_one); only one if
 * the server does not say that several see the same data. */
static int
connect_all(struct nbd_image *ni, const char *path, int want)
{
	for (ni->nconn = 0; ni->nconn < want; ni->nconn++) {
		struct conn *c = &ni->conn[ni->nconn];

		if (!(c->h = nbd_create())) {
			vs_err(VS_EXIT_INTERNAL, ni->img.name, "libnbd: %s",
			    nbd_get_error());
			return -1;
		}
		pthread_mutex_init(&c->mu, NULL);
		if (connect_one(ni, c->h, path) < 0) {
			ni->nconn++;
			return -1;
		}
		if (ni->uri && ni->nconn == 0 &&
		    nbd_can_multi_conn(c->h) != 1)
			want = 1;
	}
	return 0;
}

/* Start the daemon on a private socket and connect the handles. */
static int
start(struct nbd_image *ni, const char *format)
{
	const char *tmp = getenv("TMPDIR");
	char dir[80], blockdev[512], listen_arg[64];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char *argv[] = { (char *)daemon_path(), "--blockdev", blockdev,
	    "--nbd-server", listen_arg, "--export",
	    "type=nbd,id=vmsync,node-name=vmsync,name=,writable=off", NULL };
	bool cow = strcmp(format, "vmdk") == 0 || strcmp(format, "qed") == 0;
	int lfd = -1, rc = -1;

	snprintf(blockdev, sizeof(blockdev), "{\"driver\":\"%s\","
	    "\"node-name\":\"vmsync\",\"read-only\":true,%s\"file\":"
	    "{\"driver\":\"file\",\"filename\":\"/proc/self/fd/%d\","
	    "\"read-only\":true}}", format, cow ? "\"backing\":null," : "",
	    CHILD_FD_IMAGE);
	snprintf(listen_arg, sizeof(listen_arg), "addr.type=fd,addr.str=%d",
	    CHILD_FD_LISTEN);
	snprintf(dir, sizeof(dir), "%.60s/vmsync-nbd.XXXXXX",
	    tmp && *tmp && strlen(tmp) <= 60 ? tmp : "/tmp");
	if (!mkdtemp(dir)) {
		vs_errno(VS_EXIT_INTERNAL, ni->file->name, "mkdtemp %s", dir);
		return -1;
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%.80s/nbd.sock", dir);
	if ((ni->errfd = make_memfd(ni->file->name, "memfd")) < 0)
		goto out;
	if ((lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(lfd, 2 * NBD_HANDLES) < 0) {
		vs_errno(VS_EXIT_INTERNAL, ni->file->name, "socket %s",
		    sa.sun_path);
		goto out;
	}
	if ((ni->pid = spawn(argv, ni->file->fd, lfd, -1, ni->errfd)) < 0) {
		ni->pid = 0;
		vs_errno(VS_EXIT_INTERNAL, ni->file->name, "fork");
		goto out;
	}
	if (getenv("VMSYNC_DEBUG_QSD_PID"))
		fprintf(stderr, "vmsync: debug: qemu-storage-daemon pid %d\n",
		    (int)ni->pid);
	/* The daemon holds the listening socket now: if it dies, connecting
	 * fails instead of waiting. */
	close(lfd);
	lfd = -1;
	/* Our own read-only export: several connections always agree. */
	if (connect_all(ni, sa.sun_path, NBD_HANDLES) < 0)
		goto out;
	rc = 0;
out:
	if (lfd >= 0)
		close(lfd);
	unlink(sa.sun_path);
	rmdir(dir);
	return rc;
}

static int
export_pread(struct vs_io *io, void *buf, size_t len, uint64_t off)
{
	struct nbd_image *ni = ((struct nbd_io *)io)->ni;
	unsigned first = atomic_fetch_add(&ni->next, 1);
	struct conn *c = NULL;
	uint8_t *p = buf;
	int rc = 0;

	if (off >= io->size || len > io->size - off) {
		uint64_t in = off >= io->size ? 0 : io->size - off;

		memset(p + in, 0, len - in);
		len = (size_t)in;
	}
	for (int i = 0; i < ni->nconn && !c; i++) {
		struct conn *t = &ni->conn[(first + (unsigned)i) %
		    (unsigned)ni->nconn];

		if (pthread_mutex_trylock(&t->mu) == 0)
			c = t;
	}
	if (!c) {
		c = &ni->conn[first % (unsigned)ni->nconn];
		pthread_mutex_lock(&c->mu);
	}
	while (len > 0 && rc == 0) {
		size_t n = len < NBD_MAX_READ ? len : NBD_MAX_READ;

		if (nbd_pread(c->h, p, n, off, 0) < 0) {
			if (!atomic_exchange(&ni->failed, true)) {
				char what[96];

				snprintf(what, sizeof(what), "offset %llu: "
				    "read from %s", (unsigned long long)off,
				    ni->peer);
				report_daemon(ni, what, nbd_get_error());
			}
			rc = -1;
		}
		p += n;
		off += n;
		len -= n;
	}
	pthread_mutex_unlock(&c->mu);
	return rc;
}

struct status_ctx {
	struct vs_extent_vec *out;
	uint64_t pos, end;		/* next offset expected; range end */
	bool bad;
};

static int
status_cb(void *opaque, const char *meta, uint64_t off, uint32_t *ent,
    size_t n, int *error)
{
	struct status_ctx *s = opaque;

	(void)error;
	if (strcmp(meta, LIBNBD_CONTEXT_BASE_ALLOCATION) != 0)
		return 0;
	if (off != s->pos) {
		s->bad = true;
		return 0;
	}
	for (size_t i = 0; i + 1 < n && s->pos < s->end; i += 2) {
		uint64_t len = ent[i];

		if (len == 0)
			break;
		if (len > s->end - s->pos)
			len = s->end - s->pos;
		if (vs_extent_add(s->out, s->pos, len,
		    ent[i + 1] & (LIBNBD_STATE_HOLE | LIBNBD_STATE_ZERO) ?
		    VS_EXT_ZERO : VS_EXT_DATA) < 0) {
			s->bad = true;
			return 0;
		}
		s->pos += len;
	}
	return 0;
}

static int
export_map(struct vs_io *io, uint64_t off, uint64_t len,
    struct vs_extent_vec *out)
{
	struct nbd_image *ni = ((struct nbd_io *)io)->ni;
	struct conn *c = &ni->conn[0];
	struct status_ctx s = { .out = out, .pos = off, .end = off + len };
	int rc = 0;

	pthread_mutex_lock(&c->mu);
	while (s.pos < s.end && rc == 0) {
		uint64_t before = s.pos;
		uint64_t n = s.end - s.pos;

		if (n > NBD_MAX_STATUS)
			n = NBD_MAX_STATUS;
		if (nbd_block_status(c->h, n, s.pos, (nbd_extent_callback){
		    .callback = status_cb, .user_data = &s }, 0) < 0) {
			char what[64];

			snprintf(what, sizeof(what), "offset %llu: block "
			    "status", (unsigned long long)s.pos);
			report_daemon(ni, what, nbd_get_error());
			rc = -1;
		} else if (s.bad || s.pos == before) {
			vs_err(VS_EXIT_SOURCE, io->name, "offset %llu: bad "
			    "block status from %s",
			    (unsigned long long)before, ni->peer);
			rc = -1;
		}
	}
	pthread_mutex_unlock(&c->mu);
	return rc;
}

static void
export_drop_cache(struct vs_io *io, uint64_t off, uint64_t len)
{
	(void)io, (void)off, (void)len;
}

static void
export_close(struct vs_io *io)
{
	(void)io;
}

static const struct vs_io_ops export_ops = {
	.pread = export_pread,
	.map = export_map,
	.drop_cache = export_drop_cache,
	.close = export_close,
};

static bool
never_probed(const uint8_t *head, size_t len)
{
	(void)head, (void)len;
	return false;
}

static void
nbd_image_close(struct vs_image *img)
{
	struct nbd_image *ni = (struct nbd_image *)img;

	for (int i = 0; i < ni->nconn; i++) {
		nbd_close(ni->conn[i].h);
		pthread_mutex_destroy(&ni->conn[i].mu);
	}
	if (ni->pid > 0)
		reap(ni->pid, true);
	if (ni->errfd >= 0)
		close(ni->errfd);
	vs_io_close(img->io);
	vs_io_close(ni->file);
	free(ni);
}

static int
nbd_open_as(const char *format, const struct vs_format_ops *ops,
    struct vs_io *file, const struct vs_chain *chain, struct vs_image **out)
{
	struct nbd_image *ni;
	struct nbd_io *x;
	int64_t size;

	if (chain) {
		vs_err(VS_EXIT_SOURCE, file->name, "a %s image cannot be a "
		    "backing file", format);
		return -1;
	}
	if (file->fd < 0) {
		vs_err(VS_EXIT_SOURCE, file->name, "a %s image is read "
		    "through qemu, from a file", format);
		return -1;
	}
	if (!(ni = calloc(1, sizeof(*ni))) || !(x = calloc(1, sizeof(*x)))) {
		free(ni);
		vs_errno(VS_EXIT_INTERNAL, file->name, "open");
		return -1;
	}
	ni->errfd = -1;
	ni->peer = "qemu-storage-daemon";
	ni->img.ops = ops;
	ni->img.name = file->name;
	x->io.ops = &export_ops;
	x->io.fd = x->io.direct_fd = -1;
	x->ni = ni;
	ni->img.io = &x->io;
	if (!(x->io.name = strdup(file->name))) {
		vs_errno(VS_EXIT_INTERNAL, file->name, "open");
		free(x);
		free(ni);
		return -1;
	}
	if ((strcmp(format, "vmdk") == 0 || strcmp(format, "qed") == 0) &&
	    check_backing(file, format) < 0)
		goto fail;
	ni->file = file;
	if (start(ni, format) < 0)
		goto fail_owned;
	if ((size = nbd_get_size(ni->conn[0].h)) < 0) {
		report_daemon(ni, "export size", nbd_get_error());
		goto fail_owned;
	}
	ni->img.size = x->io.size = (uint64_t)size;
	vs_info(1, "%s: %s image read through %s, %d NBD connections",
	    file->name, format, daemon_path(), ni->nconn);
	*out = &ni->img;
	return 0;
fail:
	ni->file = NULL;
	vs_io_close(&x->io);
	free(ni);
	return -1;
fail_owned:
	/* The caller closes @file on failure: not ours to close. */
	ni->file = NULL;
	ni->img.name = x->io.name;
	nbd_image_close(&ni->img);
	return -1;
}

/* map and read go to the export, like raw's go to the file. */
static int
export_image_map(struct vs_image *img, uint64_t off, uint64_t len,
    struct vs_extent_vec *out)
{
	return img->io->ops->map(img->io, off, len, out);
}

static int
export_image_read(struct vs_image *img, void *buf, size_t len, uint64_t off)
{
	return img->io->ops->pread(img->io, buf, len, off);
}

#define NBD_FORMAT(fmt)							\
static int								\
fmt##_open(struct vs_io *io, const struct vs_chain *chain,		\
    struct vs_image **out)						\
{									\
	return nbd_open_as(#fmt, &vs_format_##fmt, io, chain, out);	\
}									\
const struct vs_format_ops vs_format_##fmt = {				\
	.name = #fmt,							\
	.probe = never_probed,						\
	.open = fmt##_open,						\
	.close = nbd_image_close,					\
	.map = export_image_map,					\
	.read = export_image_read,					\
	.locate = vs_place_identity,					\
};

NBD_FORMAT(vmdk)
NBD_FORMAT(vdi)
NBD_FORMAT(vhdx)
NBD_FORMAT(vpc)
NBD_FORMAT(qed)

bool
vs_nbd_is_uri(const char *src)
{
	static const char *const schemes[] = { "nbd://", "nbd+unix://",
	    "nbds://", "nbds+unix://", "nbd+vsock://", "nbds+vsock://" };

	for (size_t i = 0; i < sizeof(schemes) / sizeof(*schemes); i++)
		if (strncmp(src, schemes[i], strlen(schemes[i])) == 0)
			return true;
	return false;
}

static int
uri_open(struct vs_io *io, const struct vs_chain *chain,
    struct vs_image **out)
{
	(void)chain, (void)out;
	vs_err(VS_EXIT_SOURCE, io->name, "an NBD export is named by its URI");
	vs_io_close(io);
	return -1;
}

/* An export someone else serves: the guest view of whatever it is. */
const struct vs_format_ops vs_format_nbd = {
	.name = "nbd",
	.probe = never_probed,
	.open = uri_open,
	.close = nbd_image_close,
	.map = export_image_map,
	.read = export_image_read,
	.locate = vs_place_identity,
};

int
vs_nbd_open_uri(const char *uri, struct vs_image **out)
{
	struct nbd_image *ni = calloc(1, sizeof(*ni));
	struct nbd_io *x = calloc(1, sizeof(*x));
	int64_t size;

	if (!ni || !x || !(x->io.name = strdup(uri))) {
		free(ni);
		free(x);
		vs_errno(VS_EXIT_INTERNAL, uri, "open");
		return -1;
	}
	if (strncmp(uri, "nbd://", 6) != 0 &&
	    strncmp(uri, "nbd+unix://", 11) != 0) {
		vs_err(VS_EXIT_SOURCE, uri, "only nbd:// and nbd+unix:// "
		    "URIs are read (no TLS, no vsock)");
		free(x->io.name);
		free(x);
		free(ni);
		return -1;
	}
	ni->errfd = -1;
	ni->uri = x->io.name;
	ni->peer = "the NBD server";
	ni->img.ops = &vs_format_nbd;
	ni->img.name = x->io.name;
	ni->img.io = &x->io;
	x->io.ops = &export_ops;
	x->io.fd = x->io.direct_fd = -1;
	x->ni = ni;
	if (connect_all(ni, NULL, NBD_HANDLES) < 0)
		goto fail;
	if ((size = nbd_get_size(ni->conn[0].h)) < 0) {
		report_daemon(ni, "export size", nbd_get_error());
		goto fail;
	}
	ni->img.size = x->io.size = (uint64_t)size;
	vs_info(1, "%s: NBD export, %d connection%s", uri, ni->nconn,
	    ni->nconn == 1 ? " (the server does not advertise multi-conn)" :
	    "s");
	*out = &ni->img;
	return 0;
fail:
	nbd_image_close(&ni->img);
	return -1;
}
