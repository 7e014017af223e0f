/*
 * vmsync.h - types and helpers shared by every part of vmsync.
 *
 * Design notes
 * - Every fallible function returns -1 (or NULL) after recording a one-line
 *   error with vs_err(); nothing below main() exits.  The first error sets
 *   the run's category, which main() turns into a pinned exit code.
 * - Offsets and lengths that come from an image, a target or the wire are
 *   combined only through the checked helpers in util.h.
 */
#ifndef VMSYNC_H
#define VMSYNC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VS_VERSION "0.1.0"

/* Exit codes: pinned, documented in man/vmsync.1; never renumber. */
enum vs_exit {
	VS_EXIT_OK = 0,		/* every image synced */
	VS_EXIT_USAGE = 1,	/* bad command line */
	VS_EXIT_SOURCE = 2,	/* source missing, unreadable, corrupt, unsupported */
	VS_EXIT_TARGET = 3,	/* target unwritable, no space, refused */
	VS_EXIT_PARTIAL = 4,	/* interrupted, or only some images synced */
	VS_EXIT_INTERNAL = 5,	/* a bug or resource failure in vmsync itself */
	VS_EXIT_LOCKED = 6,	/* another vmsync holds the target */
	VS_EXIT_DIFFERS = 7,	/* --verify: the backup differs from its
				 * index, or is partial */
};

/* What an extent of an image holds. */
enum vs_extent_type {
	VS_EXT_DATA = 0,	/* allocated: must be read */
	VS_EXT_ZERO = 1,	/* hole or known zeros: never read */
};

struct vs_extent {
	uint64_t off;		/* start, bytes */
	uint64_t len;		/* length, bytes, > 0 */
	enum vs_extent_type type; /* DATA or ZERO */
};

/* What one sync did; filled by the engine and the target. */
struct vs_stats {
	uint64_t virtual_size;	/* bytes of the source disk */
	uint64_t guest_size;	/* the file view's guest disk size (virtual_size
				 * is then the file's size); 0: not a file
				 * view, or not known */
	uint64_t data_bytes;	/* mapped as DATA by the source's map */
	uint64_t read_bytes;	/* read from the source */
	uint64_t target_read_bytes; /* read from the target to compare */
	uint64_t unchanged_bytes; /* data found equal (index or target) */
	uint64_t skipped_bytes;	/* unchanged by change detection, not read */
	uint64_t written_bytes;	/* written to the target */
	uint64_t punched_bytes;	/* deallocated or zeroed on the target */
	uint64_t wire_sent;	/* bytes sent to the remote side */
	uint64_t wire_received;	/* bytes received from it */
	double elapsed;		/* seconds */
	const char *index_state; /* "trusted", "rebuilt", "new", "none" */
	bool dry_run;		/* nothing was written (-n) */
};

/* Verbosity and output options shared by every module. */
extern int vs_verbose;		/* 0 normal, 1 -v, 2 -vv; -1 with -q */

/* Record an error of category @cat about @what (a path or name). */
void vs_err(enum vs_exit cat, const char *what, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Same, with ": strerror(errno)" appended. */
void vs_errno(enum vs_exit cat, const char *what, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* A warning: printed unless -q, never changes the exit code. */
void vs_warn(const char *what, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* An informational line, printed at verbosity >= @level. */
void vs_info(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* The first error's line, without "vmsync: " ("" if none). */
const char *vs_err_text(void);
/* Errors are recorded but not printed (the server sends them instead). */
extern bool vs_err_quiet;

/* While on, errors are printed as warnings and not recorded: for
 * optional work whose failure does not fail the run. */
void vs_err_demote(bool on);

/* Category of the first error since the last vs_err_reset(), or OK. */
enum vs_exit vs_err_first(void);
/* Forget the recorded category (between images of one run). */
void vs_err_reset(void);
/* Set by the SIGINT/SIGTERM handler; long loops check it, also on
 * other threads (atomic: a plain int read there is a data race). */
extern volatile atomic_int vs_interrupted;

#endif
