/*
 * idna: one form for every domain, the A-label one (idna.h). libidn2
 * does IDNA2008 and UTS #46; this file only decides what goes to it and
 * checks what comes back, so that a caller can trust the result as a
 * plain LDH domain of at most 255 octets.
 *
 * Why UTS #46 non-transitional: it is what browsers and mail clients
 * use to turn what a user typed into a name (upper case, full-width
 * forms, NFC) and it keeps 'ß' and the joiners as IDNA2008 defines them
 * (docs/smtp.md, "International mail").
 */
#include "idna.h"

#include <idn2.h>
#include <string.h>

#include "addr.h"
#include "str.h"

#define IDNA_FLAGS	(IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL | \
			    IDN2_USE_STD3_ASCII_RULES)

int
idna_has_alabel(const char *d, size_t len)
{
	size_t i;

	for (i = 0; i + 4 <= len; i++) {
		if (i > 0 && d[i - 1] != '.')
			continue;
		if ((d[i] == 'x' || d[i] == 'X') &&
		    (d[i + 1] == 'n' || d[i + 1] == 'N') &&
		    d[i + 2] == '-' && d[i + 3] == '-')
			return 1;
	}
	return 0;
}

enum idna_err
idna_to_alabel(const char *d, size_t len, char *out, size_t outsz,
    const char **why)
{
	char in[ADDR_DOMAIN_MAX + 1];
	uint8_t *res = NULL;
	size_t n;
	int rc;

	if (why != NULL)
		*why = "ok";
	if (outsz == 0)
		return IDNA_ERR_TOO_LONG;
	out[0] = '\0';
	if (len == 0 || len >= sizeof(in) || memchr(d, '\0', len) != NULL) {
		if (why != NULL)
			*why = "not a domain name";
		return len >= sizeof(in) ? IDNA_ERR_TOO_LONG :
		    IDNA_ERR_INVALID;
	}
	/* The common case, untouched: nothing for IDNA to do. */
	if (!str_has_8bit(d, len) && !idna_has_alabel(d, len)) {
		if (len >= outsz)
			return IDNA_ERR_TOO_LONG;
		memcpy(out, d, len);
		out[len] = '\0';
		return IDNA_OK;
	}
	memcpy(in, d, len);
	in[len] = '\0';
	/* An A-label is decoded and checked too: "xn--" followed by
	 * anything is no name (RFC 5891 §5.4). */
	rc = idn2_lookup_u8((const uint8_t *)in, &res, IDNA_FLAGS);
	if (rc != IDN2_OK) {
		if (why != NULL)
			*why = idn2_strerror(rc);
		idn2_free(res);
		return IDNA_ERR_INVALID;
	}
	n = strlen((const char *)res);
	if (n >= outsz || n > ADDR_DOMAIN_MAX) {
		idn2_free(res);
		if (why != NULL)
			*why = "domain too long in its A-label form";
		return IDNA_ERR_TOO_LONG;
	}
	memcpy(out, res, n + 1);
	idn2_free(res);
	/* The mapping can make what the SMTP grammar refuses (a full-width
	 * '＿' becomes '_', a dropped character an empty label). */
	if (!addr_domain_valid(out, n, 0)) {
		out[0] = '\0';
		if (why != NULL)
			*why = "not a valid domain once mapped";
		return IDNA_ERR_INVALID;
	}
	return IDNA_OK;
}

void
idna_to_ulabel(const char *alabel, char *out, size_t outsz)
{
	char *u = NULL;

	if (outsz == 0)
		return;
	out[0] = '\0';
	if (!idna_has_alabel(alabel, strlen(alabel)))
		return;
	if (idn2_to_unicode_8z8z(alabel, &u, 0) == IDN2_OK && u != NULL)
		str_copy(out, outsz, u);
	idn2_free(u);
}
