/*
 * workload.c - a deterministic day of a guest's life, run inside the
 * mounted guest filesystem DIR.
 *
 *   workload DIR 0 SEED BYTES   day 0: fill DIR with about BYTES of files
 *   workload DIR N SEED BYTES   day N (N > 0): overwrite ranges inside
 *                               files, add files and delete files; BYTES is
 *                               the day-0 size, and a day changes about 1/24
 *                               of it and deletes about 1/10
 *
 * Half the files hold incompressible bytes, half text-like words; sizes
 * are log-uniform from 512 B to 64 MiB.  Everything follows from SEED and
 * the day, and day N only looks at the files (sorted by name) that the days
 * before it left, so the same seed gives the same filesystem contents.
 * Prints one line: "written BYTES overwritten BYTES deleted BYTES files N".
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BUF_BYTES (1u << 20)
#define MIN_FILE 512.0
#define MAX_FILE (64.0 * 1048576)

static uint64_t rng[4];		/* xoshiro256** state */

static uint64_t
rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t
next(void)
{
	uint64_t r = rotl(rng[1] * 5, 7) * 9, t = rng[1] << 17;

	rng[2] ^= rng[0];
	rng[3] ^= rng[1];
	rng[1] ^= rng[2];
	rng[0] ^= rng[3];
	rng[2] ^= t;
	rng[3] = rotl(rng[3], 45);
	return r;
}

static void
seed_rng(uint64_t seed)
{
	for (int i = 0; i < 4; i++) {	/* splitmix64 */
		uint64_t z = (seed += 0x9e3779b97f4a7c15ULL);

		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
		rng[i] = z ^ (z >> 31);
	}
}

static double
uniform(void)
{
	return (double)(next() >> 11) / 9007199254740992.0;
}

static uint64_t
log_uniform(double lo, double hi)
{
	return (uint64_t)exp(log(lo) + uniform() * (log(hi) - log(lo)));
}

/* A vocabulary of pseudo-words, picked with a skew towards the first ones,
 * gives text that compresses about as well as logs or source code. */
#define NWORDS 2048
static char words[NWORDS][12];

static void
make_words(void)
{
	for (int i = 0; i < NWORDS; i++) {
		int n = 2 + (int)(next() % 9);

		for (int k = 0; k < n; k++)
			words[i][k] = (char)('a' + next() % 26);
		words[i][n] = '\0';
	}
}

static void
fill(uint8_t *buf, size_t len, int text)
{
	size_t i = 0;

	if (!text) {
		for (; i + 8 <= len; i += 8) {
			uint64_t v = next();

			memcpy(buf + i, &v, 8);
		}
		for (; i < len; i++)
			buf[i] = (uint8_t)next();
		return;
	}
	while (i < len) {
		uint64_t r = next();
		const char *w = words[(r & 0xffff) % (1 + (r >> 16) % NWORDS)];
		size_t n = strlen(w);

		for (size_t k = 0; k < n && i < len; k++)
			buf[i++] = (uint8_t)w[k];
		if (i < len)
			buf[i++] = (r >> 40) % 12 == 0 ? '\n' : ' ';
	}
}

static void
die(const char *what, const char *path)
{
	fprintf(stderr, "workload: %s: %s: %s\n", path, what, strerror(errno));
	exit(1);
}

/* Write @len bytes at @off of @path (created if missing); a name ending in
 * "t" holds text. */
static void
write_range(const char *path, uint64_t off, uint64_t len, uint8_t *buf)
{
	int text = path[strlen(path) - 1] == 't';
	int fd = open(path, O_WRONLY | O_CREAT, 0644);

	if (fd < 0)
		die("open", path);
	while (len) {
		size_t n = len < BUF_BYTES ? (size_t)len : BUF_BYTES;

		fill(buf, n, text);
		if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n)
			die("write", path);
		off += n;
		len -= n;
	}
	if (close(fd) < 0)
		die("close", path);
}

struct file {
	char *path;		/* relative to DIR */
	uint64_t size;		/* bytes */
};

static int
by_path(const void *a, const void *b)
{
	return strcmp(((const struct file *)a)->path,
	    ((const struct file *)b)->path);
}

