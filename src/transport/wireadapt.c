/*
 * wireadapt.c - compressed or as they are, by timing both (see
 * wireadapt.h).
 */
#include <string.h>

#include "wireadapt.h"

#define ADAPT_RUNS 8		/* timed runs each way */
#define ADAPT_KEEP 64		/* runs the choice holds */
#define ADAPT_MARGIN 1.1	/* as they are only if this much faster */

void
vs_wireadapt_init(struct vs_wireadapt *a, uint64_t unit)
{
	memset(a, 0, sizeof(*a));
	a->unit = unit;
	a->zip = true;
	a->seg_start = -1;
}

/* The run going on ended at @now: count its timed half, start the next
 * run and, at the end of a phase, the next phase. */
static void
next_run(struct vs_wireadapt *a, double now)
{
	if (a->trial && a->seg_start >= 0) {
		a->secs[a->zip] += now - a->seg_start;
		a->bytes[a->zip] += a->run_bytes - a->seg_bytes;
	}
	a->run++;
	a->run_bytes = 0;
	a->seg_start = -1;
	if (!a->warm) {			/* warmed up: time both ways */
		a->warm = a->trial = true;
		a->run = 0;
	} else if (!a->trial && a->run >= ADAPT_KEEP) {
		a->trial = true;	/* time both ways again */
		a->run = 0;
	} else if (a->trial && a->run >= 2 * ADAPT_RUNS) {
		double plain = a->secs[0] > 0 ?
		    (double)a->bytes[0] / a->secs[0] : 0;
		double zip = a->secs[1] > 0 ?
		    (double)a->bytes[1] / a->secs[1] : 0;

		a->trial = false;
		a->run = 0;
		a->zip = !(plain > zip * ADAPT_MARGIN);
		memset(a->secs, 0, sizeof(a->secs));
		memset(a->bytes, 0, sizeof(a->bytes));
		return;
	}
	if (a->trial)			/* as they are first, then by turns */
		a->zip = a->run % 2 == 1;
}

bool
vs_wireadapt_zip(struct vs_wireadapt *a, size_t len, double now)
{
	if (!a->unit)
		return true;
	if (a->run_bytes >= a->unit)
		next_run(a, now);
	if (a->trial && a->seg_start < 0 && a->run_bytes >= a->unit / 2) {
		a->seg_start = now;
		a->seg_bytes = a->run_bytes;
	}
	a->run_bytes += len;
	return a->zip;
}
