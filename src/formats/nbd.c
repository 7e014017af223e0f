/*
 * nbd.c - vmdk, vdi, vhdx, vpc and qed images, read through qemu.
 *
 * vmsync does not parse these formats: qemu reads them well.  Like
 * nbdcopy with [ qemu-nbd ... ], the image is opened by a child
 * qemu-storage-daemon (VMSYNC_QSD names another binary) and read over NBD
 * with libnbd.  Where only qemu-nbd is installed (VMSYNC_QEMU_NBD), it
 * serves the same node read-only, given as a json: name, with the
 * listening socket passed by socket activation (LISTEN_FDS at fd 3, so
 * the image is at fd 4 there).
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
 * - Files the image names are never opened by qemu by name.  vmsync
 *   finds the names itself (a vmdk's descriptor and parent: vmdk.c; a qed
 *   header's backing file), opens each file under the image's refs
 *   policy (refs.c), hands the open descriptors to the child at fd 5 and
 *   up, and gives qemu one explicit node per image of the chain, each
 *   file a /proc/self/fd name and each "backing" the next node (null at
 *   the bottom).  A chain is at most 64 backing files deep, without
 *   loops; a qed backing file whose format is not recorded gets the one
 *   its name says (qed or vmdk), checked against its content, or is
 *   refused: qemu would probe it.  Once the export is up, every regular
 *   file the daemon holds must be one of those (check_daemon_files).
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
#include <dirent.h>
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
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "format.h"
#include "nbd_lib.h"
#include "vmdk.h"
#include "../util.h"

/* libnbd's functions (nbd_lib.h), set by load_libnbd() before any use. */
static const struct vs_libnbd *lib;

/* Load libnbd for the image @name, or say it is missing. */
static int
load_libnbd(const char *name, const char *what)
{
	const char *why;

	if (!(lib = vs_libnbd(&why))) {
		vs_err(VS_EXIT_SOURCE, name, "reading %s needs libnbd "
		    "(Debian package libnbd0): %s", what, why);
		return -1;
	}
	return 0;
}

#define NBD_HANDLES 4			/* one per reader thread */
/* Bytes per NBD read.  qemu's NBD server takes a fresh buffer for each
 * request: from 1 MiB up it is mapped, faulted in and unmapped every
 * time, which measured three to six times slower than 256 KiB requests
 * (nbdcopy's default too). */
#define NBD_MAX_READ (256u << 10)
#define NBD_MAX_STATUS (1u << 30)	/* bytes per block status request */
#define CHILD_FD_IMAGE 3
#define CHILD_FD_LISTEN 4
#define CHILD_FD_EXTRA 5		/* files the image names (vmdk.c) */
#define MAX_LAYERS 65			/* the image and 64 backing files, as
					 * for qcow2 */
#define MAX_EXTRA 4096			/* files besides the image */
/* qed header (little-endian), as far as vmsync reads it */
#define QED_HEADER_LEN 64
#define QED_FEATURES 16			/* u64; the flags are in byte 0 */
#define QED_F_BACKING_FILE 0x01
#define QED_F_BACKING_FORMAT_NO_PROBE 0x04
#define QED_BACKING_OFFSET 56		/* u32 */
#define QED_BACKING_SIZE 60		/* u32 */
#define QED_MAX_NAME 1023

struct conn {
	struct nbd_handle *h;
	pthread_mutex_t mu;
};

