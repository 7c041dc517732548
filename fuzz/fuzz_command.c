/*
 * libFuzzer harness for the SMTP command-line parser: whatever the bytes,
 * no crash, and an argument always lies inside the line.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *line = (const char *)data;
	struct smtp_cmd cmd;

	if (parse_command(line, size, &cmd) != PARSE_OK)
		return 0;
	if (cmd.arg < line || cmd.arg + cmd.arglen > line + size)
		abort();
	if (memchr(line, '\r', size) || memchr(line, '\n', size) ||
	    memchr(line, '\0', size))
		abort();
	(void)parse_ends_group(cmd.verb);
	return 0;
}
