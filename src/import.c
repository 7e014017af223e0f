/*
 * import.c - archives as sources (see import.h).
 *
 * Design notes
 * - An archive named as a SRC stands for its entries: the run syncs each
 *   into DEST/ENTRY as if each were a SRC of its own (its own target,
 *   index, stats and exit status), so main's loop over the sources is the
 *   loop over the entries.  The entries' source names ("ARCHIVE/ENTRY")
 *   are recognised by their address in the paths, never by their text: a
 *   file of that name is still an ordinary source.
 * - Every header is read before anything is synced (tar.c checks names,
 *   types, sizes and sparse maps): a hostile or damaged archive is refused
 *   whole, with nothing written.  XXX: this reads a compressed archive
 *   twice, and each entry is reached again from the start of the archive
 *   (a stream cannot go back), so an archive of N compressed entries is
 *   decompressed up to N + 1 times over.
 * - An incremental archive (first entry NAME.vmsync-delta) is not a set
 *   of files: it is applied whole, by delta.c, onto DEST/NAME.
 * - A SRC "-" is an archive on standard input, which cannot be read
 *   twice: it is first copied into an unnamed file (O_TMPFILE) in DEST,
 *   on the filesystem being restored to, which nothing else can open
 *   and which goes with the run, however it ends.  A regular file
 *   redirected to standard input is read where it is.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "archive.h"
#include "delta.h"
#include "import.h"
#include "formats/tar.h"
#include "transport/ssh.h"
#include "util.h"

#define SPOOL_BUF (1u << 20)	/* bytes per read of standard input */
#define SPOOL_PROBE (4u << 20)	/* held when it is checked as an archive */

/* An entry that stands as a source. */
struct entry {
	const char *src;	/* its source name, as in the paths */
	char *archive;		/* the archive's path */
	size_t index;		/* its number in the archive, from 0 */
	char *name;		/* its name */
};

/* The entries of this run; they live as long as the paths. */
static struct entry *entries;
static size_t nentries;

/* Standard input's archive, as a file, or -1. */
static int stdin_fd = -1;

static bool
is_stdin(const char *path)
{
	return strcmp(path, "-") == 0;
}

/* A reader of the file @fd holds (standard input's archive), named "-",
 * on a descriptor of its own. */
static int
stdin_io(int fd, struct vs_io **io)
{
	if ((fd = fcntl(fd, F_DUPFD_CLOEXEC, 3)) < 0) {
		vs_errno(VS_EXIT_INTERNAL, "-", "standard input");
		return -1;
	}
	return vs_io_from_fd(fd, "-", io);
}

int
vs_import_open_io(const char *path, struct vs_io **io)
{
	if (!is_stdin(path))
		return vs_io_open_file(path, io);
	if (stdin_fd < 0) {
		vs_err(VS_EXIT_INTERNAL, path, "standard input not read");
		return -1;
	}
	return stdin_io(stdin_fd, io);
}

/* An unnamed file in @dir to hold standard input, or -1: O_TMPFILE, or
 * where the filesystem has none, a file unlinked once made. */
static int
spool_file(const char *dir)
{
	char *tmp;
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR &&
	    errno != EINVAL))
		return fd;
	if (asprintf(&tmp, "%s/.vmsync-stdin.XXXXXX", dir) < 0)
		return -1;
	if ((fd = mkostemp(tmp, O_CLOEXEC)) >= 0)
		unlink(tmp);
	free(tmp);
	return fd;
}

/* Do the first bytes held in @fd make an archive?  0, or -1 reported
 * as a file of those bytes would be. */
static int
spool_probe(int fd)
{
	struct vs_io *io;
	int rc;

	if (stdin_io(fd, &io) < 0)
		return -1;
	rc = vs_tar_probe(io);
	vs_io_close(io);
	return rc;
}

/* Copy standard input into @fd; -1 reported (the spool in @dir).  A
 * stream that is no archive (an image piped by mistake) is refused once
 * SPOOL_PROBE bytes of it show that, not once it filled @dir. */
