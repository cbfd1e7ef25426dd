/* test_tls.c: the TLS filter over real loopback TCP, both ends ours.
 *
 * Certificates are made at run time with the openssl CLI in a temp dir (the
 * tests skip when it is missing): a CA, a server certificate for localhost
 * and 127.0.0.1 signed by it, a client certificate signed by it, and an
 * unrelated second CA. Every wait is a bounded number of loop turns. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tb/log.h"
#include "tb/port.h"
#include "tb/tls.h"

/* ---- certificates ---- */

static char dir[64];
static bool have_certs;

static const char *path(const char *name)
{
	static char buf[16][128];
	static int i;

	i = (i + 1) % 16;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, name);
	return buf[i];
}

static int sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

#define KEY "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"

static int make_certs(void **state)
{
	const char *q = ">/dev/null 2>&1";

	if (sh("command -v openssl %s", q) != 0)
		return 0; /* tests skip */
	snprintf(dir, sizeof(dir), "/tmp/tb-tls-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	if (sh("cd %s && openssl req -x509 %s -keyout ca.key -out ca.pem -days 2 -subj /CN=tb-test-ca %s",
	       dir, KEY, q) ||
	    sh("cd %s && openssl req -x509 %s -keyout other.key -out other.pem -days 2 -subj /CN=tb-other-ca %s",
	       dir, KEY, q) ||
	    sh("cd %s && printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' >srv.ext",
	       dir) ||
	    sh("cd %s && printf 'extendedKeyUsage=clientAuth\\n' >cli.ext", dir))
		return -1;
	for (int i = 0; i < 2; i++) {
		const char *n = i ? "cli" : "srv";
		if (sh("cd %s && openssl req -new %s -keyout %s.key -out %s.csr -subj /CN=%s %s", dir, KEY, n,
		       n, i ? "tb-client" : "localhost", q) ||
		    sh("cd %s && openssl x509 -req -in %s.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
		       "-extfile %s.ext -out %s.pem %s",
		       dir, n, n, n, q))
			return -1;
	}
	have_certs = true;
	return 0;
}

static int remove_certs(void **state)
{
	if (dir[0])
		sh("rm -rf %s", dir);
	return 0;
}

#define NEED_CERTS()             \
	do {                     \
		if (!have_certs) \
			skip();  \
	} while (0)

static tb_tls_config_t *config(const tb_tls_opts_t *o)
{
	tb_tls_config_t *c = NULL;
	char msg[256];

	if (tb_tls_config_new(o, &c, msg, sizeof(msg)) != 0)
		fail_msg("config: %s", msg);
	return c;
}

static tb_tls_config_t *server_config(const char *const *alpn)
{
	tb_tls_opts_t o = {.role = TB_TLS_SERVER,
			   .cert_file = path("srv.pem"),
			   .key_file = path("srv.key"),
			   .alpn = alpn};

	return config(&o);
}

static tb_tls_config_t *client_config(const char *ca, bool insecure, const char *const *alpn)
{
	tb_tls_opts_t o = {.role = TB_TLS_CLIENT, .ca_file = path(ca), .insecure = insecure, .alpn = alpn};

	return config(&o);
}

/* ---- one end of a connection: scripted behaviour and what it saw ---- */

struct end {
	tb_stream_t *s, *raw;
	/* script */
	size_t total; /* pattern bytes to send */
	size_t hiwat; /* 0: default */
	bool early;   /* start sending before the handshake */
	bool echo;    /* write back what arrives, pausing on TB_ENOBUFS */
	bool shut_when_sent, shut_on_eof;
	bool pause_at_handshake; /* and resume after resume_turns */
	bool close_at_handshake, close_at_data;
	const char *reply_on_eof; /* half-close: answer after EOF, then shut down */
	/* observations */
	size_t sent, got, enobufs, drains, enobufs_before_hs, data_while_paused;
	bool handshake, eof, closed, paused, echo_paused, shut;
	int err, write_err;
	char alpn[32];
	char text[64];
};

static uint8_t pat(size_t i)
{
	return (uint8_t)((i * 131) ^ (i >> 9));
}

