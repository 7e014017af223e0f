/*
 * wirepool.h - WRITE payloads compressed ahead, on threads of their own,
 * and sent in the order they were put.
 */
#ifndef VS_WIREPOOL_H
#define VS_WIREPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Sends one WRITE: @len bytes at @off, as @dlen bytes of @data encoded
 * with @codec (VS_WIRE_NONE: as they are).  0, or -1 (reported). */
typedef int (*vs_wirepool_send_fn)(void *arg, uint64_t off, uint32_t len,
    uint32_t codec, const void *data, size_t dlen);

struct vs_wirepool;

/* A pool compressing blocks of at most @max_len bytes with @codec at
 * @level (0: its default), sending them through @send(@arg, ...) from the
 * caller's thread only.  With @adapt_unit, blocks are compressed only
 * where that is not slower, timed in runs of that many bytes
 * (wireadapt.h); with 0, every block worth it is.  NULL if out of memory;
 * without threads it compresses on the caller's thread. */
struct vs_wirepool *vs_wirepool_new(uint32_t codec, int level,
    size_t max_len, uint64_t adapt_unit, vs_wirepool_send_fn send,
    void *arg);
/* Queue a copy of @len bytes of @buf (at @off): sends the blocks ahead
 * that are ready, and waits for the oldest when every slot is taken.
 * -1 once a send failed. */
int vs_wirepool_put(struct vs_wirepool *p, const void *buf, size_t len,
    uint64_t off);
/* Send every block queued, in order.  Anything else sent on the wire
 * must follow the blocks put before it: flush first. */
int vs_wirepool_flush(struct vs_wirepool *p);
/* Does a block still queued overlap [off, off + len)? */
bool vs_wirepool_pending(struct vs_wirepool *p, uint64_t off, uint64_t len);
/* Stop the threads and drop what is still queued (NULL is allowed). */
void vs_wirepool_free(struct vs_wirepool *p);

#endif
