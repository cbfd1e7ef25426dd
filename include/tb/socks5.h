/* socks5.h: SOCKS5 (RFC 1928) with username/password (RFC 1929).
 *
 * Two halves in one module. The sans-IO codec parses and builds every
 * message of both sides over byte buffers: the listener uses the server
 * half, tunnel modules that dial a SOCKS5 proxy use the client half, and
 * the unit tests and the fuzzer call both. Parsers are incremental: they
 * return the bytes consumed (> 0), TB_EAGAIN when the message is not
 * complete yet, or a negative error: TB_EPROTO (bad version or field),
 * TB_ERANGE (a length out of bounds), TB_ENOTSUP (unknown command) or
 * TB_EAFNOSUPPORT (unknown address type). Builders return the bytes
 * written or TB_ERANGE when the output does not fit or a length is invalid.
 *
 * tb_socks5_serve() is the listener (gateway.c calls it for `socks5` and
 * for `mixed` after sniffing the first byte). */
#ifndef TB_SOCKS5_H
#define TB_SOCKS5_H

#include "tb/addr.h"

#define TB_SOCKS5_VER 5
#define TB_SOCKS5_AUTH_VER 1 /* RFC 1929 §2 */

enum {
	TB_SOCKS5_M_NOAUTH = 0x00,
	TB_SOCKS5_M_USERPASS = 0x02,
	TB_SOCKS5_M_NONE = 0xff, /* no acceptable methods */
};

enum {
	TB_SOCKS5_CMD_CONNECT = 1,
	TB_SOCKS5_CMD_BIND = 2,
	TB_SOCKS5_CMD_UDP = 3,
};

enum {
	TB_SOCKS5_ATYP_IPV4 = 1,
	TB_SOCKS5_ATYP_DOMAIN = 3,
	TB_SOCKS5_ATYP_IPV6 = 4,
};

/* REP codes, RFC 1928 §6. */
enum {
	TB_SOCKS5_REP_OK = 0x00,
	TB_SOCKS5_REP_FAILURE = 0x01,
	TB_SOCKS5_REP_NOT_ALLOWED = 0x02,
	TB_SOCKS5_REP_NET_UNREACH = 0x03,
	TB_SOCKS5_REP_HOST_UNREACH = 0x04,
	TB_SOCKS5_REP_REFUSED = 0x05,
	TB_SOCKS5_REP_TTL_EXPIRED = 0x06,
	TB_SOCKS5_REP_CMD_UNSUPPORTED = 0x07,
	TB_SOCKS5_REP_ATYP_UNSUPPORTED = 0x08,
};

/* Largest messages: ATYP + 1 + 255-byte name + port after the fixed part. */
#define TB_SOCKS5_ADDR_MAX (1 + 1 + TB_HOST_MAX + 2)
#define TB_SOCKS5_REQUEST_MAX (3 + TB_SOCKS5_ADDR_MAX) /* also a reply */
#define TB_SOCKS5_UDP_HDR_MAX (3 + TB_SOCKS5_ADDR_MAX)
#define TB_SOCKS5_GREETING_MAX (2 + 255)
#define TB_SOCKS5_USERPASS_MAX (1 + 1 + 255 + 1 + 255)

typedef struct tb_socks5_userpass {
	const uint8_t *user, *pass; /* point into the parsed input */
	size_t ulen, plen;	    /* 1..255 each */
} tb_socks5_userpass_t;

typedef struct tb_socks5_request {
	uint8_t cmd;  /* set as soon as it is read, even on error */
	uint8_t atyp; /* likewise */
	tb_target_t dst;
} tb_socks5_request_t;

/* ---- address field (ATYP, DST.ADDR, DST.PORT), RFC 1928 §4/§5 ---- */
int tb_socks5_addr_parse(const uint8_t *p, size_t n, tb_target_t *t);
/* A name target is written as ATYP 3, an IP target as ATYP 1 or 4. */
int tb_socks5_addr_build(uint8_t *out, size_t cap, const tb_target_t *t);

/* ---- server side ---- */
/* VER, NMETHODS (1..255), METHODS; *methods points into p. */
int tb_socks5_greeting_parse(const uint8_t *p, size_t n, const uint8_t **methods, size_t *nmethods);
/* 0x02 when need_auth and offered, 0x00 when !need_auth and offered, else 0xff. */
uint8_t tb_socks5_method_select(const uint8_t *methods, size_t nmethods, bool need_auth);
int tb_socks5_method_build(uint8_t *out, size_t cap, uint8_t method);
int tb_socks5_userpass_parse(const uint8_t *p, size_t n, tb_socks5_userpass_t *up);
/* status 0 is success, anything else a failure (RFC 1929 §2). */
int tb_socks5_userpass_reply_build(uint8_t *out, size_t cap, uint8_t status);
int tb_socks5_request_parse(const uint8_t *p, size_t n, tb_socks5_request_t *r);
/* bnd NULL (or unset family) writes 0.0.0.0:0. */
int tb_socks5_reply_build(uint8_t *out, size_t cap, uint8_t rep, const tb_addr_t *bnd);
/* TB_E* -> REP: ECONNREFUSED 5, ENETUNREACH 3, EHOSTUNREACH 4, ETIMEDOUT 6,
 * EDENIED 2, ENOTSUP 7, EAFNOSUPPORT 8, 0 -> 0, anything else 1. */
uint8_t tb_socks5_rep_from_err(int err);

/* ---- UDP request header, RFC 1928 §7 ---- */
int tb_socks5_udp_parse(const uint8_t *p, size_t n, uint8_t *frag, tb_target_t *t);
/* FRAG 0. */
int tb_socks5_udp_build(uint8_t *out, size_t cap, const tb_target_t *t);

/* ---- client side (for connectors that dial a SOCKS5 proxy) ---- */
int tb_socks5_client_greeting_build(uint8_t *out, size_t cap, bool userpass);
int tb_socks5_client_method_parse(const uint8_t *p, size_t n, uint8_t *method);
int tb_socks5_client_userpass_build(uint8_t *out, size_t cap, const char *user, size_t ulen, const char *pass,
				    size_t plen);
int tb_socks5_client_userpass_reply_parse(const uint8_t *p, size_t n, uint8_t *status);
int tb_socks5_client_request_build(uint8_t *out, size_t cap, uint8_t cmd, const tb_target_t *t);
/* VER, REP, RSV, BND; any REP is accepted here (see tb_socks5_err_from_rep). */
int tb_socks5_client_reply_parse(const uint8_t *p, size_t n, uint8_t *rep, tb_target_t *bnd);
/* REP -> TB_E*: the inverse of tb_socks5_rep_from_err; 0 for success. */
int tb_socks5_err_from_rep(uint8_t rep);

/* ---- the listener ---- */
struct tb_gw_listener;
struct tb_stream;
/* Takes ownership of s. initial/n are bytes a sniffer already read (may be
 * NULL/0); they are processed as if just received. */
void tb_socks5_serve(struct tb_gw_listener *l, struct tb_stream *s, const tb_addr_t *peer,
		     const uint8_t *initial, size_t n);

#endif
