/*
 * imgdiff.c - what changed between two raw images, in 4 KiB sectors.
 *
 *   imgdiff change OLD NEW   "changed BYTES trimmed BYTES": sectors of NEW
 *                            that hold non-zero bytes differing from OLD
 *                            (what a perfect incremental backup must
 *                            write), and sectors of OLD with data that read
 *                            as zeros in NEW (what it must punch)
 *   imgdiff stale SRC DST    "stale BYTES": bytes allocated in DST where
 *                            SRC has a hole (data a backup left behind)
 *   imgdiff stale-ranges LIST DST
 *                            the same, with the holes given as lines
 *                            "OFFSET LENGTH" in the file LIST (for a source
 *                            whose guest map only qemu-img can tell)
 * Only ranges allocated in either file are read.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SECTOR 4096u
#define READ_BYTES (4u << 20)

static const char *name[2];

static void
die(const char *path, const char *what)
{
	fprintf(stderr, "imgdiff: %s: %s: %s\n", path, what, strerror(errno));
	exit(1);
}

/* Start of the next data at or after @pos in @fd (or @end). */
static off_t
next_data(int fd, off_t pos, off_t end)
{
	off_t d = lseek(fd, pos, SEEK_DATA);

	return d < 0 || d > end ? end : d;
}

static off_t
next_hole(int fd, off_t pos, off_t end)
{
	off_t h = lseek(fd, pos, SEEK_HOLE);

	return h < 0 || h > end ? end : h;
}

static int
is_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

static void
read_at(int fd, int which, uint8_t *buf, size_t n, off_t off, off_t size)
{
	size_t got = 0;

	memset(buf, 0, n);
	if (off >= size)
		return;
	if ((off_t)n > size - off)
		n = (size_t)(size - off);
	while (got < n) {
		ssize_t r = pread(fd, buf + got, n - got, off + (off_t)got);

		if (r <= 0)
			die(name[which], "read");
		got += (size_t)r;
	}
}

static int
change(int fd[2], off_t size[2])
{
	off_t end = size[0] > size[1] ? size[0] : size[1], pos = 0;
	uint8_t *a = malloc(READ_BYTES), *b = malloc(READ_BYTES);
	uint64_t changed = 0, trimmed = 0;

	if (!a || !b)
		die(name[0], "malloc");
	while (pos < end) {
		off_t d0 = next_data(fd[0], pos, end);
		off_t d1 = next_data(fd[1], pos, end);
		off_t d = d0 < d1 ? d0 : d1, h;

		if (d >= end)
			break;
		d &= ~(off_t)(SECTOR - 1);
		h = d + READ_BYTES < end ? d + READ_BYTES : end;
		read_at(fd[0], 0, a, (size_t)(h - d), d, size[0]);
		read_at(fd[1], 1, b, (size_t)(h - d), d, size[1]);
		for (off_t o = 0; o < h - d; o += SECTOR) {
			size_t n = h - d - o < SECTOR ? (size_t)(h - d - o) : SECTOR;
			int z0 = is_zero(a + o, n), z1 = is_zero(b + o, n);

			if (!z1 && memcmp(a + o, b + o, n))
				changed += n;
			else if (z1 && !z0)
				trimmed += n;
		}
		pos = h;
	}
	printf("changed %llu trimmed %llu\n", (unsigned long long)changed,
	    (unsigned long long)trimmed);
	return 0;
}

/* Bytes allocated in @fd within [off, off + len). */
static uint64_t
allocated_in(int fd, off_t size, off_t off, off_t len)
{
	off_t end = off + len < size ? off + len : size, pos = off;
	uint64_t total = 0;

	while ((pos = next_data(fd, pos, end)) < end) {
		off_t h = next_hole(fd, pos, end);

		total += (uint64_t)(h - pos);
		pos = h;
	}
	return total;
}

/* The holes of SRC (and everything past its end), against DST. */
static int
stale(int fd[2], off_t size[2])
{
	off_t pos = 0;
	uint64_t total = 0;

	while (pos < size[1]) {
		off_t h = next_hole(fd[0], pos, size[0]);
		off_t d = h < size[0] ? next_data(fd[0], h, size[0]) : size[1];

		if (d <= h)
			d = size[1];
		total += allocated_in(fd[1], size[1], h, d - h);
		pos = d;
	}
	printf("stale %llu\n", (unsigned long long)total);
	return 0;
}

static int
stale_ranges(const char *list, const char *dst)
{
	FILE *f = fopen(list, "r");
	int fd = open(dst, O_RDONLY);
	long long off, len;
	uint64_t total = 0;
	off_t size;

	if (!f)
		die(list, "open");
	if (fd < 0 || (size = lseek(fd, 0, SEEK_END)) < 0)
		die(dst, "open");
	while (fscanf(f, "%lld %lld", &off, &len) == 2)
		total += allocated_in(fd, size, (off_t)off, (off_t)len);
	fclose(f);
	printf("stale %llu\n", (unsigned long long)total);
	return 0;
}

int
main(int argc, char **argv)
{
	int fd[2];
	off_t size[2];

	if (argc == 4 && !strcmp(argv[1], "stale-ranges"))
		return stale_ranges(argv[2], argv[3]);
	if (argc != 4 || (strcmp(argv[1], "change") && strcmp(argv[1], "stale"))) {
		fprintf(stderr, "usage: imgdiff change|stale|stale-ranges A B\n");
		return 2;
	}
	for (int i = 0; i < 2; i++) {
		name[i] = argv[2 + i];
		if ((fd[i] = open(name[i], O_RDONLY)) < 0)
			die(name[i], "open");
		if ((size[i] = lseek(fd[i], 0, SEEK_END)) < 0)
			die(name[i], "size");
	}
	return argv[1][0] == 'c' ? change(fd, size) : stale(fd, size);
}