struct nbd_image {
	struct vs_image img;		/* img.io: the export */
	struct vs_io *file;		/* the image file, owned, or NULL */
	const char *uri;		/* the export's URI, or NULL: ours */
	const char *peer;		/* the server, for messages */
	const char *server;		/* the daemon's program, for messages */
	bool qemu_nbd;			/* it is qemu-nbd, not the daemon */
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

static const char *
qemu_nbd_path(void)
{
	const char *p = getenv("VMSYNC_QEMU_NBD");

	return p && *p ? p : "qemu-nbd";
}

/* Can @prog be run: a path to an executable, or a name found in PATH? */
static bool
runnable(const char *prog)
{
	const char *path = getenv("PATH"), *p, *end;
	char buf[4096];

	if (strchr(prog, '/'))
		return access(prog, X_OK) == 0;
	for (p = path && *path ? path : "/usr/bin:/bin"; *p; p = end + !!*end) {
		/* An empty entry is the current directory. */
		const char *dir = p;
		int n;

		end = strchrnul(p, ':');
		n = (int)(end - p);
		if (n == 0) {
			dir = ".";
			n = 1;
		}
		if ((size_t)snprintf(buf, sizeof(buf), "%.*s/%s", n, dir,
		    prog) < sizeof(buf) && access(buf, X_OK) == 0)
			return true;
	}
	return false;
}

/* qemu-storage-daemon, or qemu-nbd where only that is installed (an
 * older or smaller qemu); the daemon's name if neither is, so that the
 * one line says what is missing. */
static void
choose_server(struct nbd_image *ni)
{
	ni->server = daemon_path();
	ni->peer = "qemu-storage-daemon";
	if (!runnable(ni->server) && runnable(qemu_nbd_path())) {
		ni->server = qemu_nbd_path();
		ni->peer = "qemu-nbd";
		ni->qemu_nbd = true;
	}
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

/* Descriptors a child gets at fixed numbers. */
struct child_fds {
	int image;		/* at image_at */
	int listen;		/* at listen_at, or -1 */
	int image_at, listen_at;	/* CHILD_FD_IMAGE, CHILD_FD_LISTEN or
				 * swapped (socket activation wants 3) */
	char **envp;		/* the child's environment, or NULL: ours */
	char *pid_var;		/* "LISTEN_PID=" in envp, room for digits */
	const int *extra;	/* at CHILD_FD_EXTRA and on */
	size_t nextra;
	int *scratch;		/* nextra ints, for the child's own use */
};

/* In the child: @c's descriptors where it expects them.  Each is first
 * copied above every target number, so none overwrites one still to be
 * placed; the copies close on exec, the placed ones stay open. */
static bool
place_fds(const struct child_fds *c, int outfd, int errfd)
{
	int above = CHILD_FD_EXTRA + (int)c->nextra + 1;
	int img = fcntl(c->image, F_DUPFD_CLOEXEC, above);
	int lis = c->listen >= 0 ? fcntl(c->listen, F_DUPFD_CLOEXEC, above) :
	    -1;
	int out = fcntl(outfd >= 0 ? outfd : errfd, F_DUPFD_CLOEXEC, above);
	int err = fcntl(errfd, F_DUPFD_CLOEXEC, above);
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);

	if (img < 0 || out < 0 || err < 0 || null < 0 ||
	    (c->listen >= 0 && lis < 0))
		return false;
	for (size_t i = 0; i < c->nextra; i++)
		if ((c->scratch[i] = fcntl(c->extra[i], F_DUPFD_CLOEXEC,
		    above)) < 0)
			return false;
	dup2(null, 0);
	dup2(out, 1);
	dup2(err, 2);
	dup2(img, c->image_at);
	if (lis >= 0)
		dup2(lis, c->listen_at);
	for (size_t i = 0; i < c->nextra; i++)
		if (dup2(c->scratch[i], CHILD_FD_EXTRA + (int)i) < 0)
			return false;
	return true;
}

/* The decimal digits of @pid at @p (async-signal-safe). */
static void
put_pid(char *p, pid_t pid)
{
	char d[16];
	int n = 0;

	do
		d[n++] = (char)('0' + pid % 10);
	while ((pid /= 10) > 0 && n < (int)sizeof(d));
	while (n > 0)
		*p++ = d[--n];
	*p = 0;
}

/* Fork and exec @argv with @c's descriptors in place, stdout to @outfd
 * (or @errfd) and stderr to @errfd. */
static pid_t
spawn(char *const argv[], const struct child_fds *c, int outfd, int errfd)
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
	if (!place_fds(c, outfd, errfd))
		_exit(127);
	if (c->pid_var)
		put_pid(c->pid_var + strlen(c->pid_var), getpid());
	if (c->envp)
		execvpe(argv[0], argv, c->envp);
	else
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

/* One image of the chain qemu reads, top first. */
struct layer {
	const char *format;	/* qemu's driver for it */
	struct vs_io *io;	/* the image file; owned below the top */
	struct vs_vmdk vm;	/* a vmdk's descriptor and extent files */
	int child_fd;		/* where the child finds it */
};

/* What qemu is given: the chain, and every file it reads, open. */
struct view {
	struct layer layer[MAX_LAYERS];
	size_t n;		/* layers in use */
	int extra[MAX_EXTRA];	/* at CHILD_FD_EXTRA and on (not owned) */
	size_t nextra;
};

static bool
has_backing_option(const char *format)
{
	return strcmp(format, "vmdk") == 0 || strcmp(format, "qed") == 0;
}

static uint32_t
le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

/* The backing file a qed image names (malloc'd into *@name, NULL if
 * none) and its format if the image records one ("raw"), else NULL. */
static int
qed_backing(struct vs_io *io, char **name, const char **format)
{
	uint8_t h[QED_HEADER_LEN];
	uint32_t off, len;

	*name = NULL;
	*format = NULL;
	if (io->size < sizeof(h) || io->ops->pread(io, h, sizeof(h), 0) < 0 ||
	    memcmp(h, "QED", 4) != 0) {
		vs_err(VS_EXIT_SOURCE, io->name, "not a qed image");
		return -1;
	}
	if (!(h[QED_FEATURES] & QED_F_BACKING_FILE))
		return 0;
	off = le32(h + QED_BACKING_OFFSET);
	len = le32(h + QED_BACKING_SIZE);
	if (len == 0 || len > QED_MAX_NAME || off > io->size ||
	    len > io->size - off) {
		vs_err(VS_EXIT_SOURCE, io->name, "qed backing file name out "
		    "of the file");
		return -1;
	}
	if (!(*name = calloc(1, len + 1))) {
		vs_errno(VS_EXIT_INTERNAL, io->name, "qed");
		return -1;
	}
	if (io->ops->pread(io, *name, len, off) < 0) {
		free(*name);
		*name = NULL;
		return -1;
	}
	if (strlen(*name) != len) {
		vs_err(VS_EXIT_SOURCE, io->name, "qed backing file name holds "
		    "a NUL byte");
		free(*name);
		*name = NULL;
		return -1;
	}
	if (h[QED_FEATURES] & QED_F_BACKING_FORMAT_NO_PROBE)
		*format = "raw";
	return 0;
}

/* The format of the backing file @bio of a qed image that records none:
 * qemu would probe it, so its name must say qed or vmdk, and its content
 * agree. */
static const char *
backing_format_by_name(const struct vs_io *from, struct vs_io *bio,
    const char *name)
{
	const char *byname = vs_format_by_name(name), *probed;
	char shown[4 * QED_MAX_NAME + 1];

	vs_escape(name, shown, sizeof(shown));
	if (!byname || (strcmp(byname, "qed") != 0 &&
	    strcmp(byname, "vmdk") != 0)) {
		vs_err(VS_EXIT_SOURCE, from->name, "backing file '%s': no "
		    "format recorded, and its name says neither qed nor vmdk "
		    "(qemu would guess it): refused", shown);
		return NULL;
	}
	if (vs_format_probe(bio, &probed) < 0)
		return NULL;
	if (strcmp(byname, probed) != 0 && !(strcmp(byname, "vmdk") == 0 &&
	    strcmp(probed, "vmdk descriptor") == 0)) {
		vs_err(VS_EXIT_SOURCE, from->name, "backing file '%s' is "
		    "named as a %s image, but it is not one", shown, byname);
		return NULL;
	}
	return byname;
}

/* The files layer @l reads besides its image, and the name of its
 * backing file (malloc'd, or NULL) and that file's format if known. */
static int
prepare_layer(struct view *v, struct layer *l, char **bname,
    const char **bformat)
{
	*bname = NULL;
	*bformat = NULL;
	if (strcmp(l->format, "vmdk") == 0) {
		/* The extents follow the image's own slot. */
		int first = CHILD_FD_EXTRA + (int)v->nextra + (l > v->layer);

		if (vs_vmdk_prepare(l->io, first, &l->vm) < 0)
			return -1;
		if (l->vm.parent && !(*bname = strdup(l->vm.parent))) {
			vs_errno(VS_EXIT_INTERNAL, l->io->name, "vmdk");
			return -1;
		}
		*bformat = "vmdk";
	} else if (strcmp(l->format, "qed") == 0 &&
	    qed_backing(l->io, bname, bformat) < 0)
		return -1;
	if (v->nextra + 1 + l->vm.nfds > MAX_EXTRA) {
		vs_err(VS_EXIT_SOURCE, l->io->name, "more than %d files in "
		    "the backing chain", MAX_EXTRA);
		free(*bname);
		*bname = NULL;
		return -1;
	}
	if (l > v->layer) {
		l->child_fd = CHILD_FD_EXTRA + (int)v->nextra;
		v->extra[v->nextra++] = l->vm.desc_fd >= 0 ? l->vm.desc_fd :
		    l->io->fd;
	}
	for (size_t i = 0; i < l->vm.nfds; i++)
		v->extra[v->nextra++] = l->vm.fds[i];
	return 0;
}

/* Open the backing file @name of layer @l as the next layer, under its
 * image's policy, refusing loops and a chain too deep. */
static int
open_backing(struct view *v, struct layer *l, const char *name,
    const char *format)
{
	struct layer *next = l + 1;
	char shown[4 * QED_MAX_NAME + 1];
	struct vs_io *bio;

	vs_escape(name, shown, sizeof(shown));
	if (v->n == MAX_LAYERS) {
		vs_err(VS_EXIT_SOURCE, v->layer[0].io->name, "backing chain "
		    "deeper than %d images", MAX_LAYERS - 1);
		return -1;
	}
	if (!l->io->ops->open_ref) {
		vs_err(VS_EXIT_SOURCE, l->io->name, "backing file '%s' "
		    "refused: files named by this image are not followed",
		    shown);
		return -1;
	}
	if (l->io->ops->open_ref(l->io, name, "backing file", &bio) < 0)
		return -1;
	for (size_t i = 0; i < v->n; i++)
		if (bio->ino && bio->dev == v->layer[i].io->dev &&
		    bio->ino == v->layer[i].io->ino) {
			vs_err(VS_EXIT_SOURCE, l->io->name, "backing file "
			    "'%s': the backing chain loops", shown);
			vs_io_close(bio);
			return -1;
		}
	if (!format && !(format = backing_format_by_name(l->io, bio, name))) {
		vs_io_close(bio);
		return -1;
	}
	next->format = format;
	next->io = bio;
	next->vm.desc_fd = -1;
	v->n++;
	return 0;
}

static void
view_free(struct view *v)
{
	for (size_t i = 0; i < v->n; i++) {
		vs_vmdk_release(&v->layer[i].vm);
		if (i > 0)
			vs_io_close(v->layer[i].io);
	}
	free(v);
}

/* The chain from the image @file (@format) down, every file open. */
static int
view_open(struct vs_io *file, const char *format, int image_at,
    struct view **out)
{
	struct view *v = calloc(1, sizeof(*v));

