/*
 * util.h - checked arithmetic, whole-buffer I/O, zero tests, size parsing.
 */
#ifndef VS_UTIL_H
#define VS_UTIL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
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

/* @in with control characters, backslashes and bytes that are not
 * printable UTF-8 written as \ooo (like ls -b), into @out (truncated to
 * @outlen, NUL included; 4 bytes per input byte suffice): text from a
 * peer cannot drive the terminal or fake a line.  Returns @out. */
char *vs_escape(const char *in, char *out, size_t outlen);

/* Monotonic clock in seconds. */
double vs_now(void);

/* qemu's image locks (block/file-posix.c): OFD read locks on byte
 * 100 + n of the image for each permission n it holds, 200 + n for each
 * it does not share; n = 1, 2, 3 are write, write unchanged, resize. */
#define VS_QEMU_HOLDS 100
#define VS_QEMU_DENIES 200
/* Does another process hold a lock on the three permission bytes of
 * @fd after @base (VS_QEMU_HOLDS: a qemu writes or resizes it)?
 * False where the filesystem has no OFD locks. */
bool vs_qemu_locked(int fd, int base);

/* Sleep until @bytes at @rate bytes per second since @start (vs_now())
 * are due: the average rate stays under @rate.  A signal that sets
 * vs_interrupted ends the wait. */
void vs_pace(double start, uint64_t bytes, uint64_t rate);

/* Has @s no control characters (bytes below 0x20, and 0x7f)? */
bool vs_plain_text(const char *s);

/* Order of two times: <0, 0, >0 as @a is before, at or after @b. */
int vs_timespec_cmp(const struct timespec *a, const struct timespec *b);

/* The id of the filesystem holding @fd, stable across mounts where the
 * filesystem has one (btrfs: its UUID and the subvolume; ext4: its UUID),
 * unlike st_dev, which btrfs gives its subvolumes in the order they are
 * first used after a mount; @st_dev where it has none. */
uint64_t vs_fs_id(int fd, uint64_t st_dev);

/* Start @fn(@arg) on a thread of its own that blocks every signal, so
 * that interrupts reach the main thread; pthread_create()'s result. */
int vs_thread_start(pthread_t *t, void *(*fn)(void *), void *arg);

/* The CPUs this process may keep busy: its affinity mask (taskset, a
 * cpuset), or its cgroup's CPU quota if that allows fewer; at least 1. */
unsigned vs_cpu_count(void);

/* The CPUs a CPU quota allows the cgroup @path, the lowest of its own
 * and its parents' under the hierarchy mounted at @root (cgroup @v1:
 * cpu.cfs_quota_us, else cpu.max), rounded up; 0 where none limits. */
unsigned vs_cgroup_cpus(const char *root, const char *path, bool v1);

#endif
