/*
 * wire.c - frames: length bounds, checksums, buffering and rate limit.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "pack.h"
#include "wire.h"
#include "../util.h"

#define HDR		8
#define TRAILER		4
#define OUT_CAP		(256u << 10)
/* Pipe buffer asked for: a 2 GiB first push over ssh on two CPUs took
 * 5.1 s with 64 KiB pipes, 4.7 s with 256 KiB, 4.3 s with 1 MiB and 5.5 s
 * with 4 MiB (the hops then work in larger, later batches). */
#define WIRE_PIPE_BYTES	(1 << 20)
#define SUM_SEED	0x766d7379u	/* "vmsy" */

void
vs_wire_init(struct vs_wire *w, int rfd, int wfd, const char *peer,
    enum vs_exit cat)
{
	memset(w, 0, sizeof(*w));
	w->rfd = rfd;
	w->wfd = wfd;
	w->peer = peer;
	w->cat = cat;
	w->wflags = -1;
	/* Larger pipes to and from ssh: with the default 64 KiB each hop
	 * (vmsync, ssh, sshd, vmsync) waits on the next for every 64 KiB.
	 * Only a hint: a socket, or a user over the pipe size limits, keeps
	 * what it has. */
	fcntl(rfd, F_SETPIPE_SZ, WIRE_PIPE_BYTES);
	fcntl(wfd, F_SETPIPE_SZ, WIRE_PIPE_BYTES);
}

void
vs_wire_set_timeout(struct vs_wire *w, unsigned seconds)
{
	int fl = fcntl(w->wfd, F_GETFL);

	w->timeout = seconds;
	/* A blocked write() could not be timed: wait in poll() instead. */
	if (seconds && fl >= 0 && w->wflags < 0 &&
	    fcntl(w->wfd, F_SETFL, fl | O_NONBLOCK) == 0)
		w->wflags = fl;
}

void
vs_wire_free(struct vs_wire *w)
{
	if (w->wflags >= 0)
		fcntl(w->wfd, F_SETFL, w->wflags);
	w->wflags = -1;
	free(w->in);
	free(w->out);
	w->in = w->out = NULL;
}

void
vs_wire_err(const struct vs_wire *w, const char *why)
{
	if (w->image)
		vs_err(w->cat, w->peer, "%s: %s", w->image, why);
	else
		vs_err(w->cat, w->peer, "%s", why);
}

static int
fail(struct vs_wire *w, const char *what)
{
	if (!w->failed)
		vs_wire_err(w, w->wbroken ? w->why : what);
	w->failed = true;
	return -1;
}

/* Bytes that are no frame: the peer is still there to be told. */
static int
fail_garbage(struct vs_wire *w, const char *what)
{
	if (!w->failed && !w->wbroken)
		w->garbage = true;
	return fail(w, what);
}

/* Wait until @fd is ready for @events: 1, or 0 once the timeout passed
 * since @since, or -1 (interrupted, or poll failed). */
static int
wait_fd(struct vs_wire *w, int fd, short events, double since)
{
	struct pollfd p = { .fd = fd, .events = events };

	if (!w->timeout)
		return 1;
	for (;;) {
		double left = since + w->timeout - vs_now();
		/* Ready now counts even past the time (after a --bwlimit
		 * pause, say). */
		int r = poll(&p, 1, left > 0 ? (int)(left * 1000) + 1 : 0);

		if (r > 0)
			return 1;
		if (r == 0 && left <= 0)
			return 0;
		if (r < 0 && (errno != EINTR || vs_interrupted))
			return -1;
	}
}

static int
fail_write(struct vs_wire *w, const char *why)
{
	w->wbroken = true;
	w->why = why;
	w->out_len = 0;
	return -1;
}

/* Sleep as needed to keep the average rate under the limit; not once
 * interrupted, when what is left goes out at once. */
static void
throttle(struct vs_wire *w, size_t n)
{
	double now = vs_now(), due;

	if (!w->bwlimit || vs_interrupted)
		return;
	if (w->bw_start == 0)
		w->bw_start = now;
	due = w->bw_start + (double)(w->sent + n) / (double)w->bwlimit;
	if (due > now) {
		struct timespec ts = {
			.tv_sec = (time_t)(due - now),
			.tv_nsec = (long)(((due - now) - (double)(time_t)(due -
			    now)) * 1e9),
		};

		while (nanosleep(&ts, &ts) < 0 && errno == EINTR &&
		    !vs_interrupted)
			;
	}
}

int
vs_wire_flush(struct vs_wire *w)
{
	static char why[64];
	double since = vs_now();
	size_t done = 0;

	if (w->failed || w->wbroken)
		return -1;
	while (done < w->out_len) {
		size_t n = w->out_len - done;
		ssize_t r;
		int ready;

		if (w->bwlimit && n > 65536)
			n = 65536;
		throttle(w, n);
		if ((ready = wait_fd(w, w->wfd, POLLOUT, since)) == 0) {
			snprintf(why, sizeof(why), "timed out: nothing could "
			    "be sent for %u seconds", w->timeout);
			w->timed_out = true;
			return fail_write(w, why);
		}
		r = ready < 0 ? -1 : write(w->wfd, w->out + done, n);
		if (r < 0 && ((errno == EINTR && !vs_interrupted) ||
		    errno == EAGAIN))
			continue;
		if (r <= 0)
			return fail_write(w, r < 0 && errno == EINTR ?
			    "interrupted" : r < 0 && errno != EPIPE ?
			    strerror(errno) : "connection lost");
		done += (size_t)r;
		w->sent += (uint64_t)r;
		since = vs_now();
	}
	w->out_len = 0;
	return 0;
}

