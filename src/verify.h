/*
 * verify.h - vmsync --verify: check a backup without its source.
 */
#ifndef VS_VERIFY_H
#define VS_VERIFY_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "vmsync.h"

/* Bad ranges listed; more are only counted. */
#define VS_VERIFY_BAD_KEPT	1000

/* What is wrong with a bad range.  The numbers are pinned: they cross
 * the wire in VERIFIED. */
enum vs_verify_why {
	VS_BAD_DIFFERS = 1,	/* data that differs from its entry */
	VS_BAD_HOLE,		/* a hole where the index records data */
	VS_BAD_ALLOCATED,	/* zeros written where it records a hole */
	VS_BAD_UNKNOWN,		/* a block the index does not record */
};

struct vs_verify_bad {
	uint64_t off, len;		/* bytes of the image */
	enum vs_verify_why why;		/* what is wrong */
};

/* What checking one backup found: gathered here, or on a server and
 * sent back; printed the same way. */
struct vs_verify_result {
	enum vs_exit status;		/* OK, DIFFERS, or the category of
					 * the error that stopped the check */
	bool complete;			/* it has an index, a clean one */
	bool partial;			/* its index is dirty */
	bool meta_bad;			/* qcow2 metadata damaged */
	uint64_t virtual_size;		/* bytes of the image */
	uint64_t read_bytes;		/* data read */
	uint64_t bad_bytes;		/* in bad ranges */
	struct vs_verify_bad *bad;	/* the first VS_VERIFY_BAD_KEPT */
	size_t nbad;			/* of them */
	uint64_t more_bad;		/* ranges beyond those */
};

/* Zero @r and allocate its bad ranges; -1 (errno set) if out of memory. */
int vs_verify_result_init(struct vs_verify_result *r);
void vs_verify_result_free(struct vs_verify_result *r);
/* The text of a reason, as the report prints it. */
const char *vs_verify_why_text(enum vs_verify_why why);
/* Read every data block of the target at @path and compare it with the
 * index beside it (or @index); holes must be holes where the index says
 * so.  Fills @r (initialized); an error that stops the check is reported
 * as it happens, bad ranges are not.  Returns r->status. */
enum vs_exit vs_verify_check(const char *path, const char *index,
    struct vs_verify_result *r);
/* Report @r for the backup named @shown: each bad range on stderr, and
 * with @json (not NULL) one JSON object there. */
void vs_verify_report(const char *shown, const struct vs_verify_result *r,
    FILE *json);
/* Check and report: VS_EXIT_OK, VS_EXIT_DIFFERS, or the category of the
 * error that stopped the check. */
enum vs_exit vs_verify(const char *path, const char *index, FILE *json);

#endif
