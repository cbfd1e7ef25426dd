/* linksocks_msg.h: the LinkSocks wire messages and the pure helpers of the
 * protocol (spec/linksocks.md §2.3, §3), sans IO.
 *
 * One WebSocket message carries one protocol message. tb_ls_msg_decode()
 * fills a tagged struct whose strings and payload point into the input
 * (zero copy: keep the input alive while using them); it checks minimum
 * lengths only and ignores trailing bytes, as the reference does (§3.1).
 * Errors: TB_EPROTO (bad version, short fixed part, bad field), TB_ERANGE
 * (a length byte runs past the end: drop the message, not the connection,
 * §10.14), TB_ENOTSUP (a type above 0x0A: m->type is set and the caller
 * ignores the message, §3.1).
 *
 * Encoders write version 01 and only types 01..0A. Short strings are capped
 * at 255 bytes on a UTF-8 boundary (§3.1, §11): the reference's `len mod
 * 256` corruption is never reproduced. Data can be sent without copying the
 * payload: tb_ls_data_header() writes the 24-byte fixed part and
 * tb_ls_udp_trailer() the two UDP address pairs (§3.4).
 *
 * Also here: UUIDs, the URL-query auth (§2.3 Style A), address text as the
 * reference writes it, gzip both ways (§3.5, zlib) and the Log/Partners
 * JSON. Without zlib (ENABLE_ZLIB 0) the gzip functions return TB_ENOTSUP
 * and a compressed Data is an error the caller turns into a channel drop;
 * without mbedTLS (ENABLE_MBEDTLS 0) tb_ls_token_hash() and the query
 * builder return TB_ENOTSUP. */
#ifndef TB_LINKSOCKS_MSG_H
#define TB_LINKSOCKS_MSG_H

#include "tb/addr.h"
#include "tb/buf.h"

#define TB_LS_VERSION 0x01
#define TB_LS_STR_MAX 255 /* short string cap (§3.1) */
#define TB_LS_UUID_LEN 16
#define TB_LS_UUID_STRLEN 37		  /* canonical text plus NUL */
#define TB_LS_DATA_HDR_LEN 24		  /* fixed part of Data (§3.3) */
#define TB_LS_MSG_MAX (32u << 20)	  /* WS read limit of the reference (§2.4) */
#define TB_LS_GZIP_THRESHOLD (512u << 10) /* reference send threshold (§3.5) */
#define TB_LS_INFLATE_CAP (32u << 20)	  /* default inflate cap per message */
#define TB_LS_TOKEN_HEX_LEN 64		  /* SHA-256 in lowercase hex (§2.3) */
#define TB_LS_IP_STRLEN 46		  /* longest IP text plus NUL */

/* Reply texts of the reference server (§2.3, §4.4, §4.5). */
#define TB_LS_ERR_INVALID_TOKEN "invalid token"
#define TB_LS_ERR_INVALID_TOKEN_FORMAT "invalid token format"
#define TB_LS_ERR_INVALID_AUTH "invalid auth message"
#define TB_LS_ERR_NO_PROVIDER "no available reverse clients"

enum tb_ls_type {
	TB_LS_AUTH = 0x01,
	TB_LS_AUTH_RESPONSE = 0x02,
	TB_LS_CONNECT = 0x03,
	TB_LS_DATA = 0x04,
	TB_LS_CONNECT_RESPONSE = 0x05,
	TB_LS_DISCONNECT = 0x06,
	TB_LS_CONNECTOR = 0x07,
	TB_LS_CONNECTOR_RESPONSE = 0x08,
	TB_LS_LOG = 0x09,
	TB_LS_PARTNERS = 0x0a,
	/* v1.8.1+ P2P signalling: decoded as TB_ENOTSUP, never sent. */
	TB_LS_DIRECT_CAPABILITIES = 0x0b,
	TB_LS_DIRECT_RENDEZVOUS = 0x0c,
	TB_LS_DIRECT_STATUS = 0x0d,
};

enum {
	TB_LS_PROTO_TCP = 1,
	TB_LS_PROTO_UDP = 2
};
enum {
	TB_LS_OP_ADD = 1,
	TB_LS_OP_REMOVE = 2
};
enum {
	TB_LS_COMP_NONE = 0,
	TB_LS_COMP_GZIP = 1
};

/* Bytes that are text on the wire, not NUL-terminated. p may be NULL when
 * len is 0. */
typedef struct tb_ls_str {
	const char *p;
	size_t len;
} tb_ls_str_t;

/* One UDP address pair (§3.4); empty is host.len 0, port 0. */
typedef struct tb_ls_hostport {
	tb_ls_str_t host;
	uint16_t port;
} tb_ls_hostport_t;

