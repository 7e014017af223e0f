/*
 * ssh.c - start the remote side over ssh (or the -e command).
 *
 * All the session's settings travel in the protocol, so the remote command
 * line is fixed: the remote binary (shell-quoted) and --server.  Nothing a
 * user gives for paths reaches a remote shell.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ssh.h"
#include "../vmsync.h"

#define MAX_WORDS 64

bool
vs_is_remote(const char *arg)
{
	const char *colon = strchr(arg, ':'), *slash = strchr(arg, '/');

	/* nbd://host/export, nbd+unix:///export?socket=... are URIs
	 * (formats/nbd.c), not a host "nbd" or "nbd+unix". */
	if (strncmp(arg, "nbd", 3) == 0 && colon &&
	    strncmp(colon, "://", 3) == 0)
		return false;
	return colon && colon != arg && (!slash || colon < slash);
}

int
vs_remote_split(const char *arg, char **host, char **path)
{
	const char *colon = strchr(arg, ':');

	*host = strndup(arg, (size_t)(colon - arg));
	*path = strdup(colon[1] ? colon + 1 : ".");
	if (!*host || !*path) {
		free(*host);
		free(*path);
		return -1;
	}
	return 0;
}

/* Split @s into words: blanks separate, '...' and "..." quote, \ escapes
 * outside single quotes.  The words are written into @buf. */
static int
split_words(const char *s, char *buf, char **words, int max)
{
	int n = 0;
	char *o = buf;

	while (*s) {
		char q = 0;

		while (*s == ' ' || *s == '\t')
			s++;
		if (!*s)
			break;
		if (n == max - 1)
			return -1;
		words[n++] = o;
		for (; *s && (q || (*s != ' ' && *s != '\t')); s++) {
			if (!q && (*s == '\'' || *s == '"'))
				q = *s;
			else if (q && *s == q)
				q = 0;
			else if (*s == '\\' && q != '\'' && s[1])
				*o++ = *++s;
			else
				*o++ = *s;
		}
		if (q)
			return -1;
		*o++ = 0;
	}
	words[n] = NULL;
	return n;
}

/* @s quoted for a POSIX shell: '...' with ' as '\''. */
static char *
shell_quote(const char *s)
{
	size_t n = 3;
	char *out, *o;

	for (const char *p = s; *p; p++)
		n += *p == '\'' ? 4 : 1;
	if (!(out = malloc(n)))
		return NULL;
	o = out;
	*o++ = '\'';
	for (const char *p = s; *p; p++) {
		if (*p == '\'') {
			memcpy(o, "'\\''", 4);
			o += 4;
		} else {
			*o++ = *p;
		}
	}
	*o++ = '\'';
	*o = 0;
	return out;
}

int
vs_conn_open(const char *rsh, const char *host, const char *remote_cmd,
    struct vs_conn *c)
{
	char *words[MAX_WORDS + 3], *buf = malloc(strlen(rsh) + 1);
	char *quoted = shell_quote(remote_cmd), *cmd = NULL;
	int to[2] = { -1, -1 }, from[2] = { -1, -1 }, n, rc = -1;

	if (!buf || !quoted || asprintf(&cmd, "%s --server", quoted) < 0) {
		vs_errno(VS_EXIT_INTERNAL, host, "remote command");
		cmd = NULL;
		goto out;
	}
	n = split_words(rsh, buf, words, MAX_WORDS);
	if (n <= 0) {
		vs_err(VS_EXIT_USAGE, rsh, "cannot split the remote shell "
		    "command into words");
		goto out;
	}
	words[n] = (char *)host;
	words[n + 1] = cmd;
	words[n + 2] = NULL;
	if (pipe2(to, O_CLOEXEC) < 0 || pipe2(from, O_CLOEXEC) < 0) {
		vs_errno(VS_EXIT_INTERNAL, host, "pipe");
		goto out;
	}
	c->pid = fork();
	if (c->pid < 0) {
		vs_errno(VS_EXIT_INTERNAL, host, "fork");
		goto out;
	}
	if (c->pid == 0) {
		signal(SIGPIPE, SIG_DFL);
		/* The remote side must not see our SIGINT twice: ssh passes
		 * the loss of the connection on instead. */
		setpgid(0, 0);
		if (dup2(to[0], 0) < 0 || dup2(from[1], 1) < 0)
			_exit(127);
		execvp(words[0], words);
		fprintf(stderr, "vmsync: %s: %s\n", words[0], strerror(errno));
		_exit(127);
	}
	close(to[0]);
	close(from[1]);
	to[0] = from[1] = -1;
	c->wfd = to[1];
	c->rfd = from[0];
	to[1] = from[0] = -1;
	rc = 0;
out:
	for (int i = 0; i < 2; i++) {
		if (to[i] >= 0)
			close(to[i]);
		if (from[i] >= 0)
			close(from[i]);
	}
	free(buf);
	free(quoted);
	free(cmd);
	return rc;
}

int
vs_conn_close(struct vs_conn *c)
{
	int status = 0;

	if (c->wfd >= 0)
		close(c->wfd);
	if (c->rfd >= 0)
		close(c->rfd);
	c->wfd = c->rfd = -1;
	if (c->pid <= 0)
		return -1;
	while (waitpid(c->pid, &status, 0) < 0)
		if (errno != EINTR) {
			c->pid = 0;
			return -1;
		}
	c->pid = 0;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 +
	    (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}