static void end_push(struct end *e)
{
	static uint8_t buf[16384];

	while (e->sent < e->total) {
		size_t n = TB_MIN(sizeof(buf), e->total - e->sent);
		for (size_t i = 0; i < n; i++)
			buf[i] = pat(e->sent + i);
		int rc = tb_stream_write(e->s, buf, n);
		if (rc < 0 && rc != TB_ENOBUFS) {
			e->write_err = rc; /* the peer went away; on_close follows */
			return;
		}
		e->sent += n;
		if (rc == TB_ENOBUFS) {
			e->enobufs++;
			if (!e->handshake)
				e->enobufs_before_hs++;
			return; /* wait for on_drain */
		}
	}
	if (e->shut_when_sent && !e->shut) {
		e->shut = true;
		assert_int_equal(tb_stream_shutdown(e->s), 0);
	}
}

static void end_data(void *ctx, tb_stream_t *s, const uint8_t *d, size_t n)
{
	struct end *e = ctx;

	if (e->paused)
		e->data_while_paused += n;
	if (e->total || e->echo) {
		for (size_t i = 0; i < n; i++)
			if (d[i] != pat(e->got + i))
				fail_msg("byte %zu: got %u, want %u", e->got + i, d[i], pat(e->got + i));
	} else {
		size_t have = strlen(e->text);
		snprintf(e->text + have, sizeof(e->text) - have, "%.*s", (int)n, (const char *)d);
	}
	e->got += n;
	if (e->close_at_data) {
		tb_stream_close(s);
		e->s = NULL;
		e->closed = true;
		return;
	}
	if (e->echo) {
		int rc = tb_stream_write(s, d, n);
		if (rc == TB_ENOBUFS) {
			e->enobufs++;
			e->echo_paused = true;
			tb_stream_pause(s);
		} else {
			assert_int_equal(rc, 0);
		}
	}
}

static void end_drain(void *ctx, tb_stream_t *s)
{
	struct end *e = ctx;

	e->drains++;
	if (e->echo_paused) {
		e->echo_paused = false;
		tb_stream_resume(s);
	}
	if (e->handshake || e->early)
		end_push(e);
}

static void end_eof(void *ctx, tb_stream_t *s)
{
	struct end *e = ctx;

	assert_false(e->eof);
	e->eof = true;
	if (e->reply_on_eof) {
		int rc = tb_stream_write(s, e->reply_on_eof, strlen(e->reply_on_eof));
		assert_int_equal(rc, 0);
	}
	if ((e->shut_on_eof || e->reply_on_eof) && !e->shut) {
		e->shut = true;
		assert_int_equal(tb_stream_shutdown(s), 0);
	}
}

/* The owner's side of on_close: close from inside the callback. */
static void end_close(void *ctx, tb_stream_t *s, int err)
{
	struct end *e = ctx;

	assert_false(e->closed);
	e->closed = true;
	e->err = err;
	tb_stream_close(s);
	e->s = NULL;
}

static const tb_stream_handler_t end_h = {end_data, end_drain, end_eof, end_close};

static void end_handshake(void *arg, tb_stream_t *tls)
{
	struct end *e = arg;
	const char *alpn = tb_tls_alpn(tls);

	assert_ptr_equal(tls, e->s);
	e->handshake = true;
	snprintf(e->alpn, sizeof(e->alpn), "%s", alpn ? alpn : "");
	if (e->close_at_handshake) {
		tb_stream_close(tls);
		e->s = NULL;
		e->closed = true;
		return;
	}
	if (e->pause_at_handshake) {
		e->paused = true;
		tb_stream_pause(tls);
	}
	if (!e->early)
		end_push(e);
}

static const tb_tls_events_t end_ev = {end_handshake};

/* ---- a world: a TLS server and a TLS client over loopback ---- */

struct world {
	tb_loop_t *loop;
	tb_tcp_listener_t *l;
	tb_tcp_connect_t *conn;
	tb_tls_config_t *scfg, *ccfg;
	const char *sni;
	struct end srv, cli;
	bool raw_server, raw_client; /* that side speaks no TLS */
	bool nested;		     /* TLS inside TLS on both sides */
	tb_addr_t where;
};

static void wrap_end(struct world *w, struct end *e, tb_tls_config_t *cfg, tb_stream_t *raw, const char *sni)
{
	e->raw = raw;
	if (w->nested) { /* an inner session, itself the lower stream of ours */
		assert_int_equal(tb_tls_wrap(w->loop, cfg, raw, sni, NULL, NULL, &raw), 0);
		assert_true(tb_tls_is(raw));
	} else {
		assert_false(tb_tls_is(raw));
	}
	assert_int_equal(tb_tls_wrap(w->loop, cfg, raw, sni, &end_ev, e, &e->s), 0);
	assert_true(tb_tls_is(e->s));
	tb_stream_set_handler(e->s, &end_h, e);
	if (e->hiwat)
		e->s->hiwat = e->hiwat;
	if (e->early)
		end_push(e);
}

