/*
 * wirepool.c - WRITE payloads compressed ahead (see wirepool.h).
 *
 * Design notes
 * - The engine's thread used to compress every block it pushed, one after
 *   the other, while ssh, sshd and the other side waited for it: a first
 *   push of 770 MiB on two CPUs spent 1.5 s of its 4.4 s compressing on
 *   that thread.  Now the caller copies each block into a slot and goes
 *   on; WIREPOOL_THREADS threads compress the slots, oldest first.
 * - Only the caller sends, in the order the blocks were put: the wire
 *   stays single-threaded and the other side sees the same stream as if
 *   each block had been compressed in turn.  The ready blocks at the head
 *   go whenever a block is put; with every slot taken, the caller waits
 *   for the oldest.
 * - Whatever else the caller sends must follow the blocks put before it
 *   (a RECORD must never reach the other side before the data it
 *   describes): it flushes first.
 * - Unless a codec was asked for, whether a block is compressed at all is
 *   chosen by timing the caller's puts both ways (wireadapt.h): a block
 *   put to go as it is is ready to send at once, in its turn.
 * - Memory: WIREPOOL_SLOTS slots, each a block and its compressed bound.
 * - The threads block every signal: interrupts reach the main thread.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "wireadapt.h"
#include "wirecomp.h"
#include "wirepool.h"
#include "../util.h"

#define WIREPOOL_THREADS 2
#define WIREPOOL_SLOTS (2 * WIREPOOL_THREADS)

enum slot_state {
	SLOT_FREE,		/* the caller may fill it */
	SLOT_QUEUED,		/* filled, waiting for a thread */
	SLOT_BUSY,		/* being compressed */
	SLOT_DONE,		/* ready to send */
};

struct slot {
	uint8_t *in;			/* the block, max_len bytes */
	uint8_t *out;			/* compressed, its bound */
	size_t len;			/* bytes in in */
	size_t clen;			/* bytes in out; 0: send in as is */
	uint64_t off;			/* where the block goes */
	enum slot_state state;
};

struct vs_wirepool {
	uint32_t codec;
	int level;
	size_t cap;			/* bytes of each out */
	vs_wirepool_send_fn send;
	void *arg;
	bool failed;			/* a send failed: send nothing more */
	struct vs_wireadapt adapt;	/* compress or not (the caller's) */
	pthread_t thread[WIREPOOL_THREADS];
	int nthreads;			/* started; 0: compress inline */
	pthread_mutex_t mu;		/* guards what follows */
	pthread_cond_t cv;		/* any change of state */
	struct slot slot[WIREPOOL_SLOTS];
	unsigned head, count;		/* the oldest slot queued; how many */
	bool stop;			/* the threads must end */
};

static void
compress_slot(struct vs_wirepool *p, struct slot *s)
{
	s->clen = vs_wirecomp(p->codec, p->level, s->in, s->len, s->out,
	    p->cap);
}

