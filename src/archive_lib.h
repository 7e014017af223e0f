/*
 * archive_lib.h - libarchive is loaded the first time an archive is read
 * or written (archive_lib.c): its functions are called as they are named.
 */
#ifndef VS_ARCHIVE_LIB_H
#define VS_ARCHIVE_LIB_H

#include "vmsync.h"

/* Report, as a @cat error of @name, that archive_read_new(),
 * archive_write_new() or archive_entry_new() returned NULL: libarchive
 * could not be loaded, or memory ran out. */
void vs_libarchive_failed(enum vs_exit cat, const char *name);

#endif