int
vs_wire_send2(struct vs_wire *w, uint32_t type, const void *a, size_t alen,
    const void *b, size_t blen)
{
	size_t len = alen + blen, frame = HDR + len + TRAILER;
	uint8_t *f;

	if (w->failed || w->wbroken)
		return -1;
	if (len > VS_WIRE_MAX)
		return fail(w, "message too long to send");
	if (w->out_len + frame > w->out_cap) {
		size_t cap = vs_max(OUT_CAP, frame);

		if (vs_wire_flush(w) < 0)
			return -1;
		if (cap > w->out_cap) {
			uint8_t *n = realloc(w->out, cap);

			if (!n) {
				vs_errno(VS_EXIT_INTERNAL, w->peer, "send");
				w->failed = true;
				return -1;
			}
			w->out = n;
			w->out_cap = cap;
		}
	}
	f = w->out + w->out_len;
	vs_set_le32(f, type);
	vs_set_le32(f + 4, (uint32_t)len);
	if (alen)
		memcpy(f + HDR, a, alen);
	if (blen)
		memcpy(f + HDR + alen, b, blen);
	vs_set_le32(f + HDR + len, XXH32(f, HDR + len, SUM_SEED));
	w->out_len += frame;
	return 0;
}

int
vs_wire_send(struct vs_wire *w, uint32_t type, const void *p, size_t len)
{
	return vs_wire_send2(w, type, p, len, NULL, 0);
}

/* Read exactly @len bytes; 1 on a clean end of stream before any byte. */
static int
read_full(struct vs_wire *w, uint8_t *buf, size_t len, bool eof_ok)
{
	static char why[64];
	double since = vs_now();
	size_t done = 0;

	while (done < len) {
		int ready = wait_fd(w, w->rfd, POLLIN, since);
		ssize_t r;

		if (ready == 0) {
			snprintf(why, sizeof(why), "timed out: nothing received "
			    "for %u seconds", w->timeout);
			w->timed_out = true;
			return fail(w, why);
		}
		r = ready < 0 ? -1 : read(w->rfd, buf + done, len - done);
		if (r < 0 && ((errno == EINTR && !vs_interrupted) ||
		    errno == EAGAIN))
			continue;
		if (r < 0 && errno == EINTR)
			return fail(w, "interrupted");
		if (r < 0)
			return fail(w, strerror(errno));
		if (r == 0) {
			if (done == 0 && eof_ok)
				return 1;
			return fail(w, "connection lost");
		}
		done += (size_t)r;
		w->received += (uint64_t)r;
		since = vs_now();
	}
	return 0;
}

static int
recv_msg(struct vs_wire *w, struct vs_msg *m, bool eof_ok)
{
	uint8_t hdr[HDR], sum[TRAILER];
	uint32_t len;
	int r;

	if (w->failed)
		return -1;
	/* After a failed send, still read what the peer said. */
	if (!w->wbroken)
		vs_wire_flush(w);
	r = read_full(w, hdr, HDR, true);
	if (r == 1)
		return eof_ok ? 1 : fail(w, "connection closed");
	if (r < 0)
		return -1;
	len = vs_le32(hdr + 4);
	if (len > VS_WIRE_MAX)
		return fail_garbage(w, "garbage on the wire (message too "
		    "long)");
	/* The header is kept in front of the payload for the checksum. */
	if (HDR + (size_t)len > w->in_cap) {
		uint8_t *n = realloc(w->in, HDR + (size_t)len);

		if (!n) {
			vs_errno(VS_EXIT_INTERNAL, w->peer, "receive");
			w->failed = true;
			return -1;
		}
		w->in = n;
		w->in_cap = HDR + (size_t)len;
	}
	memcpy(w->in, hdr, HDR);
	if (read_full(w, w->in + HDR, len, false) < 0 ||
	    read_full(w, sum, TRAILER, false) < 0)
		return -1;
	if (XXH32(w->in, HDR + (size_t)len, SUM_SEED) != vs_le32(sum))
		return fail_garbage(w, "garbage on the wire (bad checksum)");
	m->type = vs_le32(hdr);
	m->len = len;
	m->p = w->in + HDR;
	return 0;
}

int
vs_wire_recv(struct vs_wire *w, struct vs_msg *m)
{
	return recv_msg(w, m, false);
}

int
vs_wire_recv_or_eof(struct vs_wire *w, struct vs_msg *m)
{
	return recv_msg(w, m, true);
}

int
vs_wire_parse(const uint8_t *buf, size_t len, struct vs_msg *m, size_t *used)
{
	uint32_t plen;

	if (len < HDR)
		return 1;
	plen = vs_le32(buf + 4);
	if (plen > VS_WIRE_MAX)
		return -1;
	if (len - HDR < (size_t)plen + TRAILER)
		return 1;
	if (XXH32(buf, HDR + plen, SUM_SEED) != vs_le32(buf + HDR + plen))
		return -1;
	m->type = vs_le32(buf);
	m->len = plen;
	m->p = buf + HDR;
	*used = HDR + plen + TRAILER;
	return 0;
}
