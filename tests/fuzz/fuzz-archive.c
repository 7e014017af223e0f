/*
 * fuzz-archive.c - libFuzzer harness for the archive reader (tar.c): the
 * input is an archive (any compression) read from memory.  Its headers
 * are listed as an import does (vs_tar_scan), then each entry, even when
 * the listing refused the archive, is opened and read as the engine
 * reads a source: the map in windows, checked, and the DATA ranges in
 * increasing order, into a sink that checks each byte lies inside the
 * image.  One read behind the stream checks that it is refused.
 * Bounded: at most FUZZ_ENTRIES entries, FUZZ_WINDOWS windows mapped and
 * FUZZ_BYTES bytes read each.
 * Build and run: make fuzz FUZZ_TARGET=fuzz-archive [FUZZ_SECONDS=600];
 * make check builds it with replay.c, which runs the inputs named on its
 * command line (tests/fuzz/archive-seeds/ holds a few).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/tar.h"
#include "vmsync.h"

#define FUZZ_ENTRIES 4
#define FUZZ_BYTES (4u << 20)
#define FUZZ_WINDOW (1u << 20)
#define FUZZ_WINDOWS 64ull	/* windows mapped per entry */
#define FUZZ_READ 65536

static uint8_t buf[FUZZ_READ];

/* Read the image as the engine would, at most FUZZ_BYTES of it. */
static void
drain(struct vs_image *img)
{
	struct vs_extent_vec map = { 0 };
	uint64_t done = 0, last = 0;
	volatile uint8_t sum = 0;

	for (uint64_t w = 0; w < img->size && done < FUZZ_BYTES &&
	    w < FUZZ_WINDOWS * FUZZ_WINDOW; w += FUZZ_WINDOW) {
		uint64_t wlen = img->size - w < FUZZ_WINDOW ? img->size - w :
		    FUZZ_WINDOW;

		if (vs_image_map(img, w, wlen, &map) < 0)
			break;
		for (size_t i = 0; i < map.n && done < FUZZ_BYTES; i++) {
			const struct vs_extent *e = &map.v[i];

			if (e->type != VS_EXT_DATA)
				continue;
			for (uint64_t o = e->off; o < e->off + e->len &&
			    done < FUZZ_BYTES; o += FUZZ_READ) {
				size_t n = (size_t)(e->off + e->len - o <
				    FUZZ_READ ? e->off + e->len - o :
				    FUZZ_READ);

				if (o + n > img->size)
					abort();
				if (img->ops->read(img, buf, n, o) < 0)
					goto out;
				for (size_t k = 0; k < n; k++)
					sum ^= buf[k];
				done += n;
				last = o;
			}
		}
	}
	/* Behind the stream: refused, not a crash. */
	if (done && img->ops->read(img, buf, 1, last) == 0)
		abort();
out:
	vs_extent_vec_free(&map);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vs_tar_entry *v;
	struct vs_image *img;
	struct vs_io *io;
	size_t n = 0;
	bool delta;
	uint32_t mode;
	int64_t sec, nsec;

	vs_err_quiet = true;
	vs_err_reset();
	if (vs_io_open_mem(data, size, "fuzz.tar", &io) < 0)
		abort();
	if (vs_tar_scan(io, &v, &n, &delta) == 0) {
		for (size_t i = 0; i < n; i++)
			if (!v[i].name[0] || strchr(v[i].name, '/') ||
			    v[i].name[0] == '.' || v[i].size > VS_TAR_MAX_SIZE)
				abort();
		vs_tar_entries_free(v, n);
	}
	vs_io_close(io);
	for (size_t i = 0; i < FUZZ_ENTRIES; i++) {
		if (vs_io_open_mem(data, size, "fuzz.tar", &io) < 0)
			abort();
		if (vs_tar_open(io, i, "fuzz.tar/entry", &img, &mode, &sec,
		    &nsec) < 0)
			break;
		drain(img);
		vs_image_close(img);
	}
	vs_err_reset();
	return 0;
}