/* Raw peers: a server that hangs up once the ClientHello arrived, a client
 * that sends half a ClientHello and goes away. */
static void raw_srv_data(void *ctx, tb_stream_t *s, const uint8_t *d, size_t n)
{
	struct end *e = ctx;

	e->got += n;
	tb_stream_close(s);
	e->s = NULL;
	e->closed = true;
}

static void raw_close(void *ctx, tb_stream_t *s, int err)
{
	struct end *e = ctx;

	e->closed = true;
	tb_stream_close(s);
	e->s = NULL;
}

static const tb_stream_handler_t raw_srv_h = {raw_srv_data, NULL, NULL, raw_close};

static void on_accept(void *arg, tb_stream_t *s, const tb_addr_t *peer)
{
	struct world *w = arg;

	assert_null(w->srv.s);
	if (w->raw_server) {
		w->srv.s = s;
		tb_stream_set_handler(s, &raw_srv_h, &w->srv);
		return;
	}
	wrap_end(w, &w->srv, w->scfg, s, NULL);
}

static void on_connect(void *arg, tb_stream_t *s, int err)
{
	struct world *w = arg;
	static const uint8_t half_hello[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01,
					     0x00, 0x01, 0xfc, 0x03, 0x03};

	w->conn = NULL;
	assert_int_equal(err, 0);
	if (w->raw_client) {
		assert_int_equal(tb_stream_write(s, half_hello, sizeof(half_hello)), 0);
		tb_stream_close(s); /* the peer vanishes mid-handshake */
		w->cli.closed = true;
		return;
	}
	wrap_end(w, &w->cli, w->ccfg, s, w->sni);
}

static void world_start(struct world *w)
{
	tb_addr_t bind;

	w->loop = tb_loop_new();
	assert_non_null(w->loop);
	assert_int_equal(tb_addr_parse_ip("127.0.0.1", &bind), 0);
	assert_int_equal(tb_tcp_listen(w->loop, &bind, NULL, on_accept, w, &w->l), 0);
	tb_tcp_listener_addr(w->l, &w->where);
	assert_int_equal(tb_tcp_connect(w->loop, &w->where, 2000, on_connect, w, &w->conn), 0);
}

#define SPIN(w, cond)                                        \
	do {                                                 \
		for (int i_ = 0; i_ < 1500 && !(cond); i_++) \
			tb_loop_once((w)->loop, 10);         \
		assert_true(cond);                           \
	} while (0)

static void world_end(struct world *w)
{
	if (w->conn)
		tb_tcp_connect_cancel(w->conn);
	if (w->cli.s)
		tb_stream_close(w->cli.s);
	if (w->srv.s)
		tb_stream_close(w->srv.s);
	tb_tcp_listener_close(w->l);
	tb_tls_config_free(w->scfg);
	tb_tls_config_free(w->ccfg);
	/* A few turns for anything deferred, then the loop goes. */
	for (int i = 0; i < 3; i++)
		tb_loop_once(w->loop, 0);
	tb_loop_free(w->loop);
}

/* ---- tests ---- */

static void test_verified_1mib_echo(void **state)
{
	struct world w = {.sni = "localhost"};

	NEED_CERTS();
	w.scfg = server_config(NULL);
	w.ccfg = client_config("ca.pem", false, NULL);
	w.cli.total = 1u << 20;
	w.cli.hiwat = 16384;
	w.cli.shut_when_sent = true;
	w.srv.echo = true;
	w.srv.shut_on_eof = true;
	world_start(&w);
	SPIN(&w, (w.cli.eof && w.srv.eof) || w.cli.closed || w.srv.closed);
	assert_false(w.cli.closed);
	assert_false(w.srv.closed);
	assert_true(w.cli.handshake && w.srv.handshake);
	assert_string_equal(w.cli.alpn, "");
	assert_null(tb_tls_alpn(w.cli.s));
	assert_int_equal(w.srv.got, 1u << 20);
	assert_int_equal(w.cli.got, 1u << 20);
	assert_int_equal(w.cli.write_err, 0);
	/* One more on_drain each when shutdown() found data still queued. */
	assert_in_range(w.cli.drains, w.cli.enobufs, w.cli.enobufs + 1);
	assert_in_range(w.srv.drains, w.srv.enobufs, w.srv.enobufs + 1);
	assert_int_equal(tb_stream_queued(w.cli.s), 0);
	world_end(&w);
}

