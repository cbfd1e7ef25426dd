/* fuzz_tun2socks.c: raw IP packets into the tun2socks core (and through it
 * lwIP's TCP), with deterministic time and randomness.
 *
 * The input is a script of records, so one input can complete a handshake,
 * finish the open, move data both ways and let lwIP's timers run:
 *   0x00-0x7f L1 L2 bytes[L]  a packet of L = (L1 << 8 | L2) bytes from the LAN
 *   0x80 n     advance lwIP's clock by n * 50 ms and run its timers
 *   0x81       the oldest pending open succeeds (a sink stream is the remote)
 *   0x82       the oldest pending open fails
 *   0x83 n     the newest relayed stream's owner writes n * 64 bytes
 *   0x84 / 0x85  ... shuts it down / closes it
 *   0x86 n     the newest UDP association gets an n * 16-byte reply
 *   0x87 / 0x88  ... pauses / resumes the newest stream
 * Packets are taken as they come: checksums are not fixed up, so the seeds
 * (tests/fuzz/corpus/tun2socks) carry valid ones for the fuzzer to mutate.
 *
 * sys_now() and tb_lwip_rand() are defined here, replacing
 * port/lwip/sys_arch.c in the link: lwIP's time moves only with 0x80. */
#include <stdlib.h>
#include <string.h>

#include "lwip/sys.h"
#include "lwip/timeouts.h"
#include "tb/tun2socks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static u32_t fake_now;

u32_t sys_now(void)
{
	return fake_now;
}

/* A constant: every ISN is 0x1000, so seeds can complete handshakes. */
uint32_t tb_lwip_rand(void)
{
	return 0x1000;
}

#define NOPEN 8
#define NSTREAM 8

typedef struct fz {
	struct fz_open {
		tb_connector_cb cb;
		void *arg;
		uint32_t seq; /* 0: free */
	} open[NOPEN];
	uint32_t seq;
	tb_stream_t *streams[NSTREAM];
	int nstreams;
	tb_dgram_t *dg;
	size_t out_bytes;
} fz_t;

/* ---- a remote that takes everything ---- */
static int sink_write(tb_stream_t *s, const void *d, size_t n)
{
	return 0;
}
static int sink_shutdown(tb_stream_t *s)
{
	return 0;
}
static void sink_nop(tb_stream_t *s)
{
}
static size_t sink_queued(const tb_stream_t *s)
{
	return 0;
}
static const tb_stream_ops_t sink_ops = {sink_write, sink_shutdown, sink_nop, sink_nop, sink_nop, sink_queued};
static tb_stream_t sink = {&sink_ops, NULL, NULL, 1 << 16};

static void drop_stream(fz_t *f, tb_stream_t *s)
{
	for (int i = 0; i < f->nstreams; i++) {
		if (f->streams[i] == s) {
			f->streams[i] = f->streams[--f->nstreams];
			break;
		}
	}
	tb_stream_close(s);
}

static void c_data(void *ctx, tb_stream_t *s, const uint8_t *d, size_t n)
{
}
static void c_eof(void *ctx, tb_stream_t *s)
{
}
static void c_close(void *ctx, tb_stream_t *s, int err)
{
	drop_stream(ctx, s);
}
static const tb_stream_handler_t client_h = {c_data, NULL, c_eof, c_close};

static int f_open(void *arg, const tb_target_t *t, tb_connector_cb cb, void *cbarg, void **handle)
{
	fz_t *f = arg;

	for (int i = 0; i < NOPEN; i++) {
		if (f->open[i].seq)
			continue;
		f->open[i].cb = cb;
		f->open[i].arg = cbarg;
		f->open[i].seq = ++f->seq;
		*handle = &f->open[i];
		return 0;
	}
	return TB_ENOMEM;
}

static void f_cancel(void *arg, void *handle)
{
	((struct fz_open *)handle)->seq = 0;
}

/* The oldest pending open, taken off the list; NULL if none. */
static struct fz_open *oldest_open(fz_t *f)
{
	struct fz_open *o = NULL;

