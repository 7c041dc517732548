/* json: a streaming JSON writer; see json.h for what it guarantees. */
#include "json.h"

#include <string.h>

#include "str.h"

void
json_init(struct json *j, json_write_fn *write, void *arg)
{
	memset(j, 0, sizeof(*j));
	j->write = write;
	j->arg = arg;
}

void
json_stdio(void *arg, const char *p, size_t n)
{
	fwrite(p, 1, n, arg);
}

static void
put(struct json *j, const char *p, size_t n)
{
	j->write(j->arg, p, n);
}

/*
 * Before a value: a comma after an earlier member, nothing after a key.
 * In an object a value needs its key first. 0, or -1 (recorded) when
 * the value is not allowed here.
 */
static int
value_start(struct json *j)
{
	char *c;

	if (j->error)
		return -1;
	if (j->depth == 0)
		return 0;		/* a document of its own */
	c = &j->open[j->depth - 1];
	if (*c == 'o' || *c == 'O') {
		if (!j->key) {
			j->error = 1;
			return -1;
		}
		j->key = 0;
		return 0;
	}
	if (*c == 'A')
		put(j, ",", 1);
	*c = 'A';
	return 0;
}

/* s, n bytes, escaped, without the quotes. */
static void
escaped(struct json *j, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, run = 0, len = 0;
	char esc[6] = { '\\', 'u', '0', '0', 0, 0 };

	while (i < n) {
		unsigned char c = p[i];

		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
			run++;
			i++;
			continue;
		}
		if (c >= 0x80 && (len = str_utf8_len(p + i, n - i)) > 0 &&
		    !str_cp_control(str_utf8_cp(p + i, len))) {
			run += len;
			i += len;
			continue;
		}
		put(j, s + i - run, run);
		run = 0;
		if (c >= 0x80 && len > 0) {
			/* C1 and bidi controls (docs/principles.md §4): all
			 * in the BMP, so one \uXXXX each. */
			uint32_t cp = str_utf8_cp(p + i, len);
			char u[6] = { '\\', 'u', hex[cp >> 12 & 15],
			    hex[cp >> 8 & 15], hex[cp >> 4 & 15], hex[cp & 15] };

			put(j, u, 6);
			i += len;
			continue;
		}
		if (c == '"' || c == '\\') {
			esc[1] = (char)c;
			put(j, esc, 2);
			esc[1] = 'u';
		} else if (c >= 0x80)
			put(j, "\\ufffd", 6);	/* not UTF-8 */
		else {
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 0x0f];
			put(j, esc, 6);
		}
		i++;
	}
	put(j, s + i - run, run);
}

static void
open_container(struct json *j, char kind, const char *brace)
{
	if (value_start(j) == -1)
		return;
	if (j->depth == JSON_DEPTH_MAX) {
		j->error = 1;
		return;
	}
	j->open[j->depth++] = kind;
	put(j, brace, 1);
}

void
json_object(struct json *j)
{
	open_container(j, 'o', "{");
}

void
json_array(struct json *j)
{
	open_container(j, 'a', "[");
}

void
json_end(struct json *j)
{
	char c;

	if (j->error || j->depth == 0 || j->key) {
		j->error = 1;
		return;
	}
	c = j->open[--j->depth];
	put(j, c == 'o' || c == 'O' ? "}" : "]", 1);
}

void
json_key(struct json *j, const char *k)
{
	char *c;

	if (j->error || j->depth == 0 || j->key ||
	    ((c = &j->open[j->depth - 1]), *c != 'o' && *c != 'O')) {
		j->error = 1;
		return;
	}
	if (*c == 'O')
		put(j, ",", 1);
	*c = 'O';
	put(j, "\"", 1);
	escaped(j, k, strlen(k));
	put(j, "\":", 2);
	j->key = 1;
}

void
json_stringn(struct json *j, const char *s, size_t n)
{
	if (value_start(j) == -1)
		return;
	put(j, "\"", 1);
	escaped(j, s, n);
	put(j, "\"", 1);
}

void
json_string(struct json *j, const char *s)
{
	json_stringn(j, s, strlen(s));
}

/* A number or literal, already text. */
static void
literal(struct json *j, const char *s, size_t n)
{
	if (value_start(j) == -1)
		return;
	put(j, s, n);
}

void
json_int(struct json *j, int64_t v)
{
	char buf[24];
	int n = snprintf(buf, sizeof(buf), "%lld", (long long)v);

	literal(j, buf, (size_t)n);
}

void
json_uint(struct json *j, uint64_t v)
{
	char buf[24];
	int n = snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);

	literal(j, buf, (size_t)n);
}

void
json_bool(struct json *j, int v)
{
	literal(j, v ? "true" : "false", v ? 4 : 5);
}

void
json_null(struct json *j)
{
	literal(j, "null", 4);
}

void
json_raw(struct json *j, const char *s)
{
	if (!j->error)
		put(j, s, strlen(s));
}

void
json_kstr(struct json *j, const char *k, const char *s)
{
	json_key(j, k);
	json_string(j, s);
}

void
json_kstr_or_null(struct json *j, const char *k, const char *s)
{
	json_key(j, k);
	if (s == NULL || s[0] == '\0')
		json_null(j);
	else
		json_string(j, s);
}

void
json_kint(struct json *j, const char *k, int64_t v)
{
	json_key(j, k);
	json_int(j, v);
}

void
json_kuint(struct json *j, const char *k, uint64_t v)
{
	json_key(j, k);
	json_uint(j, v);
}

void
json_kbool(struct json *j, const char *k, int v)
{
	json_key(j, k);
	json_bool(j, v);
}

void
json_ktime(struct json *j, const char *k, int64_t t)
{
	json_key(j, k);
	if (t == 0)
		json_null(j);
	else
		json_int(j, t);
}

int
json_error(const struct json *j)
{
	return j->error ? -1 : 0;
}
