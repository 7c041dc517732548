/*
 * fuzz_esmtp: libFuzzer harness for esmtp.c. The input is what a peer
 * sends after the path of MAIL FROM or RCPT TO; it is parsed both ways,
 * and also run through the xtext decoder and encoder, which must round
 * trip. A broken promise of esmtp.h aborts so libFuzzer records it.
 * Seeds: fuzz/corpus/esmtp/.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "esmtp.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* Decoded xtext: printable US-ASCII or space, NUL-terminated at n. */
static void
check_decoded(const char *s, size_t max)
{
	size_t i, n = strlen(s);

	if (n > max)
		abort();
	for (i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			abort();
}

static void
check_error(const struct esmtp_error *err)
{
	if ((err->code != 501 && err->code != 555) || err->enhanced == NULL ||
	    strcmp(err->enhanced, "5.5.4") != 0 || err->text == NULL ||
	    err->text[0] == '\0')
		abort();
}

static void
check_xtext(const char *s, size_t len)
{
	static char dec[4096], enc[3 * sizeof(dec) + 1], dec2[sizeof(dec)];
	size_t i;
	int n, m, k, printable = 1;

	if (len >= sizeof(dec))
		return;

	/* encode(decode(x)) decodes back to decode(x). */
	if ((n = esmtp_xtext_decode(s, len, dec, sizeof(dec))) >= 0) {
		if ((size_t)n > len || strlen(dec) != (size_t)n)
			abort();
		check_decoded(dec, len);
		if ((m = esmtp_xtext_encode(dec, (size_t)n, enc,
		    sizeof(enc))) < 0)
			abort();
		if ((k = esmtp_xtext_decode(enc, (size_t)m, dec2,
		    sizeof(dec2))) != n || memcmp(dec, dec2, (size_t)n) != 0)
			abort();
		/* One byte less of room than needed must be refused. */
		if (esmtp_xtext_decode(s, len, dec2, (size_t)n) != -1)
			abort();
	}

	/* decode(encode(x)) is x exactly when x is printable. */
	for (i = 0; i < len; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			printable = 0;
	if ((m = esmtp_xtext_encode(s, len, enc, sizeof(enc))) < 0)
		abort();
	for (i = 0; i < (size_t)m; i++)
		if (enc[i] < 0x21 || enc[i] > 0x7e || enc[i] == '=')
			abort();
	k = esmtp_xtext_decode(enc, (size_t)m, dec2, sizeof(dec2));
	if (printable ? (k != (int)len || memcmp(s, dec2, len) != 0) :
	    k != -1)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	struct mail_params mp;
	struct rcpt_params rp;
	struct esmtp_error err;
	int n;

	if (esmtp_parse_mail(s, size, &mp, &err) == 0) {
		if (mp.body > ESMTP_BODY_8BITMIME || mp.ret > ESMTP_RET_HDRS ||
		    (!mp.has_size && mp.size != 0))
			abort();
		check_decoded(mp.envid, ESMTP_ENVID_MAX);
	} else
		check_error(&err);

	if (esmtp_parse_rcpt(s, size, &rp, &err) == 0) {
		n = rp.notify;
		if ((n & ~0x0f) != 0 || ((n & ESMTP_NOTIFY_NEVER) &&
		    n != ESMTP_NOTIFY_NEVER))
			abort();
		check_decoded(rp.orcpt, ESMTP_ORCPT_MAX);
		if (strlen(rp.orcpt_type) >= sizeof(rp.orcpt_type) ||
		    (rp.orcpt_type[0] == '\0') != (rp.orcpt[0] == '\0'))
			abort();
	} else
		check_error(&err);

	check_xtext(s, size);
	return 0;
}
