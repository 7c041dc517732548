/*
 * sentinel: which Redis server is the master, as the Redis Sentinels say
 * (docs/cluster.md "Sentinel"), and the connections that follow it.
 *
 * The Sentinels are asked in turn, one at a time, each on a connection
 * of its own with the usual connect and request timers (src/cluster/
 * redis.c); the first valid answer names the master, and every follower
 * (the commands connection, the health subscription) is moved to it.
 * A subscription to that Sentinel's "+switch-master" hears a failover
 * at once; a follower's trouble (a failed connect, a broken connection,
 * a timeout, READONLY, a server that is not the master) makes the node
 * ask again, at most once a second.
 *
 * Every reply a Sentinel sends is peer bytes: an answer that is not an
 * address literal (loopback or unicast) and a port of 1-65535 is
 * refused, and the next Sentinel asked. Loop thread only.
 */
#ifndef BACKMX_SENTINEL_H
#define BACKMX_SENTINEL_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct redis;
struct redisReply;
struct sentinel;

#define SENTINEL_MAX		8	/* Sentinels asked */
#define SENTINEL_FOLLOWERS_MAX	4

struct sentinel_conf {
	const char	*const *hosts;	/* address literals */
	const unsigned	*ports;
	size_t		 n;
	const char	*master_name;
	unsigned	 timeout_ms;	/* per request: redis_timeout */
};

struct sentinel_stats {
	int		 known;		/* a master was named */
	char		 master[80];	/* its "ip:port" */
	char		 sentinel[80];	/* the Sentinel that named it */
	size_t		 sentinel_place; /* 1-based in redis_sentinels */
	int		 watching;	/* subscribed to its +switch-master */
	uint64_t	 failovers;	/* the master changed */
	uint64_t	 lookups;	/* rounds of asking */
	uint64_t	 lookup_failures; /* rounds no Sentinel answered */
	uint64_t	 skipped;	/* Sentinels that failed to answer */
	uint64_t	 switches;	/* +switch-master messages taken */
	uint64_t	 rejected;	/* answers and messages refused */
};

/* Starts asking at once. Never NULL; conf's strings are copied. */
struct sentinel	*sentinel_new(struct event_base *,
		    const struct sentinel_conf *);
void		 sentinel_free(struct sentinel *);
/* Move this connection to every master named from now on (and to the
 * one known now). It must outlive nothing: free the sentinel first. */
void		 sentinel_follow(struct sentinel *, struct redis *);
/* A redis_trouble_cb: the master may have changed; ask again soon. */
void		 sentinel_suspect(const char *why, void *sentinel);
void		 sentinel_get_stats(const struct sentinel *,
		    struct sentinel_stats *);

/* SENTINEL get-master-addr-by-name's answer (peer bytes): a two-element
 * array of the address and the port. 0 and host, *port, or -1. */
int		 sentinel_parse_master(const struct redisReply *,
		    char *host, size_t hostsz, unsigned *port);
/* A +switch-master message, "NAME OLDIP OLDPORT NEWIP NEWPORT" (peer
 * bytes): 0 and the new master when it is about 'name', or -1. */
int		 sentinel_parse_switch(const char *p, size_t len,
		    const char *name, char *host, size_t hostsz,
		    unsigned *port);

#endif
