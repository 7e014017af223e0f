/*
 * unit.h - helpers shared by the cmocka unit tests (header only: each test
 * is one program).  Include after <cmocka.h>.
 */
#ifndef VS_UNIT_H
#define VS_UNIT_H

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

/* The current case's scratch directory, made by unit_mktmp(). */
static char tmpdir[4096];

/* Fill @p with a reproducible pseudo-random pattern from @seed. */
static inline void
fill(uint8_t *p, size_t len, uint32_t seed)
{
	uint32_t x = seed * 2654435761u + 1;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (uint8_t)x;
	}
}

static inline int
unit_rm_one(const char *p, const struct stat *s, int flag, struct FTW *f)
{
	(void)s, (void)flag, (void)f;
	return remove(p);
}

/* Make tmpdir, named after @tag, under $TMPDIR or /tmp. */
static inline int
unit_mktmp(const char *tag)
{
	const char *base = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/vs-test-%s.XXXXXX",
	    base && *base ? base : "/tmp", tag);
	return mkdtemp(tmpdir) ? 0 : -1;
}

/* Remove tmpdir and everything in it. */
static inline int
unit_rmtmp(void)
{
	return nftw(tmpdir, unit_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* tmpdir/@name; the last 16 results stay valid. */
static inline const char *
tpath(const char *name)
{
	static char p[16][4200];
	static int k;

	k = (k + 1) % 16;
	snprintf(p[k], sizeof(p[k]), "%s/%s", tmpdir, name);
	return p[k];
}

#endif