static int
spool_copy(int fd, const char *dir)
{
	uint8_t *buf = malloc(SPOOL_BUF);
	uint64_t off = 0;
	bool probed = false;
	ssize_t n;
	int rc = -1;

	if (!buf) {
		vs_errno(VS_EXIT_INTERNAL, "-", "standard input");
		return -1;
	}
	for (;;) {
		if (vs_interrupted) {
			vs_err(VS_EXIT_PARTIAL, "-", "interrupted");
			break;
		}
		n = read(STDIN_FILENO, buf, SPOOL_BUF);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			vs_errno(VS_EXIT_SOURCE, "-", "cannot read standard "
			    "input");
			break;
		}
		if (n == 0) {
			rc = 0;
			break;
		}
		if (vs_pwrite_full(fd, buf, (size_t)n, off) < 0) {
			vs_errno(VS_EXIT_TARGET, dir, "cannot hold the "
			    "archive read from standard input");
			break;
		}
		off += (uint64_t)n;
		if (!probed && off >= SPOOL_PROBE) {
			probed = true;
			if (spool_probe(fd) < 0)
				break;
		}
	}
	free(buf);
	return rc;
}

/* Make standard input's archive a file the run can read as often as it
 * must, in @dest if that is a local directory, else in $TMPDIR or
 * /var/tmp. */
static int
read_stdin(const char *dest)
{
	const char *dir = getenv("TMPDIR");
	struct stat st;
	int fd;

	if (stdin_fd >= 0) {
		vs_err(VS_EXIT_USAGE, "-", "standard input is given twice");
		return -1;
	}
	/* Closed, the next file opened (the spool) would take its place. */
	if (fcntl(STDIN_FILENO, F_GETFD) < 0) {
		vs_errno(VS_EXIT_SOURCE, "-", "cannot read standard input");
		return -1;
	}
	if (isatty(STDIN_FILENO)) {
		vs_err(VS_EXIT_USAGE, "-", "standard input is a terminal, "
		    "not an archive");
		return -1;
	}
	if (fstat(STDIN_FILENO, &st) == 0 && S_ISREG(st.st_mode) &&
	    lseek(STDIN_FILENO, 0, SEEK_CUR) == 0) {
		stdin_fd = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
		if (stdin_fd < 0)
			vs_errno(VS_EXIT_SOURCE, "-", "standard input");
		return stdin_fd < 0 ? -1 : 0;
	}
	if (!vs_is_remote(dest) && stat(dest, &st) == 0 && S_ISDIR(st.st_mode))
		dir = dest;
	else if (!dir || !*dir)
		dir = "/var/tmp";
	if ((fd = spool_file(dir)) < 0) {
		vs_errno(VS_EXIT_TARGET, dir, "cannot hold the archive read "
		    "from standard input");
		return -1;
	}
	if (spool_copy(fd, dir) < 0) {
		close(fd);
		return -1;
	}
	stdin_fd = fd;
	return 0;
}

static const struct entry *
find(const char *src)
{
	for (size_t i = 0; i < nentries; i++)
		if (entries[i].src == src)
			return &entries[i];
	return NULL;
}

bool
vs_import_is_entry(const char *src)
{
	return find(src) != NULL;
}

char *
vs_import_target_name(const char *src)
{
	const struct entry *e = find(src);

	return e ? strdup(e->name) : NULL;
}

int
vs_import_open(const char *src, struct vs_image **out, uint32_t *mode,
    int64_t *sec, int64_t *nsec)
{
	const struct entry *e = find(src);
	struct vs_io *io;

	if (!e) {
		vs_err(VS_EXIT_INTERNAL, src, "not an archive entry");
		return -1;
	}
	if (vs_import_open_io(e->archive, &io) < 0)
		return -1;
	return vs_tar_open(io, e->index, src, out, mode, sec, nsec);
}

/* Is the SRC @path an archive to import ("-": on standard input)? */
static bool
is_archive(const struct vs_cli *cli, const char *path)
{
	return !cli->format && !vs_is_remote(path) &&
	    (vs_archive_format_by_name(path) != NULL || is_stdin(path));
}

/* An incremental archive @path as the run's only SRC: applied onto
 * the copy of its base in DEST. */
static int
incremental(const struct vs_cli *cli, const char *path, bool *done)
{
	*done = true;
	if (cli->npaths > 2) {
		vs_err(VS_EXIT_USAGE, path, "incremental archive; it is "
		    "applied alone: give it as the only SRC");
		return VS_EXIT_USAGE;
	}
	if (vs_is_remote(cli->paths[1])) {
		vs_err(VS_EXIT_USAGE, path, "incremental archive; it is "
		    "applied to a local DIR/ (run vmsync on that host)");
		return VS_EXIT_USAGE;
	}
	return vs_delta_apply(cli, path, cli->paths[1]);
}

