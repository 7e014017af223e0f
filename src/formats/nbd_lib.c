/*
 * nbd_lib.c - libnbd, loaded the first time an image needs it (see
 * nbd_lib.h).
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

#include "nbd_lib.h"

static struct vs_libnbd fns;
static const struct vs_libnbd *loaded;
static char failure[256];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void
load(void)
{
	void *h = dlopen(VS_LIBNBD_SONAME, RTLD_NOW | RTLD_LOCAL);

	if (!h) {
		snprintf(failure, sizeof(failure), "%s", dlerror());
		return;
	}
#define VS_LIBNBD_LOAD(f)						\
	if (!(fns.f = (__typeof__(fns.f))dlsym(h, "nbd_" #f))) {	\
		snprintf(failure, sizeof(failure), "%s has no nbd_%s",	\
		    VS_LIBNBD_SONAME, #f);				\
		return;							\
	}
	VS_LIBNBD_FUNCS(VS_LIBNBD_LOAD)
#undef VS_LIBNBD_LOAD
	loaded = &fns;		/* kept loaded until the process ends */
}

const struct vs_libnbd *
vs_libnbd(const char **why)
{
	pthread_once(&once, load);
	*why = failure;
	return loaded;
}
