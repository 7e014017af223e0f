/*
 * server.h - vmsync --server.
 */
#ifndef VS_SERVER_H
#define VS_SERVER_H

struct vs_cli;

/* Serve one session on stdin/stdout; returns the exit status. */
int vs_server(const struct vs_cli *cli);

#endif
