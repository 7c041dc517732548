/* sockaddr: one 16-byte form for IPv4 and IPv6 client addresses. */
#include "sockaddr.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
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
sockaddr_nodelay(int fd)
{
	int one = 1;

	return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}
