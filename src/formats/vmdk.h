/*
 * vmdk.h - what qemu is given to read a vmdk image (vmdk.c).
 */
#ifndef VS_VMDK_H
#define VS_VMDK_H

#include <stddef.h>

#include "format.h"

/* A vmdk made safe for qemu to open: the files it reads are all open. */
struct vs_vmdk {
	int desc_fd;		/* the descriptor qemu reads (a memfd), or
				 * -1: the image file itself */
	int *fds;		/* the extent files, in descriptor order */
	size_t nfds;		/* entries in fds */
	char *parent;		/* parentFileNameHint: the backing file's
				 * name as stored, or NULL */
};

/* Check the vmdk image in @io before qemu opens it.  A sparse image must
 * not name other files (no embedded descriptor in place of the disk).  A
 * backing file's name, from either kind, is in @out->parent.  A
 * descriptor is parsed (strictly, bounded); each extent file is opened
 * through io's refs policy (vs_refs_open_file) and the descriptor qemu
 * reads names it /proc/self/fd/N, N counting from @first_fd in the child
 * that gets @out->fds there.  One line naming the image on failure. */
int vs_vmdk_prepare(struct vs_io *io, int first_fd, struct vs_vmdk *out);
/* Close what vs_vmdk_prepare opened (the child has its own copies). */
void vs_vmdk_release(struct vs_vmdk *v);

#endif
