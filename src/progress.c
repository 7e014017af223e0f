/*
 * progress.c - the progress line, --stats text and --json output.
 *
 * The progress line is redrawn at most four times a second; position is
 * the virtual offset reached, so the ETA holds for sparse images too.
 */
#include <stdbool.h>
#include <stdlib.h>

#include "progress.h"
#include "util.h"

struct vs_progress {
	FILE *fp;		/* where to draw */
	const char *name;	/* image name */
	uint64_t total;		/* virtual size */
	double start;		/* vs_now() at start */
	double last;		/* last redraw */
	bool drawn;		/* a line is on screen */
};

struct vs_progress *
vs_progress_new(FILE *fp, const char *name)
{
	struct vs_progress *p = calloc(1, sizeof(*p));

	if (p) {
		p->fp = fp;
		p->name = name;
	}
	return p;
}

void
vs_progress_free(struct vs_progress *p)
{
	free(p);
}

void
vs_progress_start(struct vs_progress *p, uint64_t total)
{
	if (!p)
		return;
	p->total = total;
	p->start = vs_now();
	p->last = 0;
}

static void
draw(struct vs_progress *p, uint64_t pos, const struct vs_stats *st,
    double now)
{
	char done[32], all[32], rate[32], eta[32] = "--:--";
	double secs = now - p->start;
	double frac = p->total ? (double)pos / (double)p->total : 1;
	double bps = secs > 0 ? (double)st->read_bytes / secs : 0;

	if (frac > 0 && frac < 1 && secs > 0) {
		long left = (long)(secs / frac - secs);
		snprintf(eta, sizeof(eta), "%ld:%02ld", left / 60, left % 60);
	} else if (frac >= 1) {
		snprintf(eta, sizeof(eta), "0:00");
	}
	fprintf(p->fp, "\r%s: %s / %s %3d%% %s/s ETA %s\033[K", p->name,
	    vs_fmt_bytes(pos, done, sizeof(done)),
	    vs_fmt_bytes(p->total, all, sizeof(all)), (int)(frac * 100),
	    vs_fmt_bytes((uint64_t)bps, rate, sizeof(rate)), eta);
	fflush(p->fp);
	p->drawn = true;
	p->last = now;
}

void
vs_progress_update(struct vs_progress *p, uint64_t pos,
    const struct vs_stats *st)
{
	double now;

	if (!p)
		return;
	now = vs_now();
	if (now - p->last >= 0.25)
		draw(p, pos, st, now);
}

void
vs_progress_end(struct vs_progress *p, uint64_t pos, const struct vs_stats *st)
{
	char r[32], w[32], u[32];

	if (!p)
		return;
	/* Done: the line becomes a summary that stays on the terminal. */
	if (pos)
		fprintf(p->fp, "\r%s: done in %.1f s: read %s, wrote %s, "
		    "punched %s\033[K", p->name, vs_now() - p->start,
		    vs_fmt_bytes(st->read_bytes, r, sizeof(r)),
		    vs_fmt_bytes(st->written_bytes, w, sizeof(w)),
		    vs_fmt_bytes(st->punched_bytes, u, sizeof(u)));
	if (p->drawn || pos)
		fputc('\n', p->fp);
	p->drawn = false;
}

static void
line(FILE *fp, const char *label, uint64_t v)
{
	char b[32];

	fprintf(fp, "  %-20s %12s  (%llu bytes)\n", label,
	    vs_fmt_bytes(v, b, sizeof(b)), (unsigned long long)v);
}

void
vs_stats_print(FILE *fp, const char *src, const char *dst,
    const struct vs_stats *st, bool dry_run)
{
	char b[32];
	double tput = st->elapsed > 0 ? (double)st->read_bytes / st->elapsed : 0;

	fprintf(fp, "%s -> %s%s\n", src, dst, dry_run ? " (dry run)" : "");
	/* The file view of a qcow2 syncs the file: its size is not the
	 * guest disk's. */
	if (st->guest_size) {
		line(fp, "file size:", st->virtual_size);
		line(fp, "virtual size:", st->guest_size);
	} else {
		line(fp, "virtual size:", st->virtual_size);
	}
	line(fp, "mapped as data:", st->data_bytes);
	line(fp, "read from source:", st->read_bytes);
	line(fp, "read from target:", st->target_read_bytes);
	line(fp, "unchanged:", st->unchanged_bytes);
	line(fp, "  of which not read:", st->skipped_bytes);
	line(fp, dry_run ? "would write:" : "written:", st->written_bytes);
	line(fp, dry_run ? "would punch:" : "punched:", st->punched_bytes);
	fprintf(fp, "  %-20s %12s\n", "index:", st->index_state ?
	    st->index_state : "none");
	if (st->wire_sent || st->wire_received) {
		line(fp, "sent:", st->wire_sent);
		line(fp, "received:", st->wire_received);
	}
	fprintf(fp, "  %-20s %10.3f s\n", "elapsed:", st->elapsed);
	fprintf(fp, "  %-20s %10s/s\n", "throughput:",
	    vs_fmt_bytes((uint64_t)tput, b, sizeof(b)));
}

void
vs_json_string(FILE *fp, const char *s)
{
	fputc('"', fp);
	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		if (*c == '"' || *c == '\\')
			fprintf(fp, "\\%c", *c);
		else if (*c < 0x20)
			fprintf(fp, "\\u%04x", *c);
		else
			fputc(*c, fp);
	}
	fputc('"', fp);
}

void
vs_stats_json(FILE *fp, const char *src, const char *dst,
    const struct vs_stats *st, int status)
{
	double tput = st->elapsed > 0 ? (double)st->read_bytes / st->elapsed : 0;

	fputs("{\"source\":", fp);
	vs_json_string(fp, src);
	fputs(",\"target\":", fp);
	vs_json_string(fp, dst);
	fprintf(fp, ",\"status\":%d,\"virtual_size\":%llu,\"data_bytes\":%llu,"
	    "\"read_bytes\":%llu,\"target_read_bytes\":%llu,"
	    "\"unchanged_bytes\":%llu,\"skipped_bytes\":%llu,"
	    "\"written_bytes\":%llu,"
	    "\"punched_bytes\":%llu,\"wire_sent_bytes\":%llu,"
	    "\"wire_received_bytes\":%llu,\"index\":\"%s\","
	    "\"elapsed_seconds\":%.6f,\"throughput_bytes_per_second\":%.0f",
	    status, (unsigned long long)st->virtual_size,
	    (unsigned long long)st->data_bytes,
	    (unsigned long long)st->read_bytes,
	    (unsigned long long)st->target_read_bytes,
	    (unsigned long long)st->unchanged_bytes,
	    (unsigned long long)st->skipped_bytes,
	    (unsigned long long)st->written_bytes,
	    (unsigned long long)st->punched_bytes,
	    (unsigned long long)st->wire_sent,
	    (unsigned long long)st->wire_received,
	    st->index_state ? st->index_state : "none", st->elapsed, tput);
	/* A failed image says why; a dry run says it wrote nothing. */
	if (status != 0 && src[0]) {
		fputs(",\"error\":", fp);
		vs_json_string(fp, vs_err_text());
	}
	fprintf(fp, ",\"dry_run\":%s}", st->dry_run ? "true" : "false");
}
