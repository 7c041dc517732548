/*
 * libFuzzer harness for dccifd's reply parser (src/bulk/dccreply.c): the
 * input is what a dccifd sent before it closed, for a message of 1 to 8
 * recipients (the first byte says how many). Whatever the bytes: no
 * crash, an accepted answer has a result letter of the protocol, a
 * NUL-terminated header that is printable and starts X-DCC-, and a bulk
 * flag only with a header.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dccreply.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dccifd_reply r;
	const char *p;
	size_t nrcpt;
	int rc;

	if (size < 1)
		return 0;
	nrcpt = 1 + data[0] % 8;
	rc = dccifd_parse((const char *)data + 1, size - 1, nrcpt, &r);
	if (rc != DCCIFD_OK && rc != DCCIFD_SHORT && rc != DCCIFD_GARBAGE)
		abort();
	if (rc != DCCIFD_OK)
		return 0;
	if (r.result == '\0' || strchr("ARSTG", r.result) == NULL)
		abort();
	if (memchr(r.header, '\0', sizeof(r.header)) == NULL)
		abort();
	if (r.header[0] != '\0' && strncasecmp(r.header, "X-DCC-", 6) != 0)
		abort();
	for (p = r.header; *p != '\0'; p++)
		if ((*p < 32 || *p > 126) && *p != '\t')
			abort();
	if (r.bulk && r.header[0] == '\0')
		abort();
	return 0;
}
