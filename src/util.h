/*
 * util.h - checked arithmetic, whole-buffer I/O, zero tests, size parsing.
 */
#ifndef VS_UTIL_H
#define VS_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* *r = a + b; false on overflow. */
static inline bool
vs_add_ok(uint64_t a, uint64_t b, uint64_t *r)
{
	return !__builtin_add_overflow(a, b, r);
}

/* *r = a * b; false on overflow. */
static inline bool
vs_mul_ok(uint64_t a, uint64_t b, uint64_t *r)
{
	return !__builtin_mul_overflow(a, b, r);
}

static inline uint64_t
vs_min(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static inline uint64_t
vs_max(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

/* Round down/up to a power-of-two @align. */
static inline uint64_t
vs_align_down(uint64_t v, uint64_t align)
{
	return v & ~(align - 1);
}

static inline uint64_t
vs_align_up(uint64_t v, uint64_t align)
{
	return (v + align - 1) & ~(align - 1);
}

static inline bool
vs_is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

/* pread/pwrite the whole buffer, retrying short transfers and EINTR.
 * pread returns the bytes read (short only at end of file), -1 on error. */
ssize_t vs_pread_full(int fd, void *buf, size_t len, uint64_t off);
int vs_pwrite_full(int fd, const void *buf, size_t len, uint64_t off);

/* True if all @len bytes of @buf are zero. */
bool vs_is_zero(const void *buf, size_t len);

/* Parse "65536", "64K", "64KiB", "4M", "1G"; false on junk or overflow. */
bool vs_parse_size(const char *s, uint64_t *out);

/* Format @bytes as "1.50 GiB" into @buf. */
const char *vs_fmt_bytes(uint64_t bytes, char *buf, size_t len);

/* "@dir/@name" without a doubled slash (malloc'd), or NULL. */
char *vs_path_join(const char *dir, const char *name);

/* Monotonic clock in seconds. */
double vs_now(void);

#endif
