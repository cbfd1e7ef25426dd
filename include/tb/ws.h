/* ws.h: WebSocket (RFC 6455), client and server, as a message filter.
 *
 * The sans-IO half: frame headers (decode and build), masking, the opening
 * handshake (Sec-WebSocket-Accept, the client's upgrade request, the
 * server's check of a parsed request and its 101, the client's check of the
 * answer) and a reassembling frame parser. The unit tests and the fuzzers
 * call these.
 *
 * tb_ws_t is an endpoint over a lower stream (TCP, or a TLS filter stream):
 * one callback per complete message, automatic pongs, the close handshake,
 * backpressure both ways. No extension or subprotocol is ever negotiated
 * (spec/linksocks.md §2.4), so any RSV bit is a protocol error (1002).
 * Every length read from the wire is checked; a message is limited to
 * max_message bytes (1009 above it), 32 MiB by default as the reference. */
#ifndef TB_WS_H
#define TB_WS_H

#include "tb/buf.h"
#include "tb/http.h"
#include "tb/loop.h"
#include "tb/stream.h"

enum {
	TB_WS_OP_CONT = 0x0,
	TB_WS_OP_TEXT = 0x1,
	TB_WS_OP_BINARY = 0x2,
	TB_WS_OP_CLOSE = 0x8,
	TB_WS_OP_PING = 0x9,
	TB_WS_OP_PONG = 0xa,
};

/* Close codes (RFC 6455 §7.4.1). 1005 and 1006 are only ever reported,
 * never sent. */
enum {
	TB_WS_CLOSE_NORMAL = 1000,
	TB_WS_CLOSE_GOING_AWAY = 1001,
	TB_WS_CLOSE_PROTOCOL = 1002,
	TB_WS_CLOSE_NO_STATUS = 1005,
	TB_WS_CLOSE_ABNORMAL = 1006,
	TB_WS_CLOSE_POLICY = 1008,
	TB_WS_CLOSE_TOO_BIG = 1009,
	TB_WS_CLOSE_INTERNAL = 1011,
};

#define TB_WS_HEADER_MAX 14	      /* 2 + 8-byte length + 4-byte mask */
#define TB_WS_CONTROL_MAX 125	      /* §5.5 */
#define TB_WS_KEY_LEN 24	      /* base64 of 16 bytes */
#define TB_WS_ACCEPT_LEN 28	      /* base64 of a SHA-1 digest */
#define TB_WS_MAX_MESSAGE (32u << 20) /* spec/linksocks.md §2.4 */
#define TB_WS_CLOSE_TIMEOUT_MS 2000u

/* ---- frames (RFC 6455 §5.2) ---- */

typedef struct tb_ws_frame {
	uint64_t len; /* payload length */
	uint8_t opcode;
	bool fin, masked;
	uint8_t mask[4];    /* when masked */
	uint8_t header_len; /* 2..14 */
} tb_ws_frame_t;

/* Decodes the frame header at p. Returns its length (2..14), TB_EAGAIN when
 * n is too short, or TB_EPROTO: an RSV bit set, a reserved opcode, a control
 * frame that is fragmented or longer than 125 bytes (§5.5), a 64-bit length
 * with its top bit set. Lengths need not be minimally encoded. */
int tb_ws_frame_decode(const uint8_t *p, size_t n, tb_ws_frame_t *f);
/* Writes the header of a frame carrying len payload bytes into out
 * (TB_WS_HEADER_MAX bytes), masked when mask is not NULL. Returns its length. */
size_t tb_ws_frame_header(uint8_t *out, bool fin, unsigned opcode, uint64_t len, const uint8_t *mask);
/* dst = src XOR mask (§5.3), n bytes, the mask taken from offset off (mod 4):
 * a payload split across calls continues with the returned offset. dst may
 * equal src (in place); it must not overlap it otherwise. */
size_t tb_ws_mask(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t mask[4], size_t off);

/* ---- the opening handshake (RFC 6455 §4) ---- */

/* base64(SHA-1(key + GUID)) (§4.2.2), NUL-terminated. 0 or TB_EINVAL. */
int tb_ws_accept_key(const char *key, size_t key_len, char out[TB_WS_ACCEPT_LEN + 1]);
/* A fresh Sec-WebSocket-Key: 16 random bytes (tb_port_random), base64. */
int tb_ws_key_new(char out[TB_WS_KEY_LEN + 1]);

typedef struct tb_ws_request {
	const char *host;	/* the Host field: "name[:port]" */
	const char *path;	/* starts with '/'; NULL or "" means "/" */
	const char *query;	/* without the '?'; NULL or "" for none */
	const char *user_agent; /* NULL: no User-Agent field */
	const char *headers;	/* extra fields, each "Name: value\r\n"; may be NULL */
} tb_ws_request_t;

