/*
 * sockaddr: a client address as the 16 bytes of an IPv6 address, IPv4 as
 * ::ffff:a.b.c.d, so one table or one prefix match serves both families.
 */
#ifndef BACKMX_SOCKADDR_H
#define BACKMX_SOCKADDR_H

#include <stdint.h>
#include <sys/socket.h>

/* Fill out; returns 0, or -1 (out all zero) for another family. */
int	sockaddr_bytes(const struct sockaddr *, uint8_t out[16]);

#endif
