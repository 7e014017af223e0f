/*
 * ssh.h - remote paths ([user@]host:path) and the ssh (or -e) process
 * that carries the session.
 */
#ifndef VS_SSH_H
#define VS_SSH_H

#include <stdbool.h>
#include <sys/types.h>

/* "host:path" or "user@host:path": a colon before any slash, with a
 * non-empty host.  "./a:b" and "/a:b" are local, as in rsync. */
bool vs_is_remote(const char *arg);
/* Split a remote argument into malloc'd host and path ("" -> "."). */
int vs_remote_split(const char *arg, char **host, char **path);

struct vs_conn {
	pid_t pid;		/* the ssh (or -e) process */
	int rfd, wfd;		/* its stdout and stdin */
};

/* Run "@rsh @host @remote_cmd --server" (@rsh split into words, with
 * quotes, like a shell would) with pipes to its stdin and stdout. */
int vs_conn_open(const char *rsh, const char *host, const char *remote_cmd,
    struct vs_conn *c);
/* Close the pipes and reap the process; its exit status, or -1. */
int vs_conn_close(struct vs_conn *c);

#endif