/* The client's upgrade request with key (§4.1), in the reference client's
 * field order (spec/linksocks.md §2.4). Returns its length, TB_EINVAL when
 * a part would break the request (CR, LF, spaces in the path...), TB_ERANGE
 * when cap is too small. */
int tb_ws_request_build(char *out, size_t cap, const tb_ws_request_t *req, const char *key);
/* Checks a parsed request as an opening handshake (§4.2.1): GET, HTTP/1.1
 * or later, Host, Upgrade listing "websocket", Connection listing
 * "upgrade", a key of 16 base64-encoded bytes, version 13. Returns 0 and
 * spans the key in *key, or the HTTP status to refuse with: 405 (not GET),
 * 426 (another version), 400 (anything else). */
int tb_ws_upgrade_check(const tb_http_request_t *r, tb_http_span_t *key);
/* The refusal for a status from tb_ws_upgrade_check (426 names version 13,
 * §4.4), closing the connection. Returns its length or TB_ERANGE. */
int tb_ws_refusal_build(char *out, size_t cap, int status);
/* The 101: Upgrade, Connection and Sec-WebSocket-Accept only, as the
 * reference server (spec/linksocks.md §2.4). Returns its length, TB_EINVAL
 * or TB_ERANGE. */
int tb_ws_response_build(char *out, size_t cap, const char *key, size_t key_len);
/* The client's check of the server's answer to a request sent with key.
 * Returns the length of the response head (> 0) for a valid 101: the bytes
 * after it are already frames (spec/linksocks.md §2.4). TB_EAGAIN: the head
 * is incomplete. TB_EDENIED: another status (*status); for a 3xx,
 * *location spans the Location field (len 0 when absent). TB_EPROTO: a
 * malformed head, or a 101 that does not complete the handshake (Upgrade,
 * Connection, Accept, an extension or subprotocol we did not offer).
 * TB_ERANGE: the head is too large. */
int tb_ws_response_check(const uint8_t *p, size_t n, const char *key, int *status, tb_http_span_t *location);

/* ---- the reassembling parser (sans-IO) ---- */

/* Callbacks get one complete message (opcode 1 or 2, fragments joined) or
 * one control frame (opcode 8, 9, 10; a close payload already checked:
 * empty, or a valid code and a reason). data is valid during the call only.
 * Returning false stops tb_ws_parser_feed() right after this frame. */
typedef struct tb_ws_parser_cb {
	bool (*message)(void *ctx, unsigned opcode, const uint8_t *data, size_t len);
	bool (*control)(void *ctx, unsigned opcode, const uint8_t *data, size_t len);
} tb_ws_parser_cb_t;

typedef struct tb_ws_parser {
	const tb_ws_parser_cb_t *cb;
	void *ctx;
	size_t max_message;
	tb_ws_frame_t f;    /* the frame being read */
	uint64_t left;	    /* its payload bytes still to come */
	tb_buf_t msg;	    /* fragments of the message being reassembled */
	bool server;	    /* frames must be masked (§5.1) */
	bool in_frame;	    /* f is valid, its payload is being read */
	uint8_t msg_opcode; /* opcode of the message in progress, 0 for none */
	uint8_t hdr_len, ctl_len, mask_off;
	uint8_t hdr[TB_WS_HEADER_MAX]; /* a header split across reads */
	uint8_t ctl[TB_WS_CONTROL_MAX];
} tb_ws_parser_t;

/* server: expect masked frames (a server's parser), else unmasked ones.
 * max_message 0 means TB_WS_MAX_MESSAGE. */
void tb_ws_parser_init(tb_ws_parser_t *ps, bool server, size_t max_message, const tb_ws_parser_cb_t *cb,
		       void *ctx);
/* Releases the reassembly memory; not from inside the parser's callbacks. */
void tb_ws_parser_free(tb_ws_parser_t *ps);
/* Reads n bytes; *used says how many were consumed (fewer than n only when
 * a callback returned false). Returns 0, or the error that fails the
 * connection: TB_EPROTO (close 1002: bad frame, wrong masking, broken
 * fragmentation, bad close payload), TB_ERANGE (1009: message over the
 * limit, checked before anything is stored), TB_ENOMEM (1011). After an
 * error the parser must not be fed again. */
int tb_ws_parser_feed(tb_ws_parser_t *ps, const uint8_t *p, size_t n, size_t *used);
/* The close code for an error of tb_ws_parser_feed(). */
uint16_t tb_ws_close_code(int err);

/* ---- the endpoint ---- */

typedef struct tb_ws tb_ws_t;

