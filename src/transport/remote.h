/*
 * remote.h - the two ends of a sync over the wire.
 *
 * The source side drives a vs_target made by vs_remote_target(); the
 * target side answers it with vs_serve_target() over its local target.
 * Which side started the session does not matter.
 */
#ifndef VS_REMOTE_H
#define VS_REMOTE_H

#include "transport.h"
#include "wire.h"

/* A target whose operations are requests on @w; its WRITEs compressed
 * with @codec at @level, with @adaptive only where that is not slower
 * (wireadapt.h). */
int vs_remote_target(struct vs_wire *w, const char *name, uint32_t codec,
    int level, bool adaptive, struct vs_stats *stats,
    struct vs_target **out);
/* Answer requests on @w with @t until COMMIT is done (0) or something
 * fails (-1; the peer is sent an ERROR). */
int vs_serve_target(struct vs_wire *w, struct vs_target *t);
/* Report the ERROR message @m from the peer (with its exit category). */
void vs_remote_report(struct vs_wire *w, const struct vs_msg *m);
/* Read a message of @type; an ERROR is reported with its category. */
int vs_remote_expect(struct vs_wire *w, uint32_t type, struct vs_msg *m);
/* A send on @w failed: report the peer's ERROR if it sent one, else the
 * failure itself. */
void vs_remote_broken(struct vs_wire *w);
/* Send the first error recorded (vs_err_text) to the peer, and flush. */
void vs_remote_send_error(struct vs_wire *w);

#endif
