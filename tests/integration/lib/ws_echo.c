/* ws_echo.c: a tiny WebSocket peer on tunnelbox's ws.c, for 60_ws_interop.sh.
 *
 *   ws_echo server PORT              echo every message on 127.0.0.1:PORT
 *   ws_echo client URL N [FRAME]     send N messages of varied sizes to
 *                                    ws://127.0.0.1:PORT/path?query, check
 *                                    the echoes, ping, close with 1000;
 *                                    FRAME > 0 sends fragments of that size
 *
 * The client exits 0 when every echo matched, a pong came back and the
 * close handshake ended with 1000; else it prints why and exits 1. Both
 * give up after 60 s. Built by the script against $O/libtb.a. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tb/buf.h"
#include "tb/http.h"
#include "tb/port.h"
#include "tb/ws.h"

static tb_loop_t *loop;
static tb_timer_t deadline;

static void die(const char *why)
{
	fprintf(stderr, "ws_echo: %s\n", why);
	exit(1);
}

static void on_deadline(tb_loop_t *l, void *arg)
{
	die("timed out");
}

/* ---- server ---- */

struct sconn {
	tb_stream_t *s;
	tb_buf_t head;
	tb_ws_t *ws;
	bool refused;
};

static void s_message(void *ctx, tb_ws_t *ws, unsigned op, const uint8_t *d, size_t n)
{
	int rc = tb_ws_send(ws, op, d, n);

	if (rc == TB_ENOBUFS)
		tb_ws_pause(ws); /* read no more until the echo drained */
	else if (rc < 0)
		fprintf(stderr, "ws_echo: send: %s\n", tb_strerror(rc));
}

static void s_drain(void *ctx, tb_ws_t *ws)
{
	tb_ws_resume(ws);
}

static void s_close(void *ctx, tb_ws_t *ws, int code, int err)
{
	struct sconn *c = ctx;

	printf("server: closed code %d err %s\n", code, err ? tb_strerror(err) : "none");
	fflush(stdout);
	tb_ws_free(ws);
	free(c);
}

static const tb_ws_handler_t s_h = {NULL, s_message, NULL, s_drain, s_close};

static void raw_free(struct sconn *c)
{
	tb_buf_free(&c->head);
	tb_stream_close(c->s);
	free(c);
}

static void raw_refuse(struct sconn *c, int status)
{
	char out[256];
	int n = tb_ws_refusal_build(out, sizeof(out), status);

	c->refused = true;
	printf("server: refused with %d\n", status);
	fflush(stdout);
	if (n > 0)
		tb_stream_write(c->s, out, (size_t)n);
	tb_stream_shutdown(c->s); /* closed on the client's EOF */
}

static void raw_data(void *ctx, tb_stream_t *s, const uint8_t *d, size_t n)
{
	struct sconn *c = ctx;
	tb_http_request_t r;
	tb_http_span_t key;
	const uint8_t *p;
	size_t len;
	int hl, st;

	if (c->refused)
		return;
	if (tb_buf_append(&c->head, d, n) < 0)
		return raw_free(c);
	len = tb_buf_len(&c->head);
	p = tb_buf_pullup(&c->head, len);
	hl = tb_http_request_parse(p, len, &r);
	if (hl == TB_EAGAIN)
		return;
	if (hl < 0)
		return raw_refuse(c, tb_http_status_from_parse(hl));
	st = tb_ws_upgrade_check(&r, &key);
	if (st != 0)
		return raw_refuse(c, st);
	if (tb_ws_server_new(loop, s, key.p, key.len, p + hl, len - (size_t)hl, NULL, &s_h, c, &c->ws) < 0)
		return raw_free(c);
	tb_buf_free(&c->head);
}

static void raw_end(void *ctx, tb_stream_t *s)
{
	raw_free(ctx);
}

static void raw_close(void *ctx, tb_stream_t *s, int err)
{
	raw_free(ctx);
}

static const tb_stream_handler_t raw_h = {raw_data, NULL, raw_end, raw_close};

static void on_accept(void *arg, tb_stream_t *s, const tb_addr_t *peer)
{
	struct sconn *c = calloc(1, sizeof(*c));

	if (!c) {
		tb_stream_close(s);
		return;
	}
	c->s = s;
	tb_buf_init(&c->head);
	tb_stream_set_handler(s, &raw_h, c);
}

static int run_server(const char *port)
{
	tb_tcp_listener_t *l;
	tb_addr_t a;

	if (tb_addr_parse_ip("127.0.0.1", &a) < 0)
		die("address");
	a.port = (uint16_t)atoi(port);
	if (tb_tcp_listen(loop, &a, NULL, on_accept, NULL, &l) < 0)
		die("listen");
	printf("server: listening on %s\n", port);
	fflush(stdout);
	return tb_loop_run(loop);
}

/* ---- client ---- */

static const size_t sizes[] = {0, 1, 125, 126, 127, 1000, 65535, 65536, 100000, 1u << 20, 3u << 20};

struct client {
	tb_ws_t *ws;
	size_t n, sent, got, pongs;
	int rc;
};

/* Even messages go as text, so their bytes are ASCII (a strict peer
 * checks UTF-8, RFC 6455 §8.1); odd ones as binary, any byte. */
static unsigned opcode_of(size_t m)
{
	return m % 2 ? TB_WS_OP_BINARY : TB_WS_OP_TEXT;
}

