/* conf.h: a strict TOML subset, parsed into a tree that remembers positions.
 *
 * Supported: comments, bare and quoted keys, dotted keys, [tables],
 * [[arrays of tables]] (including [[a.b]] nested under the last [[a]]),
 * inline tables { k = v }, basic "strings" with escapes (\b \t \n \f \r \"
 * \\ \uXXXX \UXXXXXXXX), literal 'strings', multi-line """ and ''' strings,
 * decimal/hex/octal/binary integers with _ separators, booleans, and arrays
 * (mixed types allowed, trailing comma and newlines allowed). Not supported,
 * and rejected with a clear message: floats and dates. Redefinitions of a key
 * or table are errors, as in TOML 1.0.
 *
 * Every value records the line and column where it was defined, so a
 * consumer can report "file:line:col: key: message". Columns count bytes
 * from 1. The key in an error is the full path of what was being defined or
 * looked up, written like "listener[0].options.sni". */
#ifndef TB_CONF_H
#define TB_CONF_H

#include "tb/base.h"

/* Bounds for untrusted or mistyped files: a larger text, or values nested
 * deeper than this below the root, is rejected with a message. */
#define TB_CONF_MAX_SIZE (1u << 20)
#define TB_CONF_MAX_DEPTH 32

typedef enum tb_conf_type {
	TB_CONF_TABLE,
	TB_CONF_ARRAY,
	TB_CONF_STRING,
	TB_CONF_INT,
	TB_CONF_BOOL,
} tb_conf_type_t;

typedef struct tb_conf_val tb_conf_val_t;
struct tb_conf_val {
	tb_conf_type_t type;
	int line, col;        /* 1-based position of the key (or of the value in an array) */
	const char *key;      /* the key in its parent table; NULL for array elements */
	tb_conf_val_t *next;  /* next sibling in the parent table or array */
	bool used;            /* set by the lookups below, for unknown-key warnings */
	union {
		struct {
			tb_conf_val_t *first, *last;
			size_t n;
		} list;                   /* TABLE and ARRAY */
		struct {
			char *s;          /* NUL-terminated; no embedded NUL (\u0000 is rejected) */
			size_t len;
		} str;
		int64_t i;
		bool b;
	} u;
};

typedef struct tb_conf {
	tb_conf_val_t *root; /* a TABLE */
	char *file;          /* the name used in messages */
} tb_conf_t;

typedef struct tb_conf_err {
	int line, col;
	char key[64];  /* the key being defined or looked up, may be empty */
	char msg[160];
} tb_conf_err_t;

/* Parses text (len bytes, need not be NUL-terminated). On error returns
 * TB_EINVAL (TB_ENOMEM when memory ran out) and fills err; *out is untouched.
 * err may be NULL. The whole tree lives in one arena freed by tb_conf_free. */
int tb_conf_parse(const char *text, size_t len, const char *file, tb_conf_t **out, tb_conf_err_t *err);
/* Reads and parses a file; TB_ENOENT when it cannot be read (err->msg says
 * why), TB_EINVAL when it is larger than TB_CONF_MAX_SIZE or malformed. */
int tb_conf_load(const char *path, tb_conf_t **out, tb_conf_err_t *err);
void tb_conf_free(tb_conf_t *c);
/* "file:line:col: key: msg" into buf; "key: " is left out when empty and
 * "line:col:" when line is 0. file NULL means c->file (or "<config>"). */
const char *tb_conf_err_str(const tb_conf_t *c, const char *file, const tb_conf_err_t *err, char *buf, size_t len);

/* Lookups in a TABLE; they mark the value used. NULL when absent. Values
 * must come from tb_conf_parse (errors walk up to the root for the path). */
tb_conf_val_t *tb_conf_get(const tb_conf_val_t *table, const char *key);
/* Typed lookups: 0 and *out set when present with the right type, TB_ENOENT
 * when absent (*out untouched, so preset the default), TB_EINVAL when the
 * type is wrong (err filled with the value's position and key). */
int tb_conf_get_str(const tb_conf_val_t *t, const char *key, const char **out, tb_conf_err_t *err);
int tb_conf_get_int(const tb_conf_val_t *t, const char *key, int64_t *out, tb_conf_err_t *err);
int tb_conf_get_bool(const tb_conf_val_t *t, const char *key, bool *out, tb_conf_err_t *err);
/* Like tb_conf_get_str but absence is an error (err says "missing key"),
 * reported at the table's position. */
int tb_conf_need_str(const tb_conf_val_t *t, const char *key, const char **out, tb_conf_err_t *err);
/* Fill err for a value the consumer rejects (position of v, its key). */
void tb_conf_set_err(tb_conf_err_t *err, const tb_conf_val_t *v, const char *fmt, ...) TB_PRINTF(3, 4);
/* Call fn for every value under t (recursively) that was never looked up.
 * An unused table is reported once, not key by key; the elements of an
 * array are walked (they have no key to look up). path is like
 * "listener[0].proto", with keys that are not bare quoted. */
void tb_conf_foreach_unused(const tb_conf_val_t *t, void (*fn)(void *arg, const tb_conf_val_t *v, const char *path), void *arg);

#endif
