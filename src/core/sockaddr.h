/*
 * sockaddr: a client address as the 16 bytes of an IPv6 address, IPv4 as
 * ::ffff:a.b.c.d, so one table or one prefix match serves both families.
 */
#ifndef BACKMX_SOCKADDR_H
#define BACKMX_SOCKADDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Fill out; returns 0, or -1 (out all zero) for another family. */
int	sockaddr_bytes(const struct sockaddr *, uint8_t out[16]);

/*
 * The address as text, without brackets, into buf (INET6_ADDRSTRLEN
 * bytes hold any); returns the port, or -1 (buf "?") for another family.
 */
int	sockaddr_ntop(const struct sockaddr *, char *buf, size_t bufsz);

/*
 * TCP_NODELAY on an SMTP socket: a reply or a command is written whole or
 * not at all, and Nagle's rule holding a second small write until the
 * first is acknowledged, against a peer delaying its acknowledgements,
 * cost every pass-through transaction 40 ms (bench/README.md). 0 or -1;
 * failing is harmless (not a TCP socket).
 */
int	sockaddr_nodelay(int fd);

#endif
