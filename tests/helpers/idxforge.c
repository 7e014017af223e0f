/*
 * idxforge.c - read and forge vmsync index headers for the tests, with the
 * layout and checksum of src/index.c itself, so a test cannot drift from
 * the format it damages.
 *
 *   idxforge version              print the index version vmsync writes
 *   idxforge offset FIELD[+K]     print the byte offset of FIELD (plus K)
 *   idxforge get FILE FIELD       print a numeric field of FILE's header
 *                                 (format: the recorded source format)
 *   idxforge set FILE FIELD=VALUE...
 *                                 write numeric fields, then seal the
 *                                 header (its checksum matches again)
 *   idxforge seal FILE            recompute the checksum only
 *   idxforge flip FILE FIELD[+K]  flip bits of one byte, no resealing
 *   idxforge why FILE             "ok", or why vmsync refuses the header
 *   idxforge downgrade FILE       make FILE a version 3 index (no sector
 *                                 records), as vmsync before them wrote
 *   idxforge resector FILE B K    change sector K's hash in block B's
 *                                 record and make the record valid again:
 *                                 a record that lies
 *
 * FIELD is a name from enum idx_offset, lower case without IDX_OFF_
 * (version, block_size, flags, entries, csum, ...).  Exit 0, or 1 with a
 * message on stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "index.h"

static const struct field {
	const char *name;
	unsigned off;
	unsigned width;		/* bytes; 0: not a number */
} fields[] = {
	{ "magic", IDX_OFF_MAGIC, 0 },
	{ "version", IDX_OFF_VERSION, 4 },
	{ "header_size", IDX_OFF_HEADER_SIZE, 4 },
	{ "block_size", IDX_OFF_BLOCK_SIZE, 4 },
	{ "flags", IDX_OFF_FLAGS, 4 },
	{ "virtual_size", IDX_OFF_VIRTUAL_SIZE, 8 },
	{ "seed", IDX_OFF_SEED, 8 },
	{ "dev", IDX_OFF_DEV, 8 },
	{ "ino", IDX_OFF_INO, 8 },
	{ "size", IDX_OFF_SIZE, 8 },
	{ "mtime_sec", IDX_OFF_MTIME_SEC, 8 },
	{ "mtime_nsec", IDX_OFF_MTIME_NSEC, 8 },
	{ "ctime_sec", IDX_OFF_CTIME_SEC, 8 },
	{ "ctime_nsec", IDX_OFF_CTIME_NSEC, 8 },
	{ "entries", IDX_OFF_ENTRIES, 8 },
	{ "medium", IDX_OFF_MEDIUM, 8 },
	{ "view", IDX_OFF_VIEW, 0 },
	{ "format", IDX_OFF_FORMAT, 0 },
	{ "sectors", IDX_OFF_SECTORS, 8 },
	{ "csum", IDX_OFF_CSUM, 8 },
};

