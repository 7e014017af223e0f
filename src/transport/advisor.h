/*
 * advisor.h - advice to the kernel about a file, given from a thread of
 * its own.
 *
 * Asking the kernel to read a range ahead (POSIX_FADV_WILLNEED) or to
 * start writing a range back (sync_file_range) returns only once the I/O
 * is submitted: on btrfs that means looking up extents and checksums,
 * maybe reading them from disk, and checksumming the pages written.  The
 * advisor takes that off the caller's path.  Advice is only advice: it
 * is never reported as failing (a failed writeback shows at fdatasync).
 */
#ifndef VS_ADVISOR_H
#define VS_ADVISOR_H

#include <stdint.h>
#include <stdio.h>

enum vs_advice {
	VS_ADVISE_READ_AHEAD,	/* POSIX_FADV_WILLNEED */
	VS_ADVISE_WRITEBACK,	/* sync_file_range(SYNC_FILE_RANGE_WRITE) */
	VS_ADVISE_DROP,		/* POSIX_FADV_DONTNEED: clean pages leave */
};

struct vs_advisor;

/* An advisor for @fd, which must stay open until vs_advisor_free();
 * NULL if out of memory.  Its thread starts with the first advice. */
struct vs_advisor *vs_advisor_new(int fd);
/* Append "prefetch OFF LEN" to @log for each read-ahead once the kernel
 * took it (NULL @log: no log; NULL @a is allowed).  Set before the first
 * advice; @log must stay open until vs_advisor_free(). */
void vs_advisor_log(struct vs_advisor *a, FILE *log);
/* Queue advice about [off, off + len).  It is given at once, on the
 * caller's path, when the queue is full or the thread cannot start. */
void vs_advise(struct vs_advisor *a, enum vs_advice what, uint64_t off,
    uint64_t len);
/* Return once every advice queued has been given (NULL is allowed). */
void vs_advisor_drain(struct vs_advisor *a);
/* Drain, stop the thread and free @a (NULL is allowed). */
void vs_advisor_free(struct vs_advisor *a);

#endif
