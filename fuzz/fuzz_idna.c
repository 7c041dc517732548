/*
 * fuzz_idna: libFuzzer harness for idna.c, the domain normalisation of
 * MAIL, RCPT and the domains file. The input is a domain as a peer
 * writes it (U-labels, A-labels, garbage). What idna.h promises:
 * an accepted name comes out as a valid ASCII domain; converting that
 * again gives the same (the A-label form is a fixed point); its U-label
 * form, when it has one, converts back to the same A-label form; a
 * refusal leaves an empty output. A broken promise aborts.
 * Seeds: fuzz/corpus/idna/.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "idna.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char a[ADDR_DOMAIN_MAX + 1], b[ADDR_DOMAIN_MAX + 1];
	char u[4 * ADDR_DOMAIN_MAX + 1];
	const char *why = NULL;
	enum idna_err e;
	size_t n;

	/* What the door hands over: a name addr.c's grammar accepted. */
	if (!addr_domain_valid((const char *)data, size, 1))
		return 0;
	e = idna_to_alabel((const char *)data, size, a, sizeof(a), &why);
	if (why == NULL)
		abort();
	if (e != IDNA_OK) {
		if (a[0] != '\0')
			abort();
		return 0;
	}
	n = strlen(a);
	if (n == 0 || n > ADDR_DOMAIN_MAX || !addr_domain_valid(a, n, 0))
		abort();
	/* Round trip: the A-label form is its own form. */
	if (idna_to_alabel(a, n, b, sizeof(b), NULL) != IDNA_OK ||
	    strcasecmp(a, b) != 0)
		abort();
	/* And its U-label form leads back to it (when that fits the
	 * 255 octets a peer could send it in). */
	idna_to_ulabel(a, u, sizeof(u));
	if (u[0] != '\0' && strlen(u) <= ADDR_DOMAIN_MAX &&
	    (idna_to_alabel(u, strlen(u), b, sizeof(b), NULL) != IDNA_OK ||
	    strcasecmp(a, b) != 0))
		abort();
	return 0;
}
