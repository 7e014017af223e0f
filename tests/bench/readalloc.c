/*
 * readalloc.c - the physical limit of a sync: read every allocated byte of
 * FILE once (SEEK_DATA/SEEK_HOLE, 4 MiB reads) and nothing else.  Reads
 * bypass the page cache (O_DIRECT) as vmsync's do, unless the file system
 * refuses it.  Prints "read BYTES".
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define READ_BYTES (4u << 20)

int
main(int argc, char **argv)
{
	int fd;
	off_t pos = 0, data, hole;
	uint64_t total = 0;
	char *buf = aligned_alloc(4096, READ_BYTES);

	if (argc != 2 || !buf) {
		fprintf(stderr, "usage: readalloc FILE\n");
		return 2;
	}
	if ((fd = open(argv[1], O_RDONLY | O_DIRECT)) < 0 &&
	    (fd = open(argv[1], O_RDONLY)) < 0) {
		fprintf(stderr, "readalloc: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	while ((data = lseek(fd, pos, SEEK_DATA)) >= 0) {
		hole = lseek(fd, data, SEEK_HOLE);
		for (pos = data; pos < hole;) {
			size_t n = hole - pos < READ_BYTES ? (size_t)(hole - pos) :
			    READ_BYTES;
			ssize_t r = pread(fd, buf, n, pos);

			if (r < 0 && errno == EINVAL) {	/* no O_DIRECT here */
				fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_DIRECT);
				continue;
			}

			if (r <= 0) {
				fprintf(stderr, "readalloc: %s: read at %lld: %s\n",
				    argv[1], (long long)pos,
				    r ? strerror(errno) : "end of file");
				return 1;
			}
			pos += r;
			total += (uint64_t)r;
		}
	}
	printf("read %llu\n", (unsigned long long)total);
	return 0;
}
