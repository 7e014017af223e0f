/*
 * source.h - the source side of a sync: open the image, choose the view,
 * name the target.
 */
#ifndef VS_SOURCE_H
#define VS_SOURCE_H

#include <stdbool.h>

#include "formats/format.h"
#include "transport/transport.h"

/* Open @src (format @format, NULL for auto) and choose the view: the
 * guest disk if @output is "raw", the file itself otherwise.  Fills the
 * source fields of @topts; *@to_raw tells the target name to use. */
int vs_source_open(const char *src, const char *format, const char *output,
    struct vs_target_opts *topts, struct vs_image **out, bool *to_raw);
/* The target's file name for @src (malloc'd): its basename, with the
 * extension replaced by ".raw" for the guest view of a non-raw image. */
char *vs_target_name(const char *src, bool to_raw);

#endif
