/* tls.h - TLS on any listener (OpenSSL): a connection whose first byte is a TLS handshake
 * record (0x16) is served over TLS when a certificate is configured; the protocol inside is
 * then detected as usual. The TLS transport (transport.h) is non-blocking: its reads and
 * writes report what they wait for. */
#ifndef LC_TLS_H
#define LC_TLS_H

#include <stdbool.h>

struct stream;

/* Load the certificate chain and key (PEM). TLS 1.2 and 1.3 only. Returns 0, or -1 after
 * printing a clear error. */
int tls_init(const char *cert_file, const char *key_file);
bool tls_enabled(void);
void tls_cleanup(void);

/* Before a plain stream's first read: when a certificate is configured and the first byte
 * waiting on the socket starts a TLS handshake record (0x16), serve s over TLS from now on.
 * The byte is only peeked at. Returns 1 when s is TLS now, 0 when it stays plain, -EAGAIN
 * when no byte has arrived yet, or another -errno (-ENOMEM: s is unchanged). */
int tls_detect(struct stream *s);

#endif
