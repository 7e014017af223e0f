/*
 * nbd_lib.h - libnbd, loaded the first time an image needs it.
 *
 * libnbd brings gnutls and its libraries with it: loading them took a
 * cold start 26 ms, which every run paid (a push twice, on each side)
 * though only the formats read through qemu use libnbd.  So vmsync is
 * not linked with it: nbd.c calls it through this table, filled by
 * dlopen() on first use.
 */
#ifndef VS_NBD_LIB_H
#define VS_NBD_LIB_H

#include <libnbd.h>

#define VS_LIBNBD_SONAME "libnbd.so.0"

/* The libnbd functions vmsync calls, without their nbd_ prefix. */
#define VS_LIBNBD_FUNCS(X)						\
	X(add_meta_context) X(aio_connect_unix) X(aio_connect_uri)	\
	X(aio_is_closed) X(aio_is_dead) X(aio_is_ready) X(block_status)	\
	X(can_multi_conn) X(close) X(create) X(get_error) X(get_size)	\
	X(poll) X(pread) X(set_uri_allow_local_file)			\
	X(set_uri_allow_tls) X(set_uri_allow_transports)

struct vs_libnbd {
#define VS_LIBNBD_FIELD(f) __typeof__(nbd_##f) *f;
	VS_LIBNBD_FUNCS(VS_LIBNBD_FIELD)
#undef VS_LIBNBD_FIELD
};

/* libnbd's functions, loaded once; NULL if it cannot be loaded, *@why
 * saying why. */
const struct vs_libnbd *vs_libnbd(const char **why);

#endif
