/*
 * packet_test: answers built byte by byte — well-formed ones read right
 * (CNAME chains, compression, case), malformed ones refused (pointer
 * loops, forward pointers, lengths past the end, bad RDATA).
 */
#include "packet.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

struct pkt {
	uint8_t	b[2048];
	size_t	len;
};

static void
put(struct pkt *p, const void *d, size_t n)
{
	assert_true(p->len + n <= sizeof(p->b));
	memcpy(p->b + p->len, d, n);
	p->len += n;
}

static void
put16(struct pkt *p, unsigned v)
{
	uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };

	put(p, b, 2);
}

static void
put32(struct pkt *p, uint32_t v)
{
	put16(p, v >> 16);
	put16(p, v & 0xffff);
}

/* "a.b.c" as labels; "." is the root. */
static void
name(struct pkt *p, const char *n)
{
	while (*n != '\0' && strcmp(n, ".") != 0) {
		size_t l = strcspn(n, ".");
		uint8_t c = (uint8_t)l;

		put(p, &c, 1);
		put(p, n, l);
		n += l;
		if (*n == '.')
			n++;
	}
	put(p, "", 1);
}

static void
header(struct pkt *p, int rcode, unsigned an)
{
	p->len = 0;
	put16(p, 0x1234);
	put16(p, 0x8180 | (unsigned)rcode);
	put16(p, 1);
	put16(p, an);
	put16(p, 0);
	put16(p, 0);
}

static void
question(struct pkt *p, const char *q, unsigned type)
{
	name(p, q);
	put16(p, type);
	put16(p, 1);
}

static void
rr(struct pkt *p, const char *owner, unsigned type, const void *rd,
    size_t rdlen)
{
	name(p, owner);
	put16(p, type);
	put16(p, 1);
	put32(p, 3600);
	put16(p, (unsigned)rdlen);
	put(p, rd, rdlen);
}

/* A CNAME record: owner -> target. */
static void
cname(struct pkt *p, const char *owner, const char *target)
{
	struct pkt rd;

	rd.len = 0;
	name(&rd, target);
	rr(p, owner, DNS_T_CNAME, rd.b, rd.len);
}

static void
test_a_and_mx(void **state)
{
	struct packet_answer ans;
	struct pkt p, rd;
	uint8_t a1[4] = { 100, 0, 0, 25 }, a2[4] = { 100, 0, 0, 26 };

	header(&p, 0, 2);
	question(&p, "mx.example.test", DNS_T_A);
	rr(&p, "MX.Example.TEST", DNS_T_A, a1, 4);
	rr(&p, "mx.example.test", DNS_T_A, a2, 4);
	assert_int_equal(packet_parse(p.b, p.len, "mx.example.test.",
	    DNS_T_A, &ans), 0);
	assert_int_equal(ans.rcode, 0);
	assert_int_equal(ans.nrr, 2);
	assert_memory_equal(ans.rr[0].u.a, a1, 4);
	assert_int_equal(ans.rr[1].ttl, 3600);

	/* MX with its target compressed against the question. */
	header(&p, 0, 1);
	question(&p, "example.test", DNS_T_MX);
	rd.len = 0;
	put16(&rd, 10);
	put(&rd, "\x02mx\xc0\x0c", 5);		/* mx + pointer to offset 12 */
	rr(&p, "example.test", DNS_T_MX, rd.b, rd.len);
	assert_int_equal(packet_parse(p.b, p.len, "example.test", DNS_T_MX,
	    &ans), 0);
	assert_int_equal(ans.nrr, 1);
	assert_int_equal(ans.rr[0].u.mx.pref, 10);
	assert_string_equal(ans.rr[0].u.mx.host, "mx.example.test");

	/* Null MX: the root. */
	header(&p, 0, 1);
	question(&p, "nomail.test", DNS_T_MX);
	rd.len = 0;
	put16(&rd, 0);
	put(&rd, "", 1);
	rr(&p, "nomail.test", DNS_T_MX, rd.b, rd.len);
	assert_int_equal(packet_parse(p.b, p.len, "nomail.test", DNS_T_MX,
	    &ans), 0);
	assert_string_equal(ans.rr[0].u.mx.host, ".");
}

static void
test_cname_chain(void **state)
{
	struct packet_answer ans;
	struct pkt p;
	uint8_t a[4] = { 100, 0, 0, 25 };

	header(&p, 0, 3);
	question(&p, "alias.test", DNS_T_A);
	cname(&p, "alias.test", "mid.test");
	cname(&p, "mid.test", "real.test");
	rr(&p, "real.test", DNS_T_A, a, 4);
	assert_int_equal(packet_parse(p.b, p.len, "alias.test", DNS_T_A,
	    &ans), 0);
	assert_int_equal(ans.ncname, 2);
	assert_string_equal(ans.canon, "real.test");
	assert_int_equal(ans.nrr, 1);

	/* A record for another name is not ours. */
	header(&p, 0, 1);
	question(&p, "q.test", DNS_T_A);
	rr(&p, "other.test", DNS_T_A, a, 4);
	assert_int_equal(packet_parse(p.b, p.len, "q.test", DNS_T_A, &ans),
	    0);
	assert_int_equal(ans.nrr, 0);

	/* A CNAME loop is refused. */
	header(&p, 0, 2);
	question(&p, "x.test", DNS_T_A);
	cname(&p, "x.test", "y.test");
	cname(&p, "y.test", "x.test");
	assert_int_equal(packet_parse(p.b, p.len, "x.test", DNS_T_A, &ans),
	    -1);
}