typedef struct tb_ls_msg {
	uint8_t version; /* as received; encoders write TB_LS_VERSION */
	uint8_t type;	 /* enum tb_ls_type */
	union {
		struct {
			tb_ls_str_t token; /* raw, not hashed */
			bool reverse;
			uint8_t instance[TB_LS_UUID_LEN];
		} auth;
		struct {
			bool success;
			tb_ls_str_t error; /* failure only; may be empty */
		} auth_resp;
		struct {
			uint8_t proto;
			uint8_t channel[TB_LS_UUID_LEN];
			tb_ls_str_t addr; /* TCP only */
			uint16_t port;	  /* TCP only */
		} connect;
		struct {
			uint8_t proto;
			uint8_t channel[TB_LS_UUID_LEN];
			uint8_t compression; /* TB_LS_COMP_*; other values read as none */
			const uint8_t *payload;
			size_t len;		 /* on the wire (compressed when gzip) */
			tb_ls_hostport_t addr;	 /* UDP pair 1: reply source */
			tb_ls_hostport_t target; /* UDP pair 2: destination */
		} data;
		struct {
			bool success;
			uint8_t channel[TB_LS_UUID_LEN];
			tb_ls_str_t error; /* failure only */
		} connect_resp;
		struct {
			uint8_t channel[TB_LS_UUID_LEN];
			tb_ls_str_t error; /* empty: bare 18-byte form */
		} disconnect;
		struct {
			uint8_t request[TB_LS_UUID_LEN];
			tb_ls_str_t token; /* empty with add: server generates */
			uint8_t op;	   /* TB_LS_OP_* */
		} connector;
		struct {
			uint8_t request[TB_LS_UUID_LEN];
			bool success;
			tb_ls_str_t token; /* success; empty: none returned */
			tb_ls_str_t error; /* failure */
		} connector_resp;
		struct {
			tb_ls_str_t json;
		} log, partners;
	};
} tb_ls_msg_t;

const char *tb_ls_type_name(uint8_t type);

int tb_ls_msg_decode(const uint8_t *p, size_t n, tb_ls_msg_t *m);
/* Encoded size, 0 when the message cannot be encoded (type above 0x0A, bad
 * protocol or op, a length over 32 bits). */
size_t tb_ls_msg_size(const tb_ls_msg_t *m);
/* Bytes written, TB_EINVAL (as size 0) or TB_ERANGE (cap too small). */
int tb_ls_msg_encode(const tb_ls_msg_t *m, uint8_t *out, size_t cap);

/* The fixed part of Data (§3.3); len counts the payload on the wire. */
int tb_ls_data_header(uint8_t out[TB_LS_DATA_HDR_LEN], uint8_t proto, const uint8_t channel[TB_LS_UUID_LEN],
		      uint8_t compression, size_t len);
/* Both UDP pairs (§3.4), written after the payload; NULL means empty. */
size_t tb_ls_udp_trailer_size(const tb_ls_hostport_t *addr, const tb_ls_hostport_t *target);
int tb_ls_udp_trailer(uint8_t *out, size_t cap, const tb_ls_hostport_t *addr, const tb_ls_hostport_t *target);

/* ---- UUIDs (§3.1: raw 16 bytes, no version check on receive) ---- */
int tb_ls_uuid_random(uint8_t id[TB_LS_UUID_LEN]); /* version 4 */
void tb_ls_uuid_format(const uint8_t id[TB_LS_UUID_LEN], char out[TB_LS_UUID_STRLEN]);
/* Canonical 8-4-4-4-12 text, either case; TB_EINVAL otherwise. */
int tb_ls_uuid_parse(const char *s, size_t n, uint8_t id[TB_LS_UUID_LEN]);

/* ---- URL-query auth (§2.3 Style A) ---- */
/* Lowercase hex SHA-256 of the raw token, NUL-terminated. */
int tb_ls_token_hash(const char *token, size_t len, char out[TB_LS_TOKEN_HEX_LEN + 1]);
/* The query the reference client sends on /socket: the URL's own raw query
 * (the text after '?', may be empty) with instance, reverse and token set,
 * re-encoded as Go's url.Values.Encode (keys sorted, values escaped).
 * Returns the length (out is NUL-terminated), TB_ERANGE when it does not
 * fit, TB_ENOMEM. */
int tb_ls_url_query_build(char *out, size_t cap, const char *query, size_t qlen, const char *token,
			  size_t toklen, bool reverse, const uint8_t instance[TB_LS_UUID_LEN]);

typedef struct tb_ls_url_auth {
	bool has_token;				 /* non-empty "token": URL auth, else binary Auth */
	char token_hex[TB_LS_TOKEN_HEX_LEN + 1]; /* when has_token and 0 */
	int8_t reverse;				 /* -1 absent or empty, 1 "true" or "1", else 0 */
} tb_ls_url_auth_t;

