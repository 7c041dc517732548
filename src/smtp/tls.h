/*
 * tls: the server's OpenSSL context, made once (OpenSSL 3 makes contexts
 * slowly, docs/dependencies.md §3) and shared by every session's STARTTLS.
 */
#ifndef BACKMX_TLS_H
#define BACKMX_TLS_H

#include <stddef.h>

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

/* A server context from a PEM certificate chain and key. NULL with the
 * reason in err on failure (the start stops). */
SSL_CTX	*tls_server_ctx(const char *cert_file, const char *key_file,
	    char *err, size_t errsz);
void	 tls_ctx_free(SSL_CTX *);

/* "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)" for the
 * Received: header and logs. */
void	 tls_describe(SSL *, char *out, size_t outsz);

#endif