/* on_open: the client's handshake completed (never called for a server).
 * on_message: one complete message, opcode 1 or 2 (text is not checked for
 * UTF-8: the reference ignores the opcode, spec/linksocks.md §2.4); data is
 * valid during the call only. on_pong: a pong, solicited or not (pings are
 * answered automatically). on_drain: the lower stream drained after a send
 * returned TB_ENOBUFS. on_close: the endpoint is finished and its lower
 * stream closed; code is the peer's close code (1005: none) after a close
 * handshake (err 0), the code we sent on a protocol failure (err TB_EPROTO
 * 1002, TB_ERANGE 1009), or 1006 when the connection ended without one
 * (err from the lower stream, TB_ECONNRESET for an EOF, TB_ETIMEDOUT for an
 * unanswered close, TB_EDENIED / TB_EPROTO for a refused client handshake;
 * 0 after tb_ws_abort()). The owner then calls tb_ws_free(). Every callback
 * may call tb_ws_free(). */
typedef struct tb_ws_handler {
	void (*on_open)(void *ctx, tb_ws_t *ws);
	void (*on_message)(void *ctx, tb_ws_t *ws, unsigned opcode, const uint8_t *data, size_t len);
	void (*on_pong)(void *ctx, tb_ws_t *ws, const uint8_t *data, size_t len);
	void (*on_drain)(void *ctx, tb_ws_t *ws);
	void (*on_close)(void *ctx, tb_ws_t *ws, int code, int err);
} tb_ws_handler_t;

typedef struct tb_ws_opts {
	size_t max_message;	   /* 0: TB_WS_MAX_MESSAGE */
	size_t max_frame;	   /* payload per frame sent; 0: a message is one frame */
	uint32_t close_timeout_ms; /* 0: TB_WS_CLOSE_TIMEOUT_MS */
} tb_ws_opts_t;

/* Both constructors take ownership of lower on success (it is closed by
 * tb_ws_free) and leave it to the caller on failure. opts may be NULL.
 * The client writes the upgrade request at once; its handshake timeout is
 * the caller's (tb_ws_free() cancels). The server answers the request whose
 * key tb_ws_upgrade_check() returned with the 101 and takes rest, the bytes
 * that followed the request head, as the first frames. */
int tb_ws_client_new(tb_loop_t *loop, tb_stream_t *lower, const tb_ws_request_t *req,
		     const tb_ws_opts_t *opts, const tb_ws_handler_t *h, void *ctx, tb_ws_t **out);
int tb_ws_server_new(tb_loop_t *loop, tb_stream_t *lower, const char *key, size_t key_len,
		     const uint8_t *rest, size_t rest_len, const tb_ws_opts_t *opts, const tb_ws_handler_t *h,
		     void *ctx, tb_ws_t **out);

/* Sends one message (opcode TB_WS_OP_BINARY or TB_WS_OP_TEXT); a client
 * masks every frame with a fresh random key. Returns 0, TB_ENOBUFS (taken,
 * but the lower stream is over its high-water mark: pause the source until
 * on_drain), TB_EPIPE when not open, or another error from the lower stream.
 * send2 sends hdr followed by data as one message, so callers need not copy. */
int tb_ws_send(tb_ws_t *ws, unsigned opcode, const void *data, size_t len);
int tb_ws_send2(tb_ws_t *ws, unsigned opcode, const void *hdr, size_t hlen, const void *data, size_t len);
/* Control frames, payload up to 125 bytes (TB_EINVAL above). A pong may be
 * unsolicited: spec/linksocks.md §2.5 keeps a provider attached with them. */
int tb_ws_ping(tb_ws_t *ws, const void *data, size_t len);
int tb_ws_pong(tb_ws_t *ws, const void *data, size_t len);
/* Starts the close handshake: sends a Close with code (0: an empty body)
 * and reason (may be NULL, at most 123 bytes), then waits for the peer's
 * Close up to the close timeout; on_close reports the end. Messages that
 * arrive meanwhile are dropped. TB_EINVAL for a code that may not be sent. */
int tb_ws_close(tb_ws_t *ws, uint16_t code, const char *reason);
/* Ends without a Close frame (a LinkSocks auth failure, spec/linksocks.md
 * §2.3): what is queued is still sent, then the lower stream is closed and
 * on_close(1006, 0) reports the end. */
void tb_ws_abort(tb_ws_t *ws);
/* Releases the endpoint and closes the lower stream at once, dropping what
 * is queued; no callback runs after it. Legal inside any callback. */
void tb_ws_free(tb_ws_t *ws);

/* Stop and restart message delivery; pausing stops reading the lower
 * stream, so the peer's TCP window closes (backpressure for a tunnel). */
void tb_ws_pause(tb_ws_t *ws);
void tb_ws_resume(tb_ws_t *ws);
/* Bytes queued in the lower stream. */
size_t tb_ws_queued(const tb_ws_t *ws);
/* After a client handshake refused with TB_EDENIED: the HTTP status and,
 * for a redirect, the Location (NUL-terminated, NULL when absent), both
 * valid until tb_ws_free(). */
int tb_ws_http_status(const tb_ws_t *ws);
const char *tb_ws_location(const tb_ws_t *ws);

#endif
