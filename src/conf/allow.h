/*
 * allow: the static allow lists of backmx.conf and of the domains file
 * (greylist_allow_*, bulk_allow_*, a customer domain's own bulk_allow_*):
 * client networks and host names, sender and recipient addresses and
 * domains, parsed once from a key's value, matched at every check. Items
 * are split by commas or white space (str_list_next()); everything is kept
 * lower case.
 */
#ifndef BACKMX_ALLOW_H
#define BACKMX_ALLOW_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct allow_net {
	uint8_t		addr[16];	/* IPv4 as ::ffff:a.b.c.d */
	unsigned	prefix;		/* over the 128 bits */
};

struct allow_list {
	struct allow_net *nets;
	size_t		 nnets;
	char		**names;	/* domains or addresses, lower case */
	size_t		 nnames;
};

enum allow_kind {
	/* "local@domain", or "domain": it and its subdomains (a leading
	 * dot is dropped: the subdomains are covered anyway). */
	ALLOW_ADDRS,
	/* An address or ADDR/LEN, IPv4 or IPv6. */
	ALLOW_NETS,
	/* A network as ALLOW_NETS, or a client host name as a domain. */
	ALLOW_CLIENTS,
};

/* The three lists of one allow (greylist_allow_*, bulk_allow_*, a
 * customer domain's own bulk_allow_*=). */
struct allow_set {
	struct allow_list clients;
	struct allow_list senders;	/* addresses and domains */
	struct allow_list rcpts;	/* addresses and domains */
};

/*
 * Add every item of 'v' to 'l'; -1 with "KEY: what is wrong" in err at
 * the first bad one (what came before it stays in 'l': free it).
 */
int	allow_parse(struct allow_list *, enum allow_kind, const char *key,
	    const char *v, char *err, size_t errsz);
/* One item of 'len' octets, as allow_parse() does for each. */
int	allow_add(struct allow_list *, enum allow_kind, const char *key,
	    const char *item, size_t len, char *err, size_t errsz);
void	allow_free(struct allow_list *);
/* The keys PREFIX "clients", "senders" and "recipients" into an empty
 * set, the clients of 'clients_kind'. 0, or -1 with the set empty and
 * "KEY: what is wrong" in err. */
int	allow_set_parse(struct allow_set *, enum allow_kind clients_kind,
	    const char *prefix, const char *clients, const char *senders,
	    const char *rcpts, char *err, size_t errsz);
void	allow_set_free(struct allow_set *);

/* Item i of the list as written back (networks "ADDR/LEN" first, then
 * the names) into buf, or NULL past the last. */
const char *allow_item(const struct allow_list *, size_t i, char *buf,
	    size_t bufsz);

/* A lower-case "local@domain" against the addresses and the domains. */
int	allow_has_addr(const struct allow_list *, const char *addr);
/* The client's address inside a listed network. */
int	allow_has_ip(const struct allow_list *, const struct sockaddr *);
/* A host name (any case, a trailing dot ignored) is a listed domain or
 * inside one. */
int	allow_has_name(const struct allow_list *, const char *name);

#endif
