/* fuzz_linksocks_mux.c: arbitrary messages into the LinkSocks channel mux.
 *
 * The input is a sequence of messages, each preceded by a 2-byte big-endian
 * length. Before the run the harness opens two channels (one fast-open); a
 * Data, ConnectResponse or Disconnect whose first id byte is even is
 * retargeted at one of them, so the fuzzer reaches the channel paths
 * without guessing random ids. The owner pauses, resumes and closes on
 * input bits, and the transport reports "full" on others. */
#include <stdlib.h>
#include <string.h>

#include "tb/linksocks.h"

#if ENABLE_LINKSOCKS

#ifdef TB_FUZZ_CODEC_ONLY
/* The fuzz library leaves the SOCKS5/HTTP servers out (codec only), but
 * the mux links against the gateway, which names them. This harness never
 * accepts a connection, so they are never called. */
#include "tb/gateway.h"
void tb_socks5_serve(tb_gw_listener_t *l, tb_stream_t *s, const tb_addr_t *peer, const uint8_t *in, size_t n);
void tb_http_serve(tb_gw_listener_t *l, tb_stream_t *s, const tb_addr_t *peer, const uint8_t *in, size_t n);
void tb_socks5_serve(tb_gw_listener_t *l, tb_stream_t *s, const tb_addr_t *peer, const uint8_t *in, size_t n)
{
	tb_stream_close(s);
}
void tb_http_serve(tb_gw_listener_t *l, tb_stream_t *s, const tb_addr_t *peer, const uint8_t *in, size_t n)
{
	tb_stream_close(s);
}
/* Likewise the roles the gateway's tables name: the client and provider
 * (linksocks_client.c builds only its URL parsers here) and tun2socks. */
const tb_gw_proto_t tb_linksocks_provider_proto = {.name = "linksocks-provider"};
int tb_linksocks_connector_new(const tb_connector_env_t *env, const char *name, const tb_conf_val_t *table,
			       tb_connector_t **out, tb_conf_err_t *err)
{
	return TB_ENOTSUP;
}
#if ENABLE_TUN2SOCKS
#include "tb/tun2socks.h"
const tb_gw_proto_t tb_tun2socks_proto = {.name = "tun"};
#endif
#endif

static int full;
static uint8_t ids[2][16]; /* the channels' ids, seen in their Connects */
static unsigned nids;

static int fz_send(void *t, const void *h, size_t hl, const void *b, size_t bl)
{
	const uint8_t *p = h;

	if (hl >= 19 && p[1] == TB_LS_CONNECT && nids < 2)
		memcpy(ids[nids++], p + 3, 16);
	return full ? TB_ENOBUFS : 0;
}

/* Points a channel message at one of our channels (§3.3 offsets). */
static void retarget(uint8_t *msg, size_t n)
{
	size_t off = n >= 2 && msg[1] == TB_LS_DISCONNECT ? 2 : 3;

	if (n < off + 16 || nids == 0 || (msg[off] & 1))
		return;
	if (msg[1] != TB_LS_DATA && msg[1] != TB_LS_CONNECT_RESPONSE && msg[1] != TB_LS_DISCONNECT)
		return;
	memcpy(msg + off, ids[(msg[off] >> 1) % nids], 16);
}

static void fz_nop(void *t)
{
}

static const tb_ls_transport_t tp = {fz_send, fz_nop, fz_nop};

struct own {
	tb_stream_t *s;
	uint8_t id[16];
	size_t got;
};

static void o_data(void *ctx, tb_stream_t *s, const uint8_t *d, size_t n)
{
	struct own *o = ctx;

	o->got += n;
	if (n & 1)
		tb_stream_pause(s);
}

static void o_close(void *ctx, tb_stream_t *s, int err)
{
	struct own *o = ctx;

	tb_stream_close(s);
	o->s = NULL;
}

static const tb_stream_handler_t oh = {o_data, NULL, NULL, o_close};

static void o_opened(void *arg, tb_stream_t *s, int err)
{
	struct own *o = arg;

	o->s = s;
	if (s)
		tb_stream_set_handler(s, &oh, o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	tb_loop_t *loop = tb_loop_new();
	tb_ls_mux_t *m;
	struct own a = {0}, b = {0};
	tb_target_t t;
	uint8_t msg[70000];

	if (!loop)
		return 0;
	full = 0;
	nids = 0;
	tb_ls_mux_new(loop, &tp, NULL, NULL, NULL, NULL, &m);
	tb_target_set(&t, "fuzz.test", 9, 80);
	tb_ls_mux_open(m, &t, false, o_opened, &a, NULL);
	tb_ls_mux_open(m, &t, true, o_opened, &b, NULL);
	while (size >= 2) {
		size_t n = tb_be16(data);
		data += 2;
		size -= 2;
		if (n > size)
			n = size;
		memcpy(msg, data, n);
		data += n;
		size -= n;
		retarget(msg, n);
		full = n > 3 && (msg[2] & 0x80);
		tb_ls_mux_input(m, msg, n);
		tb_loop_once(loop, 0);
		if (a.s && n > 0 && (msg[0] & 0x40))
			tb_stream_resume(a.s);
		if (b.s && n > 0 && (msg[0] & 0x20))
			tb_stream_write(b.s, msg, n);
	}
	tb_ls_mux_free(m, TB_ECONNRESET);
	if (a.s)
		tb_stream_close(a.s);
	if (b.s)
		tb_stream_close(b.s);
	tb_loop_once(loop, 0);
	tb_loop_free(loop);
	return 0;
}
#else
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return 0; /* LinkSocks is configured out */
}
#endif
