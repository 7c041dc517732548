/*
 * dnsxl: DNS blocklist names and answers (RFC 5782). Pure.
 */
#include "dnsxl.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "dname.h"
#include "str.h"

/* Spamhaus's errors: "should NOT be interpreted as any sort of
 * reputation" (spamhaus.org news 788, docs/dns.md, "DNSBL"). */
/* Answers that are the list's error, never a listing (REFERENCE.md §1):
 * 127.255.255.0/24, and 127.0.1.255, Spamhaus's domain lists' answer to
 * an IP address asked of them. */
static const struct range error_blocks[] = {
	{ { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 255, 255, 0 },
	  { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 255, 255, 255 } },
	{ { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 1, 255 },
	  { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 1, 255 } },
};

static int
ends_with(const char *s, const char *suffix)
{
	size_t ls = strlen(s), lx = strlen(suffix);

	return ls >= lx && strcasecmp(s + ls - lx, suffix) == 0;
}

/* A zone name (src/core/dname.h): two labels at least, '_' allowed (a DQS
 * key is a label), short enough for a reversed IPv6 address before it. */
static int
zone_valid(const char *z, size_t n)
{
	return n <= 200 && dname_check(z, n, DNAME_DOTTED | DNAME_UNDERSCORE) ==
	    DNAME_OK;
}

static int
zone_is_domain_list(const char *z, size_t n)
{
	static const char *const lists[] = {
		"dbl.spamhaus.org", "zrd.spamhaus.org",
		".dbl.dq.spamhaus.net", ".zrd.dq.spamhaus.net",
	};
	char name[256];
	size_t i;

	str_ncopy(name, sizeof(name), z, n);
	for (i = 0; i < sizeof(lists) / sizeof(lists[0]); i++)
		if (lists[i][0] == '.' ? ends_with(name, lists[i]) :
		    strcasecmp(name, lists[i]) == 0)
			return 1;
	return 0;
}

int
dnsxl_zones_parse(const char *text, struct dnsxl_zone *out, size_t max,
    size_t *n_out, char *why, size_t whysz)
{
	size_t n = 0, len, zlen, i;
	const char *eq;
	char e[64];

	for (; (len = str_list_next(&text)) > 0; text += len) {
		str_ncopy(e, sizeof(e), text, len);
		if (n == max) {
			snprintf(why, whysz, "more than %zu zones", max);
			return -1;
		}
		memset(&out[n], 0, sizeof(out[n]));
		eq = memchr(text, '=', len);
		zlen = eq != NULL ? (size_t)(eq - text) : len;
		if (!zone_valid(text, zlen)) {
			snprintf(why, whysz, "bad zone in '%s'", e);
			return -1;
		}
		/* Spamhaus's domain lists list names, not addresses: asked
		 * for a client's address they answer an error at best. */
		if (zone_is_domain_list(text, zlen)) {
			snprintf(why, whysz, "'%s' lists domains, not client "
			    "addresses", e);
			return -1;
		}
		memcpy(out[n].name, text, zlen);
		str_lower(out[n].name);
		if (eq != NULL) {
			if (ranges_parse_list(eq + 1, len - zlen - 1, ";",
			    out[n].codes, DNSXL_CODES_MAX, &out[n].ncodes, why,
			    whysz) == -1)
				return -1;
			if (out[n].ncodes == 0) {
				snprintf(why, whysz, "no codes in '%s'", e);
				return -1;
			}
			for (i = 0; i < out[n].ncodes; i++)
				if (!ranges_is_v4(out[n].codes[i].lo)) {
					snprintf(why, whysz, "codes are IPv4 "
					    "in '%s'", e);
					return -1;
				}
		} else {
			/* docs/dns.md, "DNSBL": ZEN lists with .2-.11 only. */
			const char *def = strcmp(out[n].name,
			    "zen.spamhaus.org") == 0 || ends_with(out[n].name,
			    ".zen.dq.spamhaus.net") ? "127.0.0.2-127.0.0.11" :
			    "127.0.0.2-127.255.255.255";

			ranges_parse(def, strlen(def), &out[n].codes[0]);
			out[n].ncodes = 1;
		}
		for (i = 0; i < n; i++)
			if (strcmp(out[i].name, out[n].name) == 0) {
				snprintf(why, whysz, "zone %s given twice",
				    out[n].name);
				return -1;
			}
		n++;
	}
	*n_out = n;
	return 0;
}

int
dnsxl_query_name(const uint8_t a[16], const char *zone, char *buf,
    size_t sz)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	int i, w;

	if (ranges_is_v4(a)) {
		w = snprintf(buf, sz, "%u.%u.%u.%u.%s", a[15], a[14], a[13],
		    a[12], zone);
		return w < 0 || (size_t)w >= sz ? -1 : 0;
	}
	/* RFC 5782 §2.4: nibbles, low nibble of the last byte first. */
	if (sz < 64 + strlen(zone) + 1)
		return -1;
	for (i = 15; i >= 0; i--) {
		buf[o++] = hex[a[i] & 0x0f];
		buf[o++] = '.';
		buf[o++] = hex[a[i] >> 4];
		buf[o++] = '.';
	}
	memcpy(buf + o, zone, strlen(zone) + 1);
	return 0;
}

enum dnsxl_answer
dnsxl_classify(const struct dnsxl_zone *z, const uint8_t (*a)[4], size_t n,
    size_t *which)
{
	uint8_t m[16];
	size_t i;
	int listed = -1;

	for (i = 0; i < n; i++) {
		ranges_from_v4(a[i], m);
		if (ranges_find(error_blocks, sizeof(error_blocks) /
		    sizeof(error_blocks[0]), m) != -1) {
			*which = i;
			return DNSXL_ERROR;
		}
		if (listed == -1 && ranges_find(z->codes, z->ncodes, m) != -1)
			listed = (int)i;
	}
	if (listed == -1)
		return DNSXL_NOT_LISTED;
	*which = (size_t)listed;
	return DNSXL_LISTED;
}