static void
die(const char *fmt, const char *arg)
{
	fprintf(stderr, "idxforge: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	exit(1);
}

/* FIELD or FIELD+K; *plus gets K. */
static const struct field *
lookup(const char *spec, unsigned *plus)
{
	size_t len = strcspn(spec, "+=");

	*plus = 0;
	if (spec[len] == '+')
		*plus = (unsigned)strtoul(spec + len + 1, NULL, 0);
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (strlen(fields[i].name) == len &&
		    strncmp(fields[i].name, spec, len) == 0)
			return &fields[i];
	die("no header field '%s'", spec);
	return NULL;
}

static void
load(const char *path, uint8_t *buf)
{
	int fd = open(path, O_RDONLY);

	if (fd < 0 || pread(fd, buf, IDX_HEADER_SIZE, 0) != IDX_HEADER_SIZE)
		die("cannot read a header from %s", path);
	close(fd);
}

static void
store(const char *path, const uint8_t *buf)
{
	int fd = open(path, O_WRONLY);

	if (fd < 0 || pwrite(fd, buf, IDX_HEADER_SIZE, 0) != IDX_HEADER_SIZE)
		die("cannot write the header of %s", path);
	close(fd);
}

static uint64_t
get(const uint8_t *p, unsigned width)
{
	uint64_t v = 0;

	for (unsigned i = width; i-- > 0;)
		v = v << 8 | p[i];
	return v;
}

static void
put(uint8_t *p, unsigned width, uint64_t v)
{
	for (unsigned i = 0; i < width; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Flip a bit of sector @k's hash in block @b's record, keeping the record
 * valid for the block's entry. */
static int
resector(const char *path, uint64_t b, uint64_t k)
{
	const struct idx_header *h;
	struct vs_index *ix = NULL;
	struct vs_hash e;
	uint64_t *sec;
	const char *why = "no index";
	bool valid = false, have = true;
	size_t per;

	if (idx_open(path, true, &ix) < 0 || !ix || !(h = idx_header(ix, &why)))
		die("cannot use the index: %s", why);
	per = idx_sectors_per_block(h->block_size);
	if (k >= per || !(sec = calloc(per, sizeof(*sec))))
		die("no sector %s in a block", "K");
	if (idx_read(ix, b, 1, &e) < 0 ||
	    idx_read_sectors(ix, b, 1, &e, sec, &valid) < 0 || !valid)
		die("block %s has no valid record", "B");
	sec[k] ^= 1;
	if (idx_write_sectors(ix, b, 1, &e, sec, &have) < 0)
		die("cannot write the record of %s", path);
	free(sec);
	idx_close(ix);
	return 0;
}

int
main(int argc, char **argv)
{
	uint8_t buf[IDX_HEADER_SIZE];
	const struct field *f;
	unsigned plus;

	if (argc == 2 && strcmp(argv[1], "version") == 0) {
		printf("%u\n", IDX_VERSION);
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "offset") == 0) {
		f = lookup(argv[2], &plus);
		printf("%u\n", f->off + plus);
		return 0;
	}
	if (argc == 5 && strcmp(argv[1], "resector") == 0)
		return resector(argv[2], strtoull(argv[3], NULL, 0),
		    strtoull(argv[4], NULL, 0));
	if (argc < 3)
		die("usage: idxforge %s FILE ...",
		    "get|set|seal|flip|why|downgrade");
	load(argv[2], buf);
	if (strcmp(argv[1], "get") == 0 && argc == 4) {
		f = lookup(argv[3], &plus);
		if (f->off == IDX_OFF_FORMAT) {
			printf("%.*s\n", IDX_FORMAT_LEN, (const char *)buf +
			    f->off);
			return 0;
		}
		if (!f->width)
			die("%s is not a number", f->name);
		printf("%llu\n", (unsigned long long)get(buf + f->off,
		    f->width));
	} else if (strcmp(argv[1], "set") == 0 && argc >= 4) {
		for (int i = 3; i < argc; i++) {
			const char *eq = strchr(argv[i], '=');
			char *end;
			uint64_t v;

			f = lookup(argv[i], &plus);
			if (!eq || !f->width)
				die("cannot set '%s'", argv[i]);
			errno = 0;
			v = strtoull(eq + 1, &end, 0);
			if (errno || *end || end == eq + 1)
				die("bad value in '%s'", argv[i]);
			put(buf + f->off, f->width, v);
		}
		idx_header_seal(buf);
		store(argv[2], buf);
	} else if (strcmp(argv[1], "seal") == 0 && argc == 3) {
		idx_header_seal(buf);
		store(argv[2], buf);
	} else if (strcmp(argv[1], "flip") == 0 && argc == 4) {
		f = lookup(argv[3], &plus);
		if (f->off + plus >= sizeof(buf))
			die("%s is past the header", argv[3]);
		buf[f->off + plus] ^= 0x5a;
		store(argv[2], buf);
	} else if (strcmp(argv[1], "downgrade") == 0 && argc == 3) {
		uint64_t entries = get(buf + IDX_OFF_ENTRIES, 8);

		put(buf + IDX_OFF_VERSION, 4, 3);
		memset(buf + IDX_OFF_CSUM_V3, 0, IDX_OFF_CSUM + 8 -
		    IDX_OFF_CSUM_V3);
		idx_header_seal(buf);
		store(argv[2], buf);
		if (truncate(argv[2], (off_t)(IDX_HEADER_SIZE + entries *
		    VS_HASH_LEN)) < 0)
			die("cannot cut %s", argv[2]);
	} else if (strcmp(argv[1], "why") == 0 && argc == 3) {
		struct idx_header h;
		const char *why = "ok";

		idx_header_decode(buf, sizeof(buf), &h, &why);
		printf("%s\n", why);
	} else {
		die("unknown command '%s'", argv[1]);
	}
	return 0;
}
