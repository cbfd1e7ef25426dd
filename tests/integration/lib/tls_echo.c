/* tls_echo.c: small TLS peers built on the TLS filter, for 61_tls_interop.sh
 * to set against independent implementations (openssl s_server/s_client, curl).
 *
 *   tls_echo server CERT KEY [--alpn a,b] [--ca FILE] [--http FILE] [--close-after N] [-v]
 *       Listens on 127.0.0.1 (a free port, printed as "port N"). Echoes what
 *       it receives and shuts down on EOF, or after echoing N bytes; with
 *       --http answers any request with FILE as a 200 response.
 *   tls_echo client IP:PORT NAME [--ca FILE] [--insecure] [--alpn a,b] [--lines N] [-v]
 *       Prints "alpn P" after the handshake, then sends N lines to an
 *       `openssl s_server -rev` and checks each answer is the line reversed;
 *       "CLOSE" ends the session. Exits 0 on success, 1 on any failure.
 * Both stop by themselves after --seconds (default 30). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tb/buf.h"
#include "tb/log.h"
#include "tb/port.h"
#include "tb/tls.h"

static tb_loop_t *loop;
static tb_tls_config_t *cfg;
static int exit_code = 2; /* until someone decides */
static const char *alpn_list[9];
static char alpn_buf[256];
static uint8_t *http_body;
static size_t http_len, close_after, lines;
static const char *name;
static bool server;

static void finish(int code)
{
	exit_code = code;
	tb_loop_stop(loop);
}

static void split_alpn(const char *s)
{
	size_t n = 0;

	snprintf(alpn_buf, sizeof(alpn_buf), "%s", s);
	for (char *tok = strtok(alpn_buf, ","); tok && n < 8; tok = strtok(NULL, ","))
		alpn_list[n++] = tok;
	alpn_list[n] = NULL;
}

static uint8_t *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *p = NULL;
	long n;

	if (!f || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0 ||
	    !(p = malloc((size_t)n + 1)) || fread(p, 1, (size_t)n, f) != (size_t)n) {
		fprintf(stderr, "cannot read %s\n", path);
		exit(1);
	}
	fclose(f);
	*len = (size_t)n;
	return p;
}

/* ---- server ---- */

struct conn {
	tb_stream_t *s;
	size_t echoed, req_len, body_off;
	char req[8192];
	bool eof, shut, responding, paused;
};

static void conn_end(struct conn *c)
{
	tb_stream_close(c->s);
	free(c);
}

static void conn_shutdown(struct conn *c)
{
	if (!c->shut) {
		c->shut = true;
		tb_stream_shutdown(c->s);
	}
	if (c->eof && tb_stream_queued(c->s) == 0)
		conn_end(c);
}

static void http_send(struct conn *c)
{
	while (c->body_off < http_len) {
		size_t n = TB_MIN(16384, http_len - c->body_off);
		int rc = tb_stream_write(c->s, http_body + c->body_off, n);
		c->body_off += n;
		if (rc == TB_ENOBUFS)
			return;
	}
	conn_shutdown(c);
}

static void http_request(struct conn *c, const uint8_t *d, size_t n)
{
	char hdr[160];

	if (c->responding)
		return;
	n = TB_MIN(n, sizeof(c->req) - 1 - c->req_len);
	memcpy(c->req + c->req_len, d, n);
	c->req_len += n;
	c->req[c->req_len] = '\0';
	if (!strstr(c->req, "\r\n\r\n"))
		return;
	c->responding = true;
	n = (size_t)snprintf(hdr, sizeof(hdr),
			     "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", http_len);
	tb_stream_write(c->s, hdr, n);
	http_send(c);
}