/* Append the source names of @path's entries @v (@n of them) to @paths
 * (at *@k) and to the entries. */
static int
add_sources(const char *path, const struct vs_tar_entry *v, size_t n,
    const char **paths, int *k)
{
	struct entry *ne = realloc(entries, (nentries + n) * sizeof(*ne));

	if (!ne) {
		vs_errno(VS_EXIT_INTERNAL, path, "entries");
		return -1;
	}
	entries = ne;
	for (size_t i = 0; i < n; i++) {
		struct entry *e = &entries[nentries];
		char *src;

		if (asprintf(&src, "%s/%s", path, v[i].name) < 0) {
			vs_errno(VS_EXIT_INTERNAL, path, "entries");
			return -1;
		}
		paths[(*k)++] = src;
		*e = (struct entry){ .src = src, .archive = strdup(path),
		    .index = i, .name = strdup(v[i].name) };
		nentries++;
		if (!e->archive || !e->name) {
			vs_errno(VS_EXIT_INTERNAL, path, "entries");
			return -1;
		}
	}
	return 0;
}

/* Read the headers of the archive @path: its entries into @v and @n. */
static int
scan(const struct vs_cli *cli, const char *path, struct vs_tar_entry **v,
    size_t *n, bool *delta)
{
	struct vs_io *io;
	int rc;

	if (is_stdin(path) && read_stdin(cli->paths[cli->npaths - 1]) < 0)
		return -1;
	if (vs_import_open_io(path, &io) < 0)
		return -1;
	rc = vs_tar_scan(io, v, n, delta);
	vs_io_close(io);
	return rc;
}

int
vs_import_expand(struct vs_cli *cli, bool *done)
{
	int nsrc = cli->npaths - 1, k = 0, total = 0;
	const char **paths = NULL;

	*done = false;
	vs_err_reset();
	for (int i = 0; i < nsrc; i++) {
		struct vs_tar_entry *v;
		size_t n;
		bool delta;
		const char **np;

		if (!is_archive(cli, cli->paths[i])) {
			if (!(np = realloc(paths, (size_t)(k + 2) *
			    sizeof(*np))))
				goto nomem;
			paths = np;
			paths[k++] = cli->paths[i];
			continue;
		}
		if (cli->since) {
			vs_err(VS_EXIT_USAGE, cli->paths[i], "--since does "
			    "not apply to an archive");
			goto fail;
		}
		if (scan(cli, cli->paths[i], &v, &n, &delta) < 0)
			goto fail;
		if (delta) {
			free(paths);
			return incremental(cli, cli->paths[i], done);
		}
		if (!(np = realloc(paths, ((size_t)k + n + 2) * sizeof(*np)))) {
			vs_tar_entries_free(v, n);
			goto nomem;
		}
		paths = np;
		if (add_sources(cli->paths[i], v, n, paths, &k) < 0) {
			vs_tar_entries_free(v, n);
			goto fail;
		}
		vs_tar_entries_free(v, n);
		total++;
	}
	if (!total) {
		free(paths);
		return VS_EXIT_OK;
	}
	if (cli->index && k > 1) {
		vs_err(VS_EXIT_USAGE, cli->paths[0], "--index names the index "
		    "of one target, and the archive holds %d files", k);
		goto fail;
	}
	/* The archives' own names give way to their entries'. */
	paths[k++] = cli->paths[nsrc];
	for (int i = 0; i < nsrc; i++)
		if (is_archive(cli, cli->paths[i]))
			free((char *)cli->paths[i]);
	free(cli->paths);
	cli->paths = paths;
	cli->npaths = k;
	return VS_EXIT_OK;
nomem:
	vs_errno(VS_EXIT_INTERNAL, cli->paths[0], "sources");
fail:
	/* The entries' names made so far are freed with the entries'
	 * table at exit; only the array goes. */
	free(paths);
	return vs_err_first() != VS_EXIT_OK ? vs_err_first() :
	    VS_EXIT_INTERNAL;
}