/* A filter is a stream like any other: TLS over TLS, 1 MiB each way with
 * backpressure through both layers. */
static void test_tls_over_tls(void **state)
{
	struct world w = {.sni = "localhost", .nested = true};

	NEED_CERTS();
	w.scfg = server_config(NULL);
	w.ccfg = client_config("ca.pem", false, NULL);
	w.cli.total = 1u << 20;
	w.cli.hiwat = 16384;
	w.cli.shut_when_sent = true;
	w.srv.echo = true;
	w.srv.shut_on_eof = true;
	world_start(&w);
	SPIN(&w, (w.cli.eof && w.srv.eof) || w.cli.closed || w.srv.closed);
	assert_false(w.cli.closed || w.srv.closed);
	assert_int_equal(w.srv.got, 1u << 20);
	assert_int_equal(w.cli.got, 1u << 20);
	assert_in_range(w.cli.drains, w.cli.enobufs, w.cli.enobufs + 1);
	world_end(&w);
}

/* Client verification fails: on_close(TB_EPROTO) on the client; the server
 * gets the client's fatal alert and fails too. */
static void expect_verify_failure(struct world *w)
{
	w->cli.total = 100;
	world_start(w);
	SPIN(w, w->cli.closed && w->srv.closed);
	assert_false(w->cli.handshake);
	assert_int_equal(w->cli.err, TB_EPROTO);
	assert_true(w->srv.err < 0);
	assert_int_equal(w->srv.got, 0);
	world_end(w);
}

static void test_wrong_ca_fails(void **state)
{
	struct world w = {.sni = "localhost"};

	NEED_CERTS();
	w.scfg = server_config(NULL);
	w.ccfg = client_config("other.pem", false, NULL);
	expect_verify_failure(&w);
}

static void test_wrong_name_fails(void **state)
{
	struct world w = {.sni = "example.com"};

	NEED_CERTS();
	w.scfg = server_config(NULL);
	w.ccfg = client_config("ca.pem", false, NULL);
	expect_verify_failure(&w);
}

static void test_wrong_ip_fails(void **state)
{
	struct world w = {.sni = "127.0.0.2"}; /* connects to 127.0.0.1 all the same */

	NEED_CERTS();
	w.scfg = server_config(NULL);
	w.ccfg = client_config("ca.pem", false, NULL);
	expect_verify_failure(&w);
}

/* A small exchange that must succeed: "hello" up, the same back, EOF both ways. */
static void expect_exchange(struct world *w)
{
	w->cli.total = 5000;
	w->cli.shut_when_sent = true;
	w->srv.echo = true;
	w->srv.shut_on_eof = true;
	world_start(w);
	SPIN(w, (w->cli.eof && w->srv.eof) || w->cli.closed || w->srv.closed);
	assert_false(w->cli.closed);
	assert_int_equal(w->cli.got, 5000);
	world_end(w);
}

static void test_ip_literal_verified(void **state)
{
	struct world w = {.sni = "127.0.0.1"};

	NEED_CERTS();
	w.scfg = server_config(NULL);
	w.ccfg = client_config("ca.pem", false, NULL);
	expect_exchange(&w);
}

static void test_insecure_accepts_wrong_ca(void **state)
{
	struct world w = {.sni = "localhost"};

	NEED_CERTS();
	w.scfg = server_config(NULL);
	w.ccfg = client_config("other.pem", true, NULL);
	expect_exchange(&w);
}

static void test_insecure_without_name(void **state)
{
	struct world w = {.sni = NULL};

	NEED_CERTS();
	w.scfg = server_config(NULL);
	w.ccfg = client_config("ca.pem", true, NULL);
	expect_exchange(&w);
}

static void test_alpn_server_choice(void **state)
{
	static const char *const offer[] = {"h2", "http/1.1", NULL};
	static const char *const only11[] = {"http/1.1", NULL};
	static const char *const pref11[] = {"http/1.1", "h2", NULL};
	const char *const *srv_lists[] = {only11, pref11};

	NEED_CERTS();
	for (int i = 0; i < 2; i++) {
		struct world w = {.sni = "localhost"};
		w.scfg = server_config(srv_lists[i]);
		w.ccfg = client_config("ca.pem", false, offer);
		w.cli.total = 10;
		world_start(&w);
		SPIN(&w, (w.cli.handshake && w.srv.got == 10) || w.cli.closed);
		assert_string_equal(w.cli.alpn, "http/1.1");
		assert_string_equal(w.srv.alpn, "http/1.1");
		assert_string_equal(tb_tls_alpn(w.cli.s), "http/1.1");
		world_end(&w);
	}
}

