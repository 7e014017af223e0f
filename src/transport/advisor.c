/*
 * advisor.c - advice to the kernel from a thread of its own (see
 * advisor.h).
 *
 * Design notes
 * - One thread, a fixed queue: memory does not grow with the advice
 *   given, and a caller that outruns the thread gives its advice itself
 *   (the queue full is back-pressure, never a wait).
 * - Advice is carried out in the order given, so read-ahead comes in
 *   the order the caller will read.
 * - The log (VMSYNC_DEBUG_HINTS) is written where the advice is carried
 *   out, once the kernel took it: it shows the read-ahead asked of the
 *   kernel, not the advice queued.
 * - The thread blocks every signal: interrupts reach the main thread.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "advisor.h"
#include "../util.h"

#define ADVICE_QUEUE 256

struct advice {
	enum vs_advice what;
	uint64_t off, len;
};

struct vs_advisor {
	int fd;				/* the file advised about */
	FILE *log;			/* a line per read-ahead, or NULL */
	pthread_t thread;
	bool started;			/* the thread runs */
	bool failed;			/* it could not start: advise inline */
	pthread_mutex_t mu;		/* guards everything below */
	pthread_cond_t cv;		/* queued, given or stopping */
	struct advice queue[ADVICE_QUEUE];
	unsigned head, n;		/* the queue: first, how many */
	bool busy;			/* the thread gives one now */
	bool stop;			/* the thread must end */
};

static void
give(struct vs_advisor *a, const struct advice *adv)
{
	if (adv->what == VS_ADVISE_WRITEBACK) {
		sync_file_range(a->fd, (off_t)adv->off, (off_t)adv->len,
		    SYNC_FILE_RANGE_WRITE);
		return;
	}
	if (adv->what == VS_ADVISE_DROP) {
		posix_fadvise(a->fd, (off_t)adv->off, (off_t)adv->len,
		    POSIX_FADV_DONTNEED);
		return;
	}
	if (posix_fadvise(a->fd, (off_t)adv->off, (off_t)adv->len,
	    POSIX_FADV_WILLNEED) == 0 && a->log)
		fprintf(a->log, "prefetch %llu %llu\n",
		    (unsigned long long)adv->off, (unsigned long long)adv->len);
}

static void *
advisor_main(void *arg)
{
	struct vs_advisor *a = arg;

	pthread_mutex_lock(&a->mu);
	for (;;) {
		struct advice next;

		while (!a->n && !a->stop)
			pthread_cond_wait(&a->cv, &a->mu);
		if (!a->n)
			break;
		next = a->queue[a->head];
		a->head = (a->head + 1) % ADVICE_QUEUE;
		a->n--;
		a->busy = true;
		pthread_mutex_unlock(&a->mu);
		give(a, &next);
		pthread_mutex_lock(&a->mu);
		a->busy = false;
		pthread_cond_broadcast(&a->cv);
	}
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

struct vs_advisor *
vs_advisor_new(int fd)
{
	struct vs_advisor *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	a->fd = fd;
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->cv, NULL);
	return a;
}

void
vs_advisor_log(struct vs_advisor *a, FILE *log)
{
	if (a)
		a->log = log;
}

/* Start the thread; false if it cannot run.  Called with mu held. */
static bool
start(struct vs_advisor *a)
{
	if (a->started || a->failed)
		return a->started;
	a->started = vs_thread_start(&a->thread, advisor_main, a) == 0;
	a->failed = !a->started;
	return a->started;
}

void
vs_advise(struct vs_advisor *a, enum vs_advice what, uint64_t off,
    uint64_t len)
{
	struct advice adv = { .what = what, .off = off, .len = len };

	if (!len)
		return;
	pthread_mutex_lock(&a->mu);
	if (!start(a) || a->n == ADVICE_QUEUE) {
		pthread_mutex_unlock(&a->mu);
		give(a, &adv);
		return;
	}
	a->queue[(a->head + a->n) % ADVICE_QUEUE] = adv;
	a->n++;
	pthread_cond_broadcast(&a->cv);
	pthread_mutex_unlock(&a->mu);
}

void
vs_advisor_drain(struct vs_advisor *a)
{
	if (!a)
		return;
	pthread_mutex_lock(&a->mu);
	while (a->n || a->busy)
		pthread_cond_wait(&a->cv, &a->mu);
	pthread_mutex_unlock(&a->mu);
}

void
vs_advisor_free(struct vs_advisor *a)
{
	if (!a)
		return;
	pthread_mutex_lock(&a->mu);
	a->stop = true;
	pthread_cond_broadcast(&a->cv);
	pthread_mutex_unlock(&a->mu);
	if (a->started)
		pthread_join(a->thread, NULL);
	pthread_mutex_destroy(&a->mu);
	pthread_cond_destroy(&a->cv);
	free(a);
}