static void srv_data(void *ctx, tb_stream_t *s, const uint8_t *d, size_t n)
{
	struct conn *c = ctx;

	if (http_body) {
		http_request(c, d, n);
		return;
	}
	if (c->shut)
		return;
	if (close_after && c->echoed + n >= close_after)
		n = close_after - c->echoed;
	c->echoed += n;
	if (tb_stream_write(s, d, n) == TB_ENOBUFS) {
		c->paused = true;
		tb_stream_pause(s);
	}
	if (close_after && c->echoed == close_after)
		conn_shutdown(c);
}

static void srv_drain(void *ctx, tb_stream_t *s)
{
	struct conn *c = ctx;

	if (c->paused) {
		c->paused = false;
		tb_stream_resume(s);
	}
	if (c->responding && c->body_off < http_len)
		http_send(c);
	else if (c->shut && c->eof && tb_stream_queued(s) == 0)
		conn_end(c);
}

static void srv_eof(void *ctx, tb_stream_t *s)
{
	struct conn *c = ctx;

	fprintf(stderr, "conn: eof after %zu bytes\n", c->echoed);
	c->eof = true;
	if (!c->responding || c->body_off == http_len)
		conn_shutdown(c);
}

static void srv_close(void *ctx, tb_stream_t *s, int err)
{
	fprintf(stderr, "conn: closed: %s\n", tb_strerror(err));
	conn_end(ctx);
}

static const tb_stream_handler_t srv_h = {srv_data, srv_drain, srv_eof, srv_close};

static void srv_handshake(void *arg, tb_stream_t *tls)
{
	const char *p = tb_tls_alpn(tls);

	fprintf(stderr, "conn: handshake, alpn %s\n", p ? p : "none");
}

static const tb_tls_events_t srv_ev = {srv_handshake};

static void on_accept(void *arg, tb_stream_t *s, const tb_addr_t *peer)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (!c || tb_tls_wrap(loop, cfg, s, NULL, &srv_ev, c, &c->s) < 0) {
		free(c);
		tb_stream_close(s);
		return;
	}
	tb_stream_set_handler(c->s, &srv_h, c);
}

/* ---- client ---- */

static tb_stream_t *cli;
static size_t sent_lines, got_lines, line_len;
static char line[256];

static void make_line(size_t i, char *buf, size_t len)
{
	snprintf(buf, len, "%06zu the quick brown fox jumps over the lazy dog %zu", i, i * 7919 % 100003);
}

static void cli_send(void)
{
	char buf[128];

	while (sent_lines < lines) {
		make_line(sent_lines++, buf, sizeof(buf));
		strcat(buf, "\n");
		if (tb_stream_write(cli, buf, strlen(buf)) == TB_ENOBUFS)
			return; /* on_drain continues */
	}
	if (sent_lines == lines) {
		sent_lines++;
		tb_stream_write(cli, "CLOSE\n", 6);
	}
}

static void check_line(void)
{
	char want[128];
	size_t n;

	if (line_len > 0 && line[line_len - 1] == '\r')
		line_len--;
	make_line(got_lines, want, sizeof(want));
	n = strlen(want);
	for (size_t i = 0; i < n / 2; i++) {
		char t = want[i];
		want[i] = want[n - 1 - i];
		want[n - 1 - i] = t;
	}
	if (line_len != n || memcmp(line, want, n) != 0) {
		fprintf(stderr, "line %zu: got \"%.*s\", want \"%s\"\n", got_lines, (int)line_len, line,
			want);
		finish(1);
	}
	got_lines++;
	line_len = 0;
}

static void cli_data(void *ctx, tb_stream_t *s, const uint8_t *d, size_t n)
{
	for (size_t i = 0; i < n && exit_code == 2; i++) {
		if (d[i] == '\n')
			check_line();
		else if (line_len < sizeof(line))
			line[line_len++] = (char)d[i];
	}
}

static void cli_drain(void *ctx, tb_stream_t *s)
{
	cli_send();
}

static void cli_eof(void *ctx, tb_stream_t *s)
{
	printf("lines %zu\n", got_lines);
	finish(got_lines == lines ? 0 : 1);
}

