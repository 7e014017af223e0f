/*
 * verify.h - vmsync --verify: check a backup without its source.
 */
#ifndef VS_VERIFY_H
#define VS_VERIFY_H

#include <stdio.h>

#include "vmsync.h"

/* Read every data block of the target at @path and compare it with the
 * index beside it (or @index); holes must be holes where the index says
 * so.  Bad ranges are reported on stderr, and with @json (not NULL) as
 * one JSON object there.  VS_EXIT_OK, VS_EXIT_DIFFERS, or the category
 * of the error that stopped the check. */
enum vs_exit vs_verify(const char *path, const char *index, FILE *json);

#endif
