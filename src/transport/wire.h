/*
 * wire.h - framed, checksummed messages over a pair of file descriptors.
 *
 * A frame is: u32 type, u32 payload length (little-endian), the payload,
 * then XXH32 of all of that.  Lengths are checked against VS_WIRE_MAX
 * before anything is allocated.  Small messages are gathered in an output
 * buffer and written when it fills, before a receive, or on flush.
 */
#ifndef VS_WIRE_H
#define VS_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../vmsync.h"

/* The largest payload: twice the largest WRITE (VS_PROTO_MAX_CHUNK) and
 * 4 KiB; proto.h asserts that every message fits. */
#define VS_WIRE_MAX	((8u << 20) + 4096)

struct vs_wire {
	int rfd, wfd;		/* read from, write to */
	const char *peer;	/* for messages: "host", "server", ... */
	const char *image;	/* the image the session carries, as the peer
				 * names it, for a failure of the stream;
				 * NULL: none yet */
	enum vs_exit cat;	/* exit category of a wire failure */
	uint64_t sent;		/* bytes written, framing included */
	uint64_t received;	/* bytes read, framing included */
	uint64_t bwlimit;	/* bytes per second, 0 for none */
	double bw_start;	/* when the first byte was sent */
	uint8_t *in;		/* payload of the last message received */
	size_t in_cap;		/* its allocation */
	uint8_t *out;		/* frames waiting to be written */
	size_t out_len;		/* bytes in it */
	size_t out_cap;		/* its allocation */
	unsigned timeout;	/* seconds of silence that end the session,
				 * 0: wait for ever */
	int wflags;		/* wfd's file status flags before the timeout */
	bool failed;		/* a receive failed (reported): stop */
	bool garbage;		/* it failed on bytes that are no frame: the
				 * peer is there to be told so */
	bool timed_out;		/* it failed on the timeout: the peer is
				 * stuck, do not wait for it */
	bool wbroken;		/* a send failed (not reported yet) */
	const char *why;	/* why the send failed */
};

struct vs_msg {
	uint32_t type;		/* message type */
	uint32_t len;		/* payload bytes */
	const uint8_t *p;	/* payload, valid until the next receive */
};

void vs_wire_init(struct vs_wire *w, int rfd, int wfd, const char *peer,
    enum vs_exit cat);
void vs_wire_free(struct vs_wire *w);
/* Report a failure of the stream (@why): the peer, and the image when
 * the session carries one, so that a run of several names which. */
void vs_wire_err(const struct vs_wire *w, const char *why);
/* End the session when nothing can be read, or nothing written, for
 * @seconds (0: never).  Makes the write side non-blocking until
 * vs_wire_free(). */
void vs_wire_set_timeout(struct vs_wire *w, unsigned seconds);
/* Queue a message (written at the latest by the next flush or recv). */
int vs_wire_send(struct vs_wire *w, uint32_t type, const void *p,
    size_t len);
/* Queue a message whose payload is in two pieces (header and data). */
int vs_wire_send2(struct vs_wire *w, uint32_t type, const void *a,
    size_t alen, const void *b, size_t blen);
int vs_wire_flush(struct vs_wire *w);
/* A failed send is not reported at once: the peer may have sent an
 * ERROR explaining it, which the next vs_wire_recv() still reads.  It
 * reports the send failure only if nothing can be read. */
/* Flush, then read one message.  0, or -1 with the error reported. */
int vs_wire_recv(struct vs_wire *w, struct vs_msg *m);
/* The same, but 1 (nothing reported) if the peer closed the stream
 * cleanly before a new message. */
int vs_wire_recv_or_eof(struct vs_wire *w, struct vs_msg *m);
/* Parse one frame from @buf (for tests and the fuzzer): 0 and @m set,
 * 1 if more bytes are needed, -1 if the frame is invalid. */
int vs_wire_parse(const uint8_t *buf, size_t len, struct vs_msg *m,
    size_t *used);

#endif
