/*
 * util.c - whole-buffer I/O, zero tests, size parsing and formatting.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "util.h"
#include "vmsync.h"

ssize_t
vs_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t r = pread(fd, (char *)buf + done, len - done,
		    (off_t)(off + done));
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0)
			break;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

int
vs_pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t r = pwrite(fd, (const char *)buf + done, len - done,
		    (off_t)(off + done));
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0) {
			errno = EIO;
			return -1;
		}
		done += (size_t)r;
	}
	return 0;
}

bool
vs_is_zero(const void *buf, size_t len)
{
	const unsigned char *p = buf;
	size_t head = len < 16 ? len : 16;

	/* Check a short prefix by hand, then let memcmp compare the buffer
	 * with itself shifted by 16 bytes: both run at memory speed. */
	for (size_t i = 0; i < head; i++)
		if (p[i])
			return false;
	return len <= 16 || memcmp(p, p + 16, len - 16) == 0;
}

bool
vs_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	/* Digits first: strtoull would skip blanks and accept a sign. */
	if (!s || *s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return false;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	case '\0': break;
	default: return false;
	}
	if (shift && (!strcasecmp(end, "iB") || !strcasecmp(end, "B")))
		end += strlen(end);
	if (*end)
		return false;
	if (shift && v > (UINT64_MAX >> shift))
		return false;
	*out = (uint64_t)v << shift;
	return true;
}

const char *
vs_fmt_bytes(uint64_t bytes, char *buf, size_t len)
{
	static const char *units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)bytes;
	unsigned u = 0;

	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)bytes);
	else
		snprintf(buf, len, "%.2f %s", v, units[u]);
	return buf;
}

double
vs_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

char *
vs_path_join(const char *dir, const char *name)
{
	size_t n = strlen(dir);
	char *out;

	if (asprintf(&out, "%s%s%s", dir, n && dir[n - 1] == '/' ? "" : "/",
	    name) < 0)
		return NULL;
	return out;
}

/* Bytes of the well-formed UTF-8 character at @s that is safe to print
 * as it is, or 0: C1 controls (U+0080 to U+009F) act like ESC on some
 * terminals, and overlong forms may decode to anything. */
static size_t
utf8_len(const unsigned char *s)
{
	size_t n = s[0] >= 0xf5 ? 0 : s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 :
	    s[0] >= 0xc2 ? 2 : 0;

	for (size_t i = 1; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	if ((s[0] == 0xc2 && s[1] < 0xa0) || (s[0] == 0xe0 && s[1] < 0xa0) ||
	    (s[0] == 0xed && s[1] >= 0xa0) || (s[0] == 0xf0 && s[1] < 0x90) ||
	    (s[0] == 0xf4 && s[1] >= 0x90))
		return 0;
	return n;
}

char *
vs_escape(const char *in, char *out, size_t outlen)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t o = 0;

	if (!outlen)
		return out;
	while (*s) {
		char esc[8];
		const char *piece = (const char *)s;
		size_t n = *s >= 0x80 ? utf8_len(s) : 1, len = n;

		if (n == 0 || *s < 0x20 || *s == 0x7f || *s == '\\') {
			len = (size_t)snprintf(esc, sizeof(esc), "\\%03o", *s);
			piece = esc;
			n = 1;
		}
		if (o + len >= outlen)
			break;		/* whole pieces only */
		memcpy(out + o, piece, len);
		o += len;
		s += n;
	}
	out[o] = '\0';
	return out;
}

bool
vs_qemu_locked(int fd, int base)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET,
	    .l_start = base + 1, .l_len = 3 };

	return fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
}

uint64_t
vs_fs_id(int fd, uint64_t st_dev)
{
	struct statfs sf;

	if (fstatfs(fd, &sf) < 0 || (!sf.f_fsid.__val[0] &&
	    !sf.f_fsid.__val[1]))
		return st_dev;
	return (uint64_t)(uint32_t)sf.f_fsid.__val[0] << 32 |
	    (uint32_t)sf.f_fsid.__val[1];
}

int
vs_timespec_cmp(const struct timespec *a, const struct timespec *b)
{
	if (a->tv_sec != b->tv_sec)
		return a->tv_sec < b->tv_sec ? -1 : 1;
	if (a->tv_nsec != b->tv_nsec)
		return a->tv_nsec < b->tv_nsec ? -1 : 1;
	return 0;
}

