/* tls.h: TLS (mbedTLS) as a stream filter, client and server.
 *
 * A tb_tls_config_t is built once from options (role, trust anchors, own
 * certificate, ALPN list) and shared by every session made from it; each
 * session holds a reference, so the creator may free the config while
 * sessions are still running. tb_tls_wrap() puts a session on top of any
 * stream (TCP, a WebSocket channel, a tunnel flow) and returns a stream that
 * follows the stream.h contract, with these TLS-specific points:
 *
 * - Verification is on by default for clients: against ca_file, else the
 *   system bundle (TB_TLS_SYSTEM_CA). A missing bundle is a configuration
 *   error, never a silent downgrade; `insecure` is the explicit opt-out and is
 *   logged as a warning when the config is built. The peer name is checked
 *   against the certificate's DNS names, or its IP addresses when the name is
 *   an IP literal (which is then not sent as SNI, RFC 6066 §3).
 * - The handshake starts at once (client) or on the first bytes (server) and
 *   advances only when bytes arrive: it never blocks the loop. Writes made
 *   before it finishes are queued and count against hiwat. There is no
 *   handshake timer here: the owner's connect or idle timeout covers a peer
 *   that stops halfway.
 * - Any TLS failure (handshake, verification, bad record) is logged once with
 *   mbedTLS's reason and reported as on_close(TB_EPROTO); errors of the lower
 *   stream are passed through unchanged.
 * - on_eof: the peer's close_notify, and also the lower stream's EOF without
 *   one. Many HTTP/1.1 peers close that way, so it is not an error here; a
 *   protocol that must detect truncation frames its own lengths.
 * - shutdown() sends close_notify after everything queued, then shuts the
 *   lower stream down. close() frees the session and closes the lower stream.
 *
 * Memory per session: mbedTLS's record buffers (MBEDTLS_SSL_IN/OUT_CONTENT_LEN,
 * 16 KiB each in Debian's build) plus ciphertext not yet decrypted while the
 * stream is paused. */
#ifndef TB_TLS_H
#define TB_TLS_H

#include "tb/loop.h"
#include "tb/stream.h"

#define TB_TLS_SYSTEM_CA "/etc/ssl/certs/ca-certificates.crt"

typedef struct tb_tls_config tb_tls_config_t;

typedef enum tb_tls_role {
	TB_TLS_CLIENT = 0,
	TB_TLS_SERVER = 1,
} tb_tls_role_t;

typedef struct tb_tls_opts {
	tb_tls_role_t role;
	/* Client: trust anchors (PEM; NULL: TB_TLS_SYSTEM_CA). Server: when set,
	 * clients must present a certificate that chains to it. */
	const char *ca_file;
	bool insecure;	       /* client: do not verify the server at all */
	const char *cert_file; /* server: required; client: optional client certificate */
	const char *key_file;  /* the unencrypted private key of cert_file */
	/* NULL-terminated protocol names, each 1..255 bytes, or NULL. A client
	 * offers them in this order; a server picks the first of its own list
	 * that the client offers (and refuses a client that offers none). */
	const char *const *alpn;
} tb_tls_opts_t;

/* Builds a config; TB_EINVAL with a one-line reason in msg (naming the file)
 * when an option or a file is wrong, TB_ENOMEM when allocation fails. */
int tb_tls_config_new(const tb_tls_opts_t *opts, tb_tls_config_t **out, char *msg, size_t msglen);
/* Drops the creator's reference; sessions keep the config alive. */
void tb_tls_config_free(tb_tls_config_t *cfg);

typedef struct tb_tls_events {
	/* The handshake finished (tb_tls_alpn() is known). May close the stream. */
	void (*on_handshake)(void *arg, tb_stream_t *tls);
} tb_tls_events_t;

/* Wraps lower in a TLS session. sni: the server's name for a client (SNI and
 * verification; required unless the config is insecure), NULL for a server.
 * ev may be NULL. On success *out owns lower (its handler now belongs to the
 * session); set the handler of *out before returning to the loop. On failure
 * lower is untouched and still the caller's. */
int tb_tls_wrap(tb_loop_t *loop, tb_tls_config_t *cfg, tb_stream_t *lower, const char *sni,
		const tb_tls_events_t *ev, void *arg, tb_stream_t **out);

/* The negotiated ALPN protocol, or NULL (none, not yet, or not a TLS stream). */
const char *tb_tls_alpn(const tb_stream_t *tls);
bool tb_tls_is(const tb_stream_t *s);

#endif
