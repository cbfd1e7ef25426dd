/* conf.c: the strict TOML subset of include/tb/conf.h.
 *
 * One pass over the bytes, no separate tokenizer: the grammar is small and
 * reading bytes directly keeps every reported position exact. UTF-8 is
 * checked where non-ASCII may appear (strings, comments); anywhere else a
 * non-ASCII byte is a syntax error anyway, so the first error in the file is
 * the one reported.
 *
 * The tree lives in an arena owned by the tb_conf_t: an error path only has
 * to drop the arena, so it cannot leak. While parsing, a hash of (parent, key)
 * finds duplicates in O(1), keeping a table with many keys linear. Nesting is
 * bounded by TB_CONF_MAX_DEPTH, which also bounds the recursion here and in
 * every walker of the tree. */
#include "tb/conf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CTX_MAX 256	   /* longest key path kept for messages */
#define ARENA_BLK_MIN 2048 /* a small config fits in one block */
#define ARENA_BLK_MAX (64u << 10)
/* The tree costs up to ~27 bytes per input byte ("[],[],..."), so a 1 MiB
 * file of nothing but tiny values can hit this; real configs are far below. */
#define ARENA_MAX (16u << 20)
#define HT_MIN 64

/* How a node came to be; TOML's redefinition rules depend on it. */
enum kind {
	K_VALUE,    /* string, integer or boolean */
	K_ARRAY,    /* an array value [1, 2]: [[x]] cannot append to it */
	K_AOT,	    /* an array of tables, grown by [[x]] */
	K_IMPLICIT, /* a table made as the prefix of a [a.b] header: [a] may still define it */
	K_HEADER,   /* a table defined by [x], an element of [[x]], or the root */
	K_DOTTED,   /* a table made by a dotted key a.b = 1: only dotted keys may extend it */
	K_INLINE,   /* an inline table: sealed once written */
};

struct node {
	tb_conf_val_t v; /* first, so a tb_conf_val_t * converts back */
	struct node *parent;
	uint32_t idx; /* position in the parent, for "[i]" in paths */
	uint8_t kind, depth;
};

struct blk {
	struct blk *next;
	size_t used, cap;
	max_align_t data[];
};

struct conf {
	tb_conf_t pub;
	struct blk *blk;
	size_t total, next_cap;
};

struct sbuf {
	char *p;
	size_t len, cap;
};

struct pos {
	int line, col;
};

struct keypart {
	size_t off; /* into parser.keys */
	struct pos at;
};

struct parser {
	const char *s;
	size_t len, off, lstart; /* lstart: offset of the current line */
	int line, rc;
	struct conf *c;
	struct node *root, *cur; /* cur: the table of the last [header] */
	struct node **ht;
	size_t htcap, htn;
	struct sbuf str;  /* the last decoded string */
	struct sbuf keys; /* the parts of the last key, NUL-separated */
	struct keypart part[TB_CONF_MAX_DEPTH];
	int nparts;
	tb_conf_err_t *err;
	size_t ctxlen, sectlen;
	char ctx[CTX_MAX];  /* path of what is being defined, for err->key */
	char sect[CTX_MAX]; /* path of cur */
};

/* ---- arena ---- */

static void *arena_alloc(struct conf *c, size_t n)
{
	struct blk *b = c->blk;
	bool big = n > ARENA_BLK_MAX / 4;
	size_t cap;

	n = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
	if (b && b->cap - b->used >= n) {
		b->used += n;
		return (char *)b->data + b->used - n;
	}
	cap = big ? n : TB_MAX(c->next_cap, n);
	if (c->total + cap > ARENA_MAX)
		return NULL;
	b = malloc(sizeof(*b) + cap);
	if (!b)
		return NULL;
	b->cap = cap;
	b->used = n;
	c->total += cap;
	if (big && c->blk) {
		/* A big string gets a block of its own, behind the current one,
		 * so the room left in the current block is not thrown away. */
		b->next = c->blk->next;
		c->blk->next = b;
	} else {
		b->next = c->blk;
		c->blk = b;
		if (c->next_cap < ARENA_BLK_MAX)
			c->next_cap *= 2;
	}
	return b->data;
}

static char *arena_strdup(struct conf *c, const char *s, size_t n)
{
	char *r = arena_alloc(c, n + 1);

	if (r) {
		memcpy(r, s, n);
		r[n] = '\0';
	}
	return r;
}

/* ---- paths ("listener[0].options.sni") for messages ---- */

static bool is_bare(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
	       c == '-';
}

static void put(char *buf, size_t cap, size_t *len, const char *s, size_t n)
{
	size_t room = cap - 1 - *len;

	if (n > room)
		n = room;
	memcpy(buf + *len, s, n);
	*len += n;
	buf[*len] = '\0';
}

static bool bare_key(const char *k)
{
	if (!*k)
		return false;
	for (; *k; k++)
		if (!is_bare((unsigned char)*k))
			return false;
	return true;
}

static void path_key(char *buf, size_t cap, size_t *len, const char *k)
{
	if (*len)
		put(buf, cap, len, ".", 1);
	if (bare_key(k)) {
		put(buf, cap, len, k, strlen(k));
		return;
	}
	put(buf, cap, len, "\"", 1);
	for (; *k && *len < cap - 1; k++) {
		unsigned char ch = (unsigned char)*k;
		char esc[8];

		if (ch == '"' || ch == '\\') {
			esc[0] = '\\';
			esc[1] = (char)ch;
			put(buf, cap, len, esc, 2);
		} else if (ch < 0x20 || ch == 0x7f) {
			snprintf(esc, sizeof(esc), "\\u%04X", ch);
			put(buf, cap, len, esc, 6);
		} else {
			put(buf, cap, len, k, 1);
		}
	}
	put(buf, cap, len, "\"", 1);
}