	for (int i = 0; i < NOPEN; i++)
		if (f->open[i].seq && (!o || f->open[i].seq < o->seq))
			o = &f->open[i];
	return o;
}

static void finish_open(fz_t *f, bool ok)
{
	struct fz_open *o = oldest_open(f);
	tb_connector_cb cb;
	void *arg;

	if (!o)
		return;
	cb = o->cb;
	arg = o->arg;
	o->seq = 0;
	cb(arg, ok ? &sink : NULL, ok ? 0 : TB_ECONNREFUSED);
}

static int f_relay(void *arg, tb_stream_t *client, tb_stream_t *remote)
{
	fz_t *f = arg;

	if (f->nstreams == NSTREAM) {
		tb_stream_close(client);
		return TB_ENOMEM;
	}
	f->streams[f->nstreams++] = client;
	tb_stream_set_handler(client, &client_h, f);
	tb_stream_resume(client);
	return 0;
}

static fz_t *cur; /* the association's close must forget it */

static int d_send(tb_dgram_t *d, const tb_target_t *to, const void *data, size_t len)
{
	return 0;
}
static void d_close(tb_dgram_t *d)
{
	if (cur && cur->dg == d)
		cur->dg = NULL;
	free(d);
}
static const tb_dgram_ops_t dgram_ops = {d_send, d_close};

static int f_udp_open(void *arg, const tb_target_t *first, tb_dgram_recv_cb cb, void *cbarg, tb_dgram_t **out)
{
	fz_t *f = arg;
	tb_dgram_t *d = calloc(1, sizeof(*d));

	if (!d)
		return TB_ENOMEM;
	d->ops = &dgram_ops;
	d->recv = cb;
	d->arg = cbarg;
	f->dg = d;
	*out = d;
	return 0;
}

static int f_output(void *arg, const uint8_t *pkt, size_t len)
{
	((fz_t *)arg)->out_bytes += len;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t payload[255 * 64];
	tb_loop_t *loop = tb_loop_new();
	fz_t f;
	tb_t2s_env_t env = {f_open, f_cancel, f_relay, f_udp_open, f_output, &f};
	tb_t2s_opts_t o = {.mtu = 1500, .max_sessions = 6, .udp_idle_ms = 60000};
	tb_t2s_t *t;
	size_t i = 0;

	memset(&f, 0, sizeof(f));
	cur = &f;
	if (!loop || tb_t2s_new(loop, &o, &env, &t) < 0)
		abort();
	while (i < size) {
		uint8_t op = data[i++];
		uint8_t n = i < size ? data[i] : 0;
		tb_stream_t *s = f.nstreams ? f.streams[f.nstreams - 1] : NULL;

		if (op < 0x80) {
			size_t len;
			if (i + 2 > size)
				break;
			len = (size_t)data[i] << 8 | data[i + 1];
			i += 2;
			if (len > size - i)
				len = size - i;
			tb_t2s_input(t, data + i, len);
			i += len;
		} else if (op == 0x80) {
			i++;
			fake_now += (u32_t)n * 50;
			sys_check_timeouts();
		} else if (op == 0x81 || op == 0x82) {
			finish_open(&f, op == 0x81);
		} else if (op == 0x83 && s) {
			i++;
			tb_stream_write(s, payload, (size_t)n * 64);
		} else if (op == 0x84 && s) {
			tb_stream_shutdown(s);
		} else if (op == 0x85 && s) {
			drop_stream(&f, s);
		} else if (op == 0x86 && f.dg) {
			tb_target_t from;
			tb_addr_t a = {TB_AF_INET, 53, {192, 0, 2, 1}};
			i++;
			tb_target_from_addr(&from, &a);
			f.dg->recv(f.dg->arg, f.dg, &from, payload, (size_t)n * 16);
		} else if (op == 0x87 && s) {
			tb_stream_pause(s);
		} else if (op == 0x88 && s) {
			tb_stream_resume(s);
		}
		tb_loop_once(loop, 0);
	}
	while (f.nstreams)
		drop_stream(&f, f.streams[0]);
	tb_t2s_free(t);
	tb_loop_once(loop, 0);
	tb_loop_free(loop);
	cur = NULL;
	return 0;
}