/* Every regular file under the day directories, sorted by path. */
static struct file *
list_files(size_t *n)
{
	struct file *v = NULL;
	size_t cap = 0;
	DIR *top = opendir(".");
	struct dirent *d;

	*n = 0;
	if (!top)
		die("opendir", ".");
	while ((d = readdir(top))) {
		DIR *sub;
		struct dirent *e;

		if (strncmp(d->d_name, "day", 3) || !(sub = opendir(d->d_name)))
			continue;
		while ((e = readdir(sub))) {
			char p[512];
			struct stat st;

			snprintf(p, sizeof(p), "%s/%s", d->d_name, e->d_name);
			if (e->d_name[0] == '.' || stat(p, &st) < 0 ||
			    !S_ISREG(st.st_mode))
				continue;
			if (*n == cap) {
				cap = cap ? 2 * cap : 1024;
				if (!(v = realloc(v, cap * sizeof(*v))))
					die("realloc", ".");
			}
			v[*n].path = strdup(p);
			v[(*n)++].size = (uint64_t)st.st_size;
		}
		closedir(sub);
	}
	closedir(top);
	qsort(v, *n, sizeof(*v), by_path);
	return v;
}

/* New files in dayN/ until @bytes are written; returns the bytes. */
static uint64_t
add_files(unsigned day, uint64_t bytes, uint8_t *buf, unsigned *count)
{
	char dir[32], path[64];
	uint64_t done = 0;

	snprintf(dir, sizeof(dir), "day%04u", day);
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		die("mkdir", dir);
	while (done < bytes) {
		uint64_t len = log_uniform(MIN_FILE, MAX_FILE);

		if (len > bytes - done)
			len = bytes - done < MIN_FILE ? MIN_FILE : bytes - done;
		snprintf(path, sizeof(path), "%s/f%06u.%s", dir, (*count)++,
		    next() & 1 ? "txt" : "bin");
		write_range(path, 0, len, buf);
		done += len;
	}
	return done;
}

int
main(int argc, char **argv)
{
	unsigned day, files = 0;
	uint64_t bytes, written = 0, overwritten = 0, deleted = 0;
	uint8_t *buf = malloc(BUF_BYTES);

	if (argc != 5 || !buf) {
		fprintf(stderr, "usage: workload DIR DAY SEED BYTES\n");
		return 2;
	}
	if (chdir(argv[1]) < 0)
		die("chdir", argv[1]);
	day = (unsigned)strtoul(argv[2], NULL, 10);
	bytes = strtoull(argv[4], NULL, 10);
	seed_rng(strtoull(argv[3], NULL, 10));
	make_words();
	seed_rng(strtoull(argv[3], NULL, 10) * 1000003 + day);

	if (day == 0) {
		written = add_files(0, bytes, buf, &files);
	} else {
		size_t n;
		struct file *v = list_files(&n);
		uint64_t want = bytes / 24, del = bytes / 10;

		/* Half the change rewrites ranges inside existing files, as
		 * databases and logs do. */
		while (n && overwritten < want / 2) {
			struct file *f = &v[next() % n];
			uint64_t len = log_uniform(4096, 4.0 * 1048576);
			uint64_t off;

			if (f->size < 4096)
				continue;
			if (len > f->size)
				len = f->size;
			off = (next() % (f->size - len + 1)) & ~4095ULL;
			write_range(f->path, off, len, buf);
			overwritten += len;
		}
		/* Then files go away (the guest trims them) ... */
		while (n && deleted < del) {
			size_t k = next() % n;

			if (unlink(v[k].path) < 0)
				die("unlink", v[k].path);
			deleted += v[k].size;
			free(v[k].path);
			v[k] = v[--n];
		}
		/* ... and new ones arrive. */
		written = add_files(day, want / 2, buf, &files);
		for (size_t i = 0; i < n; i++)
			free(v[i].path);
		free(v);
	}
	sync();
	printf("written %llu overwritten %llu deleted %llu files %u\n",
	    (unsigned long long)written, (unsigned long long)overwritten,
	    (unsigned long long)deleted, files);
	free(buf);
	return 0;
}
