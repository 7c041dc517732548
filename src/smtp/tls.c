/*
 * tls: OpenSSL 3 server context for STARTTLS. Options per docs/dependencies.md
 * §3: no renegotiation, server cipher preference, and a peer that hangs up
 * without close_notify is an EOF, not an error (SMTP shows truncation itself:
 * CRLF.CRLF and QUIT).
 */
#include "tls.h"

#include <stdio.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

static void
tls_error(char *err, size_t errsz, const char *what, const char *file)
{
	unsigned long e = ERR_get_error();
	char buf[256];

	ERR_error_string_n(e, buf, sizeof(buf));
	snprintf(err, errsz, "%s: %s: %s", file, what, buf);
	ERR_clear_error();
}

SSL_CTX *
tls_server_ctx(const char *cert_file, const char *key_file, char *err,
    size_t errsz)
{
	SSL_CTX *ctx;

	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		tls_error(err, errsz, "SSL_CTX_new", "tls");
		return NULL;
	}
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF |
	    SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
	    SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* Opportunistic TLS for mail: we do not ask for client certs. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		tls_error(err, errsz, "cannot load certificate", cert_file);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
		tls_error(err, errsz, "cannot load key", key_file);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		tls_error(err, errsz, "key does not match certificate",
		    key_file);
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

void
tls_ctx_free(SSL_CTX *ctx)
{
	SSL_CTX_free(ctx);
}

void
tls_describe(SSL *ssl, char *out, size_t outsz)
{
	int alg = 0, bits = SSL_get_cipher_bits(ssl, &alg);

	snprintf(out, outsz, "%s with cipher %s (%d/%d bits)",
	    SSL_get_version(ssl), SSL_get_cipher_name(ssl), bits, alg);
}