static void *
worker_main(void *arg)
{
	struct vs_wirepool *p = arg;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		struct slot *s = NULL;

		for (unsigned i = 0; i < p->count && !s; i++) {
			struct slot *t = &p->slot[(p->head + i) %
			    WIREPOOL_SLOTS];

			if (t->state == SLOT_QUEUED)
				s = t;
		}
		if (!s) {
			if (p->stop)
				break;
			pthread_cond_wait(&p->cv, &p->mu);
			continue;
		}
		s->state = SLOT_BUSY;
		pthread_mutex_unlock(&p->mu);
		compress_slot(p, s);
		pthread_mutex_lock(&p->mu);
		s->state = SLOT_DONE;
		pthread_cond_broadcast(&p->cv);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

struct vs_wirepool *
vs_wirepool_new(uint32_t codec, int level, size_t max_len,
    uint64_t adapt_unit, vs_wirepool_send_fn send, void *arg)
{
	struct vs_wirepool *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	*p = (struct vs_wirepool){ .codec = codec, .level = level,
	    .cap = vs_wirecomp_bound(max_len), .send = send, .arg = arg };
	vs_wireadapt_init(&p->adapt, adapt_unit);
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	for (int i = 0; i < WIREPOOL_SLOTS; i++)
		if (!(p->slot[i].in = malloc(max_len)) ||
		    !(p->slot[i].out = malloc(p->cap))) {
			vs_wirepool_free(p);
			return NULL;
		}
	for (int i = 0; i < WIREPOOL_THREADS &&
	    vs_thread_start(&p->thread[i], worker_main, p) == 0; i++)
		p->nthreads++;
	return p;
}

/* Send the oldest slot, which is done; called with mu held, which is
 * let go during the send (the threads never touch a done slot). */
static int
send_head(struct vs_wirepool *p)
{
	struct slot *s = &p->slot[p->head];
	int rc;

	pthread_mutex_unlock(&p->mu);
	rc = p->failed ? -1 : p->send(p->arg, s->off, (uint32_t)s->len,
	    s->clen ? p->codec : VS_WIRE_NONE, s->clen ? s->out : s->in,
	    s->clen ? s->clen : s->len);
	pthread_mutex_lock(&p->mu);
	if (rc < 0)
		p->failed = true;
	s->state = SLOT_FREE;
	p->head = (p->head + 1) % WIREPOOL_SLOTS;
	p->count--;
	return rc;
}

/* Send the done slots at the head; with @all, wait for and send every
 * slot queued.  Called with mu held. */
static int
drain(struct vs_wirepool *p, bool all)
{
	while (p->count > 0) {
		if (p->slot[p->head].state != SLOT_DONE) {
			if (!all)
				break;
			pthread_cond_wait(&p->cv, &p->mu);
			continue;
		}
		if (send_head(p) < 0)
			return -1;
	}
	return p->failed ? -1 : 0;
}

int
vs_wirepool_put(struct vs_wirepool *p, const void *buf, size_t len,
    uint64_t off)
{
	/* Timed when the caller comes, before any wait. */
	bool zip = vs_wireadapt_zip(&p->adapt, len, vs_now());
	struct slot *s;
	int rc;

	pthread_mutex_lock(&p->mu);
	/* Every slot taken: wait for the oldest and send it. */
	while (!p->failed && p->count == WIREPOOL_SLOTS) {
		if (p->slot[p->head].state == SLOT_DONE)
			send_head(p);
		else
			pthread_cond_wait(&p->cv, &p->mu);
	}
	if (p->failed) {
		pthread_mutex_unlock(&p->mu);
		return -1;
	}
	s = &p->slot[(p->head + p->count) % WIREPOOL_SLOTS];
	memcpy(s->in, buf, len);
	s->len = len;
	s->off = off;
	s->state = SLOT_QUEUED;
	p->count++;
	if (!zip) {
		/* As it is: ready to send in its turn. */
		s->clen = 0;
		s->state = SLOT_DONE;
	} else if (p->nthreads == 0) {
		/* No threads: compress here, as if put and taken at once. */
		compress_slot(p, s);
		s->state = SLOT_DONE;
	}
	pthread_cond_broadcast(&p->cv);
	rc = drain(p, false);
	pthread_mutex_unlock(&p->mu);
	return rc;
}

int
vs_wirepool_flush(struct vs_wirepool *p)
{
	int rc;

	pthread_mutex_lock(&p->mu);
	rc = drain(p, true);
	pthread_mutex_unlock(&p->mu);
	return rc;
}

bool
vs_wirepool_pending(struct vs_wirepool *p, uint64_t off, uint64_t len)
{
	bool hit = false;

	pthread_mutex_lock(&p->mu);
	for (unsigned i = 0; i < p->count && !hit; i++) {
		const struct slot *s = &p->slot[(p->head + i) %
		    WIREPOOL_SLOTS];

		hit = s->off < off + len && off < s->off + s->len;
	}
	pthread_mutex_unlock(&p->mu);
	return hit;
}

void
vs_wirepool_free(struct vs_wirepool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	for (int i = 0; i < p->nthreads; i++)
		pthread_join(p->thread[i], NULL);
	for (int i = 0; i < WIREPOOL_SLOTS; i++) {
		free(p->slot[i].in);
		free(p->slot[i].out);
	}
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p);
}