/* RFC 7301 §3.2: a server with no protocol in common refuses the handshake. */
static void test_alpn_no_overlap_fails(void **state)
{
	static const char *const offer[] = {"h2", NULL};
	static const char *const only11[] = {"http/1.1", NULL};
	struct world w = {.sni = "localhost"};

	NEED_CERTS();
	w.scfg = server_config(only11);
	w.ccfg = client_config("ca.pem", false, offer);
	world_start(&w);
	SPIN(&w, w.cli.closed && w.srv.closed);
	assert_int_equal(w.cli.err, TB_EPROTO);
	assert_int_equal(w.srv.err, TB_EPROTO);
	world_end(&w);
}

/* Writes before the handshake queue against hiwat; a paused server reads
 * nothing, so the client's queue fills; resuming drains it, on_drain follows
 * every TB_ENOBUFS. */
static void test_backpressure(void **state)
{
	struct world w = {.sni = "localhost"};

	NEED_CERTS();
	w.scfg = server_config(NULL);
	w.ccfg = client_config("ca.pem", false, NULL);
	w.cli.total = 16u << 20; /* more than the loopback socket buffers hold */
	w.cli.hiwat = 16384;
	w.cli.early = true;
	w.cli.shut_when_sent = true;
	w.srv.pause_at_handshake = true;
	w.srv.shut_on_eof = true;
	world_start(&w);
	SPIN(&w, w.srv.handshake || w.cli.closed || w.srv.closed);
	assert_true(w.cli.enobufs_before_hs > 0);
	/* Let the client push against the paused server for a while. */
	for (int i = 0; i < 30; i++)
		tb_loop_once(w.loop, 5);
	assert_int_equal(w.srv.data_while_paused, 0);
	assert_true(w.cli.sent < w.cli.total);
	assert_int_equal(w.cli.drains + 1, w.cli.enobufs); /* waiting for one */
	assert_true(tb_stream_queued(w.cli.s) >= 16384);
	w.srv.paused = false;
	tb_stream_resume(w.srv.s);
	SPIN(&w, (w.cli.eof && w.srv.eof) || w.cli.closed || w.srv.closed);
	assert_false(w.cli.closed || w.srv.closed);
	assert_int_equal(w.srv.got, w.cli.total);
	assert_in_range(w.cli.drains, w.cli.enobufs, w.cli.enobufs + 1);
	world_end(&w);
}

/* The client says "ping" and closes its side with close_notify; the server
 * still answers after that EOF, and its own shutdown ends the client's side.
 * The configs are freed before the sessions: they hold references. */
static void test_half_close(void **state)
{
	struct world w = {.sni = "localhost"};

	NEED_CERTS();
	w.scfg = server_config(NULL);
	w.ccfg = client_config("ca.pem", false, NULL);
	w.srv.reply_on_eof = "pong";
	world_start(&w);
	SPIN(&w, (w.cli.handshake && w.srv.handshake) || w.cli.closed);
	tb_tls_config_free(w.scfg);
	tb_tls_config_free(w.ccfg);
	w.scfg = w.ccfg = NULL;
	assert_int_equal(tb_stream_write(w.cli.s, "ping", 4), 0);
	assert_int_equal(tb_stream_shutdown(w.cli.s), 0);
	assert_int_equal(tb_stream_write(w.cli.s, "late", 4), TB_EPIPE);
	SPIN(&w, w.cli.eof || w.cli.closed);
	assert_false(w.cli.closed || w.srv.closed);
	assert_string_equal(w.srv.text, "ping");
	assert_string_equal(w.cli.text, "pong");
	assert_true(w.srv.eof);
	world_end(&w);
}

/* A raw client sends half a ClientHello and disconnects: the server session
 * fails with TB_EPROTO and is freed from inside its on_close. */
static void test_client_vanishes_mid_handshake(void **state)
{
	struct world w = {.raw_client = true};

	NEED_CERTS();
	w.scfg = server_config(NULL);
	world_start(&w);
	SPIN(&w, w.srv.closed);
	assert_int_equal(w.srv.err, TB_EPROTO);
	assert_false(w.srv.handshake);
	world_end(&w);
}

