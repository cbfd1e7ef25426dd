/* tls.c: mbedTLS as a stream filter (see tls.h for the contract).
 *
 * Data path: ciphertext from the lower stream is appended to t->in; mbedTLS
 * pulls it through tls_bio_recv (WANT_READ when empty), so every handshake
 * step and every decryption is driven by bytes that have arrived, never by
 * waiting. mbedTLS pushes records through tls_bio_send straight into the
 * lower stream's queue, which always takes them; its TB_ENOBUFS is
 * remembered and becomes this stream's TB_ENOBUFS, and its on_drain becomes
 * ours. The lower stream's hiwat follows ours, so "lower is full" and "we
 * are full" mean the same thing (ciphertext is plaintext plus ~30 bytes per
 * 16 KiB record).
 *
 * Callbacks to the owner run only from the loop's entry points (the lower
 * stream's callbacks and one deferred call), never from inside write(),
 * shutdown(), pause() or resume(). The in_cb counter defers the free of a
 * session closed inside a callback until the outermost entry has returned,
 * as port/posix/tcp.c does. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mbedtls/version.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>
#if MBEDTLS_VERSION_NUMBER >= 0x03000000 && defined(MBEDTLS_PSA_CRYPTO_C)
#include <psa/crypto.h>
#define TLS_PSA 1
#endif

#include "tb/addr.h"
#include "tb/buf.h"
#include "tb/log.h"
#include "tb/port.h"
#include "tb/tls.h"

/* Stack buffer for one mbedtls_ssl_read(): one full record. */
#define TLS_READ_CHUNK 16384
/* Plaintext of one full record: writes are coalesced up to this. */
#define TLS_RECORD_PLAIN 16384
/* Ciphertext held while paused. The lower stream is paused with us, so only
 * what it had already read lands here; more means it ignored the pause. */
#define TLS_IN_MAX (256u * 1024u)
#define TLS_ALPN_MAX 16

struct tb_tls_config {
	mbedtls_ssl_config conf;
	mbedtls_ctr_drbg_context drbg; /* one per config: everything runs on one thread */
	mbedtls_x509_crt ca, cert;
	mbedtls_pk_context key;
	const char **alpn; /* NULL-terminated; the strings follow the array */
	pid_t pid;	   /* whose DRBG state this is (see tls_config_fork_check) */
	unsigned refs;
	bool server, insecure;
};

typedef struct tb_tls {
	tb_stream_t s; /* first: a tb_stream_t * is a tb_tls_t * */
	tb_loop_t *loop;
	tb_tls_config_t *cfg;
	tb_stream_t *lower; /* NULL once closed */
	mbedtls_ssl_context ssl;
	tb_buf_t in;	  /* ciphertext not yet taken by mbedTLS */
	tb_buf_t pending; /* plaintext not yet encrypted (see tls_write) */
	tb_tls_events_t ev;
	void *arg;
	char *name;	  /* the server's name (clients), for logs */
	tb_addr_t ip;	  /* the server's address when name is an IP literal */
	tb_defer_t defer; /* resumes decryption; reports errors found in ops */
	tb_defer_t flush; /* encrypts the coalesced tail at the end of the turn */
	int err_pending, io_err;
	uint32_t rec_left; /* ciphertext bytes until the next record header */
	uint16_t rec_len;
	uint8_t rec_hdr; /* header bytes seen of the next record */
	uint8_t in_cb;
	bool hs_done, paused, lower_paused, lower_full, lower_eof, eof_sent;
	bool shut_req, shut_sent, shut_wait, want_drain, dead, closed;
} tb_tls_t;

static const tb_stream_ops_t tls_ops;

/* ---- errors and logs ---- */

static void tls_strerror(int ret, char *buf, size_t len)
{
#if defined(MBEDTLS_ERROR_C)
	mbedtls_strerror(ret, buf, len);
#else
	snprintf(buf, len, "mbedTLS error");
#endif
}

static const char *tls_peer(const tb_tls_t *t)
{
	if (t->name)
		return t->name;
	return t->cfg->server ? "client" : "server";
}

/* mbedTLS's verify text is one line per flag, each after the prefix " ":
 * joined into "a; b" for one log line. */
