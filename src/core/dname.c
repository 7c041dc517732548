/* dname: one domain-name validator, flags for the real differences. */
#include "dname.h"

#include "str.h"

/* RFC 1035 §2.3.4. */
#define LABEL_MAX	63
/* A U-label's A-label is "xn--" plus one octet a code point at least. */
#define ULABEL_CP_MAX	(LABEL_MAX - 4)

static int
is_ldh(unsigned char c, unsigned flags)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '-' ||
	    (c == '_' && (flags & DNAME_UNDERSCORE));
}

enum dname_err
dname_check(const char *s, size_t n, unsigned flags)
{
	const unsigned char *d = (const unsigned char *)s;
	size_t i = 0, start = 0, cps, len, labels = 0;
	int utf8, digits;

	for (;;) {
		start = i;
		cps = 0;
		utf8 = 0;
		digits = 1;
		while (i < n && d[i] != '.') {
			if (d[i] >= 0x80) {
				if (!(flags & DNAME_UTF8) ||
				    (len = str_utf8_len(d + i, n - i)) == 0)
					return DNAME_ERR_UTF8;
				utf8 = 1;
				digits = 0;
				i += len;
			} else if (is_ldh(d[i], flags)) {
				if (d[i] < '0' || d[i] > '9')
					digits = 0;
				i++;
			} else
				return DNAME_ERR_SYNTAX;
			cps++;
		}
		/* Empty label: leading, doubled or trailing dot. */
		if (i == start || d[start] == '-' || d[i - 1] == '-')
			return DNAME_ERR_SYNTAX;
		if (utf8 ? cps > ULABEL_CP_MAX : i - start > LABEL_MAX)
			return DNAME_ERR_SYNTAX;
		labels++;
		if (i == n)
			break;
		i++;			/* the dot */
	}
	if (n > ((flags & DNAME_SMTP_LENGTH) ? 255 : DNAME_MAX))
		return DNAME_ERR_TOO_LONG;
	/* digits: the last label's, the top-level domain. */
	if (((flags & DNAME_DOTTED) && labels < 2) ||
	    ((flags & DNAME_ALPHA_TLD) && digits))
		return DNAME_ERR_NOT_FQDN;
	return DNAME_OK;
}

int
dname_valid(const char *s, unsigned flags)
{
	size_t n = 0;

	while (s[n] != '\0')
		n++;
	return dname_check(s, n, flags) == DNAME_OK;
}