static void
test_nxdomain_and_txt(void **state)
{
	struct packet_answer ans;
	struct pkt p;

	header(&p, 3, 0);
	question(&p, "nx.test", DNS_T_MX);
	assert_int_equal(packet_parse(p.b, p.len, "nx.test", DNS_T_MX, &ans),
	    0);
	assert_int_equal(ans.rcode, DNS_RCODE_NXDOMAIN);
	assert_int_equal(ans.nrr, 0);

	header(&p, 0, 1);
	question(&p, "t.test", DNS_T_TXT);
	rr(&p, "t.test", DNS_T_TXT, "\x03" "abc" "\x02" "de", 7);
	assert_int_equal(packet_parse(p.b, p.len, "t.test", DNS_T_TXT, &ans),
	    0);
	assert_int_equal(ans.rr[0].u.txt.len, 5);
	assert_memory_equal(ans.rr[0].u.txt.data, "abcde", 5);
}

static void
test_malformed(void **state)
{
	struct packet_answer ans;
	struct pkt p, good;
	uint8_t a[4] = { 1, 2, 3, 4 };
	size_t cut;

	/* Every truncation of a good packet is refused or read safely. */
	header(&good, 0, 1);
	question(&good, "a.test", DNS_T_A);
	rr(&good, "a.test", DNS_T_A, a, 4);
	for (cut = 0; cut < good.len; cut++)
		assert_int_equal(packet_parse(good.b, cut, "a.test", DNS_T_A,
		    &ans), -1);

	/* A pointer to itself, and one pointing forwards. */
	header(&p, 0, 1);
	question(&p, "a.test", DNS_T_A);
	put(&p, "\xc0\x18", 2);	/* at offset 24: points to 24 */
	put16(&p, DNS_T_A);
	put16(&p, 1);
	put32(&p, 1);
	put16(&p, 4);
	put(&p, a, 4);
	assert_int_equal(p.b[24], 0xc0);
	assert_int_equal(packet_parse(p.b, p.len, "a.test", DNS_T_A, &ans),
	    -1);
	p.b[25] = 0x30;
	assert_int_equal(packet_parse(p.b, p.len, "a.test", DNS_T_A, &ans),
	    -1);

	/* A of 5 bytes. */
	header(&p, 0, 1);
	question(&p, "a.test", DNS_T_A);
	rr(&p, "a.test", DNS_T_A, "\1\2\3\4\5", 5);
	assert_int_equal(packet_parse(p.b, p.len, "a.test", DNS_T_A, &ans),
	    -1);

	/* Not a response; too many questions. */
	memcpy(&p, &good, sizeof(p));
	p.b[2] &= 0x7f;
	assert_int_equal(packet_parse(p.b, p.len, "a.test", DNS_T_A, &ans),
	    -1);
	memcpy(&p, &good, sizeof(p));
	p.b[5] = 2;
	assert_int_equal(packet_parse(p.b, p.len, "a.test", DNS_T_A, &ans),
	    -1);

	/* A name longer than 255 octets. */
	header(&p, 0, 0);
	for (cut = 0; cut < 5; cut++)
		put(&p, "\x3f" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		    "aaaaaaaaaaaaa", 64);
	put(&p, "", 1);
	put16(&p, 1);
	put16(&p, 1);
	assert_int_equal(packet_parse(p.b, p.len, "a.test", DNS_T_A, &ans),
	    -1);
}

static void
test_escapes(void **state)
{
	struct packet_answer ans;
	struct pkt p, rd;

	header(&p, 0, 1);
	question(&p, "p.test", DNS_T_PTR);
	rd.len = 0;
	put(&rd, "\x03" "a.b" "\x04" "test" "\x00", 10);
	rr(&p, "p.test", DNS_T_PTR, rd.b, rd.len);
	assert_int_equal(packet_parse(p.b, p.len, "p.test", DNS_T_PTR, &ans),
	    0);
	assert_string_equal(ans.rr[0].u.ptr, "a\\046b.test");
	assert_true(packet_name_eq("A.b.", "a.B"));
	assert_false(packet_name_eq("a.b", "a.bc"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_and_mx),
		cmocka_unit_test(test_cname_chain),
		cmocka_unit_test(test_nxdomain_and_txt),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_escapes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
