/*
 * archive_zstd.c - the zstd stream of a .tar.zst (see archive_zstd.h).
 *
 * Design notes
 * - libarchive's own zstd filter writes frames without zstd's content
 *   checksum, and most of a disk image is stored by zstd as raw blocks:
 *   a flipped bit there went through `zstd -d`, bsdtar and an import
 *   unnoticed.  Here every frame carries its XXH64 checksum, which every
 *   zstd decoder checks.
 * - The stream is cut into pieces of ZPIECE bytes.  Each piece is one
 *   zstd frame of its own, compressed by whichever worker thread is free,
 *   and the frames are given to the sink in order.  A zstd stream is any
 *   number of frames one after another: zstd -d, libarchive (so bsdtar
 *   and an import) and GNU tar read it as one.  zstd's own threads
 *   (ZSTD_c_nbWorkers) make a single frame, but its jobs wait on each
 *   other and on the caller, who copies every byte in and out: on two
 *   CPUs an export kept them busy about 1.5 of the time.  Independent frames
 *   cost the ratio little: level 1 looks back only 512 KiB (0.05 % more
 *   for the bench's guest).
 * - The caller's thread fills pieces, the workers compress them, and a
 *   thread of its own (the giver) hands the frames to the sink, so that
 *   a write that waits for the disk stops neither.  The caller waits
 *   only when every piece is in flight (one a worker and ZSPARE more):
 *   memory is those pieces, an input and an output buffer each, and a
 *   zstd context a worker.
 * - An interrupt reaches only the caller's thread, and cannot wake a
 *   condition variable: the caller looks at vs_interrupted every
 *   ZPOLL_MS while it waits for the giver, and then sends the giver
 *   WAKE_SIGNAL, the one signal it takes (its handler does nothing), so
 *   that a write to a reader that stopped reading ends with EINTR.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "archive_zstd.h"
#include "util.h"
#include "vmsync.h"

#define ZPIECE (4u << 20)	/* stream bytes per frame */
#define ZMAX_THREADS 8		/* workers at most */
#define ZSPARE 3		/* pieces in flight beyond one a worker */
#define ZPOLL_MS 100		/* how often a waiting caller checks */
#define WAKE_SIGNAL SIGUSR1	/* ends the giver's blocked write */

/* One piece: the stream bytes of a frame, then the frame. */
struct piece {
	uint8_t *in;		/* ZPIECE bytes of the stream */
	size_t inlen;		/* how many are filled */
	uint8_t *out;		/* the frame */
	size_t outlen;		/* its length */
	const char *why;	/* or why there is none */
	bool done;		/* out is ready (or why is set) */
};

struct vs_zstd_out {
	int level;
	vs_zstd_sink_fn sink;
	void *arg;
	pthread_mutex_t lock;
	pthread_cond_t queued;	/* a piece was queued, or stop */
	pthread_cond_t done;	/* a piece was compressed, or stop */
	pthread_cond_t freed;	/* a frame was given, failed, or the giver
				 * ended (CLOCK_MONOTONIC) */
	struct piece *pieces;	/* nslots of them, used in turn */
	unsigned nslots;
	uint64_t filled;	/* pieces queued: the next one fills */
	uint64_t taken;		/* pieces a worker took */
	uint64_t given;		/* pieces given to the sink */
	bool stop;		/* the threads end */
	bool failed;		/* a frame could not be made or given: */
	const char *why;	/* zstd's error, or NULL: the sink's */
	int error;		/* the sink's errno */
	pthread_t *threads;
	unsigned nthreads;	/* workers started */
	pthread_t giver;	/* gives frames to the sink, if started */
	bool has_giver;
	bool giver_ended;	/* it returned, or will without the lock */
	ZSTD_CCtx *cctx;	/* the caller's, when there are no workers */
};

/* A compression context for one frame at @level, with its checksum. */
static ZSTD_CCtx *
new_cctx(int level, const char **why)
{
	ZSTD_CCtx *c = ZSTD_createCCtx();
	size_t rc;

	*why = "out of memory";
	if (!c)
		return NULL;
	rc = ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level);
	if (!ZSTD_isError(rc))
		rc = ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
	if (ZSTD_isError(rc)) {
		*why = ZSTD_getErrorName(rc);
		ZSTD_freeCCtx(c);
		return NULL;
	}
	*why = NULL;
	return c;
}

/* Compress @p into its frame with @c. */
static void
compress_piece(ZSTD_CCtx *c, struct piece *p)
{
	size_t n = ZSTD_compress2(c, p->out, ZSTD_compressBound(ZPIECE),
	    p->in, p->inlen);

	p->outlen = ZSTD_isError(n) ? 0 : n;
	p->why = ZSTD_isError(n) ? ZSTD_getErrorName(n) : NULL;
}