static void test_server_vanishes_mid_handshake(void **state)
{
	struct world w = {.raw_server = true, .sni = "localhost"};

	NEED_CERTS();
	w.ccfg = client_config("ca.pem", false, NULL);
	w.cli.early = true;
	w.cli.total = 100;
	world_start(&w);
	SPIN(&w, w.cli.closed);
	assert_true(w.srv.got > 0); /* the ClientHello went out */
	assert_true(w.cli.err == TB_EPROTO || w.cli.err == TB_ECONNRESET);
	assert_false(w.cli.handshake);
	world_end(&w);
}

/* Garbage injected under the server's session after the handshake: the
 * client's record layer refuses it. */
static void test_bad_record_fails(void **state)
{
	struct world w = {.sni = "localhost"};
	static const uint8_t junk[] = {0x17, 0x03, 0x03, 0x00, 0x20, 1,	 2,  3,	 4,  5,	 6,  7,	 8,
				       9,    10,   11,	 12,   13,   14, 15, 16, 17, 18, 19, 20, 21,
				       22,   23,   24,	 25,   26,   27, 28, 29, 30, 31, 32};

	NEED_CERTS();
	w.scfg = server_config(NULL);
	w.ccfg = client_config("ca.pem", false, NULL);
	w.cli.total = 10;
	world_start(&w);
	SPIN(&w, (w.srv.handshake && w.srv.got == 10) || w.srv.closed);
	assert_int_equal(tb_stream_write(w.srv.raw, junk, sizeof(junk)), 0);
	SPIN(&w, w.cli.closed);
	assert_int_equal(w.cli.err, TB_EPROTO);
	world_end(&w);
}

/* The server's TCP connection ends without close_notify under its session:
 * the client reports EOF (tls.h: truncation is not an error here). */
static void test_eof_without_close_notify(void **state)
{
	struct world w = {.sni = "localhost"};

	NEED_CERTS();
	w.scfg = server_config(NULL);
	w.ccfg = client_config("ca.pem", false, NULL);
	w.cli.total = 10;
	world_start(&w);
	SPIN(&w, (w.cli.handshake && w.srv.got == 10) || w.srv.closed);
	assert_int_equal(tb_stream_shutdown(w.srv.raw), 0);
	SPIN(&w, w.cli.eof || w.cli.closed);
	assert_false(w.cli.closed);
	world_end(&w);
}

/* The connection ends halfway through a record: that is no clean close. */
static void test_truncated_record_fails(void **state)
{
	struct world w = {.sni = "localhost"};
	static const uint8_t part[] = {0x17, 0x03, 0x03, 0x00, 0x40, 1, 2, 3, 4, 5, 6, 7, 8};

	NEED_CERTS();
	w.scfg = server_config(NULL);
	w.ccfg = client_config("ca.pem", false, NULL);
	w.cli.total = 10;
	world_start(&w);
	SPIN(&w, (w.cli.handshake && w.srv.got == 10) || w.srv.closed);
	assert_int_equal(tb_stream_write(w.srv.raw, part, sizeof(part)), 0);
	assert_int_equal(tb_stream_shutdown(w.srv.raw), 0);
	SPIN(&w, w.cli.closed || w.cli.eof);
	assert_false(w.cli.eof);
	assert_int_equal(w.cli.err, TB_EPROTO);
	world_end(&w);
}

/* Data and shutdown() before the handshake: both wait for it, in order. */
static void test_shutdown_before_handshake(void **state)
{
	struct world w = {.sni = "localhost"};

	NEED_CERTS();
	w.scfg = server_config(NULL);
	w.ccfg = client_config("ca.pem", false, NULL);
	w.cli.early = true;
	expect_exchange(&w);
}

/* shutdown() with data still queued: on_drain once the half-close went out,
 * with nothing queued any more (what relay.c waits for). */
static void test_shutdown_drain(void **state)
{
	struct world w = {.sni = "localhost"};

	NEED_CERTS();
	w.scfg = server_config(NULL);
	w.ccfg = client_config("ca.pem", false, NULL);
	w.cli.hiwat = 64u << 20; /* no TB_ENOBUFS: only the shutdown's on_drain */
	w.cli.total = 16u << 20;
	w.srv.pause_at_handshake = true;
	w.srv.shut_on_eof = true;
	world_start(&w);
	SPIN(&w, (w.srv.handshake && w.cli.sent == w.cli.total) || w.cli.closed || w.srv.closed);
	assert_int_equal(w.cli.enobufs, 0);
	assert_true(tb_stream_queued(w.cli.s) > 0);
	assert_int_equal(tb_stream_shutdown(w.cli.s), 0);
	assert_int_equal(w.cli.drains, 0);
	w.srv.paused = false;
	tb_stream_resume(w.srv.s);
	SPIN(&w, w.cli.drains > 0 || w.cli.closed);
	assert_int_equal(w.cli.drains, 1);
	assert_int_equal(tb_stream_queued(w.cli.s), 0);
	SPIN(&w, (w.cli.eof && w.srv.eof) || w.cli.closed || w.srv.closed);
	assert_int_equal(w.srv.got, w.cli.total);
	world_end(&w);
}

