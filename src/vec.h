/*
 * vec.h - a typed, growable vector.
 *
 * VS_VECTOR(name, type) defines struct name { type *v; size_t n, cap; } and
 * name_push(), name_reset(), name_free().  Growth is checked against
 * overflow and capped by the caller's own limits.
 */
#ifndef VS_VEC_H
#define VS_VEC_H

#include <errno.h>
#include <stdlib.h>

#define VS_VECTOR(name, type)						\
struct name {								\
	type *v;		/* elements */				\
	size_t n;		/* used */				\
	size_t cap;		/* allocated */				\
};									\
static inline int							\
name##_push(struct name *vec, type elem)				\
{									\
	if (vec->n == vec->cap) {					\
		size_t ncap = vec->cap ? vec->cap * 2 : 16;		\
		type *nv;						\
		if (ncap < vec->cap || ncap > SIZE_MAX / sizeof(type)) { \
			errno = ENOMEM;					\
			return -1;					\
		}							\
		nv = realloc(vec->v, ncap * sizeof(type));		\
		if (!nv)						\
			return -1;					\
		vec->v = nv;						\
		vec->cap = ncap;					\
	}								\
	vec->v[vec->n++] = elem;					\
	return 0;							\
}									\
static inline void							\
name##_reset(struct name *vec)						\
{									\
	vec->n = 0;							\
}									\
static inline void							\
name##_free(struct name *vec)						\
{									\
	free(vec->v);							\
	vec->v = NULL;							\
	vec->n = vec->cap = 0;						\
}

#endif