static uint8_t pattern(size_t i, size_t m)
{
	if (opcode_of(m) == TB_WS_OP_TEXT)
		return (uint8_t)('a' + (i * 7 + m) % 26);
	return (uint8_t)(i * 7 + m * 13 + (i >> 10));
}

static void c_send_next(struct client *c)
{
	size_t len;
	uint8_t *b;
	int rc;

	if (c->sent >= c->n || c->sent > c->got)
		return; /* one message in flight */
	len = sizes[c->sent % (sizeof(sizes) / sizeof(sizes[0]))];
	b = malloc(len + 1);
	if (!b)
		die("out of memory");
	for (size_t i = 0; i < len; i++)
		b[i] = pattern(i, c->sent);
	rc = tb_ws_send(c->ws, opcode_of(c->sent), b, len);
	free(b);
	if (rc < 0 && rc != TB_ENOBUFS)
		die("send failed");
	c->sent++;
}

static void c_open(void *ctx, tb_ws_t *ws)
{
	struct client *c = ctx;

	if (tb_ws_ping(ws, "tb-ping", 7) < 0)
		die("ping failed");
	c_send_next(c);
}

static void c_message(void *ctx, tb_ws_t *ws, unsigned op, const uint8_t *d, size_t n)
{
	struct client *c = ctx;
	size_t want = sizes[c->got % (sizeof(sizes) / sizeof(sizes[0]))];

	if (c->got >= c->sent || n != want || op != opcode_of(c->got))
		die("unexpected message, length or opcode");
	for (size_t i = 0; i < n; i++)
		if (d[i] != pattern(i, c->got))
			die("echo differs");
	c->got++;
	if (c->got == c->n)
		tb_ws_close(ws, TB_WS_CLOSE_NORMAL, "done");
	else
		c_send_next(c);
}

static void c_pong(void *ctx, tb_ws_t *ws, const uint8_t *d, size_t n)
{
	struct client *c = ctx;

	if (n == 7 && memcmp(d, "tb-ping", 7) == 0)
		c->pongs++;
}

static void c_close(void *ctx, tb_ws_t *ws, int code, int err)
{
	struct client *c = ctx;

	printf("client: closed code %d err %s, %zu echoes, %zu pongs\n", code,
	       err ? tb_strerror(err) : "none", c->got, c->pongs);
	c->rc = code == TB_WS_CLOSE_NORMAL && err == 0 && c->got == c->n && c->pongs == 1 ? 0 : 1;
	tb_ws_free(ws);
	tb_loop_stop(loop);
}

static const tb_ws_handler_t c_h = {c_open, c_message, c_pong, NULL, c_close};

struct target {
	char host[64], path[512], *query;
	struct client *c;
	tb_ws_opts_t opts;
};

static void on_connect(void *arg, tb_stream_t *s, int err)
{
	struct target *t = arg;
	tb_ws_request_t req = {t->host, t->path, t->query, "ws_echo", "X-Test: 1\r\n"};

	if (err < 0)
		die("connect failed");
	if (tb_ws_client_new(loop, s, &req, &t->opts, &c_h, t->c, &t->c->ws) < 0)
		die("upgrade request failed");
}

/* ws://127.0.0.1:PORT[/path][?query] */
static void parse_url(const char *url, struct target *t, tb_addr_t *a)
{
	const char *hp, *slash;
	char ip[64];
	const char *colon;

	if (strncmp(url, "ws://", 5) != 0)
		die("URL must be ws://");
	hp = url + 5;
	slash = hp + strcspn(hp, "/?");
	if ((size_t)(slash - hp) >= sizeof(t->host))
		die("host too long");
	memcpy(t->host, hp, (size_t)(slash - hp));
	t->host[slash - hp] = '\0';
	colon = strchr(t->host, ':');
	if (!colon)
		die("URL needs a port");
	snprintf(ip, sizeof(ip), "%.*s", (int)(colon - t->host), t->host);
	if (tb_addr_parse_ip(ip, a) < 0)
		die("host must be an IP literal");
	a->port = (uint16_t)atoi(colon + 1);
	snprintf(t->path, sizeof(t->path), "%s%s", *slash == '/' ? "" : "/", slash);
	t->query = strchr(t->path, '?');
	if (t->query)
		*t->query++ = '\0';
}

static int run_client(const char *url, const char *n, const char *frame)
{
	struct client c = {.n = (size_t)atoi(n), .rc = 1};
	struct target t = {.c = &c};
	tb_addr_t a;

	parse_url(url, &t, &a);
	t.opts.max_frame = frame ? (size_t)atoi(frame) : 0;
	if (tb_tcp_connect(loop, &a, 5000, on_connect, &t, NULL) < 0)
		die("connect");
	tb_loop_run(loop);
	return c.rc;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	loop = tb_loop_new();
	if (!loop)
		die("loop");
	tb_timer_init(&deadline, on_deadline, NULL);
	if (argc == 3 && strcmp(argv[1], "server") == 0)
		return run_server(argv[2]);
	if ((argc == 4 || argc == 5) && strcmp(argv[1], "client") == 0) {
		tb_timer_start(loop, &deadline, 60000);
		return run_client(argv[2], argv[3], argc == 5 ? argv[4] : NULL);
	}
	fprintf(stderr, "usage: ws_echo server PORT | ws_echo client ws://IP:PORT/path N [FRAME]\n");
	return 2;
}