	if (!v) {
		vs_errno(VS_EXIT_INTERNAL, file->name, "open");
		return -1;
	}
	v->layer[0] = (struct layer){ .format = format, .io = file,
	    .vm.desc_fd = -1, .child_fd = image_at };
	v->n = 1;
	for (size_t i = 0; ; i++) {
		struct layer *l = &v->layer[i];
		const char *bformat;
		char *bname;
		int rc;

		if (prepare_layer(v, l, &bname, &bformat) < 0) {
			view_free(v);
			return -1;
		}
		if (!bname)
			break;
		rc = open_backing(v, l, bname, bformat);
		free(bname);
		if (rc < 0) {
			view_free(v);
			return -1;
		}
	}
	*out = v;
	return 0;
}

/* The fd of the top image in the child: its own descriptor if rewritten. */
static int
view_image_fd(const struct view *v)
{
	return v->layer[0].vm.desc_fd >= 0 ? v->layer[0].vm.desc_fd :
	    v->layer[0].io->fd;
}

/* The --blockdev JSON of @v: each layer a node whose "backing" is the
 * next one (or null), every file a /proc/self/fd name; malloc'd. */
static char *
view_json(const struct view *v)
{
	size_t cap = 512 * (v->n + 1), len = 0;
	char *buf = malloc(cap);

	if (!buf)
		return NULL;
	for (size_t i = 0; i < v->n; i++) {
		const struct layer *l = &v->layer[i];
		bool cow = has_backing_option(l->format);

		len += (size_t)snprintf(buf + len, cap - len,
		    "{\"driver\":\"%s\",%s\"read-only\":true,\"file\":"
		    "{\"driver\":\"file\",\"filename\":\"/proc/self/fd/%d\","
		    "\"read-only\":true}%s%s", l->format,
		    i == 0 ? "\"node-name\":\"vmsync\"," : "", l->child_fd,
		    cow ? ",\"backing\":" : "",
		    cow && i + 1 == v->n ? "null" : "");
	}
	for (size_t i = 0; i < v->n; i++)
		len += (size_t)snprintf(buf + len, cap - len, "}");
	return buf;
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
		/* "qemu-storage-daemon: --blockdev {...}: why" and
		 * "qemu-nbd: Failed to blk_new_open 'json:{...}': why": the
		 * why. */
		if ((opts = strstr(line, "}: ")) ||
		    (opts = strstr(line, "}': ")))
			memmove(line, strchr(opts, ' ') + 1,
			    strlen(strchr(opts, ' ') + 1) + 1);
		if (!line[0])
			snprintf(line, sizeof(line), "%s",
			    WIFSIGNALED(st) ? "was killed" : "exited");
		vs_err(VS_EXIT_SOURCE, ni->img.name, "%s: %s: %s", what,
		    ni->server, line);
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
	char what[64], cannot_open[64];

	snprintf(what, sizeof(what), "cannot connect to %s", ni->peer);
	snprintf(cannot_open, sizeof(cannot_open), "%s cannot open it",
	    ni->peer);
	if (ni->uri && (lib->set_uri_allow_transports(h,
	    LIBNBD_ALLOW_TRANSPORT_TCP | LIBNBD_ALLOW_TRANSPORT_UNIX) < 0 ||
	    lib->set_uri_allow_tls(h, LIBNBD_TLS_DISABLE) < 0 ||
	    lib->set_uri_allow_local_file(h, false) < 0)) {
		vs_err(VS_EXIT_INTERNAL, ni->img.name, "libnbd: %s",
		    lib->get_error());
		return -1;
	}
	if (lib->add_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION) < 0 ||
	    (ni->uri ? lib->aio_connect_uri(h, ni->uri) :
	    lib->aio_connect_unix(h, path)) < 0) {
		report_daemon(ni, what, lib->get_error());
		return -1;
	}
	while (!lib->aio_is_ready(h)) {
		if (lib->aio_is_dead(h) || lib->aio_is_closed(h) ||
		    lib->poll(h, 200) < 0) {
			report_daemon(ni, ni->uri ? what : cannot_open,
			    lib->get_error());
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

		if (!(c->h = lib->create())) {
			vs_err(VS_EXIT_INTERNAL, ni->img.name, "libnbd: %s",
			    lib->get_error());
			return -1;
		}
		pthread_mutex_init(&c->mu, NULL);
		if (connect_one(ni, c->h, path) < 0) {
			ni->nconn++;
			return -1;
		}
		if (ni->uri && ni->nconn == 0 &&
		    lib->can_multi_conn(c->h) != 1)
			want = 1;
	}
	return 0;
}

/* qemu-nbd's environment: ours, and the socket activation variables
 * (LISTEN_PID is written in the child).  Pointers into environ. */
static char **
activation_env(char *pid_var)
{
	extern char **environ;
	static char fds_var[] = "LISTEN_FDS=1";
	size_t n = 0, k = 0;
	char **envp;

	while (environ[n])
		n++;
	if (!(envp = calloc(n + 3, sizeof(*envp))))
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "LISTEN_", 7) != 0)
			envp[k++] = environ[i];
	envp[k++] = fds_var;
	envp[k++] = pid_var;
	return envp;
}

