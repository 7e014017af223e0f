/*
 * wireadapt.h - whether a push's blocks go compressed or as they are,
 * chosen by timing both ways as the push goes.
 *
 * Compression must not slow a push down.  Over a slow link it speeds a
 * push up; on a machine whose CPUs are shared by vmsync, ssh, sshd and the
 * server it can slow it down (a first push of 770 MiB on two CPUs took
 * 3.3 s compressed and 2.5 s not).  Neither can be told in advance.
 *
 * So the caller's own pace is timed: its puts wait for whatever is the
 * slowest (compression, the wire or the other side).  After a warm-up
 * that fills the buffers on the way, runs of one unit go alternately as
 * they are and compressed; the second half of each run is timed (the
 * first lets the buffers take on the new way), over ADAPT_RUNS runs each
 * way, so that both ways see about the same mix of data.  Compression is
 * kept unless sending as they are was faster by ADAPT_MARGIN: it also
 * spares the link.  The choice holds for ADAPT_KEEP units, then both are
 * timed again.  Time is given by the caller, so the choice is a function
 * of the puts' sizes and times alone.
 */
#ifndef VS_WIREADAPT_H
#define VS_WIREADAPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VS_WIREADAPT_UNIT (16ull << 20)	/* a run, for a push */

struct vs_wireadapt {
	uint64_t unit;		/* bytes per run; 0: always compress */
	unsigned run;		/* runs done in this phase */
	bool trial;		/* timing, else warming up or keeping */
	bool warm;		/* the warm-up is done */
	bool zip;		/* the way of the run going on */
	uint64_t run_bytes;	/* put in it so far */
	double seg_start;	/* when its timed half began (< 0: not yet) */
	uint64_t seg_bytes;	/* run_bytes then */
	double secs[2];		/* timed, [0] as they are, [1] compressed */
	uint64_t bytes[2];
};

/* Start choosing, with runs of @unit bytes (0: always compress). */
void vs_wireadapt_init(struct vs_wireadapt *a, uint64_t unit);
/* @len bytes are put at @now (seconds, monotonic): compress them? */
bool vs_wireadapt_zip(struct vs_wireadapt *a, size_t len, double now);

#endif
