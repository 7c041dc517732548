/* sockaddr: one 16-byte form for IPv4 and IPv6 client addresses. */
#include "sockaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>

int
sockaddr_bytes(const struct sockaddr *sa, uint8_t out[16])
{
	memset(out, 0, 16);
	if (sa->sa_family == AF_INET) {
		out[10] = out[11] = 0xff;
		memcpy(out + 12,
		    &((const struct sockaddr_in *)(const void *)sa)->sin_addr,
		    4);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		memcpy(out,
		    &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
		    16);
		return 0;
	}
	return -1;
}

int
sockaddr_ntop(const struct sockaddr *sa, char *buf, size_t bufsz)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)sa;

		inet_ntop(AF_INET, &s4->sin_addr, buf, (socklen_t)bufsz);
		return ntohs(s4->sin_port);
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)sa;

		inet_ntop(AF_INET6, &s6->sin6_addr, buf, (socklen_t)bufsz);
		return ntohs(s6->sin6_port);
	}
	if (bufsz > 0)
		snprintf(buf, bufsz, "?");
	return -1;
}

int
sockaddr_nodelay(int fd)
{
	int one = 1;

	return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}