/* Is the file @st one of those vmsync gave the daemon (@v)? */
static bool
given(const struct view *v, int errfd, const struct stat *st)
{
	struct stat g;

	if (fstat(errfd, &g) == 0 && g.st_dev == st->st_dev &&
	    g.st_ino == st->st_ino)
		return true;
	for (size_t i = 0; i < v->n; i++)
		if (v->layer[i].io->dev == (uint64_t)st->st_dev &&
		    v->layer[i].io->ino == (uint64_t)st->st_ino)
			return true;
	for (size_t i = 0; i < v->nextra; i++)
		if (fstat(v->extra[i], &g) == 0 && g.st_dev == st->st_dev &&
		    g.st_ino == st->st_ino)
			return true;
	return fstat(view_image_fd(v), &g) == 0 && g.st_dev == st->st_dev &&
	    g.st_ino == st->st_ino;
}

/* Once the export is up, every regular file the daemon holds must be one
 * vmsync gave it: a file rewritten between vmsync's checks and qemu's
 * open (a sparse vmdk header turned into a pointer to an embedded
 * descriptor) cannot make qemu read another.  Where /proc cannot be read,
 * nothing is checked. */
static int
check_daemon_files(struct nbd_image *ni, const struct view *v)
{
	char path[64], fd_path[320];
	struct dirent *e;
	struct stat st;
	int rc = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)ni->pid);
	if (!(d = opendir(path)))
		return 0;
	while (rc == 0 && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(fd_path, sizeof(fd_path), "%s/%s", path, e->d_name);
		if (stat(fd_path, &st) < 0 || !S_ISREG(st.st_mode) ||
		    given(v, ni->errfd, &st))
			continue;
		vs_err(VS_EXIT_SOURCE, ni->img.name, "%s opened a file "
		    "vmsync did not give it (an image file changed while "
		    "opened?): refused", ni->peer);
		rc = -1;
	}
	closedir(d);
	return rc;
}

