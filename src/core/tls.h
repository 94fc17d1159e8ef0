/* tls.h - TLS on any listener (OpenSSL): a connection whose first byte is a TLS handshake
 * record (0x16) is served over TLS when a certificate is configured; the protocol inside is
 * then detected as usual. Non-blocking: reads and writes report what they wait for. */
#ifndef LC_TLS_H
#define LC_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct ssl_st;

/* Load the certificate chain and key (PEM). TLS 1.2 and 1.3 only. Returns 0, or -1 after
 * printing a clear error. */
int tls_init(const char *cert_file, const char *key_file);
bool tls_enabled(void);
void tls_cleanup(void);

/* A server-side TLS session on a connected socket, or NULL. */
struct ssl_st *tls_new(int fd);
void tls_free(struct ssl_st *ssl); /* Best-effort close_notify, then free. NULL is a no-op. */

enum { TLS_WANT_READ = 1, TLS_WANT_WRITE = 2 };

/* Like recv/send: > 0 bytes moved; 0 from tls_recv at a clean end; -1 on error (the
 * connection is finished); -2 when it must wait, with *want saying for what. */
ssize_t tls_recv(struct ssl_st *ssl, void *buf, size_t n, int *want);
ssize_t tls_send(struct ssl_st *ssl, const void *buf, size_t n, int *want);
/* Decrypted bytes buffered inside the session (epoll cannot see them). */
size_t tls_pending(struct ssl_st *ssl);

#endif