static void cli_close(void *ctx, tb_stream_t *s, int err)
{
	printf("error: %s\n", tb_strerror(err));
	finish(1);
}

static const tb_stream_handler_t cli_h = {cli_data, cli_drain, cli_eof, cli_close};

static void cli_handshake(void *arg, tb_stream_t *tls)
{
	const char *p = tb_tls_alpn(tls);

	printf("alpn %s\n", p ? p : "none");
	fflush(stdout);
	cli_send();
}

static const tb_tls_events_t cli_ev = {cli_handshake};

static void on_connect(void *arg, tb_stream_t *s, int err)
{
	if (err < 0) {
		printf("error: connect: %s\n", tb_strerror(err));
		finish(1);
		return;
	}
	if (tb_tls_wrap(loop, cfg, s, name, &cli_ev, NULL, &cli) < 0) {
		tb_stream_close(s);
		finish(1);
		return;
	}
	tb_stream_set_handler(cli, &cli_h, NULL);
}

/* ---- main ---- */

static void on_timeout(tb_loop_t *l, void *arg)
{
	if (!server)
		printf("error: timeout\n");
	finish(server ? 0 : 1);
}

static void usage(void)
{
	fprintf(stderr, "usage: tls_echo server CERT KEY [opts] | tls_echo client IP:PORT NAME [opts]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	tb_tls_opts_t o = {0};
	tb_timer_t timer;
	tb_addr_t addr;
	tb_tcp_listener_t *l = NULL;
	char msg[256];
	int seconds = 30, i;

	if (argc < 4)
		usage();
	server = strcmp(argv[1], "server") == 0;
	o.role = server ? TB_TLS_SERVER : TB_TLS_CLIENT;
	if (server) {
		o.cert_file = argv[2];
		o.key_file = argv[3];
	} else if (tb_addr_parse(argv[2], &addr, false) < 0) {
		usage();
	}
	name = server ? NULL : argv[3];
	tb_log_init(TB_LOG_WARN, false, "tls_echo");
	for (i = 4; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "-v") == 0) {
			tb_log_init(TB_LOG_DEBUG, false, "tls_echo");
			continue;
		}
		if (strcmp(a, "--insecure") == 0) {
			o.insecure = true;
			continue;
		}
		if (!v)
			usage();
		i++;
		if (strcmp(a, "--alpn") == 0) {
			split_alpn(v);
			o.alpn = alpn_list;
		} else if (strcmp(a, "--ca") == 0) {
			o.ca_file = v;
		} else if (strcmp(a, "--http") == 0) {
			http_body = read_file(v, &http_len);
		} else if (strcmp(a, "--close-after") == 0) {
			close_after = strtoul(v, NULL, 10);
		} else if (strcmp(a, "--lines") == 0) {
			lines = strtoul(v, NULL, 10);
		} else if (strcmp(a, "--seconds") == 0) {
			seconds = atoi(v);
		} else {
			usage();
		}
	}
	if (tb_tls_config_new(&o, &cfg, msg, sizeof(msg)) < 0) {
		printf("error: %s\n", msg);
		return 1;
	}
	loop = tb_loop_new();
	tb_timer_init(&timer, on_timeout, NULL);
	tb_timer_start(loop, &timer, (uint64_t)seconds * 1000);
	if (server) {
		tb_addr_parse_ip("127.0.0.1", &addr);
		if (tb_tcp_listen(loop, &addr, NULL, on_accept, NULL, &l) < 0)
			return 1;
		tb_tcp_listener_addr(l, &addr);
		printf("port %u\n", addr.port);
		fflush(stdout);
	} else if (tb_tcp_connect(loop, &addr, 5000, on_connect, NULL, NULL) < 0) {
		return 1;
	}
	tb_loop_run(loop);
	if (cli)
		tb_stream_close(cli);
	tb_tcp_listener_close(l);
	tb_timer_stop(loop, &timer);
	tb_tls_config_free(cfg);
	tb_loop_free(loop);
	free(http_body);
	return exit_code;
}