/* Where the child finds the top image: qemu-nbd takes the listening
 * socket by socket activation, at fd 3, so the image goes to 4. */
static int
image_at(const struct nbd_image *ni)
{
	return ni->qemu_nbd ? CHILD_FD_LISTEN : CHILD_FD_IMAGE;
}

/* Start the daemon on a private socket, reading the chain @v, and
 * connect the handles. */
static int
start(struct nbd_image *ni, const struct view *v)
{
	const char *tmp = getenv("TMPDIR");
	char dir[80], listen_arg[64], shared_arg[32];
	char pid_var[32] = "LISTEN_PID=";
	char *blockdev = view_json(v), *image_arg = NULL;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char *qsd_argv[] = { (char *)ni->server, "--blockdev", blockdev,
	    "--nbd-server", listen_arg, "--export",
	    "type=nbd,id=vmsync,node-name=vmsync,name=,writable=off", NULL };
	char *nbd_argv[] = { (char *)ni->server, "--read-only",
	    shared_arg, NULL, NULL };
	struct child_fds c = { .image = view_image_fd(v),
	    .image_at = image_at(ni), .extra = v->extra,
	    .nextra = v->nextra, .listen_at = ni->qemu_nbd ? CHILD_FD_IMAGE :
	    CHILD_FD_LISTEN };
	int lfd = -1, rc = -1;

	dir[0] = 0;
	if (!blockdev || asprintf(&image_arg, "json:%s", blockdev) < 0) {
		image_arg = NULL;
		vs_errno(VS_EXIT_INTERNAL, ni->file->name, "open");
		goto out;
	}
	nbd_argv[3] = image_arg;
	snprintf(listen_arg, sizeof(listen_arg), "addr.type=fd,addr.str=%d",
	    CHILD_FD_LISTEN);
	snprintf(shared_arg, sizeof(shared_arg), "--shared=%d", NBD_HANDLES);
	if (ni->qemu_nbd) {
		if (!(c.envp = activation_env(pid_var))) {
			vs_errno(VS_EXIT_INTERNAL, ni->file->name, "qemu-nbd");
			goto out;
		}
		c.pid_var = pid_var;
	}
	snprintf(dir, sizeof(dir), "%.60s/vmsync-nbd.XXXXXX",
	    tmp && *tmp && strlen(tmp) <= 60 ? tmp : "/tmp");
	if (!mkdtemp(dir)) {
		vs_errno(VS_EXIT_INTERNAL, ni->file->name, "mkdtemp %s", dir);
		dir[0] = 0;
		goto out;
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
	if (c.nextra && !(c.scratch = calloc(c.nextra, sizeof(int)))) {
		vs_errno(VS_EXIT_INTERNAL, ni->file->name, "fork");
		goto out;
	}
	c.listen = lfd;
	if ((ni->pid = spawn(ni->qemu_nbd ? nbd_argv : qsd_argv, &c, -1,
	    ni->errfd)) < 0) {
		ni->pid = 0;
		vs_errno(VS_EXIT_INTERNAL, ni->file->name, "fork");
		goto out;
	}
	if (getenv("VMSYNC_DEBUG_QSD_PID"))
		fprintf(stderr, "vmsync: debug: %s pid %d\n", ni->peer,
		    (int)ni->pid);
	/* The daemon holds the listening socket now: if it dies, connecting
	 * fails instead of waiting. */
	close(lfd);
	lfd = -1;
	/* Our own read-only export: several connections always agree. */
	if (connect_all(ni, sa.sun_path, NBD_HANDLES) < 0 ||
	    check_daemon_files(ni, v) < 0)
		goto out;
	rc = 0;
out:
	free(blockdev);
	free(image_arg);
	free(c.scratch);
	free(c.envp);
	if (lfd >= 0)
		close(lfd);
	if (dir[0]) {
		unlink(sa.sun_path);
		rmdir(dir);
	}
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

		if (lib->pread(c->h, p, n, off, 0) < 0) {
			if (!atomic_exchange(&ni->failed, true)) {
				char what[96];

				snprintf(what, sizeof(what), "offset %llu: "
				    "read from %s", (unsigned long long)off,
				    ni->peer);
				report_daemon(ni, what, lib->get_error());
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
		if (lib->block_status(c->h, n, s.pos, (nbd_extent_callback){
		    .callback = status_cb, .user_data = &s }, 0) < 0) {
			char what[64];

			snprintf(what, sizeof(what), "offset %llu: block "
			    "status", (unsigned long long)s.pos);
			report_daemon(ni, what, lib->get_error());
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
		lib->close(ni->conn[i].h);
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
	struct view *v = NULL;
	struct nbd_image *ni;
	struct nbd_io *x;
	int64_t size;
	int rc;

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
	if (load_libnbd(file->name, format) < 0)
		return -1;
	if (!(ni = calloc(1, sizeof(*ni))) || !(x = calloc(1, sizeof(*x)))) {
		free(ni);
		vs_errno(VS_EXIT_INTERNAL, file->name, "open");
		return -1;
	}
	ni->errfd = -1;
	choose_server(ni);
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
	if (view_open(file, format, image_at(ni), &v) < 0)
		goto fail;
	ni->file = file;
	rc = start(ni, v);
	if (v->n > 1)
		vs_info(1, "%s: %zu backing file%s", file->name, v->n - 1,
		    v->n == 2 ? "" : "s");
	/* The daemon has its own copies of every file of the chain. */
	view_free(v);
	if (rc < 0)
		goto fail_owned;
	if ((size = lib->get_size(ni->conn[0].h)) < 0) {
		report_daemon(ni, "export size", lib->get_error());
		goto fail_owned;
	}
	ni->img.size = x->io.size = (uint64_t)size;
	vs_info(1, "%s: %s image read through %s, %d NBD connections",
	    file->name, format, ni->server, ni->nconn);
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
	bool scheme_ok;
	int64_t size;

	if (!ni || !x || !(x->io.name = strdup(uri))) {
		free(ni);
		free(x);
		vs_errno(VS_EXIT_INTERNAL, uri, "open");
		return -1;
	}
	scheme_ok = strncmp(uri, "nbd://", 6) == 0 ||
	    strncmp(uri, "nbd+unix://", 11) == 0;
	if (!scheme_ok)
		vs_err(VS_EXIT_SOURCE, uri, "only nbd:// and nbd+unix:// "
		    "URIs are read (no TLS, no vsock)");
	if (!scheme_ok || load_libnbd(uri, "an NBD export") < 0) {
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
	if ((size = lib->get_size(ni->conn[0].h)) < 0) {
		report_daemon(ni, "export size", lib->get_error());
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