static void path_index(char *buf, size_t cap, size_t *len, size_t i)
{
	char tmp[24];
	int n = snprintf(tmp, sizeof(tmp), "[%zu]", i);

	put(buf, cap, len, tmp, (size_t)n);
}

static void node_path(const struct node *n, char *buf, size_t cap)
{
	const struct node *chain[TB_CONF_MAX_DEPTH + 1];
	size_t len = 0;
	int k = 0;

	buf[0] = '\0';
	for (; n && n->parent && k < (int)TB_ARRAY_SIZE(chain); n = n->parent)
		chain[k++] = n;
	while (k--) {
		if (chain[k]->v.key)
			path_key(buf, cap, &len, chain[k]->v.key);
		else
			path_index(buf, cap, &len, chain[k]->idx);
	}
}

static void copy_str(char *dst, size_t cap, const char *src)
{
	size_t len = 0;

	dst[0] = '\0';
	put(dst, cap, &len, src, strlen(src));
}

/* ---- errors ---- */

/* Position of byte off, which must be on the current line. */
static struct pos pos_of(const struct parser *p, size_t off)
{
	return (struct pos){p->line, (int)(off - p->lstart) + 1};
}

static struct pos here(const struct parser *p)
{
	return pos_of(p, p->off);
}

static int vfail_at(struct parser *p, struct pos at, const char *fmt, va_list ap)
{
	p->err->line = at.line;
	p->err->col = at.col;
	copy_str(p->err->key, sizeof(p->err->key), p->ctx);
	vsnprintf(p->err->msg, sizeof(p->err->msg), fmt, ap);
	return -1;
}

static int fail_at(struct parser *p, struct pos at, const char *fmt, ...) TB_PRINTF(3, 4);
static int fail_at(struct parser *p, struct pos at, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail_at(p, at, fmt, ap);
	va_end(ap);
	return -1;
}

/* An error at the cursor. */
static int fail(struct parser *p, const char *fmt, ...) TB_PRINTF(2, 3);
static int fail(struct parser *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail_at(p, here(p), fmt, ap);
	va_end(ap);
	return -1;
}

static int oom(struct parser *p)
{
	p->rc = TB_ENOMEM;
	return fail(p, "out of memory (the configuration is too large)");
}

/* ---- bytes ---- */

static int peek_at(const struct parser *p, size_t k)
{
	return p->off + k < p->len ? (unsigned char)p->s[p->off + k] : -1;
}

static int peek(const struct parser *p)
{
	return peek_at(p, 0);
}

static bool match(const struct parser *p, const char *word)
{
	size_t n = strlen(word);

	return p->len - p->off >= n && memcmp(p->s + p->off, word, n) == 0;
}

static bool is_ctrl(int c)
{
	return (c >= 0 && c < 0x20 && c != '\t') || c == 0x7f;
}

/* Length of the line break at the cursor: 1 for LF, 2 for CRLF, else 0. */
static size_t nl_len(const struct parser *p)
{
	int c = peek(p);

	if (c == '\n')
		return 1;
	return c == '\r' && peek_at(p, 1) == '\n' ? 2 : 0;
}

static void eat_nl(struct parser *p, size_t n)
{
	p->off += n;
	p->line++;
	p->lstart = p->off;
}

static void skip_ws(struct parser *p)
{
	while (peek(p) == ' ' || peek(p) == '\t')
		p->off++;
}

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 when invalid:
 * no overlong forms, no surrogates, nothing past U+10FFFF. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned lo = 0x80, hi = 0xBF;
	size_t need, i;

	if (s[0] < 0x80)
		return 1;
	if (s[0] < 0xC2 || s[0] > 0xF4)
		return 0;
	need = s[0] < 0xE0 ? 2 : s[0] < 0xF0 ? 3 : 4;
	if (s[0] == 0xE0)
		lo = 0xA0;
	else if (s[0] == 0xED)
		hi = 0x9F;
	else if (s[0] == 0xF0)
		lo = 0x90;
	else if (s[0] == 0xF4)
		hi = 0x8F;
	if (n < need || s[1] < lo || s[1] > hi)
		return 0;
	for (i = 2; i < need; i++)
		if (s[i] < 0x80 || s[i] > 0xBF)
			return 0;
	return need;
}

static size_t utf8_here(const struct parser *p)
{
	return utf8_len((const unsigned char *)p->s + p->off, p->len - p->off);
}

/* An error at an unexpected byte; says what is wrong with the byte itself
 * when that is the real problem. */
static int unexpected(struct parser *p, const char *what)
{
	int c = peek(p);

	if (c == '\r' && !nl_len(p))
		return fail(p, "bare carriage return (line breaks are LF or CRLF)");
	if (c >= 0x80 && !utf8_here(p))
		return fail(p, "invalid UTF-8");
	if (is_ctrl(c) && c != '\n' && c != '\r')
		return fail(p, "control character U+%04X is not allowed", c);
	return fail(p, "%s", what);
}

static int skip_comment(struct parser *p)
{
	/* Whatever key came before, an error in a comment is not about it. */
	p->ctxlen = 0;
	p->ctx[0] = '\0';
	p->off++;
	for (;;) {
		int c = peek(p);

		if (c < 0 || nl_len(p))
			return 0;
		if (c >= 0x80) {
			size_t n = utf8_here(p);

			if (!n)
				return fail(p, "invalid UTF-8");
			p->off += n;
			continue;
		}
		if (is_ctrl(c))
			return unexpected(p, "control character in comment");
		p->off++;
	}
}

/* ---- scratch buffers ---- */

