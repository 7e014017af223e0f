/*
 * archive_lib.c - libarchive, loaded the first time an archive is read or
 * written.
 *
 * Design notes
 * - libarchive brings libxml2, ICU and libstdc++ with it: loading them
 *   from a cold cache took 18-29 ms at every start (a test program linked
 *   with and without it, after drop_caches), which a run that touches no
 *   archive paid as well: a local incremental run takes about 100 ms, a
 *   push starts vmsync on both sides.
 * - So vmsync is not linked with libarchive.  This file defines the
 *   libarchive functions vmsync calls, with their own names and
 *   prototypes (the headers check them); each calls the function of that
 *   name in the library, which is opened with dlopen() on first use.
 *   The executable does not export these names, so libarchive's calls to
 *   its own functions still reach its own.
 * - Every use starts with archive_read_new(), archive_write_new() or
 *   archive_entry_new(): where the library cannot be loaded they return
 *   NULL with errno ELIBACC, and their callers report it with
 *   vs_libarchive_failed().  The others are only called with what those
 *   returned, so the library is there.
 */
#include <archive.h>
#include <archive_entry.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "archive_lib.h"

#define VS_LIBARCHIVE_SONAME "libarchive.so.13"

/* The functions below, by name: each one's pointer in the library. */
#define LA_FUNCS(X)							\
	X(archive_entry_filetype) X(archive_entry_free)			\
	X(archive_entry_hardlink) X(archive_entry_mtime)		\
	X(archive_entry_mtime_nsec) X(archive_entry_new)		\
	X(archive_entry_pathname) X(archive_entry_perm)			\
	X(archive_entry_set_filetype) X(archive_entry_set_mtime)	\
	X(archive_entry_set_pathname) X(archive_entry_set_perm)		\
	X(archive_entry_set_size) X(archive_entry_size)			\
	X(archive_entry_size_is_set) X(archive_entry_sparse_add_entry)	\
	X(archive_entry_sparse_count) X(archive_entry_sparse_next)	\
	X(archive_entry_sparse_reset) X(archive_entry_symlink)		\
	X(archive_errno) X(archive_error_string) X(archive_filter_bytes) \
	X(archive_read_data) X(archive_read_data_block)			\
	X(archive_read_free) X(archive_read_header_position)		\
	X(archive_read_new) X(archive_read_next_header)			\
	X(archive_read_open1) X(archive_read_open_filename)		\
	X(archive_read_set_callback_data)				\
	X(archive_read_set_read_callback)				\
	X(archive_read_set_skip_callback)				\
	X(archive_read_support_filter_all)				\
	X(archive_read_support_filter_bzip2)				\
	X(archive_read_support_filter_xz)				\
	X(archive_read_support_filter_zstd)				\
	X(archive_read_support_format_tar) X(archive_set_error)		\
	X(archive_write_add_filter_gzip) X(archive_write_add_filter_xz)	\
	X(archive_write_close) X(archive_write_data)			\
	X(archive_write_finish_entry) X(archive_write_free)		\
	X(archive_write_header) X(archive_write_new)			\
	X(archive_write_open2) X(archive_write_set_bytes_in_last_block)	\
	X(archive_write_set_bytes_per_block)				\
	X(archive_write_set_filter_option) X(archive_write_set_format_pax)

