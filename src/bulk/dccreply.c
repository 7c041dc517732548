/*
 * dccreply: dccifd's answer, parsed strictly and within bounds
 * (dccreply.h, docs/bulk.md §7).
 */
#include "dccreply.h"

#include <string.h>
#include <strings.h>

#define RESULTS	"ARSTG"

/* The line at *pos: its start and length without the LF (and a CR before
 * it); *pos moves past it. 0 when no LF ends it: the answer was cut. */
static int
next_line(const char *buf, size_t len, size_t *pos, const char **line,
    size_t *ll)
{
	const char *eol;

	if (*pos >= len)
		return 0;
	if ((eol = memchr(buf + *pos, '\n', len - *pos)) == NULL)
		return 0;
	*line = buf + *pos;
	*ll = (size_t)(eol - *line);
	*pos = (size_t)(eol - buf) + 1;
	if (*ll > 0 && (*line)[*ll - 1] == '\r')
		(*ll)--;
	return 1;
}

static int
printable(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((p[i] < 32 || p[i] > 126) && p[i] != '\t')
			return 0;
	return 1;
}

/* "X-DCC-brand-Metrics:" ... : a field name led by X-DCC-, then a colon. */
static int
header_start(const char *p, size_t n)
{
	size_t i;

	if (n < 7 || strncasecmp(p, "X-DCC-", 6) != 0)
		return 0;
	for (i = 6; i < n && p[i] != ':'; i++)
		if (p[i] <= 32 || p[i] > 126)
			return 0;
	return i < n && i > 6;
}

/*
 * Does the header's value call the message bulk? DCC writes the word
 * "bulk" when a count passed the daemon's thresholds, and "many" for a
 * count reported as spam (Body=many, Fuz1=many, Fuz2=many): either is
 * bulk here (docs/bulk.md §7).
 */
static int
header_bulk(const char *h)
{
	const char *v = strchr(h, ':'), *eq;
	char tok[64];
	size_t n;

	for (v = v + 1; *v != '\0'; v += n) {
		n = strcspn(v, " \t;");
		if (n == 0) {
			n = 1;
			continue;
		}
		if (n >= sizeof(tok))
			continue;
		memcpy(tok, v, n);
		tok[n] = '\0';
		if (strcasecmp(tok, "bulk") == 0)
			return 1;
		if ((eq = strchr(tok, '=')) != NULL &&
		    strcasecmp(eq + 1, "many") == 0)
			return 1;
	}
	return 0;
}

/* The X-DCC header from *pos on: its first line, its folded ones, at most
 * empty lines after it; unfolded into out->header. */
static int
parse_header(const char *buf, size_t len, size_t pos,
    struct dccifd_reply *out)
{
	const char *line;
	size_t ll, hl = 0, p = pos;
	int ended = 0;

	while (p < len) {
		if (!next_line(buf, len, &p, &line, &ll))
			return DCCIFD_SHORT;
		if (ll == 0) {
			ended = 1;	/* a blank line closes it */
			continue;
		}
		if (ended || !printable(line, ll))
			return DCCIFD_GARBAGE;
		if (hl == 0 ? !header_start(line, ll) :
		    line[0] != ' ' && line[0] != '\t')
			return DCCIFD_GARBAGE;
		if (hl + ll >= sizeof(out->header))
			return DCCIFD_GARBAGE;
		/* Unfolding drops the line break, keeps the white space
		 * (RFC 5322 §2.2.3). */
		memcpy(out->header + hl, line, ll);
		hl += ll;
		out->header[hl] = '\0';
	}
	if (hl > 0)
		out->bulk = header_bulk(out->header);
	return DCCIFD_OK;
}

int
dccifd_parse(const char *buf, size_t len, size_t nrcpt,
    struct dccifd_reply *out)
{
	const char *line;
	size_t ll, i, pos = 0;
	int rc;

	memset(out, 0, sizeof(*out));
	if (len > DCCIFD_REPLY_MAX || nrcpt == 0 || nrcpt > DCCIFD_RCPTS_MAX)
		return DCCIFD_GARBAGE;
	if (len > 0 && strchr(RESULTS, buf[0]) == NULL)
		return DCCIFD_GARBAGE;
	if (!next_line(buf, len, &pos, &line, &ll))
		return DCCIFD_SHORT;
	if (ll != 1 || line[0] == '\0' || strchr(RESULTS, line[0]) == NULL)
		return DCCIFD_GARBAGE;
	if (!next_line(buf, len, &pos, &line, &ll)) {
		/* Cut, unless what came is already wrong. */
		for (i = pos; i < len && i - pos < nrcpt; i++)
			if (buf[i] == '\0' || strchr(RESULTS, buf[i]) == NULL)
				return DCCIFD_GARBAGE;
		return len - pos > nrcpt ? DCCIFD_GARBAGE : DCCIFD_SHORT;
	}
	if (ll != nrcpt)
		return DCCIFD_GARBAGE;
	for (i = 0; i < ll; i++)
		if (line[i] == '\0' || strchr(RESULTS, line[i]) == NULL)
			return DCCIFD_GARBAGE;
	if ((rc = parse_header(buf, len, pos, out)) != DCCIFD_OK) {
		memset(out, 0, sizeof(*out));
		return rc;
	}
	out->result = buf[0];
	return DCCIFD_OK;
}