static int sb_put(struct parser *p, struct sbuf *b, const char *s, size_t n)
{
	if (b->cap - b->len <= n) {
		size_t cap = b->cap ? b->cap : 64;
		char *np;

		while (cap - b->len <= n)
			cap *= 2;
		np = realloc(b->p, cap);
		if (!np)
			return oom(p);
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

static int sb_putc(struct parser *p, struct sbuf *b, char c)
{
	return sb_put(p, b, &c, 1);
}

static int sb_utf8(struct parser *p, struct sbuf *b, uint32_t cp)
{
	char u[4];

	if (cp < 0x80)
		return sb_putc(p, b, (char)cp);
	if (cp < 0x800) {
		u[0] = (char)(0xC0 | cp >> 6);
		u[1] = (char)(0x80 | (cp & 0x3F));
		return sb_put(p, b, u, 2);
	}
	if (cp < 0x10000) {
		u[0] = (char)(0xE0 | cp >> 12);
		u[1] = (char)(0x80 | (cp >> 6 & 0x3F));
		u[2] = (char)(0x80 | (cp & 0x3F));
		return sb_put(p, b, u, 3);
	}
	u[0] = (char)(0xF0 | cp >> 18);
	u[1] = (char)(0x80 | (cp >> 12 & 0x3F));
	u[2] = (char)(0x80 | (cp >> 6 & 0x3F));
	u[3] = (char)(0x80 | (cp & 0x3F));
	return sb_put(p, b, u, 4);
}

/* ---- the (parent, key) hash ---- */

static size_t hash_key(const struct node *parent, const char *key)
{
	uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)(uintptr_t)parent;

	for (; *key; key++) {
		h ^= (unsigned char)*key;
		h *= 0x100000001b3ull;
	}
	h ^= h >> 32;
	h *= 0x9e3779b97f4a7c15ull;
	return (size_t)(h ^ h >> 29);
}

static struct node *lookup(const struct parser *p, const struct node *parent, const char *key)
{
	size_t i = hash_key(parent, key) & (p->htcap - 1);
	struct node *n;

	while ((n = p->ht[i])) {
		if (n->parent == parent && strcmp(n->v.key, key) == 0)
			return n;
		i = (i + 1) & (p->htcap - 1);
	}
	return NULL;
}

static void ht_place(struct node **ht, size_t cap, struct node *n)
{
	size_t i = hash_key(n->parent, n->v.key) & (cap - 1);

	while (ht[i])
		i = (i + 1) & (cap - 1);
	ht[i] = n;
}

static int ht_insert(struct parser *p, struct node *n)
{
	if ((p->htn + 1) * 2 > p->htcap) {
		size_t cap = p->htcap * 2, i;
		struct node **ht = calloc(cap, sizeof(*ht));

		if (!ht)
			return oom(p);
		for (i = 0; i < p->htcap; i++)
			if (p->ht[i])
				ht_place(ht, cap, p->ht[i]);
		free(p->ht);
		p->ht = ht;
		p->htcap = cap;
	}
	ht_place(p->ht, p->htcap, n);
	p->htn++;
	return 0;
}

/* ---- nodes ---- */

static tb_conf_type_t kind_type(enum kind k)
{
	if (k == K_VALUE)
		return TB_CONF_STRING; /* set properly once the value is read */
	return k == K_ARRAY || k == K_AOT ? TB_CONF_ARRAY : TB_CONF_TABLE;
}

/* A new node at the end of parent; key NULL for an array element. */
static struct node *new_node(struct parser *p, struct node *parent, const char *key, struct pos at,
			     enum kind kind)
{
	struct node *n;

	if (parent->depth >= TB_CONF_MAX_DEPTH) {
		fail_at(p, at, "nesting is too deep (more than %d levels)", TB_CONF_MAX_DEPTH);
		return NULL;
	}
	n = arena_alloc(p->c, sizeof(*n));
	if (!n || (key && !(key = arena_strdup(p->c, key, strlen(key))))) {
		oom(p);
		return NULL;
	}
	memset(n, 0, sizeof(*n));
	n->v.type = kind_type(kind);
	n->v.line = at.line;
	n->v.col = at.col;
	n->v.key = key;
	n->parent = parent;
	n->kind = (uint8_t)kind;
	n->depth = (uint8_t)(parent->depth + 1);
	n->idx = (uint32_t)parent->v.u.list.n;
	if (key && ht_insert(p, n) < 0)
		return NULL;
	if (parent->v.u.list.last)
		parent->v.u.list.last->next = &n->v;
	else
		parent->v.u.list.first = &n->v;
	parent->v.u.list.last = &n->v;
	parent->v.u.list.n++;
	return n;
}

static const char *kind_name(const struct node *n)
{
	switch (n->kind) {
	case K_VALUE:
		return "a value";
	case K_ARRAY:
		return "an array";
	case K_AOT:
		return "an array of tables";
	case K_DOTTED:
		return "a table (by dotted keys)";
	case K_INLINE:
		return "an inline table";
	default:
		return "a table";
	}
}

/* A key as written in a path, so control characters in a quoted key cannot
 * break a log line. */
static const char *key_label(const struct node *n, char *buf, size_t cap)
{
	size_t len = 0;

	buf[0] = '\0';
	path_key(buf, cap, &len, n->v.key);
	return buf;
}

static int conflict(struct parser *p, struct pos at, const struct node *n)
{
	char k[48];

	return fail_at(p, at, "'%s' is already defined as %s at %d:%d", key_label(n, k, sizeof(k)),
		       kind_name(n), n->v.line, n->v.col);
}

/* ---- strings ---- */

static int close_quote(struct parser *p, struct sbuf *b, int q, bool ml)
{
	char qq[2] = {(char)q, (char)q};
	size_t n = 0;

	if (!ml) {
		p->off++;
		return 1;
	}
	while (peek_at(p, n) == q)
		n++;
	if (n < 3) {
		p->off += n;
		return sb_put(p, b, qq, n);
	}
	/* Up to two quotes may sit right before the closing three. */
	n = TB_MIN(n - 3, 2);
	p->off += n + 3;
	return sb_put(p, b, qq, n) < 0 ? -1 : 1;
}

static int unicode_escape(struct parser *p, struct sbuf *b, int ndig, struct pos at)
{
	uint32_t cp = 0;
	int i;

	for (i = 0; i < ndig; i++) {
		int h = tb_hexval(peek_at(p, 2 + (size_t)i));

		if (h < 0)
			return fail_at(p, at, "\\%c escape needs %d hex digits", ndig == 4 ? 'u' : 'U', ndig);
		cp = cp << 4 | (uint32_t)h;
	}
	if (cp == 0)
		return fail_at(p, at, "\\u0000 is not allowed (strings cannot hold NUL)");
	if (cp >= 0xD800 && cp <= 0xDFFF)
		return fail_at(p, at, "escape is a surrogate (U+%04X), not a character", cp);
	if (cp > 0x10FFFF)
		return fail_at(p, at, "escape is beyond U+10FFFF");
	p->off += 2 + (size_t)ndig;
	return sb_utf8(p, b, cp);
}

/* A backslash at the end of a line in a """ string eats the line break and
 * all whitespace and line breaks after it. */
static int line_continuation(struct parser *p, struct pos at)
{
	size_t n;

	p->off++;
	skip_ws(p);
	if (!nl_len(p)) {
		if (peek(p) == '\r')
			return unexpected(p, "bare carriage return");
		return fail_at(p, at, "invalid escape: only whitespace may follow a line-ending backslash");
	}
	do {
		eat_nl(p, nl_len(p));
		skip_ws(p);
	} while ((n = nl_len(p)));
	return 0;
}

static int escape(struct parser *p, struct sbuf *b, bool ml, struct pos open)
{
	static const char from[] = "btnfr\"\\", to[] = "\b\t\n\f\r\"\\";
	struct pos at = here(p);
	int c = peek_at(p, 1);
	const char *e = c > 0 ? strchr(from, c) : NULL;

	if (e) {
		p->off += 2;
		return sb_putc(p, b, to[e - from]);
	}
	if (c == 'u' || c == 'U')
		return unicode_escape(p, b, c == 'u' ? 4 : 8, at);
	if (c < 0)
		return fail_at(p, open, "unterminated string");
	if (ml && (c == ' ' || c == '\t' || c == '\n' || c == '\r'))
		return line_continuation(p, at);
	if (c > 0x20 && c < 0x7f)
		return fail_at(p, at, "invalid escape sequence '\\%c'", c);
	return fail_at(p, at, "invalid escape sequence");
}

/* One step through a string body: 1 when the string closed, 0 to go on. */
static int string_step(struct parser *p, struct sbuf *b, int q, bool ml, struct pos open)
{
	int c = peek(p);
	size_t n;

	if (c < 0)
		return fail_at(p, open, "unterminated string");
	if (c == q)
		return close_quote(p, b, q, ml);
	if (c == '\\' && q == '"')
		return escape(p, b, ml, open);
	n = nl_len(p);
	if (n) {
		if (!ml)
			return fail_at(p, open, "unterminated string");
		eat_nl(p, n);
		return sb_putc(p, b, '\n');
	}
	if (c >= 0x80) {
		n = utf8_here(p);
		if (!n)
			return fail(p, "invalid UTF-8");
		p->off += n;
		return sb_put(p, b, p->s + p->off - n, n);
	}
	if (is_ctrl(c))
		return unexpected(p, "control character in string");
	p->off++;
	return sb_putc(p, b, (char)c);
}

/* Any of the four string forms, decoded into b. */
static int parse_string(struct parser *p, struct sbuf *b, bool allow_ml)
{
	int q = peek(p), r;
	bool ml = peek_at(p, 1) == q && peek_at(p, 2) == q;
	struct pos open = here(p);

	if (ml && !allow_ml)
		return fail(p, "a multi-line string cannot be a key");
	b->len = 0;
	if (sb_put(p, b, "", 0) < 0) /* NUL-terminated even when empty */
		return -1;
	p->off += ml ? 3 : 1;
	if (ml && nl_len(p))
		eat_nl(p, nl_len(p)); /* a newline right after the opening quotes is trimmed */
	while ((r = string_step(p, b, q, ml, open)) == 0)
		;
	return r < 0 ? -1 : 0;
}

/* ---- keys ---- */

static void ctx_trunc(struct parser *p, size_t len)
{
	p->ctxlen = len;
	p->ctx[len] = '\0';
}

static const char *part_str(const struct parser *p, int i)
{
	return p->keys.p + p->part[i].off;
}

static int key_part(struct parser *p)
{
	struct keypart *kp = &p->part[p->nparts];
	int c = peek(p);

	if (p->nparts == TB_CONF_MAX_DEPTH)
		return fail(p, "key has too many parts (more than %d)", TB_CONF_MAX_DEPTH);
	kp->at = here(p);
	kp->off = p->keys.len;
	if (c == '"' || c == '\'') {
		if (parse_string(p, &p->str, false) < 0 || sb_put(p, &p->keys, p->str.p, p->str.len + 1) < 0)
			return -1;
	} else if (is_bare(c)) {
		size_t start = p->off;

		while (is_bare(peek(p)))
			p->off++;
		if (peek(p) >= 0x80 && utf8_here(p))
			return fail(p, "bare keys are ASCII only (A-Z a-z 0-9 _ -): quote this key");
		if (sb_put(p, &p->keys, p->s + start, p->off - start) < 0 || sb_putc(p, &p->keys, '\0') < 0)
			return -1;
	} else if (c == '=') {
		return fail(p, "missing key before '='");
	} else if (c >= 0x80 && utf8_here(p)) {
		return fail(p, "bare keys are ASCII only (A-Z a-z 0-9 _ -): quote this key");
	} else {
		return unexpected(p, "expected a key (bare keys are A-Z a-z 0-9 _ -)");
	}
	path_key(p->ctx, sizeof(p->ctx), &p->ctxlen, part_str(p, p->nparts));
	p->nparts++;
	return 0;
}

/* key ( . key )*, with whitespace around the dots; the parts land in p->part. */
static int parse_key(struct parser *p)
{
	p->nparts = 0;
	p->keys.len = 0;
	for (;;) {
		skip_ws(p);
		if (key_part(p) < 0)
			return -1;
		skip_ws(p);
		if (peek(p) != '.')
			return 0;
		p->off++;
	}
}

/* Walks a.b.c = from t: a and b may only be tables made by dotted keys. */
static struct node *define_key(struct parser *p, struct node *t)
{
	int i, last = p->nparts - 1;
	struct node *n;

	for (i = 0; i < last; i++) {
		n = lookup(p, t, part_str(p, i));
		if (n && n->kind != K_DOTTED) {
			conflict(p, p->part[i].at, n);
			return NULL;
		}
		if (!n)
			n = new_node(p, t, part_str(p, i), p->part[i].at, K_DOTTED);
		if (!n)
			return NULL;
		t = n;
	}
	n = lookup(p, t, part_str(p, last));
	if (n) {
		fail_at(p, p->part[last].at, "duplicate key, first defined at %d:%d", n->v.line, n->v.col);
		return NULL;
	}
	return new_node(p, t, part_str(p, last), p->part[last].at, K_VALUE);
}

/* ---- values ---- */

static int parse_value(struct parser *p, struct node *v);
static int parse_keyval(struct parser *p, struct node *t);

static int string_value(struct parser *p, struct node *v)
{
	if (parse_string(p, &p->str, true) < 0)
		return -1;
	v->v.type = TB_CONF_STRING;
	v->v.u.str.len = p->str.len;
	v->v.u.str.s = arena_strdup(p->c, p->str.p, p->str.len);
	return v->v.u.str.s ? 0 : oom(p);
}

static int bool_value(struct parser *p, struct node *v)
{
	bool b = match(p, "true");

	if (!b && !match(p, "false"))
		return fail(p, "invalid value (strings must be quoted)");
	v->v.type = TB_CONF_BOOL;
	v->v.u.b = b;
	p->off += b ? 4 : 5;
	return 0;
}

static int digit_val(int c, int base)
{
	int d = tb_hexval(c);

	return d >= 0 && d < base ? d : -1;
}

/* Digits [from, to) in base, with '_' only between digits; int64 range. */
static int accumulate(struct parser *p, struct node *v, size_t from, size_t to, int base, bool neg,
		      struct pos start)
{
	uint64_t acc = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	bool prev_digit = false;
	size_t i;

	for (i = from; i < to; i++) {
		int d = digit_val((unsigned char)p->s[i], base);

		if (p->s[i] == '_') {
			if (!prev_digit || i + 1 >= to || digit_val((unsigned char)p->s[i + 1], base) < 0)
				return fail_at(p, pos_of(p, i), "'_' must sit between two digits");
			prev_digit = false;
			continue;
		}
		if (d < 0)
			return fail_at(p, pos_of(p, i), "invalid digit '%c' in a base %d integer", p->s[i],
				       base);
		if (acc > (limit - (uint64_t)d) / (uint64_t)base)
			return fail_at(p, start, "integer does not fit in 64 bits");
		acc = acc * (uint64_t)base + (uint64_t)d;
		prev_digit = true;
	}
	p->off = to;
	v->v.type = TB_CONF_INT;
	v->v.u.i = neg ? (int64_t)(0 - acc) : (int64_t)acc;
	return 0;
}

static int based_int(struct parser *p, struct node *v, struct pos start)
{
	int c = peek_at(p, 1);
	int base = c == 'x' ? 16 : c == 'o' ? 8 : 2;
	size_t end;

	p->off += 2;
	end = p->off;
	while (end < p->len && (is_bare((unsigned char)p->s[end]) && p->s[end] != '-'))
		end++;
	if (end == p->off)
		return fail(p, "expected digits after '0%c'", c);
	return accumulate(p, v, p->off, end, base, false, start);
}

static int parse_number(struct parser *p, struct node *v)
{
	struct pos start = here(p);
	int sign = peek(p) == '+' || peek(p) == '-' ? peek(p) : 0;
	size_t end;
	int c;

	if (sign)
		p->off++;
	if (match(p, "inf") || match(p, "nan"))
		return fail_at(p, start, "floats are not supported");
	c = peek(p);
	if (c < '0' || c > '9')
		return fail_at(p, start, "invalid value");
	if (c == '0' && (peek_at(p, 1) == 'x' || peek_at(p, 1) == 'o' || peek_at(p, 1) == 'b')) {
		if (sign)
			return fail_at(p, start, "hex, octal and binary integers cannot have a sign");
		return based_int(p, v, start);
	}
	for (end = p->off; end < p->len && ((p->s[end] >= '0' && p->s[end] <= '9') || p->s[end] == '_');)
		end++;
	c = end < p->len ? (unsigned char)p->s[end] : -1;
	if (c == '.' || c == 'e' || c == 'E')
		return fail_at(p, start, "floats are not supported");
	if (!sign && (c == '-' || c == ':'))
		return fail_at(p, start, "dates and times are not supported");
	if (peek(p) == '0' && end - p->off > 1)
		return fail(p, "leading zeros are not allowed");
	return accumulate(p, v, p->off, end, 10, sign == '-', start);
}

/* Whitespace, comments and line breaks between array items. */
static int array_gap(struct parser *p, struct pos open)
{
	size_t n;

	for (;;) {
		skip_ws(p);
		if (peek(p) == '#' && skip_comment(p) < 0)
			return -1;
		n = nl_len(p);
		if (!n)
			break;
		eat_nl(p, n);
	}
	if (peek(p) < 0)
		return fail_at(p, open, "unterminated array");
	return 0;
}

static int parse_array(struct parser *p, struct node *a)
{
	struct pos open = here(p);
	size_t save = p->ctxlen;
	struct node *e;

	a->kind = K_ARRAY;
	a->v.type = TB_CONF_ARRAY;
	p->off++;
	if (array_gap(p, open) < 0)
		return -1;
	while (peek(p) != ']') {
		e = new_node(p, a, NULL, here(p), K_VALUE);
		if (!e)
			return -1;
		path_index(p->ctx, sizeof(p->ctx), &p->ctxlen, e->idx);
		if (parse_value(p, e) < 0)
			return -1;
		ctx_trunc(p, save);
		if (array_gap(p, open) < 0)
			return -1;
		if (peek(p) == ',') {
			p->off++;
			if (array_gap(p, open) < 0)
				return -1;
		} else if (peek(p) != ']') {
			return unexpected(p, "expected ',' or ']' in array");
		}
	}
	p->off++;
	return 0;
}

/* TOML 1.0 inline tables live on one line. */
static int inline_check(struct parser *p, struct pos open)
{
	if (peek(p) < 0)
		return fail_at(p, open, "unterminated inline table");
	if (nl_len(p))
		return fail(p, "an inline table must be on a single line");
	return 0;
}

static int parse_inline(struct parser *p, struct node *t)
{
	struct pos open = here(p);
	size_t save = p->ctxlen;

	t->kind = K_INLINE;
	t->v.type = TB_CONF_TABLE;
	p->off++;
	skip_ws(p);
	if (peek(p) == '}') {
		p->off++;
		return 0;
	}
	for (;;) {
		if (inline_check(p, open) < 0 || parse_keyval(p, t) < 0)
			return -1;
		ctx_trunc(p, save);
		skip_ws(p);
		if (peek(p) == '}') {
			p->off++;
			return 0;
		}
		if (inline_check(p, open) < 0)
			return -1;
		if (peek(p) != ',')
			return unexpected(p, "expected ',' or '}' in inline table");
		p->off++;
		skip_ws(p);
		if (peek(p) == '}')
			return fail(p, "trailing comma is not allowed in an inline table");
	}
}

static bool value_missing(const struct parser *p)
{
	int c = peek(p);

	return c < 0 || c == '#' || c == ',' || c == ']' || c == '}' || nl_len(p);
}

static int parse_value(struct parser *p, struct node *v)
{
	int c = peek(p);

	if (c == '"' || c == '\'')
		return string_value(p, v);
	if (c == '[')
		return parse_array(p, v);
	if (c == '{')
		return parse_inline(p, v);
	if (c == '+' || c == '-' || (c >= '0' && c <= '9'))
		return parse_number(p, v);
	if (c == 't' || c == 'f')
		return bool_value(p, v);
	if (match(p, "inf") || match(p, "nan"))
		return fail(p, "floats are not supported");
	if (value_missing(p))
		return fail(p, "missing value");
	if (is_bare(c))
		return fail(p, "invalid value (strings must be quoted)");
	return unexpected(p, "invalid value");
}

static int parse_keyval(struct parser *p, struct node *t)
{
	struct node *v;

	if (parse_key(p) < 0)
		return -1;
	if (peek(p) != '=')
		return unexpected(p, "expected '=' after the key");
	p->off++;
	skip_ws(p);
	v = define_key(p, t);
	if (!v)
		return -1;
	return parse_value(p, v);
}

/* ---- lines and headers ---- */

/* After the content of a line: whitespace, maybe a comment, then a line
 * break or the end of the text. */
static int end_line(struct parser *p, const char *what)
{
	size_t n;

	skip_ws(p);
	if (peek(p) == '#' && skip_comment(p) < 0)
		return -1;
	if (peek(p) < 0)
		return 0;
	n = nl_len(p);
	if (!n)
		return unexpected(p, what);
	eat_nl(p, n);
	return 0;
}

/* A [a.b] prefix: may pass through any table but an inline one, and into
 * the last element of an array of tables. */
static struct node *header_step(struct parser *p, struct node *t, int i)
{
	struct node *n = lookup(p, t, part_str(p, i));

	if (!n)
		return new_node(p, t, part_str(p, i), p->part[i].at, K_IMPLICIT);
	if (n->kind == K_AOT)
		return (struct node *)n->v.u.list.last;
	if (n->kind == K_IMPLICIT || n->kind == K_HEADER || n->kind == K_DOTTED)
		return n;
	conflict(p, p->part[i].at, n);
	return NULL;
}

static struct node *define_table(struct parser *p, struct node *t)
{
	int last = p->nparts - 1;
	struct node *n = lookup(p, t, part_str(p, last));

	if (!n)
		return new_node(p, t, part_str(p, last), p->part[last].at, K_HEADER);
	if (n->kind != K_IMPLICIT) {
		conflict(p, p->part[last].at, n);
		return NULL;
	}
	/* [a.b] made a; [a] now defines it, and its position moves here. */
	n->kind = K_HEADER;
	n->v.line = p->part[last].at.line;
	n->v.col = p->part[last].at.col;
	return n;
}

static struct node *append_table(struct parser *p, struct node *t)
{
	int last = p->nparts - 1;
	struct pos at = p->part[last].at;
	struct node *n = lookup(p, t, part_str(p, last));

	if (n && n->kind == K_ARRAY) {
		char k[48];

		fail_at(p, at, "cannot append to the static array '%s' defined at %d:%d",
			key_label(n, k, sizeof(k)), n->v.line, n->v.col);
		return NULL;
	}
	if (n && n->kind != K_AOT) {
		conflict(p, at, n);
		return NULL;
	}
	if (!n)
		n = new_node(p, t, part_str(p, last), at, K_AOT);
	if (!n)
		return NULL;
	return new_node(p, n, NULL, at, K_HEADER);
}

static int parse_header(struct parser *p)
{
	struct node *t = p->root;
	bool aot;
	int i;

	p->off++;
	aot = peek(p) == '[';
	if (aot)
		p->off++;
	if (parse_key(p) < 0)
		return -1;
	if (peek(p) != ']')
		return unexpected(p, aot ? "expected ']]' after the table name" :
					   "expected ']' after the table name");
	p->off++;
	if (aot && peek(p) != ']')
		return unexpected(p, "expected ']]' after the table name");
	if (aot)
		p->off++;
	for (i = 0; i < p->nparts - 1 && t; i++)
		t = header_step(p, t, i);
	if (t)
		t = aot ? append_table(p, t) : define_table(p, t);
	if (!t)
		return -1;
	p->cur = t;
	node_path(t, p->sect, sizeof(p->sect));
	p->sectlen = strlen(p->sect);
	copy_str(p->ctx, sizeof(p->ctx), p->sect);
	return end_line(p, "unexpected text after the table header");
}

static int parse_line(struct parser *p)
{
	int c;

	ctx_trunc(p, 0);
	skip_ws(p);
	c = peek(p);
	if (c == '[')
		return parse_header(p);
	if (c < 0 || c == '#' || nl_len(p))
		return end_line(p, "unexpected text");
	memcpy(p->ctx, p->sect, p->sectlen + 1);
	p->ctxlen = p->sectlen;
	if (parse_keyval(p, p->cur) < 0)
		return -1;
	return end_line(p, "unexpected text after the value");
}

static int parse_doc(struct parser *p)
{
	/* A UTF-8 byte order mark is skipped; columns still count its bytes. */
	if (p->len >= 3 && memcmp(p->s, "\xEF\xBB\xBF", 3) == 0)
		p->off = 3;
	while (p->off < p->len)
		if (parse_line(p) < 0)
			return -1;
	return 0;
}

/* ---- public API ---- */

static struct conf *conf_new(void)
{
	struct conf *c = calloc(1, sizeof(*c));

	if (c)
		c->next_cap = ARENA_BLK_MIN;
	return c;
}

void tb_conf_free(tb_conf_t *pub)
{
	struct conf *c;
	struct blk *b, *next;

	if (!pub)
		return;
	c = tb_container_of(pub, struct conf, pub);
	for (b = c->blk; b; b = next) {
		next = b->next;
		free(b);
	}
	free(c);
}

static int set_err(tb_conf_err_t *err, int rc, const char *fmt, ...) TB_PRINTF(3, 4);
static int set_err(tb_conf_err_t *err, int rc, const char *fmt, ...)
{
	va_list ap;

	memset(err, 0, sizeof(*err));
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return rc;
}

static int parser_init(struct parser *p, struct conf *c, const char *text, size_t len, tb_conf_err_t *err)
{
	memset(p, 0, sizeof(*p));
	p->s = text;
	p->len = len;
	p->line = 1;
	p->rc = TB_EINVAL;
	p->c = c;
	p->err = err;
	p->htcap = HT_MIN;
	p->ht = calloc(p->htcap, sizeof(*p->ht));
	p->root = arena_alloc(c, sizeof(*p->root));
	if (!p->ht || !p->root)
		return oom(p);
	memset(p->root, 0, sizeof(*p->root));
	p->root->v.type = TB_CONF_TABLE;
	p->root->v.line = 1;
	p->root->v.col = 1;
	p->root->kind = K_HEADER;
	p->cur = p->root;
	c->pub.root = &p->root->v;
	return 0;
}

int tb_conf_parse(const char *text, size_t len, const char *file, tb_conf_t **out, tb_conf_err_t *err)
{
	tb_conf_err_t dummy;
	struct parser p;
	struct conf *c;
	int rc;

	if (!err)
		err = &dummy;
	memset(err, 0, sizeof(*err));
	if (len > TB_CONF_MAX_SIZE)
		return set_err(err, TB_EINVAL, "configuration is larger than %u bytes", TB_CONF_MAX_SIZE);
	c = conf_new();
	if (!c)
		return set_err(err, TB_ENOMEM, "out of memory");
	rc = parser_init(&p, c, text, len, err);
	if (rc == 0 && file && !(c->pub.file = arena_strdup(c, file, strlen(file))))
		rc = oom(&p);
	if (rc == 0)
		rc = parse_doc(&p);
	free(p.ht);
	free(p.str.p);
	free(p.keys.p);
	if (rc < 0) {
		tb_conf_free(&c->pub);
		return p.rc;
	}
	*out = &c->pub;
	return 0;
}

/* Reads to the end (no st_size trust: it may be a pipe), at most one byte
 * past the limit so an oversized file is told apart from a full one. */
static int read_all(int fd, char **out, size_t *outlen, tb_conf_err_t *err)
{
	size_t len = 0, cap = 0;
	char *buf = NULL, *nb;
	ssize_t r;

	for (;;) {
		if (len == cap) {
			cap = cap ? cap * 2 : 4096;
			nb = realloc(buf, cap);
			if (!nb) {
				free(buf);
				return set_err(err, TB_ENOMEM, "out of memory");
			}
			buf = nb;
		}
		r = read(fd, buf + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			free(buf);
			return set_err(err, TB_ENOENT, "cannot read: %s", strerror(errno));
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len > TB_CONF_MAX_SIZE) {
			free(buf);
			return set_err(err, TB_EINVAL, "file is larger than %u bytes", TB_CONF_MAX_SIZE);
		}
	}
	*out = buf;
	*outlen = len;
	return 0;
}

int tb_conf_load(const char *path, tb_conf_t **out, tb_conf_err_t *err)
{
	tb_conf_err_t dummy;
	size_t len = 0;
	char *buf = NULL;
	int fd, rc;

	if (!err)
		err = &dummy;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return set_err(err, TB_ENOENT, "cannot open: %s", strerror(errno));
	rc = read_all(fd, &buf, &len, err);
	close(fd);
	if (rc < 0)
		return rc;
	rc = tb_conf_parse(buf, len, path, out, err);
	free(buf);
	return rc;
}

const char *tb_conf_err_str(const tb_conf_t *c, const char *file, const tb_conf_err_t *err, char *buf,
			    size_t len)
{
	const char *key = err->key[0] ? err->key : NULL;

	if (!len)
		return buf;
	if (!file)
		file = c && c->file ? c->file : "<config>";
	if (err->line > 0)
		snprintf(buf, len, "%s:%d:%d: %s%s%s", file, err->line, err->col, key ? key : "",
			 key ? ": " : "", err->msg);
	else
		snprintf(buf, len, "%s: %s%s%s", file, key ? key : "", key ? ": " : "", err->msg);
	return buf;
}

/* ---- lookups ---- */

tb_conf_val_t *tb_conf_get(const tb_conf_val_t *table, const char *key)
{
	tb_conf_val_t *v;

	if (!table || table->type != TB_CONF_TABLE)
		return NULL;
	for (v = table->u.list.first; v; v = v->next) {
		if (strcmp(v->key, key) == 0) {
			v->used = true;
			return v;
		}
	}
	return NULL;
}

void tb_conf_set_err(tb_conf_err_t *err, const tb_conf_val_t *v, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return;
	memset(err, 0, sizeof(*err));
	if (v) {
		err->line = v->line;
		err->col = v->col;
		node_path((const struct node *)v, err->key, sizeof(err->key));
	}
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
}

static const char *type_name(tb_conf_type_t t)
{
	switch (t) {
	case TB_CONF_TABLE:
		return "a table";
	case TB_CONF_ARRAY:
		return "an array";
	case TB_CONF_STRING:
		return "a string";
	case TB_CONF_INT:
		return "an integer";
	default:
		return "a boolean";
	}
}

/* The value of key when it has type want: 0, TB_ENOENT or TB_EINVAL. */
static int get_typed(const tb_conf_val_t *t, const char *key, tb_conf_type_t want, tb_conf_val_t **out,
		     tb_conf_err_t *err)
{
	tb_conf_val_t *v = tb_conf_get(t, key);

	if (!v)
		return TB_ENOENT;
	if (v->type != want) {
		tb_conf_set_err(err, v, "expected %s, found %s", type_name(want), type_name(v->type));
		return TB_EINVAL;
	}
	*out = v;
	return 0;
}

int tb_conf_get_str(const tb_conf_val_t *t, const char *key, const char **out, tb_conf_err_t *err)
{
	tb_conf_val_t *v;
	int rc = get_typed(t, key, TB_CONF_STRING, &v, err);

	if (rc == 0)
		*out = v->u.str.s;
	return rc;
}

int tb_conf_get_int(const tb_conf_val_t *t, const char *key, int64_t *out, tb_conf_err_t *err)
{
	tb_conf_val_t *v;
	int rc = get_typed(t, key, TB_CONF_INT, &v, err);

	if (rc == 0)
		*out = v->u.i;
	return rc;
}

int tb_conf_get_bool(const tb_conf_val_t *t, const char *key, bool *out, tb_conf_err_t *err)
{
	tb_conf_val_t *v;
	int rc = get_typed(t, key, TB_CONF_BOOL, &v, err);

	if (rc == 0)
		*out = v->u.b;
	return rc;
}

int tb_conf_need_str(const tb_conf_val_t *t, const char *key, const char **out, tb_conf_err_t *err)
{
	size_t len;
	int rc = tb_conf_get_str(t, key, out, err);

	if (rc != TB_ENOENT)
		return rc;
	tb_conf_set_err(err, t, "missing key");
	if (err) {
		len = strlen(err->key);
		path_key(err->key, sizeof(err->key), &len, key);
	}
	return TB_EINVAL;
}

static void walk_unused(const tb_conf_val_t *t, char *path, size_t cap, size_t len,
			void (*fn)(void *arg, const tb_conf_val_t *v, const char *path), void *arg)
{
	const tb_conf_val_t *v;
	size_t i = 0, l2;

	for (v = t->u.list.first; v; v = v->next, i++) {
		l2 = len;
		if (t->type == TB_CONF_TABLE)
			path_key(path, cap, &l2, v->key);
		else
			path_index(path, cap, &l2, i);
		if (t->type == TB_CONF_TABLE && !v->used)
			fn(arg, v, path);
		else if (v->type == TB_CONF_TABLE || v->type == TB_CONF_ARRAY)
			walk_unused(v, path, cap, l2, fn, arg);
		path[len] = '\0';
	}
}

void tb_conf_foreach_unused(const tb_conf_val_t *t,
			    void (*fn)(void *arg, const tb_conf_val_t *v, const char *path), void *arg)
{
	char path[CTX_MAX];

	if (!t || (t->type != TB_CONF_TABLE && t->type != TB_CONF_ARRAY))
		return;
	node_path((const struct node *)t, path, sizeof(path));
	walk_unused(t, path, sizeof(path), strlen(path), fn, arg);
}