static struct {
#define LA_FIELD(f) __typeof__(f) *f;
	LA_FUNCS(LA_FIELD)
#undef LA_FIELD
} la;
static bool loaded;
static char failure[256];	/* why it could not be loaded */
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void
load(void)
{
	void *h = dlopen(VS_LIBARCHIVE_SONAME, RTLD_NOW | RTLD_LOCAL);

	if (!h) {
		snprintf(failure, sizeof(failure), "%s", dlerror());
		return;
	}
#define LA_LOAD(f)							\
	if (!(la.f = (__typeof__(la.f))dlsym(h, #f))) {		\
		snprintf(failure, sizeof(failure), "%s has no %s",	\
		    VS_LIBARCHIVE_SONAME, #f);				\
		return;							\
	}
	LA_FUNCS(LA_LOAD)
#undef LA_LOAD
	loaded = true;		/* kept loaded until the process ends */
}

void
vs_libarchive_failed(enum vs_exit cat, const char *name)
{
	if (errno == ELIBACC && !loaded)
		vs_err(cat, name, "archives need libarchive (Debian package "
		    "libarchive13): %s", failure);
	else
		vs_errno(cat, name, "libarchive");
}

/* Before a constructor: is the library there? */
static bool
have(void)
{
	pthread_once(&once, load);
	if (!loaded)
		errno = ELIBACC;
	return loaded;
}

/* Before any other call: the object it is given came from the library. */
static void
need(void)
{
	pthread_once(&once, load);
	if (!loaded)
		abort();
}

/* A function of @ret called with @params, passing @args on. */
#define LA_CALL(ret, f, params, args)					\
ret f params								\
{									\
	need();								\
	return la.f args;						\
}
#define LA_NEW(ret, f)							\
ret f(void)								\
{									\
	return have() ? la.f() : NULL;					\
}

typedef struct archive *archive_p;
typedef struct archive_entry *entry_p;

LA_NEW(struct archive_entry *, archive_entry_new)
LA_NEW(struct archive *, archive_read_new)
LA_NEW(struct archive *, archive_write_new)

LA_CALL(__LA_MODE_T, archive_entry_filetype, (entry_p e), (e))
LA_CALL(void, archive_entry_free, (entry_p e), (e))
LA_CALL(const char *, archive_entry_hardlink, (entry_p e), (e))
LA_CALL(time_t, archive_entry_mtime, (entry_p e), (e))
LA_CALL(long, archive_entry_mtime_nsec, (entry_p e), (e))
LA_CALL(const char *, archive_entry_pathname, (entry_p e), (e))
LA_CALL(__LA_MODE_T, archive_entry_perm, (entry_p e), (e))
LA_CALL(void, archive_entry_set_filetype, (entry_p e, unsigned int t),
    (e, t))
LA_CALL(void, archive_entry_set_mtime, (entry_p e, time_t s, long ns),
    (e, s, ns))
LA_CALL(void, archive_entry_set_pathname, (entry_p e, const char *p),
    (e, p))
LA_CALL(void, archive_entry_set_perm, (entry_p e, __LA_MODE_T m), (e, m))
LA_CALL(void, archive_entry_set_size, (entry_p e, la_int64_t s), (e, s))
LA_CALL(la_int64_t, archive_entry_size, (entry_p e), (e))
LA_CALL(int, archive_entry_size_is_set, (entry_p e), (e))
LA_CALL(void, archive_entry_sparse_add_entry,
    (entry_p e, la_int64_t off, la_int64_t len), (e, off, len))
LA_CALL(int, archive_entry_sparse_count, (entry_p e), (e))
LA_CALL(int, archive_entry_sparse_next,
    (entry_p e, la_int64_t *off, la_int64_t *len), (e, off, len))
LA_CALL(int, archive_entry_sparse_reset, (entry_p e), (e))
LA_CALL(const char *, archive_entry_symlink, (entry_p e), (e))
LA_CALL(int, archive_errno, (archive_p a), (a))
LA_CALL(const char *, archive_error_string, (archive_p a), (a))
LA_CALL(la_int64_t, archive_filter_bytes, (archive_p a, int n), (a, n))
LA_CALL(la_ssize_t, archive_read_data, (archive_p a, void *b, size_t n),
    (a, b, n))
LA_CALL(int, archive_read_data_block,
    (archive_p a, const void **b, size_t *n, la_int64_t *off),
    (a, b, n, off))
LA_CALL(int, archive_read_free, (archive_p a), (a))
LA_CALL(la_int64_t, archive_read_header_position, (archive_p a), (a))
LA_CALL(int, archive_read_next_header, (archive_p a, entry_p *e), (a, e))
LA_CALL(int, archive_read_open1, (archive_p a), (a))
LA_CALL(int, archive_read_open_filename,
    (archive_p a, const char *name, size_t block), (a, name, block))
LA_CALL(int, archive_read_set_callback_data, (archive_p a, void *p), (a, p))
LA_CALL(int, archive_read_set_read_callback,
    (archive_p a, archive_read_callback *f), (a, f))
LA_CALL(int, archive_read_set_skip_callback,
    (archive_p a, archive_skip_callback *f), (a, f))
LA_CALL(int, archive_read_support_filter_all, (archive_p a), (a))
LA_CALL(int, archive_read_support_filter_bzip2, (archive_p a), (a))
LA_CALL(int, archive_read_support_filter_xz, (archive_p a), (a))
LA_CALL(int, archive_read_support_filter_zstd, (archive_p a), (a))
LA_CALL(int, archive_read_support_format_tar, (archive_p a), (a))
LA_CALL(int, archive_write_add_filter_gzip, (archive_p a), (a))
LA_CALL(int, archive_write_add_filter_xz, (archive_p a), (a))
LA_CALL(int, archive_write_close, (archive_p a), (a))
LA_CALL(la_ssize_t, archive_write_data,
    (archive_p a, const void *b, size_t n), (a, b, n))
LA_CALL(int, archive_write_finish_entry, (archive_p a), (a))
LA_CALL(int, archive_write_free, (archive_p a), (a))
LA_CALL(int, archive_write_header, (archive_p a, entry_p e), (a, e))
LA_CALL(int, archive_write_open2,
    (archive_p a, void *p, archive_open_callback *o,
    archive_write_callback *w, archive_close_callback *c,
    archive_free_callback *f), (a, p, o, w, c, f))
LA_CALL(int, archive_write_set_bytes_in_last_block, (archive_p a, int n),
    (a, n))
LA_CALL(int, archive_write_set_bytes_per_block, (archive_p a, int n),
    (a, n))
LA_CALL(int, archive_write_set_filter_option,
    (archive_p a, const char *m, const char *o, const char *v),
    (a, m, o, v))
LA_CALL(int, archive_write_set_format_pax, (archive_p a), (a))

/* Variadic: formatted here, passed on as one string. */
void
archive_set_error(struct archive *a, int err, const char *fmt, ...)
{
	char text[512];
	va_list ap;

	need();
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	la.archive_set_error(a, err, "%s", text);
}
