/*
 * packet: reads a DNS answer packet (RFC 1035 §4.1) into records. Pure and
 * bounded: names are read with every compression pointer checked to point
 * strictly backwards (so no loop is possible) and at most 255 octets of
 * name (RFC 1035 §3.1); at most PACKET_SCAN_MAX answer records are looked
 * at. Exposed to whatever answered our resolver: a fuzz target.
 */
#include "packet.h"

#include <string.h>

#define HDR_LEN		12
#define PACKET_SCAN_MAX	128	/* answer records examined */

/* An answer record found in pass one. */
struct arec {
	char		owner[DNS_NAME_MAX];
	uint16_t	type;
	uint32_t	ttl;
	size_t		rdoff, rdlen;
};

static uint16_t
get16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t
get32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	    ((uint32_t)p[2] << 8) | p[3];
}

static int
plain_char(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
	    c == '_';
}

/*
 * Read the name at *off. On return *off is just past the name as it
 * stands at its place (a pointer counts two bytes). Text into out
 * (DNS_NAME_MAX) unless out is NULL. -1: malformed, or the text does not
 * fit.
 */
static int
read_name(const uint8_t *pkt, size_t len, size_t *off, char *out)
{
	size_t pos = *off, o = 0, wire = 0, end = 0, limit = *off;
	int jumped = 0;

	for (;;) {
		uint8_t l;

		if (pos >= len)
			return -1;
		l = pkt[pos];
		if ((l & 0xc0) == 0xc0) {
			size_t to;

			if (pos + 1 >= len)
				return -1;
			to = ((size_t)(l & 0x3f) << 8) | pkt[pos + 1];
			/* Strictly backwards from where this label sequence
			 * started: no loops, bounded work. */
			if (to >= limit)
				return -1;
			if (!jumped)
				end = pos + 2;
			jumped = 1;
			limit = to;
			pos = to;
			continue;
		}
		if ((l & 0xc0) != 0)
			return -1;	/* 0x40, 0x80: obsolete/unknown */
		pos++;
		wire += (size_t)l + 1;
		if (wire > 255)
			return -1;
		if (l == 0)
			break;
		if (pos + l > len)
			return -1;
		if (out != NULL) {
			size_t i;

			if (o > 0) {
				if (o + 1 >= DNS_NAME_MAX)
					return -1;
				out[o++] = '.';
			}
			for (i = 0; i < l; i++) {
				uint8_t c = pkt[pos + i];

				if (c >= 'A' && c <= 'Z')
					c = (uint8_t)(c - 'A' + 'a');
				if (plain_char(c)) {
					if (o + 1 >= DNS_NAME_MAX)
						return -1;
					out[o++] = (char)c;
				} else {
					if (o + 4 >= DNS_NAME_MAX)
						return -1;
					out[o++] = '\\';
					out[o++] = (char)('0' + c / 100);
					out[o++] = (char)('0' + c / 10 % 10);
					out[o++] = (char)('0' + c % 10);
				}
			}
		}
		pos += l;
	}
	if (out != NULL) {
		if (o == 0)
			out[o++] = '.';
		out[o] = '\0';
	}
	*off = jumped ? end : pos;
	return 0;
}

int
packet_name_eq(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i;

	if (la > 1 && a[la - 1] == '.')
		la--;
	if (lb > 1 && b[lb - 1] == '.')
		lb--;
	if (la != lb)
		return 0;
	for (i = 0; i < la; i++) {
		char x = a[i], y = b[i];

		if (x >= 'A' && x <= 'Z')
			x = (char)(x - 'A' + 'a');
		if (y >= 'A' && y <= 'Z')
			y = (char)(y - 'A' + 'a');
		if (x != y)
			return 0;
	}
	return 1;
}

/* RDATA of a kept record; -1 when it is malformed. */
static int
read_rdata(const uint8_t *pkt, size_t len, const struct arec *r,
    struct dns_rr *rr)
{
	size_t off = r->rdoff, end = r->rdoff + r->rdlen;

