/*
 * data: the DATA scanner. Takes the raw bytes a client sends after "354",
 * however they are split across reads, and yields the dot-unstuffed message.
 * Pure state machine, no I/O, no allocation (fuzz/fuzz_data.c).
 *
 * Only CR LF "." CR LF ends the data, where that first CR LF really ended a
 * line (the 354 counts as one: ".\r\n" first thing is an empty message). A
 * bare CR or bare LF anywhere (SMTP smuggling, CVE-2023-51764) never ends
 * anything: it sets DATA_ERR_BARE and the scan goes on to the real end, so
 * that the session can refuse the message once (550 5.5.2). A leading dot
 * on a line is removed (RFC 5321 §4.5.2). Line ends are passed through as
 * CR LF.
 */
#ifndef BACKMX_DATA_H
#define BACKMX_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "envelope.h"

/* The sticky DATA_* flags OR-ed into data_scan.flags live in envelope.h:
 * they travel with the message into the queue and the SMTP client. */

struct data_scan {
	int		state;		/* private */
	size_t		linelen;	/* private: octets in the current line */
	uint64_t	size;		/* unstuffed octets emitted so far */
	int		flags;		/* DATA_* */
};

/* Called with unstuffed message bytes, in order. May be called many times
 * per data_scan_feed(). The scan's flags already hold what the bytes
 * given so far set (a sink can stop at the first bare CR or LF). */
typedef void	data_sink_cb(const char *buf, size_t len, void *arg);

void	data_scan_init(struct data_scan *);

/*
 * Feed len bytes. Unstuffed message bytes go to sink (may be NULL: count
 * only). Returns how many input bytes were consumed: all of them, or fewer
 * when the end of data was reached, in which case *done_out is set to 1 and
 * the bytes left over belong to the next command (pipelining after the
 * dot is legal, RFC 2920 §3.1). The final CRLF.CRLF's ".CRLF" is not
 * emitted; the CRLF before it is (it ends the last line).
 */
size_t	data_scan_feed(struct data_scan *, const char *in, size_t len,
	    int *done_out, data_sink_cb *sink, void *arg);

#endif
