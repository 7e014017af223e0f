/*
 * progress.h - the progress line, --stats text and --json output.
 */
#ifndef VS_PROGRESS_H
#define VS_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

#include "vmsync.h"

struct vs_progress;

/* A progress line on @fp (stderr) for the image @name; NULL if off. */
struct vs_progress *vs_progress_new(FILE *fp, const char *name);
void vs_progress_free(struct vs_progress *p);
/* All three accept NULL and do nothing then. */
void vs_progress_start(struct vs_progress *p, uint64_t total);
void vs_progress_update(struct vs_progress *p, uint64_t pos,
    const struct vs_stats *st);
void vs_progress_end(struct vs_progress *p, uint64_t pos,
    const struct vs_stats *st);

/* The --stats block for one image. */
void vs_stats_print(FILE *fp, const char *src, const char *dst,
    const struct vs_stats *st, bool dry_run);
/* One JSON object member of the "images" array. */
void vs_stats_json(FILE *fp, const char *src, const char *dst,
    const struct vs_stats *st, int status);
/* A JSON string literal. */
void vs_json_string(FILE *fp, const char *s);

#endif