/* A worker: compress queued pieces until told to stop. */
static void *
worker(void *arg)
{
	struct vs_zstd_out *z = arg;
	const char *why;
	ZSTD_CCtx *c = new_cctx(z->level, &why);

	pthread_mutex_lock(&z->lock);
	for (;;) {
		struct piece *p;

		while (!z->stop && z->taken == z->filled)
			pthread_cond_wait(&z->queued, &z->lock);
		if (z->stop)
			break;
		p = &z->pieces[z->taken++ % z->nslots];
		pthread_mutex_unlock(&z->lock);
		if (c)
			compress_piece(c, p);
		else
			p->why = why;
		pthread_mutex_lock(&z->lock);
		p->done = true;
		pthread_cond_broadcast(&z->done);
	}
	pthread_mutex_unlock(&z->lock);
	ZSTD_freeCCtx(c);
	return NULL;
}

/* Give @p's frame to the sink (without the lock, one thread at a time):
 * 0, or -1 with zstd's error in *@why or the sink's errno in *@error.  An
 * interrupted run gives nothing more (EINTR): that failure is what wakes
 * a caller waiting for a free piece, as a signal, delivered to the caller
 * (the other threads block signals), wakes no condition variable. */
static int
deliver(struct vs_zstd_out *z, struct piece *p, const char **why,
    int *error)
{
	*why = p->why;
	*error = p->why ? EIO : EINTR;
	if (p->why || vs_interrupted)
		return -1;
	if (z->sink(z->arg, p->out, p->outlen) == 0)
		return 0;
	*error = errno;
	return -1;
}

/* The stream failed: @why (zstd's) or errno @error (the sink's).  Called
 * with the lock held; the first failure is kept. */
static void
set_failed(struct vs_zstd_out *z, const char *why, int error)
{
	if (!z->failed) {
		z->failed = true;
		z->why = why;
		z->error = error;
	}
	pthread_cond_broadcast(&z->freed);
	pthread_cond_broadcast(&z->done);
}

/* The giver: the frames, in order, to the sink, on a thread of its own so
 * that a write that waits (the page cache throttling a fast writer)
 * leaves the caller filling pieces and the workers compressing them. */
static void *
giver(void *arg)
{
	struct vs_zstd_out *z = arg;
	sigset_t wake;

	sigemptyset(&wake);
	sigaddset(&wake, WAKE_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &wake, NULL);
	pthread_mutex_lock(&z->lock);
	for (;;) {
		struct piece *p = &z->pieces[z->given % z->nslots];
		const char *why;
		int rc, error;

		while (!z->stop && !z->failed &&
		    !(z->given < z->filled && p->done))
			pthread_cond_wait(&z->done, &z->lock);
		if (z->stop || z->failed)
			break;
		pthread_mutex_unlock(&z->lock);
		rc = deliver(z, p, &why, &error);
		pthread_mutex_lock(&z->lock);
		if (rc < 0) {
			set_failed(z, why, error);
			break;
		}
		p->inlen = 0;
		p->done = false;
		z->given++;
		pthread_cond_broadcast(&z->freed);
	}
	z->giver_ended = true;
	pthread_cond_broadcast(&z->freed);
	pthread_mutex_unlock(&z->lock);
	return NULL;
}

static void
on_wake(int sig)
{
	(void)sig;
}

/* Wait on z->freed (the lock held) at most ZPOLL_MS; if the run was
 * interrupted meanwhile, break the giver's write. */
static void
wait_freed(struct vs_zstd_out *z)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	t.tv_nsec += ZPOLL_MS * 1000000L;
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&z->freed, &z->lock, &t);
	if (vs_interrupted && z->has_giver && !z->giver_ended)
		pthread_kill(z->giver, WAKE_SIGNAL);
}

/* One worker per CPU this process may keep busy, at most ZMAX_THREADS. */
static unsigned
cpu_threads(void)
{
	unsigned n = vs_cpu_count();

	return n > ZMAX_THREADS ? ZMAX_THREADS : n;
}

/* Stop and join the threads started; the pieces they held are dropped. */
static void
stop_threads(struct vs_zstd_out *z)
{
	pthread_mutex_lock(&z->lock);
	z->stop = true;
	pthread_cond_broadcast(&z->queued);
	pthread_cond_broadcast(&z->done);
	while (z->has_giver && !z->giver_ended)	/* it may be in a write */
		wait_freed(z);
	pthread_mutex_unlock(&z->lock);
	for (unsigned i = 0; i < z->nthreads; i++)
		pthread_join(z->threads[i], NULL);
	if (z->has_giver)
		pthread_join(z->giver, NULL);
	z->nthreads = 0;
	z->has_giver = false;
	z->giver_ended = false;
	z->stop = false;
}

/* Start @want workers and the giver; with none, the caller's thread does
 * all (also when threads cannot be started: slower, still right). */
static void
start_threads(struct vs_zstd_out *z, unsigned want)
{
	while (z->nthreads < want && vs_thread_start(&z->threads[z->nthreads],
	    worker, z) == 0)
		z->nthreads++;
	if (z->nthreads && vs_thread_start(&z->giver, giver, z) == 0)
		z->has_giver = true;
	if (z->nthreads && !z->has_giver)
		stop_threads(z);
}

