/*
 * err.c - one-line error reporting and the first-error category.
 *
 * Messages look like "vmsync: disk.img: read at offset 4096: Input/output
 * error".  The deepest frame names the file and the cause; callers do not
 * add more lines, so a failure is always exactly one line on stderr.
 * Reader threads report errors too: the first error's category and text
 * are kept under one lock, so they always belong to the same error.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "vmsync.h"

int vs_verbose;
volatile atomic_int vs_interrupted;
bool vs_err_quiet;
static bool demoted;
static pthread_mutex_t first_lock = PTHREAD_MUTEX_INITIALIZER;
static enum vs_exit first_error = VS_EXIT_OK;	/* under first_lock */
static char first_text[1200];			/* under first_lock */

/* Print one line; an error (@cat not VS_EXIT_OK) that is the run's first
 * is also kept, with its category. */
static void
emit(const char *prefix, const char *what, const char *fmt, va_list ap,
    int errnum, enum vs_exit cat)
{
	char msg[1024], line[1200];

	if (cat != VS_EXIT_OK && demoted) {	/* a warning, not an error */
		if (vs_verbose < 0)
			return;
		prefix = "warning: ";
		cat = VS_EXIT_OK;
	}
	vsnprintf(msg, sizeof(msg), fmt, ap);
	snprintf(line, sizeof(line), "%s%s%s%s%s%s", prefix,
	    what ? what : "", what ? ": " : "", msg,
	    errnum ? ": " : "", errnum ? strerror(errnum) : "");
	if (cat != VS_EXIT_OK) {
		pthread_mutex_lock(&first_lock);
		if (first_error == VS_EXIT_OK) {
			first_error = cat;
			snprintf(first_text, sizeof(first_text), "%s", line);
		}
		pthread_mutex_unlock(&first_lock);
	}
	if (cat == VS_EXIT_OK || !vs_err_quiet)
		fprintf(stderr, "vmsync: %s\n", line);
}

/* The text stays valid: once set, it changes only by vs_err_reset(),
 * which the main thread calls between images. */
const char *
vs_err_text(void)
{
	enum vs_exit cat = vs_err_first();

	return cat == VS_EXIT_OK ? "" : first_text;
}

void
vs_err(enum vs_exit cat, const char *what, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit("", what, fmt, ap, 0, cat);
	va_end(ap);
}

void
vs_errno(enum vs_exit cat, const char *what, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	emit("", what, fmt, ap, saved, cat);
	va_end(ap);
	errno = saved;
}

void
vs_warn(const char *what, const char *fmt, ...)
{
	va_list ap;

	if (vs_verbose < 0)
		return;
	va_start(ap, fmt);
	emit("warning: ", what, fmt, ap, 0, VS_EXIT_OK);
	va_end(ap);
}

void
vs_info(int level, const char *fmt, ...)
{
	va_list ap;

	if (vs_verbose < level)
		return;
	va_start(ap, fmt);
	fputs("vmsync: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

void
vs_err_demote(bool on)
{
	demoted = on;
}

enum vs_exit
vs_err_first(void)
{
	enum vs_exit cat;

	pthread_mutex_lock(&first_lock);
	cat = first_error;
	pthread_mutex_unlock(&first_lock);
	return cat;
}

void
vs_err_reset(void)
{
	pthread_mutex_lock(&first_lock);
	first_error = VS_EXIT_OK;
	first_text[0] = 0;
	pthread_mutex_unlock(&first_lock);
}