void
vs_pace(double start, uint64_t bytes, uint64_t rate)
{
	double wait = start + (double)bytes / (double)rate - vs_now();
	struct timespec ts;

	if (!rate || wait <= 0)
		return;
	ts.tv_sec = (time_t)wait;
	ts.tv_nsec = (long)((wait - (double)ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !vs_interrupted)
		;
}

bool
vs_plain_text(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

int
vs_thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
	sigset_t all, old;
	int rc;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(t, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

/* Read the first line of @file into @buf; false if it cannot. */
static bool
read_line(const char *file, char *buf, size_t len)
{
	ssize_t n;
	int fd = open(file, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	n = vs_pread_full(fd, buf, len - 1, 0);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = 0;
	return true;
}

/* The CPUs that the quota of the cgroup directory @dir allows, rounded
 * up: cpu.max ("QUOTA PERIOD" or "max PERIOD") in cgroup v2, or
 * cpu.cfs_quota_us (-1: none) and cpu.cfs_period_us in v1; 0 when it
 * does not limit or cannot be read. */
static unsigned
quota_cpus(const char *dir, bool v1)
{
	unsigned long long quota, period;
	char file[PATH_MAX + 32], buf[64];

	snprintf(file, sizeof(file), "%s/%s", dir, v1 ? "cpu.cfs_quota_us" :
	    "cpu.max");
	if (!read_line(file, buf, sizeof(buf)) || buf[0] == '-' ||
	    sscanf(buf, "%llu %llu", &quota, &period) != (v1 ? 1 : 2))
		return 0;
	if (v1) {
		snprintf(file, sizeof(file), "%s/cpu.cfs_period_us", dir);
		if (!read_line(file, buf, sizeof(buf)) ||
		    sscanf(buf, "%llu", &period) != 1)
			return 0;
	}
	if (!period || quota / period >= UINT_MAX)
		return 0;
	return quota ? (unsigned)((quota + period - 1) / period) : 1;
}

/* The lower of two CPU limits, 0 standing for none. */
static unsigned
lower_limit(unsigned a, unsigned b)
{
	return !a || (b && b < a) ? b : a;
}

unsigned
vs_cgroup_cpus(const char *root, const char *path, bool v1)
{
	char dir[PATH_MAX];
	unsigned best = 0;
	size_t rootlen = strlen(root);
	char *slash;

	if (snprintf(dir, sizeof(dir), "%s%s", root, path) >= (int)sizeof(dir))
		return 0;
	/* This cgroup and its parents, and the root: the host's has no
	 * quota, but in a cgroup namespace (a container) the root is the
	 * container's own cgroup, and /proc/self/cgroup names it "/". */
	for (;;) {
		best = lower_limit(best, quota_cpus(dir, v1));
		if (!(slash = strrchr(dir + rootlen, '/')))
			break;
		*slash = 0;
	}
	return best;
}

/* Does the controller list @list ("cpu,cpuacct") name "cpu"? */
static bool
has_cpu(const char *list, size_t len)
{
	for (const char *p = list; p < list + len;) {
		size_t n = strcspn(p, ",:");

		if (n == 3 && !strncmp(p, "cpu", 3))
			return true;
		p += n + 1;
	}
	return false;
}

/* The quota of this process's cgroups, from /proc/self/cgroup: the v2
 * line "0::PATH" and the v1 line of the cpu controller ("N:cpu,...:PATH"),
 * as mounted by systemd under /sys/fs/cgroup. */
static unsigned
own_quota(void)
{
	char line[PATH_MAX + 64];
	unsigned best = 0, n;
	FILE *f = fopen("/proc/self/cgroup", "re");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		char *ctl = strchr(line, ':'), *path = ctl ?
		    strchr(ctl + 1, ':') : NULL;

		if (!path || path[1] != '/')
			continue;
		line[strcspn(line, "\n")] = 0;
		if (path == ctl + 1)
			n = vs_cgroup_cpus("/sys/fs/cgroup", path + 1, false);
		else if (has_cpu(ctl + 1, path - ctl - 1))
			n = vs_cgroup_cpus("/sys/fs/cgroup/cpu", path + 1,
			    true);
		else
			continue;
		best = lower_limit(best, n);
	}
	fclose(f);
	return best;
}

unsigned
vs_cpu_count(void)
{
	cpu_set_t set;
	long n = sched_getaffinity(0, sizeof(set), &set) == 0 ?
	    CPU_COUNT(&set) : sysconf(_SC_NPROCESSORS_ONLN);

	return lower_limit(n < 1 ? 1 : (unsigned)n, own_quota());
}
