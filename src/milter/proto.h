/*
 * milter proto: the bytes of the milter protocol, version 6 (Sendmail's
 * libmilter, spoken by Postfix's smtpd_milters), as backmx speaks it: the
 * MTA side. Packets are a 4-byte length in network order, one command
 * byte, then the data; the length counts the command byte.
 *
 * This file only builds and parses packets; the conversation (what comes
 * when, timeouts) is milter.c's. A filter's packet is peer input: the
 * parser is strict and bounded, and it is a fuzz target
 * (fuzz/fuzz_milter.c). docs/milter.md says what each reply does.
 */
#ifndef BACKMX_MILTER_PROTO_H
#define BACKMX_MILTER_PROTO_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;

#define MILTER_VERSION		6
#define MILTER_CHUNK		65535	/* largest body chunk */
#define MILTER_PACKET_MAX	(64 * 1024 + 64)	/* from a filter */
#define MILTER_NAME_MAX		128	/* header name in a reply */
#define MILTER_TEXT_MAX		4096	/* value, reply text, reason */

/* Actions a filter may take (SMFIF_*): what we offer. */
#define SMFIF_ADDHDRS		0x001
#define SMFIF_CHGBODY		0x002
#define SMFIF_ADDRCPT		0x004
#define SMFIF_DELRCPT		0x008
#define SMFIF_CHGHDRS		0x010
#define SMFIF_QUARANTINE	0x020
#define SMFIF_CHGFROM		0x040
#define SMFIF_ADDRCPT_PAR	0x080
#define SMFIF_SETSYMLIST	0x100

/* Protocol steps a filter may skip or not answer (SMFIP_*). */
#define SMFIP_NOCONNECT		0x000001
#define SMFIP_NOHELO		0x000002
#define SMFIP_NOMAIL		0x000004
#define SMFIP_NORCPT		0x000008
#define SMFIP_NOBODY		0x000010
#define SMFIP_NOHDRS		0x000020
#define SMFIP_NOEOH		0x000040
#define SMFIP_NR_HDR		0x000080
#define SMFIP_NOUNKNOWN		0x000100
#define SMFIP_NODATA		0x000200
#define SMFIP_SKIP		0x000400
#define SMFIP_RCPT_REJ		0x000800
#define SMFIP_NR_CONN		0x001000
#define SMFIP_NR_HELO		0x002000
#define SMFIP_NR_MAIL		0x004000
#define SMFIP_NR_RCPT		0x008000
#define SMFIP_NR_DATA		0x010000
#define SMFIP_NR_UNKN		0x020000
#define SMFIP_NR_EOH		0x040000
#define SMFIP_NR_BODY		0x080000
#define SMFIP_HDR_LEADSPC	0x100000

/*
 * What backmx offers. Actions: every one a filter of version 6 may ask
 * for, because libmilter drops the connection when the MTA offers less
 * than the filter registered (spamass-milter registers body and
 * recipient changes whether it uses them or not). What backmx does with
 * them: headers, body replacement and quarantine are made; a change of
 * the envelope (recipients, sender) is refused when it is asked for, as
 * a filter failure (docs/milter.md). Steps: every "don't send" and "don't
 * answer" bit and SKIP; not RCPT_REJ (rejected recipients are never
 * shown) and not HDR_LEADSPC.
 */
#define MILTER_OFFER_ACTIONS	(SMFIF_ADDHDRS | SMFIF_CHGBODY | \
				 SMFIF_ADDRCPT | SMFIF_DELRCPT | \
				 SMFIF_CHGHDRS | SMFIF_QUARANTINE | \
				 SMFIF_CHGFROM | SMFIF_ADDRCPT_PAR)
#define MILTER_OFFER_STEPS	(0x0007ff | SMFIP_NR_CONN | SMFIP_NR_HELO | \
				 SMFIP_NR_MAIL | SMFIP_NR_RCPT | \
				 SMFIP_NR_DATA | SMFIP_NR_UNKN | \
				 SMFIP_NR_EOH | SMFIP_NR_BODY)

/* Commands (SMFIC_*) we send. */
enum milter_cmd {
	MC_ABORT = 'A', MC_BODY = 'B', MC_CONNECT = 'C', MC_MACRO = 'D',
	MC_EOM = 'E', MC_HELO = 'H', MC_HEADER = 'L', MC_MAIL = 'M',
	MC_EOH = 'N', MC_OPTNEG = 'O', MC_QUIT = 'Q', MC_RCPT = 'R',
	MC_DATA = 'T',
};

/* A filter's packet, parsed. */
enum milter_reply_kind {
	MR_ACCEPT,	/* 'a': the message passes this filter */
	MR_CONTINUE,	/* 'c' */
	MR_REJECT,	/* 'r' */
	MR_TEMPFAIL,	/* 't' */
	MR_DISCARD,	/* 'd': a reject here (docs/milter.md) */
	MR_REPLYCODE,	/* 'y': code, enh, text */
	MR_SKIP,	/* 's': no more body */
	MR_ADDHEADER,	/* 'h': name, value */
	MR_CHGHEADER,	/* 'm': index, name, value ("" deletes) */
	MR_INSHEADER,	/* 'i': index, name, value */
	MR_QUARANTINE,	/* 'q': reason in text */
	MR_PROGRESS,	/* 'p' */
	MR_OPTNEG,	/* 'O': version, actions, steps */
	MR_REPLBODY,	/* 'b': data, datalen (a chunk of the new body) */
	MR_ENVELOPE,	/* '+', '-', 'e', '2': a change we refuse */
};

struct milter_reply {
	enum milter_reply_kind	 kind;
	uint32_t		 version, actions, steps;	/* OPTNEG */
	uint32_t		 index;		/* CHG/INSHEADER */
	int			 code;		/* REPLYCODE: 4xx or 5xx */
	char			 enh[16];	/* "5.7.1" or "" */
	char			 name[MILTER_NAME_MAX];
	char			 text[MILTER_TEXT_MAX];	/* value or text */
	const unsigned char	*data;		/* REPLBODY: inside the input */
	size_t			 datalen;
};

/*
 * Parse one packet from the front of buf. Returns 1 and sets *used when a
 * whole valid packet was there, 0 when more bytes are needed, -1 when the
 * bytes are not a packet we accept (the caller gives up on the filter):
 * an unknown or un-negotiated reply, a length over MILTER_PACKET_MAX, a
 * field without its NUL, a header name or value that is not one, a reply
 * code that is not 4xx/5xx.
 */
int	milter_parse(const unsigned char *buf, size_t len,
	    struct milter_reply *out, size_t *used);

/* Builders: append one packet to out. Strings are NUL-terminated C
 * strings; 'argv' lists end with NULL. */
void	milter_put(struct evbuffer *out, int cmd, const void *data,
	    size_t len);
void	milter_put_optneg(struct evbuffer *out, uint32_t actions,
	    uint32_t steps);
void	milter_put_strings(struct evbuffer *out, int cmd,
	    const char *const *argv);
void	milter_put_connect(struct evbuffer *out, const char *name,
	    int family, unsigned port, const char *addr);

#endif
