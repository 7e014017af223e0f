/*
 * holes.c - make and report sparse layouts for the tests.
 *
 *   holes report FILE       print "OFFSET LENGTH" for each data range
 *                           (SEEK_DATA/SEEK_HOLE), then "total BYTES"
 *   holes make FILE SIZE SPEC...
 *                           create FILE of SIZE bytes, a hole everywhere
 *                           but the SPEC ranges, each "OFF:LEN[:SEED]",
 *                           filled with pseudo-random bytes from SEED
 *   holes fill FILE SPEC... write SPEC ranges into an existing FILE
 *   holes reflink SRC SRCOFF DST DSTOFF LEN
 *                           share LEN bytes of SRC at SRCOFF into the
 *                           existing DST at DSTOFF (FICLONERANGE: both on
 *                           one btrfs, offsets and LEN block-aligned, or
 *                           LEN reaching SRC's end)
 * Sizes and offsets take K, M, G suffixes.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static uint64_t
parse(const char *s)
{
	char *end;
	uint64_t v = strtoull(s, &end, 0);

	switch (*end) {
	case 'K': case 'k': v <<= 10; break;
	case 'M': case 'm': v <<= 20; break;
	case 'G': case 'g': v <<= 30; break;
	}
	return v;
}

static int
report(const char *path)
{
	int fd = open(path, O_RDONLY);
	off_t pos = 0, data, hole;
	uint64_t total = 0;

	if (fd < 0) {
		perror(path);
		return 1;
	}
	for (;;) {
		data = lseek(fd, pos, SEEK_DATA);
		if (data < 0)
			break;
		hole = lseek(fd, data, SEEK_HOLE);
		printf("%lld %lld\n", (long long)data, (long long)(hole - data));
		total += (uint64_t)(hole - data);
		pos = hole;
	}
	printf("total %llu\n", (unsigned long long)total);
	close(fd);
	return 0;
}

static int
fill(int fd, const char *spec)
{
	char buf[65536];
	uint64_t off, len, seed = 1;
	char *copy = strdup(spec), *a, *b, *c;

	a = strtok(copy, ":");
	b = strtok(NULL, ":");
	c = strtok(NULL, ":");
	if (!a || !b) {
		fprintf(stderr, "bad range '%s'\n", spec);
		return 1;
	}
	off = parse(a);
	len = parse(b);
	if (c)
		seed = parse(c);
	/* xorshift64*: deterministic, incompressible enough, never zero. */
	seed = seed * 2654435761u + 88172645463325252ull;
	while (len) {
		size_t n = len < sizeof(buf) ? (size_t)len : sizeof(buf);

		for (size_t i = 0; i < n; i += 8) {
			seed ^= seed >> 12;
			seed ^= seed << 25;
			seed ^= seed >> 27;
			uint64_t v = seed * 2685821657736338717ull;
			memcpy(buf + i, &v, n - i < 8 ? n - i : 8);
		}
		if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n) {
			perror("pwrite");
			return 1;
		}
		off += n;
		len -= n;
	}
	free(copy);
	return 0;
}

static int
reflink(char **argv)
{
	struct file_clone_range r;
	int src, dst, ret = 0;

	src = open(argv[0], O_RDONLY);
	if (src < 0) {
		perror(argv[0]);
		return 1;
	}
	dst = open(argv[2], O_WRONLY);
	if (dst < 0) {
		perror(argv[2]);
		close(src);
		return 1;
	}
	r.src_fd = src;
	r.src_offset = parse(argv[1]);
	r.dest_offset = parse(argv[3]);
	r.src_length = parse(argv[4]);
	if (ioctl(dst, FICLONERANGE, &r) < 0) {
		perror("FICLONERANGE");
		ret = 1;
	}
	close(src);
	if (close(dst) < 0)
		ret = 1;
	return ret;
}

int
main(int argc, char **argv)
{
	int fd, i = 3;

	if (argc == 3 && strcmp(argv[1], "report") == 0)
		return report(argv[2]);
	if (argc == 7 && strcmp(argv[1], "reflink") == 0)
		return reflink(argv + 2);
	if (argc >= 4 && strcmp(argv[1], "make") == 0) {
		fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0 || ftruncate(fd, (off_t)parse(argv[3])) < 0) {
			perror(argv[2]);
			return 1;
		}
		i = 4;
	} else if (argc >= 3 && strcmp(argv[1], "fill") == 0) {
		fd = open(argv[2], O_WRONLY);
		if (fd < 0) {
			perror(argv[2]);
			return 1;
		}
	} else {
		fprintf(stderr, "usage: holes report FILE | make FILE SIZE "
		    "OFF:LEN[:SEED]... | fill FILE OFF:LEN[:SEED]... | "
		    "reflink SRC SRCOFF DST DSTOFF LEN\n");
		return 2;
	}
	for (; i < argc; i++)
		if (fill(fd, argv[i]))
			return 1;
	if (fsync(fd) < 0)
		perror("fsync");
	return close(fd) ? 1 : 0;
}