struct vs_zstd_out *
vs_zstd_out_new(int level, int threads, vs_zstd_sink_fn sink, void *arg,
    const char **why)
{
	struct vs_zstd_out *z = calloc(1, sizeof(*z));
	struct sigaction wake = { .sa_handler = on_wake };	/* no restart */
	pthread_condattr_t attr;
	unsigned want;

	*why = "out of memory";
	if (!z)
		return NULL;
	z->level = level;
	z->sink = sink;
	z->arg = arg;
	pthread_mutex_init(&z->lock, NULL);
	pthread_cond_init(&z->queued, NULL);
	pthread_cond_init(&z->done, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&z->freed, &attr);
	pthread_condattr_destroy(&attr);
	sigemptyset(&wake.sa_mask);
	sigaction(WAKE_SIGNAL, &wake, NULL);
	/* Checks the level, and compresses when there are no workers. */
	if (!(z->cctx = new_cctx(level, why)))
		goto fail;
	want = threads < 0 ? cpu_threads() : (unsigned)threads;
	z->nslots = want ? want + ZSPARE : 1;
	*why = "out of memory";
	if (!(z->pieces = calloc(z->nslots, sizeof(*z->pieces))) ||
	    !(z->threads = calloc(want ? want : 1, sizeof(*z->threads))))
		goto fail;
	for (unsigned i = 0; i < z->nslots; i++)
		if (!(z->pieces[i].in = malloc(ZPIECE)) ||
		    !(z->pieces[i].out = malloc(ZSTD_compressBound(ZPIECE))))
			goto fail;
	start_threads(z, want);
	*why = NULL;
	return z;
fail:
	vs_zstd_out_free(z);
	return NULL;
}

unsigned
vs_zstd_out_threads(const struct vs_zstd_out *z)
{
	return z->nthreads;
}

/* Has the stream failed?  Then -1, with its failure: the piece the
 * caller would fill next may be the one the giver still holds. */
static int
check_failed(struct vs_zstd_out *z, const char **why)
{
	bool failed;

	pthread_mutex_lock(&z->lock);
	failed = z->failed;
	pthread_mutex_unlock(&z->lock);
	if (!failed)
		return 0;
	*why = z->why;
	errno = z->error;
	return -1;
}

/* Queue the piece being filled, and wait until the next one is free;
 * once the stream failed, -1 again. */
static int
queue_piece(struct vs_zstd_out *z, const char **why)
{
	struct piece *p = &z->pieces[z->filled % z->nslots];
	int rc = 0;

	if (!z->nthreads) {		/* all on this thread */
		const char *w;
		int error;

		if (!z->failed) {
			compress_piece(z->cctx, p);
			if (deliver(z, p, &w, &error) < 0)
				set_failed(z, w, error);
		}
		if (z->failed)
			goto fail;
		p->inlen = 0;
		z->filled++;
		z->given++;
		return 0;
	}
	pthread_mutex_lock(&z->lock);
	/* Nothing more once failed: libarchive still writes the archive's
	 * end and closes us after a failed write, and this slot may be the
	 * failed frame's. */
	if (!z->failed) {
		z->filled++;
		pthread_cond_signal(&z->queued);
	}
	while (!z->failed && z->filled - z->given == z->nslots)
		wait_freed(z);
	if (z->failed)
		rc = -1;
	pthread_mutex_unlock(&z->lock);
	if (rc == 0)
		return 0;
fail:
	*why = z->why;
	errno = z->error;
	return -1;
}

int
vs_zstd_out_write(struct vs_zstd_out *z, const void *buf, size_t len,
    const char **why)
{
	*why = NULL;
	if (check_failed(z, why) < 0)
		return -1;
	while (len) {
		struct piece *p = &z->pieces[z->filled % z->nslots];
		size_t n = ZPIECE - p->inlen < len ? ZPIECE - p->inlen : len;

		memcpy(p->in + p->inlen, buf, n);
		p->inlen += n;
		buf = (const uint8_t *)buf + n;
		len -= n;
		if (p->inlen == ZPIECE && queue_piece(z, why) < 0)
			return -1;
	}
	return 0;
}

int
vs_zstd_out_end(struct vs_zstd_out *z, const char **why)
{
	*why = NULL;
	if (check_failed(z, why) < 0)
		return -1;
	/* The last piece; an empty stream is still one (empty) frame. */
	if ((z->pieces[z->filled % z->nslots].inlen || !z->filled) &&
	    queue_piece(z, why) < 0)
		return -1;
	pthread_mutex_lock(&z->lock);
	while (!z->failed && z->given < z->filled)
		wait_freed(z);
	pthread_mutex_unlock(&z->lock);
	return check_failed(z, why);
}

void
vs_zstd_out_free(struct vs_zstd_out *z)
{
	if (!z)
		return;
	stop_threads(z);
	for (unsigned i = 0; z->pieces && i < z->nslots; i++) {
		free(z->pieces[i].in);
		free(z->pieces[i].out);
	}
	free(z->pieces);
	free(z->threads);
	ZSTD_freeCCtx(z->cctx);
	pthread_cond_destroy(&z->queued);
	pthread_cond_destroy(&z->done);
	pthread_cond_destroy(&z->freed);
	pthread_mutex_destroy(&z->lock);
	free(z);
}