static const char *tls_verify_text(uint32_t flags, char *buf, size_t len)
{
	int n = mbedtls_x509_crt_verify_info(buf, len, " ", flags);

	if (n <= 1) {
		snprintf(buf, len, " flags 0x%08x", (unsigned)flags);
		return buf + 1;
	}
	while (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	for (char *p = buf; (p = strchr(p, '\n')) != NULL;)
		*p = ';';
	return buf + 1;
}

/* Logs why mbedTLS gave up, at the point where that is decided. Failures of
 * a server's clients are the peers' business (info); a client failing to
 * reach its configured server is the operator's (warn). */
static void tls_log_failure(const tb_tls_t *t, int ret)
{
	int level = t->cfg->server ? TB_LOG_INFO : TB_LOG_WARN;
	char msg[320]; /* room for several verify flags, each ~80 bytes of text */

	if (ret == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) {
		const char *why = tls_verify_text(mbedtls_ssl_get_verify_result(&t->ssl), msg, sizeof(msg));
		tb_log(level, "tls: certificate of %s rejected: %s", tls_peer(t), why);
		return;
	}
	tls_strerror(ret, msg, sizeof(msg));
	tb_log(level, "tls: %s with %s failed: %s (-0x%04x)", t->hs_done ? "session" : "handshake",
	       tls_peer(t), msg, (unsigned)-ret);
}

/* ---- lifetime ---- */

static void tls_config_unref(tb_tls_config_t *c)
{
	if (!c || --c->refs > 0)
		return;
	mbedtls_ssl_config_free(&c->conf);
	mbedtls_ctr_drbg_free(&c->drbg);
	mbedtls_x509_crt_free(&c->ca);
	mbedtls_x509_crt_free(&c->cert);
	mbedtls_pk_free(&c->key);
	free(c->alpn);
	free(c);
}

static void tls_free(tb_tls_t *t)
{
	tb_defer_cancel(t->loop, &t->defer);
	tb_defer_cancel(t->loop, &t->flush);
	mbedtls_ssl_free(&t->ssl);
	tb_buf_free(&t->in);
	tb_buf_free(&t->pending);
	free(t->name);
	tls_config_unref(t->cfg);
	free(t);
}

/* Ends a callback section; frees the session if it was closed inside and no
 * outer section is running. Returns true when it was closed. */
static bool tls_leave(tb_tls_t *t)
{
	t->in_cb--;
	if (!t->closed)
		return false;
	if (t->in_cb == 0)
		tls_free(t);
	return true;
}

/* The session is dead: tell the owner once. Only from entry points. */
static void tls_die(tb_tls_t *t, int err)
{
	if (t->dead || t->closed)
		return;
	t->dead = true;
	if (t->lower && !t->lower_paused) {
		t->lower_paused = true;
		tb_stream_pause(t->lower); /* nothing more to read */
	}
	tb_stream_emit_close(&t->s, err);
}

static void tls_fail(tb_tls_t *t, int ret)
{
	if (t->io_err) {
		tls_die(t, t->io_err); /* the lower stream's own error, passed through */
		return;
	}
	tls_log_failure(t, ret);
	tls_die(t, TB_EPROTO);
}

/* An op (write, shutdown) found the session broken: report it from the loop. */
static int tls_fail_later(tb_tls_t *t, int ret)
{
	if (!t->io_err)
		tls_log_failure(t, ret);
	t->err_pending = t->io_err ? t->io_err : TB_EPROTO;
	tb_defer(t->loop, &t->defer);
	return t->err_pending;
}

/* ---- the BIO: mbedTLS's view of the lower stream ---- */

static int tls_bio_send(void *ctx, const unsigned char *buf, size_t len)
{
	tb_tls_t *t = ctx;
	int rc;

	if (!t->lower)
		return MBEDTLS_ERR_NET_SEND_FAILED;
	t->lower->hiwat = t->s.hiwat;
	rc = tb_stream_write(t->lower, buf, len);
	if (rc == TB_ENOBUFS) {
		/* Taken: the queue is just full. Our writer pauses until on_drain. */
		t->lower_full = true;
		return (int)len;
	}
	if (rc < 0) {
		t->io_err = rc;
		return MBEDTLS_ERR_NET_SEND_FAILED;
	}
	return (int)len;
}

static int tls_bio_recv(void *ctx, unsigned char *buf, size_t len)
{
	tb_tls_t *t = ctx;
	size_t n = tb_buf_copyout(&t->in, 0, buf, len);

	if (n == 0)
		return MBEDTLS_ERR_SSL_WANT_READ;
	tb_buf_consume(&t->in, n);
	return (int)n;
}

/* ---- writing ---- */

static size_t tls_queued(const tb_stream_t *s)
{
	const tb_tls_t *t = (const tb_tls_t *)s;
	size_t n = tb_buf_len(&t->pending);

	if (t->lower)
		n += tb_stream_queued(t->lower);
	/* A close_notify still to be sent counts, so that a relay waits for it. */
	return n + (t->shut_req && !t->shut_sent);
}

/* Encrypts and hands to the lower stream; 0 or an mbedTLS error. */
static int tls_send(tb_tls_t *t, const uint8_t *p, size_t len)
{
	while (len > 0) {
		int n = mbedtls_ssl_write(&t->ssl, p, len);
		if (n <= 0)
			return n < 0 ? n : MBEDTLS_ERR_SSL_INTERNAL_ERROR;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Encrypts queued plaintext in full records; the short tail too when all. */
static int tls_send_pending(tb_tls_t *t, bool all)
{
	uint8_t rec[TLS_RECORD_PLAIN];
	size_t n;

	while ((n = tb_buf_len(&t->pending)) >= (all ? 1u : sizeof(rec))) {
		n = tb_buf_copyout(&t->pending, 0, rec, sizeof(rec));
		int rc = tls_send(t, rec, n);
		if (rc < 0)
			return rc;
		tb_buf_consume(&t->pending, n);
	}
	return 0;
}

static int tls_close_notify(tb_tls_t *t)
{
	int rc = mbedtls_ssl_close_notify(&t->ssl);

	t->shut_sent = true;
	if (rc < 0)
		return rc;
	if (tb_stream_shutdown(t->lower) < 0)
		t->io_err = TB_EPIPE;
	return t->io_err ? MBEDTLS_ERR_NET_SEND_FAILED : 0;
}

/* on_drain after a TB_ENOBUFS once the lower queue has drained (or, before
 * the handshake, once the queued plaintext went out without filling it), and
 * after a shutdown() with data queued once the half-close went out. */
static void tls_maybe_drain(tb_tls_t *t)
{
	bool due = false;

	if (t->want_drain && !t->lower_full && tb_buf_len(&t->pending) == 0) {
		t->want_drain = false;
		due = true;
	}
	if (t->shut_wait && t->shut_sent && tb_stream_queued(t->lower) == 0) {
		t->shut_wait = false;
		due = true;
	}
	if (due)
		tb_stream_emit_drain(&t->s);
}

static int tls_write(tb_stream_t *s, const void *data, size_t len)
{
	tb_tls_t *t = (tb_tls_t *)s;

	if (t->dead || t->closed || t->err_pending || t->shut_req)
		return TB_EPIPE;
	/* Small writes (a WebSocket header, then its payload) would each cost
	 * a record and a send: plaintext waits in pending until a full record
	 * is there or the turn ends (the flush deferred call), so coalescing
	 * never holds bytes past the loop's next poll. Before the handshake it
	 * waits for the handshake. After it, pending always holds less than a
	 * record: a big write tops it up to one, then sends its own full
	 * records straight from the caller's memory; only its tail is copied. */
	if (t->hs_done && tb_buf_len(&t->pending) + len >= TLS_RECORD_PLAIN) {
		size_t top = (TLS_RECORD_PLAIN - tb_buf_len(&t->pending)) % TLS_RECORD_PLAIN;
		int rc = 0;
		if (top && (rc = tb_buf_append(&t->pending, data, top)) < 0)
			return TB_ENOMEM;
		if (top && (rc = tls_send_pending(t, false)) < 0)
			return tls_fail_later(t, rc);
		data = (const uint8_t *)data + top;
		len -= top;
		size_t full = len - len % TLS_RECORD_PLAIN;
		if (full && (rc = tls_send(t, data, full)) < 0)
			return tls_fail_later(t, rc);
		data = (const uint8_t *)data + full;
		len -= full;
	}
	if (len > 0) {
		if (tb_buf_append(&t->pending, data, len) < 0)
			return TB_ENOMEM;
		if (t->hs_done)
			tb_defer(t->loop, &t->flush);
	}
	if (t->lower_full || tls_queued(s) >= s->hiwat) {
		t->want_drain = true;
		return TB_ENOBUFS;
	}
	return 0;
}

static int tls_shutdown(tb_stream_t *s)
{
	tb_tls_t *t = (tb_tls_t *)s;

	if (t->dead || t->closed || t->err_pending)
		return TB_EPIPE;
	if (t->shut_req)
		return 0;
	t->shut_req = true;
	if (t->hs_done) {
		int rc = tls_send_pending(t, true);
		if (rc == 0)
			rc = tls_close_notify(t);
		if (rc < 0)
			return tls_fail_later(t, rc);
		tb_defer_cancel(t->loop, &t->flush);
	}
	/* Before the handshake, close_notify waits for it (tls_after_handshake). */
	if (tls_queued(s) > 0)
		t->shut_wait = true;
	return 0;
}

/* ---- reading ---- */

/* Reading from the lower stream stops while we are paused, but only once
 * the handshake is done: it needs the bytes whatever the owner wants. */
static void tls_sync_lower_pause(tb_tls_t *t)
{
	bool want = t->paused && t->hs_done;

	if (!t->lower || t->dead || want == t->lower_paused)
		return;
	t->lower_paused = want;
	if (want)
		tb_stream_pause(t->lower);
	else
		tb_stream_resume(t->lower);
}

/* Returns false when the session went away (closed or dead). */
static bool tls_after_handshake(tb_tls_t *t)
{
	const char *alpn = mbedtls_ssl_get_alpn_protocol(&t->ssl);
	int rc;

	tb_debug("tls: handshake with %s done: %s, %s, alpn %s", tls_peer(t),
		 mbedtls_ssl_get_version(&t->ssl), mbedtls_ssl_get_ciphersuite(&t->ssl),
		 alpn ? alpn : "none");
	/* Queued plaintext goes first, then a requested close_notify, and only
	 * then can on_handshake add more. */
	if ((rc = tls_send_pending(t, true)) < 0 || (t->shut_req && (rc = tls_close_notify(t)) < 0)) {
		tls_fail(t, rc);
		return false;
	}
	tls_sync_lower_pause(t);
	if (t->ev.on_handshake) {
		t->ev.on_handshake(t->arg, &t->s);
		if (t->closed || t->dead)
			return false;
	}
	tls_maybe_drain(t);
	return !t->closed && !t->dead;
}

static bool tls_handshake(tb_tls_t *t)
{
	int rc = mbedtls_ssl_handshake(&t->ssl);

	if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE) {
		if (t->lower_eof && !t->io_err) {
			tb_log(t->cfg->server ? TB_LOG_DEBUG : TB_LOG_WARN,
			       "tls: %s closed the connection during the handshake", tls_peer(t));
			tls_die(t, TB_EPROTO);
		}
		return false;
	}
	if (rc != 0) {
		tls_fail(t, rc);
		return false;
	}
	t->hs_done = true;
	return tls_after_handshake(t);
}

/* Decrypts while not paused; false when the session went away or ended. */
static bool tls_decrypt(tb_tls_t *t)
{
	uint8_t buf[TLS_READ_CHUNK];

	while (!t->paused && !t->eof_sent) {
		size_t before = tb_buf_len(&t->in);
		int rc = mbedtls_ssl_read(&t->ssl, buf, sizeof(buf));

		if (rc > 0) {
			tb_stream_emit_data(&t->s, buf, (size_t)rc);
			if (t->closed || t->dead)
				return false;
			continue;
		}
		if (rc == 0 || rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE) {
			/* A record without application data (an ignored alert, a
			 * post-handshake message): go on while input is consumed. */
			if (tb_buf_len(&t->in) > 0 && tb_buf_len(&t->in) < before)
				continue;
			return true;
		}
#if defined(MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
		if (rc == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
			continue; /* 3.x, TLS 1.3: nothing for us to do */
#endif
		if (rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
			t->eof_sent = true;
			tb_stream_emit_eof(&t->s);
			return false;
		}
		tls_fail(t, rc);
		return false;
	}
	return !t->paused;
}

/* The lower stream ended without close_notify: EOF too (see tls.h), unless
 * it ended inside a record, which no clean close does. */
static void tls_check_eof(tb_tls_t *t)
{
	if (!t->lower_eof || t->eof_sent || t->paused || tb_buf_len(&t->in) > 0)
		return;
	if (t->rec_hdr > 0 || t->rec_left > 0) {
		tb_log(t->cfg->server ? TB_LOG_INFO : TB_LOG_WARN,
		       "tls: %s closed the connection inside a record", tls_peer(t));
		tls_die(t, TB_EPROTO);
		return;
	}
	tb_debug("tls: %s closed the connection without close_notify", tls_peer(t));
	t->eof_sent = true;
	tb_stream_emit_eof(&t->s);
}

static void tls_pump(tb_tls_t *t)
{
	if (t->dead || t->closed)
		return;
	if (!t->hs_done && !tls_handshake(t))
		return;
	if (tls_decrypt(t))
		tls_check_eof(t);
}

/* Follows the record boundaries of the incoming ciphertext (5-byte headers,
 * RFC 5246 §6.2.1, RFC 8446 §5.1) for one purpose: telling at EOF whether
 * the peer stopped inside a record. mbedTLS has no public call for that. */
static void tls_track_records(tb_tls_t *t, const uint8_t *d, size_t n)
{
	while (n > 0) {
		if (t->rec_left > 0) {
			size_t k = TB_MIN(n, t->rec_left);
			t->rec_left -= (uint32_t)k;
			d += k;
			n -= k;
			continue;
		}
		if (t->rec_hdr == 3 || t->rec_hdr == 4)
			t->rec_len = (uint16_t)(t->rec_len << 8 | *d);
		d++;
		n--;
		if (++t->rec_hdr == 5) {
			t->rec_left = t->rec_len;
			t->rec_hdr = 0;
			t->rec_len = 0;
		}
	}
}

/* ---- the lower stream's callbacks and the deferred call: entry points ---- */

static void lower_data(void *ctx, tb_stream_t *s, const uint8_t *d, size_t n)
{
	tb_tls_t *t = ctx;

	if (t->dead || t->closed)
		return;
	t->in_cb++;
	if (tb_buf_len(&t->in) + n > TLS_IN_MAX || tb_buf_append(&t->in, d, n) < 0) {
		tb_warn("tls: %s: input over %u bytes while paused", tls_peer(t), TLS_IN_MAX);
		tls_die(t, TB_ENOMEM);
	} else {
		tls_track_records(t, d, n);
		tls_pump(t);
	}
	tls_leave(t);
}

static void lower_drain(void *ctx, tb_stream_t *s)
{
	tb_tls_t *t = ctx;

	if (t->dead || t->closed)
		return;
	t->in_cb++;
	t->lower_full = false;
	tls_maybe_drain(t);
	tls_leave(t);
}

static void lower_eof(void *ctx, tb_stream_t *s)
{
	tb_tls_t *t = ctx;

	if (t->dead || t->closed)
		return;
	t->in_cb++;
	t->lower_eof = true;
	tls_pump(t);
	tls_leave(t);
}

static void lower_close(void *ctx, tb_stream_t *s, int err)
{
	tb_tls_t *t = ctx;

	t->in_cb++;
	tb_debug("tls: %s: lower stream closed: %s", tls_peer(t), tb_strerror(err));
	tls_die(t, err);
	tls_leave(t);
}

static const tb_stream_handler_t lower_handler = {lower_data, lower_drain, lower_eof, lower_close};

static void tls_deferred(tb_loop_t *loop, void *arg)
{
	tb_tls_t *t = arg;

	t->in_cb++;
	if (t->err_pending)
		tls_die(t, t->err_pending);
	else
		tls_pump(t);
	tls_leave(t);
}

static void tls_flush_deferred(tb_loop_t *loop, void *arg)
{
	tb_tls_t *t = arg;
	int rc;

	if (t->dead || t->closed || !t->hs_done)
		return;
	t->in_cb++;
	if ((rc = tls_send_pending(t, true)) < 0)
		tls_fail(t, rc);
	else
		tls_maybe_drain(t);
	tls_leave(t);
}

/* ---- the remaining stream ops ---- */

static void tls_close(tb_stream_t *s)
{
	tb_tls_t *t = (tb_tls_t *)s;

	if (t->closed)
		return;
	t->closed = true;
	tb_defer_cancel(t->loop, &t->defer);
	tb_defer_cancel(t->loop, &t->flush);
	if (t->lower) {
		tb_stream_close(t->lower);
		t->lower = NULL;
	}
	if (t->in_cb == 0)
		tls_free(t);
}

static void tls_pause(tb_stream_t *s)
{
	tb_tls_t *t = (tb_tls_t *)s;

	t->paused = true;
	tls_sync_lower_pause(t);
}

static void tls_resume(tb_stream_t *s)
{
	tb_tls_t *t = (tb_tls_t *)s;

	if (!t->paused)
		return;
	t->paused = false;
	tls_sync_lower_pause(t);
	/* Records (or the EOF) held while paused: deliver them from the loop. */
	if (t->hs_done && !t->dead && !t->closed)
		tb_defer(t->loop, &t->defer);
}

static const tb_stream_ops_t tls_ops = {
	.write = tls_write,
	.shutdown = tls_shutdown,
	.close = tls_close,
	.pause = tls_pause,
	.resume = tls_resume,
	.queued = tls_queued,
};

bool tb_tls_is(const tb_stream_t *s)
{
	return s && s->ops == &tls_ops;
}

const char *tb_tls_alpn(const tb_stream_t *s)
{
	if (!tb_tls_is(s))
		return NULL;
	return mbedtls_ssl_get_alpn_protocol(&((const tb_tls_t *)s)->ssl);
}

/* ---- sessions ---- */

/* A config built before fork() (workers = N) would hand every process the
 * same DRBG state, hence the same handshake secrets: a process that is not
 * the config's maker reseeds from fresh entropy before its first session. */
static int tls_config_fork_check(tb_tls_config_t *c)
{
	pid_t pid = getpid();

	if (pid == c->pid)
		return 0;
	if (mbedtls_ctr_drbg_reseed(&c->drbg, (const unsigned char *)&pid, sizeof(pid)) != 0)
		return TB_EIO;
	c->pid = pid;
	return 0;
}

/* mbedTLS 2.28 matches a peer name against DNS names only, so the check of
 * an IP literal against the certificate's iPAddress SANs is ours. */
static int tls_verify_ip(void *ctx, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
	const tb_tls_t *t = ctx;
	size_t iplen = t->ip.family == TB_AF_INET ? 4 : 16;
	const int tag = MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_X509_SAN_IP_ADDRESS;

	if (depth != 0)
		return 0;
	for (const mbedtls_x509_sequence *san = &crt->subject_alt_names; san && san->buf.p; san = san->next) {
		if (san->buf.tag == tag && san->buf.len == iplen && memcmp(san->buf.p, t->ip.ip, iplen) == 0)
			return 0;
	}
	*flags |= MBEDTLS_X509_BADCERT_CN_MISMATCH;
	return 0;
}

static int tls_set_peer(tb_tls_t *t, const char *sni)
{
	if (!sni || !*sni)
		return 0;
	if (!(t->name = strdup(sni)))
		return TB_ENOMEM;
	if (tb_addr_parse_ip(sni, &t->ip) == 0) {
		/* RFC 6066 §3: no IP literal in SNI. NULL also tells mbedTLS >= 3.6.3
		 * that skipping its own name check is deliberate. */
		mbedtls_ssl_set_verify(&t->ssl, tls_verify_ip, t);
		return mbedtls_ssl_set_hostname(&t->ssl, NULL) == 0 ? 0 : TB_ENOMEM;
	}
	return mbedtls_ssl_set_hostname(&t->ssl, sni) == 0 ? 0 : TB_EINVAL;
}

int tb_tls_wrap(tb_loop_t *loop, tb_tls_config_t *cfg, tb_stream_t *lower, const char *sni,
		const tb_tls_events_t *ev, void *arg, tb_stream_t **out)
{
	tb_tls_t *t;
	int rc;

	if (!loop || !cfg || !lower || !out)
		return TB_EINVAL;
	if (!cfg->server && !cfg->insecure && (!sni || !*sni)) {
		tb_err("tls: a verifying client needs the server's name");
		return TB_EINVAL;
	}
	if (tls_config_fork_check(cfg) < 0) {
		tb_err("tls: cannot reseed the random generator after fork");
		return TB_EIO;
	}
	if (!(t = calloc(1, sizeof(*t))))
		return TB_ENOMEM;
	t->s.ops = &tls_ops;
	t->s.hiwat = TB_STREAM_HIWAT_DEFAULT;
	t->loop = loop;
	t->cfg = cfg;
	t->arg = arg;
	if (ev)
		t->ev = *ev;
	tb_buf_init(&t->in);
	tb_buf_init(&t->pending);
	tb_defer_init(&t->defer, tls_deferred, t);
	tb_defer_init(&t->flush, tls_flush_deferred, t);
	mbedtls_ssl_init(&t->ssl);
	cfg->refs++;
	if (mbedtls_ssl_setup(&t->ssl, &cfg->conf) != 0) {
		rc = TB_ENOMEM;
		goto fail;
	}
	if (!cfg->server && (rc = tls_set_peer(t, sni)) < 0)
		goto fail;
	mbedtls_ssl_set_bio(&t->ssl, t, tls_bio_send, tls_bio_recv, NULL);
	t->lower = lower;
	lower->hiwat = t->s.hiwat;
	tb_stream_set_handler(lower, &lower_handler, t);
	*out = &t->s;
	if (!cfg->server) {
		/* The ClientHello goes out now; a failure is reported from the loop. */
		rc = mbedtls_ssl_handshake(&t->ssl);
		if (rc != MBEDTLS_ERR_SSL_WANT_READ && rc != 0)
			tls_fail_later(t, rc);
	}
	return 0;
fail:
	tls_free(t);
	return rc;
}

/* ---- configs ---- */

static int tls_entropy(void *ctx, unsigned char *buf, size_t len)
{
	return tb_port_random(buf, len) == 0 ? 0 : MBEDTLS_ERR_CTR_DRBG_ENTROPY_SOURCE_FAILED;
}

static int TB_PRINTF(3, 4) cfg_error(char *msg, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (msg && len) {
		va_start(ap, fmt);
		vsnprintf(msg, len, fmt, ap);
		va_end(ap);
	}
	return TB_EINVAL;
}

static int cfg_mbedtls_error(char *msg, size_t len, const char *what, const char *path, int ret)
{
	char e[120];

	tls_strerror(ret, e, sizeof(e));
	return cfg_error(msg, len, "%s %s: %s", what, path, e);
}

static int cfg_readable(const char *what, const char *path, char *msg, size_t len)
{
	if (access(path, R_OK) == 0)
		return 0;
	return cfg_error(msg, len, "cannot read %s %s: %s", what, path, strerror(errno));
}

/* Trust anchors: a client's for the server, a server's for client certs. */
static int cfg_load_ca(tb_tls_config_t *c, const tb_tls_opts_t *o, char *msg, size_t len)
{
	const char *path = o->ca_file ? o->ca_file : TB_TLS_SYSTEM_CA;
	int rc;

	if (!o->ca_file && access(path, R_OK) != 0) /* fail closed, and say how to go on */
		return cfg_error(
			msg, len,
			"no system CA bundle at %s (%s): set a CA file, or insecure to skip verification",
			path, strerror(errno));
	if ((rc = cfg_readable("CA file", path, msg, len)) < 0)
		return rc;
	/* A bundle may hold certificates mbedTLS cannot parse (rc > 0): the
	 * others still count, as long as there is one. */
	rc = mbedtls_x509_crt_parse_file(&c->ca, path);
	if (rc < 0)
		return cfg_mbedtls_error(msg, len, "CA file", path, rc);
	if (c->ca.version == 0)
		return cfg_error(msg, len, "CA file %s: no usable certificate", path);
	if (rc > 0)
		tb_debug("tls: %s: skipped %d certificates mbedTLS cannot parse", path, rc);
	mbedtls_ssl_conf_ca_chain(&c->conf, &c->ca, NULL);
	mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
	return 0;
}

static int cfg_load_own(tb_tls_config_t *c, const tb_tls_opts_t *o, char *msg, size_t len)
{
	int rc;

	if (!o->cert_file != !o->key_file)
		return cfg_error(msg, len, "a certificate needs its key file and a key its certificate");
	if (!o->cert_file)
		return c->server ? cfg_error(msg, len, "a TLS server needs a certificate and a key file") : 0;
	if ((rc = cfg_readable("certificate", o->cert_file, msg, len)) < 0 ||
	    (rc = cfg_readable("key file", o->key_file, msg, len)) < 0)
		return rc;
	if ((rc = mbedtls_x509_crt_parse_file(&c->cert, o->cert_file)) != 0)
		return cfg_mbedtls_error(msg, len, "certificate", o->cert_file,
					 rc < 0 ? rc : MBEDTLS_ERR_X509_INVALID_FORMAT);
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
	rc = mbedtls_pk_parse_keyfile(&c->key, o->key_file, NULL, mbedtls_ctr_drbg_random, &c->drbg);
#else
	rc = mbedtls_pk_parse_keyfile(&c->key, o->key_file, NULL);
#endif
	if (rc != 0)
		return cfg_mbedtls_error(msg, len, "key file", o->key_file, rc);
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
	rc = mbedtls_pk_check_pair(&c->cert.pk, &c->key, mbedtls_ctr_drbg_random, &c->drbg);
#else
	rc = mbedtls_pk_check_pair(&c->cert.pk, &c->key);
#endif
	if (rc != 0)
		return cfg_error(msg, len, "key file %s does not match certificate %s", o->key_file,
				 o->cert_file);
	if (mbedtls_ssl_conf_own_cert(&c->conf, &c->cert, &c->key) != 0)
		return TB_ENOMEM;
	return 0;
}

/* Copies the list into one allocation: the pointers, then the strings. */
static int cfg_set_alpn(tb_tls_config_t *c, const char *const *alpn, char *msg, size_t len)
{
	size_t n = 0, bytes = 0;
	char *p;

	if (!alpn || !alpn[0])
		return 0;
	for (; alpn[n]; n++) {
		size_t l = strlen(alpn[n]);
		if (l == 0 || l > 255 || n >= TLS_ALPN_MAX)
			return cfg_error(msg, len, "ALPN: names are 1..255 bytes, at most %d of them",
					 TLS_ALPN_MAX);
		bytes += l + 1;
	}
	if (!(c->alpn = malloc((n + 1) * sizeof(char *) + bytes)))
		return TB_ENOMEM;
	p = (char *)(c->alpn + n + 1);
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(alpn[i]) + 1;
		memcpy(p, alpn[i], l);
		c->alpn[i] = p;
		p += l;
	}
	c->alpn[n] = NULL;
	return mbedtls_ssl_conf_alpn_protocols(&c->conf, c->alpn) == 0 ? 0 : TB_EINVAL;
}

static int cfg_setup(tb_tls_config_t *c, const tb_tls_opts_t *o, char *msg, size_t len)
{
	static const unsigned char pers[] = "tunnelbox tls";
	int rc;

#if defined(TLS_PSA)
	/* 3.x: certificate parsing and TLS 1.3 go through PSA. */
	if (psa_crypto_init() != PSA_SUCCESS)
		return cfg_error(msg, len, "PSA crypto initialisation failed");
#endif
	if (mbedtls_ctr_drbg_seed(&c->drbg, tls_entropy, NULL, pers, sizeof(pers) - 1) != 0)
		return cfg_error(msg, len, "cannot seed the random generator");
	rc = mbedtls_ssl_config_defaults(&c->conf, c->server ? MBEDTLS_SSL_IS_SERVER : MBEDTLS_SSL_IS_CLIENT,
					 MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
	if (rc != 0)
		return cfg_mbedtls_error(msg, len, "defaults", "", rc);
#if MBEDTLS_VERSION_NUMBER >= 0x03020000
	mbedtls_ssl_conf_min_tls_version(&c->conf, MBEDTLS_SSL_VERSION_TLS1_2);
#elif MBEDTLS_VERSION_NUMBER < 0x03000000
	mbedtls_ssl_conf_min_version(&c->conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
#endif /* 3.0 and 3.1 know nothing older than TLS 1.2 */
	mbedtls_ssl_conf_rng(&c->conf, mbedtls_ctr_drbg_random, &c->drbg);
	if (c->insecure) {
		mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_NONE);
	} else if (!c->server || o->ca_file) {
		if ((rc = cfg_load_ca(c, o, msg, len)) < 0)
			return rc;
	} else {
		mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_NONE); /* no client certificates */
	}
	if ((rc = cfg_load_own(c, o, msg, len)) < 0)
		return rc;
	return cfg_set_alpn(c, o->alpn, msg, len);
}

int tb_tls_config_new(const tb_tls_opts_t *o, tb_tls_config_t **out, char *msg, size_t msglen)
{
	tb_tls_config_t *c;
	int rc;

	if (msg && msglen)
		msg[0] = '\0';
	if (!o || !out || (o->role != TB_TLS_CLIENT && o->role != TB_TLS_SERVER))
		return cfg_error(msg, msglen, "bad TLS options");
	if (!(c = calloc(1, sizeof(*c))))
		return TB_ENOMEM;
	c->refs = 1;
	c->pid = getpid();
	c->server = o->role == TB_TLS_SERVER;
	c->insecure = o->insecure && !c->server;
	mbedtls_ssl_config_init(&c->conf);
	mbedtls_ctr_drbg_init(&c->drbg);
	mbedtls_x509_crt_init(&c->ca);
	mbedtls_x509_crt_init(&c->cert);
	mbedtls_pk_init(&c->key);
	if ((rc = cfg_setup(c, o, msg, msglen)) < 0) {
		if (rc == TB_ENOMEM && msg && msglen && !msg[0])
			snprintf(msg, msglen, "out of memory");
		tls_config_unref(c);
		return rc;
	}
	if (c->insecure)
		tb_warn("tls: server certificates are not verified (insecure)");
	*out = c;
	return 0;
}

void tb_tls_config_free(tb_tls_config_t *cfg)
{
	tls_config_unref(cfg);
}