	memset(rr, 0, sizeof(*rr));
	rr->type = r->type;
	rr->ttl = r->ttl;
	switch (r->type) {
	case DNS_T_A:
		if (r->rdlen != 4)
			return -1;
		memcpy(rr->u.a, pkt + off, 4);
		return 0;
	case DNS_T_AAAA:
		if (r->rdlen != 16)
			return -1;
		memcpy(rr->u.aaaa, pkt + off, 16);
		return 0;
	case DNS_T_MX:
		if (r->rdlen < 3)
			return -1;
		rr->u.mx.pref = get16(pkt + off);
		off += 2;
		if (read_name(pkt, len, &off, rr->u.mx.host) == -1 ||
		    off != end)
			return -1;
		return 0;
	case DNS_T_PTR:
	case DNS_T_CNAME:
		if (read_name(pkt, len, &off, rr->u.ptr) == -1 || off != end)
			return -1;
		return 0;
	case DNS_T_TXT:
		/* <character-string>s (RFC 1035 §3.3.14), joined; what
		 * passes DNS_TXT_MAX is dropped. */
		while (off < end) {
			size_t l = pkt[off++], keep = l;

			if (off + l > end)
				return -1;
			if (rr->u.txt.len + keep > DNS_TXT_MAX)
				keep = DNS_TXT_MAX - rr->u.txt.len;
			memcpy(rr->u.txt.data + rr->u.txt.len, pkt + off,
			    keep);
			rr->u.txt.len = (uint16_t)(rr->u.txt.len + keep);
			off += l;
		}
		return 0;
	default:
		return -1;	/* we never ask for other types */
	}
}

int
packet_parse(const uint8_t *pkt, size_t len, const char *qname,
    uint16_t qtype, struct packet_answer *out)
{
	struct arec rec[PACKET_SCAN_MAX];
	size_t off = HDR_LEN, nrec = 0, i;
	unsigned qd, an, n;
	char target[DNS_NAME_MAX];
	int moved;

	memset(out, 0, sizeof(*out));
	if (len < HDR_LEN || strlen(qname) >= DNS_NAME_MAX)
		return -1;
	if (!(pkt[2] & 0x80))
		return -1;		/* not a response */
	out->rcode = pkt[3] & 0x0f;
	out->truncated = (pkt[2] & 0x02) != 0;
	qd = get16(pkt + 4);
	an = get16(pkt + 6);
	if (qd > 1)
		return -1;
	for (n = 0; n < qd; n++) {
		if (read_name(pkt, len, &off, NULL) == -1 || off + 4 > len)
			return -1;
		off += 4;
	}
	/* Pass one: the answer section, owners as text. */
	for (n = 0; n < an; n++) {
		struct arec *r = &rec[nrec];
		uint16_t cls, rdlen;

		if (nrec == PACKET_SCAN_MAX) {
			out->truncated = 1;
			break;
		}
		if (read_name(pkt, len, &off, r->owner) == -1 ||
		    off + 10 > len)
			return -1;
		r->type = get16(pkt + off);
		cls = get16(pkt + off + 2);
		r->ttl = get32(pkt + off + 4);
		rdlen = get16(pkt + off + 8);
		off += 10;
		if (off + rdlen > len)
			return -1;
		r->rdoff = off;
		r->rdlen = rdlen;
		off += rdlen;
		if (cls == 1)		/* IN; anything else is not ours */
			nrec++;
	}

	/* Follow the CNAME chain from qname (RFC 1034 §3.6.2). */
	memcpy(out->canon, qname, strlen(qname) + 1);
	do {
		moved = 0;
		for (i = 0; i < nrec; i++) {
			size_t o = rec[i].rdoff;

			if (rec[i].type != DNS_T_CNAME || qtype == DNS_T_CNAME ||
			    !packet_name_eq(rec[i].owner, out->canon))
				continue;
			if (read_name(pkt, len, &o, target) == -1 ||
			    o != rec[i].rdoff + rec[i].rdlen)
				return -1;
			if (++out->ncname > PACKET_CNAME_MAX)
				return -1;
			memcpy(out->canon, target, strlen(target) + 1);
			moved = 1;
			break;
		}
	} while (moved);

	for (i = 0; i < nrec; i++) {
		if (rec[i].type != qtype ||
		    !packet_name_eq(rec[i].owner, out->canon))
			continue;
		if (out->nrr == PACKET_RR_MAX) {
			out->truncated = 1;
			break;
		}
		if (read_rdata(pkt, len, &rec[i], &out->rr[out->nrr]) == -1)
			return -1;
		out->nrr++;
	}
	return 0;
}