/* Server side: the raw query of the upgrade request (after '?'), parsed as
 * Go's URL.Query() (first value of a key wins). 0, or when has_token:
 * TB_EPROTO if the token is not 64 bytes (reply TB_LS_ERR_INVALID_TOKEN_FORMAT),
 * TB_EDENIED if not lowercase hex (no token can match: TB_LS_ERR_INVALID_TOKEN). */
int tb_ls_url_query_parse(const char *q, size_t n, tb_ls_url_auth_t *a);

/* ---- addresses for Connect and the UDP pairs ---- */
/* IP text as the reference prints it (Go net.IP): dotted IPv4, IPv4-mapped
 * IPv6 as dotted IPv4, other IPv6 per RFC 5952 without brackets. Returns
 * the length; cap >= TB_LS_IP_STRLEN. */
size_t tb_ls_ip_text(const tb_addr_t *a, char *buf, size_t cap);
/* Connect address / UDP pair 2 text of a target: an IP as above, a domain
 * as given (unresolved). cap >= TB_HOST_MAX + 1. */
size_t tb_ls_target_text(const tb_target_t *t, char *buf, size_t cap);
/* Wire text and port to a target; TB_EINVAL when empty or with a NUL. */
int tb_ls_target_parse(tb_target_t *t, tb_ls_str_t host, uint16_t port);

/* ---- gzip (§3.5) ---- */
typedef struct tb_ls_inflater tb_ls_inflater_t;
typedef struct tb_ls_deflater tb_ls_deflater_t;
/* Receives inflated bytes; a negative return aborts with that code. */
typedef int (*tb_ls_sink_fn)(void *ctx, const uint8_t *p, size_t n);

/* cap: most bytes one payload may inflate to (0: TB_LS_INFLATE_CAP).
 * The object holds zlib's state (~45 KB): create it when a compressed
 * Data arrives, reuse it, free it when idle. NULL on ENOMEM or without zlib. */
tb_ls_inflater_t *tb_ls_inflater_new(size_t cap);
void tb_ls_inflater_free(tb_ls_inflater_t *z);
/* Pull style, for a sink that can pause: begin with the whole compressed
 * payload (kept alive by the caller), then read until 0. Concatenated
 * members are read like Go's reader; garbage after a member, a truncated
 * member or output past the cap is an error (TB_EPROTO, TB_ERANGE). */
int tb_ls_inflate_begin(tb_ls_inflater_t *z, const uint8_t *in, size_t n);
int tb_ls_inflate_read(tb_ls_inflater_t *z, uint8_t *out, size_t cap); /* > 0, 0 done, < 0 */
/* Push style: the whole payload, delivered to sink in chunks. */
int tb_ls_inflate(tb_ls_inflater_t *z, const uint8_t *in, size_t n, tb_ls_sink_fn sink, void *ctx);

/* One gzip member per message, header as Go writes it (mtime 0, OS ff).
 * level: 1..9, or -1 for zlib's default (Go's default too). ~270 KB of
 * zlib state: only for senders configured to compress. */
tb_ls_deflater_t *tb_ls_deflater_new(int level);
void tb_ls_deflater_free(tb_ls_deflater_t *d);
/* Appends the compressed form of in to out; finish ends the member (the
 * next call starts a new one). */
int tb_ls_deflate(tb_ls_deflater_t *d, const uint8_t *in, size_t n, bool finish, tb_buf_t *out);

/* ---- Log (0x09) and Partners (0x0A) JSON (§3.3) ---- */
/* {"level":"..","msg":".."} escaped as Go's encoding/json (<, >, & as
 * \u003c.., invalid UTF-8 as \ufffd). Returns the length (out is
 * NUL-terminated) or TB_ERANGE. */
int tb_ls_log_json(char *out, size_t cap, const char *level, const char *msg, size_t msglen);
int tb_ls_partners_json(char *out, size_t cap, long count);
/* Lenient: unknown keys ignored, whitespace tolerated, \uXXXX (surrogate
 * pairs too) to UTF-8. Strings are NUL-terminated and truncated on a UTF-8
 * boundary to fit their cap; a missing key leaves "" or 0. TB_EPROTO when
 * the text is not a JSON object, TB_ERANGE when count overflows a long. */
int tb_ls_log_parse(const char *json, size_t n, char *level, size_t lcap, char *msg, size_t mcap);
int tb_ls_partners_parse(const char *json, size_t n, long *count);
/* Log level text to TB_LOG_* (trace and debug are debug; unknown is info). */
int tb_ls_log_level(const char *level);

#endif
