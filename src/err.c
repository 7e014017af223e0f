/*
 * err.c - one-line error reporting and the first-error category.
 *
 * Messages look like "vmsync: disk.img: read at offset 4096: Input/output
 * error".  The deepest frame names the file and the cause; callers do not
 * add more lines, so a failure is always exactly one line on stderr.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "vmsync.h"

int vs_verbose;
volatile int vs_interrupted;
bool vs_err_quiet;
static bool demoted;
static enum vs_exit first_error = VS_EXIT_OK;
static char first_text[1200];

static void
emit(const char *prefix, const char *what, const char *fmt, va_list ap,
    int errnum, bool is_error)
{
	char msg[1024], line[1200];

	if (is_error && demoted) {	/* a warning, not the run's error */
		if (vs_verbose < 0)
			return;
		prefix = "warning: ";
		is_error = false;
	}
	vsnprintf(msg, sizeof(msg), fmt, ap);
	snprintf(line, sizeof(line), "%s%s%s%s%s%s", prefix,
	    what ? what : "", what ? ": " : "", msg,
	    errnum ? ": " : "", errnum ? strerror(errnum) : "");
	if (is_error && first_error == VS_EXIT_OK)
		snprintf(first_text, sizeof(first_text), "%s", line);
	if (!is_error || !vs_err_quiet)
		fprintf(stderr, "vmsync: %s\n", line);
}

static void
record(enum vs_exit cat)
{
	if (first_error == VS_EXIT_OK && !demoted)
		first_error = cat;
}

const char *
vs_err_text(void)
{
	return first_error == VS_EXIT_OK ? "" : first_text;
}

void
vs_err(enum vs_exit cat, const char *what, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit("", what, fmt, ap, 0, true);
	va_end(ap);
	record(cat);
}

void
vs_errno(enum vs_exit cat, const char *what, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	emit("", what, fmt, ap, saved, true);
	va_end(ap);
	record(cat);
	errno = saved;
}

void
vs_warn(const char *what, const char *fmt, ...)
{
	va_list ap;

	if (vs_verbose < 0)
		return;
	va_start(ap, fmt);
	emit("warning: ", what, fmt, ap, 0, false);
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
	return first_error;
}

void
vs_err_reset(void)
{
	first_error = VS_EXIT_OK;
	first_text[0] = 0;
}
