/*
 * libFuzzer harness for the milter reply parser (src/milter/proto.c): the
 * input is a filter's byte stream, parsed packet after packet as
 * milter.c's read callback does. Whatever the bytes: no crash, a packet
 * never claims more bytes than there are, every kept string is
 * NUL-terminated inside its buffer, a reply code is 4xx or 5xx with an
 * enhanced code of its class (or none), and a header name is a field name.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
check(const struct milter_reply *r)
{
	const char *p;

	if (memchr(r->name, '\0', sizeof(r->name)) == NULL ||
	    memchr(r->text, '\0', sizeof(r->text)) == NULL ||
	    memchr(r->enh, '\0', sizeof(r->enh)) == NULL)
		abort();
	switch (r->kind) {
	case MR_REPLYCODE:
		if (r->code < 400 || r->code > 599)
			abort();
		if (r->enh[0] != '\0' && r->enh[0] != '0' + r->code / 100)
			abort();
		for (p = r->text; *p != '\0'; p++)
			if (*p < 32 || *p > 126)
				abort();
		break;
	case MR_ADDHEADER:
	case MR_CHGHEADER:
	case MR_INSHEADER:
		if (r->name[0] == '\0')
			abort();
		for (p = r->name; *p != '\0'; p++)
			if (*p == ':' || (unsigned char)*p < 33 ||
			    (unsigned char)*p > 126)
				abort();
		break;
	default:
		break;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct milter_reply r;
	size_t off = 0, used;
	int n;

	while (off < size) {
		used = 0;
		n = milter_parse(data + off, size - off, &r, &used);
		if (n <= 0)
			break;
		if (used < 5 || used > size - off)
			abort();
		check(&r);
		off += used;
	}
	return 0;
}
