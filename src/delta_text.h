/*
 * delta_text.h - the text entry of an incremental archive (format in
 * delta.h): written by the export, parsed with strict bounds on apply.
 */
#ifndef VS_DELTA_TEXT_H
#define VS_DELTA_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "formats/format.h"
#include "hash.h"

/* What the text entry says. */
struct vs_delta {
	char *name;			/* NAME (malloc'd) */
	uint64_t base_size;		/* BASE's size, bytes */
	uint64_t base_seed;		/* the digest's seed */
	struct vs_hash base_digest;	/* BASE's digest */
	uint32_t block_size;		/* the digest's block size */
	uint64_t size;			/* SRC's size, bytes */
	struct vs_extent_vec holes;	/* "hole" lines, sorted, apart */
};

/* The text of @d (malloc'd, NUL-terminated) into *@out, its length in
 * *@len; -1 with errno on failure. */
int vs_delta_format(const struct vs_delta *d, char **out, size_t *len);
/* Parse the @len bytes of @buf (from the archive @what) into @d: on any
 * departure from the format, one line naming @what and the line, exit
 * code 2, and -1. */
int vs_delta_parse(const char *buf, size_t len, struct vs_delta *d,
    const char *what);
void vs_delta_free(struct vs_delta *d);

#endif