/* Closing from inside on_handshake and on_data is safe (deferred free). */
static void test_close_inside_callbacks(void **state)
{
	NEED_CERTS();
	for (int i = 0; i < 2; i++) {
		struct world w = {.sni = "localhost"};
		w.scfg = server_config(NULL);
		w.ccfg = client_config("ca.pem", false, NULL);
		w.cli.total = 70000; /* several records in one lower read */
		if (i == 0)
			w.srv.close_at_handshake = true;
		else
			w.srv.close_at_data = true;
		world_start(&w);
		SPIN(&w, w.srv.closed && (w.cli.closed || w.cli.eof));
		assert_true(w.cli.err < 0 || w.cli.eof);
		world_end(&w);
	}
}

/* Mutual TLS: a server with a CA file requires a client certificate. */
static void test_client_certificate(void **state)
{
	tb_tls_opts_t so = {.role = TB_TLS_SERVER,
			    .ca_file = path("ca.pem"),
			    .cert_file = path("srv.pem"),
			    .key_file = path("srv.key")};
	tb_tls_opts_t co = {.role = TB_TLS_CLIENT,
			    .ca_file = path("ca.pem"),
			    .cert_file = path("cli.pem"),
			    .key_file = path("cli.key")};

	NEED_CERTS();
	for (int with_cert = 1; with_cert >= 0; with_cert--) {
		struct world w = {.sni = "localhost"};
		if (!with_cert)
			co.cert_file = co.key_file = NULL;
		w.scfg = config(&so);
		w.ccfg = config(&co);
		w.cli.total = 10;
		world_start(&w);
		if (with_cert) {
			SPIN(&w, w.srv.got == 10 || w.srv.closed);
			assert_true(w.srv.handshake);
		} else {
			SPIN(&w, w.srv.closed && w.cli.closed);
			assert_int_equal(w.srv.err, TB_EPROTO);
			assert_int_equal(w.cli.err, TB_EPROTO);
		}
		world_end(&w);
	}
}

static void expect_config_error(const tb_tls_opts_t *o, const char *needle)
{
	tb_tls_config_t *c = NULL;
	char msg[256];

	assert_int_equal(tb_tls_config_new(o, &c, msg, sizeof(msg)), TB_EINVAL);
	assert_null(c);
	if (!strstr(msg, needle))
		fail_msg("message \"%s\" lacks \"%s\"", msg, needle);
}

static void test_config_errors(void **state)
{
	static const char *const empty_alpn[] = {"h2", "", NULL};
	tb_tls_opts_t o;

	NEED_CERTS();
	o = (tb_tls_opts_t){.role = TB_TLS_CLIENT, .ca_file = path("missing.pem")};
	expect_config_error(&o, "missing.pem");
	o = (tb_tls_opts_t){.role = TB_TLS_CLIENT, .ca_file = path("srv.ext")};
	expect_config_error(&o, "srv.ext");
	o = (tb_tls_opts_t){.role = TB_TLS_SERVER};
	expect_config_error(&o, "certificate");
	o = (tb_tls_opts_t){.role = TB_TLS_SERVER, .cert_file = path("srv.pem")};
	expect_config_error(&o, "key");
	o = (tb_tls_opts_t){.role = TB_TLS_SERVER, .cert_file = path("srv.pem"), .key_file = path("cli.key")};
	expect_config_error(&o, "does not match");
	o = (tb_tls_opts_t){.role = TB_TLS_SERVER, .cert_file = path("srv.key"), .key_file = path("srv.key")};
	expect_config_error(&o, "srv.key");
	o = (tb_tls_opts_t){.role = TB_TLS_CLIENT, .insecure = true, .alpn = empty_alpn};
	expect_config_error(&o, "ALPN");
}

/* ---- a lower stream that only records what is written to it ---- */

