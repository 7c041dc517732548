/*
 * fuzz_dnspacket: libFuzzer harness for packet.c, the reader of whatever
 * answered our resolver. The first byte picks the type asked for, the
 * rest is the packet, read as an answer to "example.test". Every answer
 * read must keep the promises of packet.h (counts within bounds, names
 * NUL-ended and short enough); a broken promise aborts.
 * Seeds: fuzz/corpus/dnspacket/.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "packet.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static const uint16_t types[] = {
	DNS_T_A, DNS_T_AAAA, DNS_T_MX, DNS_T_TXT, DNS_T_PTR, DNS_T_CNAME
};

static void
check_name(const char *n)
{
	size_t len = strnlen(n, DNS_NAME_MAX);

	if (len == 0 || len >= DNS_NAME_MAX)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct packet_answer ans;
	uint16_t type;
	size_t i;

	if (size < 1)
		return 0;
	type = types[data[0] % (sizeof(types) / sizeof(types[0]))];
	if (packet_parse(data + 1, size - 1, "example.test", type, &ans) != 0)
		return 0;
	if (ans.nrr > PACKET_RR_MAX || ans.ncname > PACKET_CNAME_MAX ||
	    ans.rcode < 0 || ans.rcode > 15)
		abort();
	check_name(ans.canon);
	for (i = 0; i < ans.nrr; i++) {
		if (ans.rr[i].type != type)
			abort();
		if (type == DNS_T_MX)
			check_name(ans.rr[i].u.mx.host);
		if (type == DNS_T_PTR || type == DNS_T_CNAME)
			check_name(ans.rr[i].u.ptr);
		if (type == DNS_T_TXT && ans.rr[i].u.txt.len > DNS_TXT_MAX)
			abort();
	}
	return 0;
}