struct capture {
	tb_stream_t s;
	uint8_t buf[2048];
	size_t len;
};

static int cap_write(tb_stream_t *s, const void *d, size_t n)
{
	struct capture *c = (struct capture *)s;
	size_t k = TB_MIN(n, sizeof(c->buf) - c->len);

	memcpy(c->buf + c->len, d, k);
	c->len += k;
	return 0;
}

static int cap_shutdown(tb_stream_t *s)
{
	return 0;
}

static void cap_nop(tb_stream_t *s)
{
}

static size_t cap_queued(const tb_stream_t *s)
{
	return 0;
}

static const tb_stream_ops_t cap_ops = {cap_write, cap_shutdown, cap_nop, cap_nop, cap_nop, cap_queued};

/* The 32-byte random of the ClientHello a fresh client session sends:
 * record header 5, handshake header 4, version 2, then the random. */
static bool client_random(tb_loop_t *loop, tb_tls_config_t *c, uint8_t out[32])
{
	struct capture cap = {.s = {.ops = &cap_ops}};
	tb_stream_t *tls;

	if (tb_tls_wrap(loop, c, &cap.s, "localhost", NULL, NULL, &tls) != 0)
		return false;
	tb_stream_close(tls);
	if (cap.len < 43 || cap.buf[0] != 0x16 || cap.buf[5] != 1)
		return false;
	memcpy(out, cap.buf + 11, 32);
	return true;
}

/* A config made before fork() must not give parent and child the same
 * random stream (workers = N): each process reseeds. */
static void test_fork_reseeds(void **state)
{
	tb_loop_t *loop = tb_loop_new();
	tb_tls_config_t *c;
	uint8_t mine[32], theirs[32];
	int fds[2], status;
	pid_t pid;

	NEED_CERTS();
	c = client_config("ca.pem", false, NULL);
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		bool ok = client_random(loop, c, theirs) && write(fds[1], theirs, 32) == 32;
		_exit(ok ? 0 : 1);
	}
	assert_true(client_random(loop, c, mine));
	assert_int_equal(read(fds[0], theirs, 32), 32);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_memory_not_equal(mine, theirs, 32);
	close(fds[0]);
	close(fds[1]);
	tb_tls_config_free(c);
	tb_loop_free(loop);
}

static void test_wrap_needs_a_name(void **state)
{
	tb_loop_t *loop = tb_loop_new();
	tb_tls_config_t *c;
	tb_stream_t *out = NULL, dummy = {0};

	NEED_CERTS();
	c = client_config("ca.pem", false, NULL);
	assert_int_equal(tb_tls_wrap(loop, c, &dummy, NULL, NULL, NULL, &out), TB_EINVAL);
	assert_null(out);
	assert_false(tb_tls_is(&dummy));
	assert_null(tb_tls_alpn(&dummy));
	tb_tls_config_free(c);
	tb_loop_free(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verified_1mib_echo),
		cmocka_unit_test(test_tls_over_tls),
		cmocka_unit_test(test_wrong_ca_fails),
		cmocka_unit_test(test_wrong_name_fails),
		cmocka_unit_test(test_wrong_ip_fails),
		cmocka_unit_test(test_ip_literal_verified),
		cmocka_unit_test(test_insecure_accepts_wrong_ca),
		cmocka_unit_test(test_insecure_without_name),
		cmocka_unit_test(test_alpn_server_choice),
		cmocka_unit_test(test_alpn_no_overlap_fails),
		cmocka_unit_test(test_backpressure),
		cmocka_unit_test(test_half_close),
		cmocka_unit_test(test_client_vanishes_mid_handshake),
		cmocka_unit_test(test_server_vanishes_mid_handshake),
		cmocka_unit_test(test_bad_record_fails),
		cmocka_unit_test(test_eof_without_close_notify),
		cmocka_unit_test(test_truncated_record_fails),
		cmocka_unit_test(test_shutdown_before_handshake),
		cmocka_unit_test(test_shutdown_drain),
		cmocka_unit_test(test_close_inside_callbacks),
		cmocka_unit_test(test_client_certificate),
		cmocka_unit_test(test_config_errors),
		cmocka_unit_test(test_fork_reseeds),
		cmocka_unit_test(test_wrap_needs_a_name),
	};

	if (getenv("TB_TEST_DEBUG"))
		tb_log_init(TB_LOG_DEBUG, false, "test_tls");
	return cmocka_run_group_tests(tests, make_certs, remove_certs);
}
