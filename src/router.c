/* router.c: [[router]] and [[data]] (spec/rogv2.md §6).
 *
 * Each [[data]] set is compiled once at load into lookup tables: IP ranges
 * (CIDR and bare-IP lines, one sorted and merged array per family, binary
 * searched), names (sorted and binary searched: exact hosts for `cidr` and
 * `regex` sets, lower-cased suffixes for `domain` sets) and regexes, tried in
 * order. A rule points at its set, or at nothing when the set is missing or
 * unusable, and then never matches (§6). Matching allocates nothing. */
#include "tb/router.h"

#include <errno.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tb/log.h"

/* A data file larger than this is refused rather than eating a router's RAM. */
#define DATA_FILE_MAX (64u << 20)
#define RE_FLAGS (REG_EXTENDED | REG_NOSUB)

enum data_fmt {
	FMT_CIDR,
	FMT_REGEX,
	FMT_DOMAIN,
	FMT_LAN
};

typedef struct range4 {
	uint32_t lo, hi;
} range4_t;

typedef struct range6 {
	uint8_t lo[16], hi[16];
} range6_t;

typedef struct dataset {
	char *name;
	enum data_fmt fmt;
	bool usable; /* false: a rule naming it never matches */
	range4_t *r4;
	size_t n4, cap4;
	range6_t *r6;
	size_t n6, cap6;
	const char **names; /* point into text */
	size_t nnames, capnames;
	regex_t **re;
	size_t nre, capre;
	char *text; /* the lines, NUL-split and trimmed in place */
} dataset_t;

typedef struct exclude {
	bool is_re;
	unsigned bits; /* prefix: a bare IP is a full-length prefix */
	tb_addr_t addr;
	regex_t re;
} exclude_t;

typedef struct rule {
	const dataset_t *data;	 /* NULL: missing or unusable set */
	tb_conf_val_t select_at; /* own copy, valid after the conf tree is freed */
	exclude_t *ex;
	size_t nex;
	bool ex_re; /* some exclude is a regex: candidates need text */
	bool domain_to_ip;
	char *dns;
} rule_t;

struct tb_router {
	char *name;
	tb_conf_val_t def_at;
	rule_t *rules;
	size_t nrules;
};

struct tb_routing {
	dataset_t *data;
	size_t ndata;
	tb_router_t *routers;
	size_t nrouters;
};

/* What a rule is tested against: the host as requested, or a resolved IP. */
typedef struct cand {
	const char *text;
	const tb_addr_t *ip; /* NULL for a name */
} cand_t;

typedef struct load {
	const tb_conf_t *conf;
	tb_conf_err_t *err;
	tb_routing_t *r;
} load_t;

static const char *conf_file(const load_t *ld)
{
	return ld->conf->file ? ld->conf->file : "config";
}

/* Load warnings are one-shot and each about a different line, so they skip
 * log.h's per-site repeat suppression (a NULL site): two unknown keys must
 * give two lines. */
static void conf_warn(const load_t *ld, const tb_conf_val_t *at, const char *fmt, ...) TB_PRINTF(3, 4);
static void conf_warn(const load_t *ld, const tb_conf_val_t *at, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	tb_log_msg(TB_LOG_WARN, NULL, "%s:%d:%d: %s", conf_file(ld), at->line, at->col, msg);
}

/* ---- small helpers ---- */

/* Returns arr, or a larger copy, with room for element n; NULL when out of memory. */
static void *grow(void *arr, size_t *cap, size_t n, size_t size)
{
	size_t ncap;
	void *p;

	if (n < *cap)
		return arr;
	ncap = *cap ? *cap * 2 : 16;
	if (ncap > SIZE_MAX / size)
		return NULL;
	p = realloc(arr, ncap * size);
	if (p)
		*cap = ncap;
	return p;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static char *trim(char *s)
{
	char *end;

	while (is_blank(*s))
		s++;
	end = s + strlen(s);
	while (end > s && is_blank(end[-1]))
		end--;
	*end = '\0';
	return s;
}

/* Gives back the slack of a grown array once it is complete. */
static void *shrink(void *arr, size_t n, size_t size)
{
	void *p;

	if (!n) {
		free(arr);
		return NULL;
	}
	p = realloc(arr, n * size);
	return p ? p : arr;
}

static void ascii_lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

static bool parse_bits(const char *s, unsigned max, unsigned *bits)
{
	unsigned v = 0;
	size_t n = 0;

	for (; s[n]; n++) {
		if (s[n] < '0' || s[n] > '9' || n >= 3)
			return false;
		v = v * 10 + (unsigned)(s[n] - '0');
	}
	if (n == 0 || v > max)
		return false;
	*bits = v;
	return true;
}

/* "ip/bits" or a bare "ip" (a full-length prefix). */
static bool parse_prefix(const char *s, tb_addr_t *a, unsigned *bits)
{
	const char *slash = strchr(s, '/');
	char ip[64];
	size_t n = slash ? (size_t)(slash - s) : strlen(s);

	if (n >= sizeof(ip))
		return false;
	memcpy(ip, s, n);
	ip[n] = '\0';
	if (tb_addr_parse_ip(ip, a) != 0)
		return false;
	if (!slash) {
		*bits = a->family == TB_AF_INET ? 32 : 128;
		return true;
	}
	return parse_bits(slash + 1, a->family == TB_AF_INET ? 32 : 128, bits);
}

static void mark_used(tb_conf_val_t *v)
{
	v->used = true;
	if (v->type != TB_CONF_TABLE && v->type != TB_CONF_ARRAY)
		return;
	for (tb_conf_val_t *c = v->u.list.first; c; c = c->next)
		mark_used(c);
}

/* tunnelbox warns about unknown keys where rog ignores them (§6). The
 * subtree is then marked used so a later sweep of the root does not warn
 * twice. */
static void warn_unknown(const load_t *ld, tb_conf_val_t *t, const char *what)
{
	for (tb_conf_val_t *v = t->u.list.first; v; v = v->next) {
		if (v->used)
			continue;
		conf_warn(ld, v, "%s: unknown key '%s' ignored", what, v->key ? v->key : "?");
		mark_used(v);
	}
}

/* The same report as tb_conf_need_str's: at the table, keyed by its path. */
static int missing_key(const load_t *ld, const tb_conf_val_t *t, const char *key, const char *hint)
{
	tb_conf_err_t *err = ld->err;
	size_t len;

	tb_conf_set_err(err, t, "missing key%s", hint);
	len = strlen(err->key);
	snprintf(err->key + len, sizeof(err->key) - len, "%s%s", len ? "." : "", key);
	return TB_EINVAL;
}

static int opt_str(const tb_conf_val_t *t, const char *key, const char **out, tb_conf_err_t *err)
{
	int rc = tb_conf_get_str(t, key, out, err);

	return rc == TB_ENOENT ? 0 : rc;
}

static int opt_bool(const tb_conf_val_t *t, const char *key, bool *out, tb_conf_err_t *err)
{
	int rc = tb_conf_get_bool(t, key, out, err);

	return rc == TB_ENOENT ? 0 : rc;
}

/* An array of tables ([[key]] or key = [{...}]); *out NULL when absent. */
static int get_tables(const load_t *ld, const tb_conf_val_t *parent, const char *key, tb_conf_val_t **out)
{
	tb_conf_val_t *v = tb_conf_get(parent, key);

	*out = NULL;
	if (!v)
		return 0;
	if (v->type != TB_CONF_ARRAY) {
		tb_conf_set_err(ld->err, v, "must be an array of tables ([[%s]])", key);
		return TB_EINVAL;
	}
	for (tb_conf_val_t *e = v->u.list.first; e; e = e->next) {
		if (e->type != TB_CONF_TABLE) {
			tb_conf_set_err(ld->err, e, "'%s' must hold tables only", key);
			return TB_EINVAL;
		}
	}
	*out = v;
	return 0;
}

/* A string value copied out of the conf tree, so positions reported by
 * tb_router_foreach_connector stay valid after tb_conf_free. */
static int copy_str_val(tb_conf_val_t *dst, const tb_conf_val_t *src, const char *key)
{
	memset(dst, 0, sizeof(*dst));
	dst->type = TB_CONF_STRING;
	dst->line = src->line;
	dst->col = src->col;
	dst->key = key;
	dst->used = true;
	dst->u.str.s = strdup(src->u.str.s);
	dst->u.str.len = src->u.str.len;
	return dst->u.str.s ? 0 : TB_ENOMEM;
}

/* ---- data sets: building ---- */

static int add_range(dataset_t *d, const tb_addr_t *a, unsigned bits)
{
	if (a->family == TB_AF_INET) {
		uint32_t ip = tb_be32(a->ip);
		uint32_t mask = bits ? ~(uint32_t)0 << (32 - bits) : 0;
		range4_t *p = grow(d->r4, &d->cap4, d->n4, sizeof(*p));

		if (!p)
			return TB_ENOMEM;
		d->r4 = p;
		p[d->n4].lo = ip & mask;
		p[d->n4++].hi = ip | ~mask;
		return 0;
	}
	range6_t *p = grow(d->r6, &d->cap6, d->n6, sizeof(*p));

	if (!p)
		return TB_ENOMEM;
	d->r6 = p;
	for (unsigned i = 0; i < 16; i++) {
		unsigned left = bits > 8 * i ? bits - 8 * i : 0;
		uint8_t m = left >= 8 ? 0xff : (uint8_t)(0xff00u >> left);

		p[d->n6].lo[i] = a->ip[i] & m;
		p[d->n6].hi[i] = a->ip[i] | (uint8_t)~m;
	}
	d->n6++;
	return 0;
}

static int add_name(dataset_t *d, const char *s)
{
	const char **p = grow(d->names, &d->capnames, d->nnames, sizeof(*p));

	if (!p)
		return TB_ENOMEM;
	d->names = p;
	p[d->nnames++] = s;
	return 0;
}

/* TB_EINVAL when the line does not compile: the caller makes it an exact host. */
static int add_regex(dataset_t *d, const char *s)
{
	regex_t *re = malloc(sizeof(*re));
	regex_t **p;

	if (!re)
		return TB_ENOMEM;
	if (regcomp(re, s, RE_FLAGS) != 0) {
		free(re);
		return TB_EINVAL;
	}
	p = grow(d->re, &d->capre, d->nre, sizeof(*p));
	if (!p) {
		regfree(re);
		free(re);
		return TB_ENOMEM;
	}
	d->re = p;
	p[d->nre++] = re;
	return 0;
}

/* tunnelbox's `domain` format: "*.a.b", ".a.b" and "a.b." all mean the
 * suffix "a.b"; matching is case-insensitive, so store lower case. */
static char *domain_norm(char *s)
{
	size_t n;

	if (s[0] == '*' && s[1] == '.')
		s += 2;
	else if (s[0] == '.')
		s++;
	n = strlen(s);
	if (n && s[n - 1] == '.')
		s[n - 1] = '\0';
	ascii_lower(s);
	return s;
}

/* §6: a CIDR or bare IP line matches IPs in every format; what any other
 * line means depends on the format. */
static int add_line(dataset_t *d, char *line)
{
	tb_addr_t a;
	unsigned bits;
	int rc;

	if (parse_prefix(line, &a, &bits))
		return add_range(d, &a, bits);
	if (d->fmt == FMT_REGEX && ENABLE_ROUTER_REGEX) {
		rc = add_regex(d, line);
		if (rc != TB_EINVAL)
			return rc;
	}
	if (d->fmt == FMT_DOMAIN) {
		line = domain_norm(line);
		if (!*line)
			return 0;
	}
	return add_name(d, line);
}

static int cmp_range4(const void *a, const void *b)
{
	const range4_t *x = a, *y = b;

	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static int cmp_range6(const void *a, const void *b)
{
	const range6_t *x = a, *y = b;

	return memcmp(x->lo, y->lo, 16);
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_name_key(const void *key, const void *elem)
{
	return strcmp(key, *(const char *const *)elem);
}

/* Sorted by lo, overlapping ranges merged: disjoint, so one binary search
 * finds the only range that can hold an address. */
static size_t merge4(range4_t *r, size_t n)
{
	size_t out = 0;

	if (n)
		qsort(r, n, sizeof(*r), cmp_range4);
	for (size_t i = 0; i < n; i++) {
		if (out && r[i].lo <= r[out - 1].hi) {
			r[out - 1].hi = TB_MAX(r[out - 1].hi, r[i].hi);
			continue;
		}
		r[out++] = r[i];
	}
	return out;
}

static size_t merge6(range6_t *r, size_t n)
{
	size_t out = 0;

	if (n)
		qsort(r, n, sizeof(*r), cmp_range6);
	for (size_t i = 0; i < n; i++) {
		if (out && memcmp(r[i].lo, r[out - 1].hi, 16) <= 0) {
			if (memcmp(r[i].hi, r[out - 1].hi, 16) > 0)
				memcpy(r[out - 1].hi, r[i].hi, 16);
			continue;
		}
		r[out++] = r[i];
	}
	return out;
}

/* Splits d->text into lines in place: blank lines are dropped (§6) and so
 * are lines starting with '#' (tunnelbox MAY accept comments, §6). */
static int parse_text(dataset_t *d)
{
	char *p = d->text;
	int rc;

	while (*p) {
		char *nl = strchr(p, '\n');
		char *line = p;

		p = nl ? nl + 1 : p + strlen(p);
		if (nl)
			*nl = '\0';
		line = trim(line);
		if (!*line || *line == '#')
			continue;
		rc = add_line(d, line);
		if (rc)
			return rc;
	}
	d->n4 = merge4(d->r4, d->n4);
	d->n6 = merge6(d->r6, d->n6);
	if (d->nnames)
		qsort(d->names, d->nnames, sizeof(*d->names), cmp_name);
	d->r4 = shrink(d->r4, d->n4, sizeof(*d->r4));
	d->r6 = shrink(d->r6, d->n6, sizeof(*d->r6));
	d->names = shrink(d->names, d->nnames, sizeof(*d->names));
	d->re = shrink(d->re, d->nre, sizeof(*d->re));
	d->cap4 = d->n4;
	d->cap6 = d->n6;
	d->capnames = d->nnames;
	d->capre = d->nre;
	if (!d->nnames) {
		free(d->text);
		d->text = NULL;
	}
	d->usable = true;
	return 0;
}

static int load_lan(dataset_t *d)
{
	/* §6: exactly these ranges, IPv4 only; any source is ignored. */
	static const char lan[] = "10.0.0.0/8\n172.16.0.0/12\n192.168.0.0/16\n127.0.0.0/8\n";

	d->text = strdup(lan);
	return d->text ? parse_text(d) : TB_ENOMEM;
}

/* A relative path is taken from the config file's directory: a daemon's
 * working directory (procd starts it in /) says nothing useful. */
static char *resolve_path(const load_t *ld, const char *path)
{
	const char *file = ld->conf->file;
	const char *slash = file ? strrchr(file, '/') : NULL;
	size_t dirlen, n;
	char *out;

	if (path[0] == '/' || !slash)
		return strdup(path);
	dirlen = (size_t)(slash - file) + 1;
	n = strlen(path);
	out = malloc(dirlen + n + 1);
	if (!out)
		return NULL;
	memcpy(out, file, dirlen);
	memcpy(out + dirlen, path, n + 1);
	return out;
}

/* Reads a whole file into a NUL-terminated buffer. On an I/O problem *why
 * says what went wrong and TB_EIO is returned. */
static int read_file(const char *path, char **out, const char **why)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL, *p;
	size_t len = 0, cap = 0, n;
	int rc = TB_EIO;

	if (!f) {
		*why = strerror(errno);
		return TB_EIO;
	}
	do {
		if (cap - len < 2) {
			cap = cap ? cap * 2 : 64 * 1024;
			p = cap <= DATA_FILE_MAX * 2u ? realloc(buf, cap) : NULL;
			if (!p) {
				rc = TB_ENOMEM;
				goto fail;
			}
			buf = p;
		}
		n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
		if (len > DATA_FILE_MAX) {
			*why = "file too large";
			goto fail;
		}
	} while (n > 0);
	if (ferror(f)) {
		*why = "read error";
		goto fail;
	}
	if (memchr(buf, '\0', len)) {
		*why = "file contains NUL bytes";
		goto fail;
	}
	buf[len] = '\0';
	fclose(f);
	*out = buf;
	return 0;
fail:
	free(buf);
	fclose(f);
	return rc;
}

/* §6: a source that fails to load skips the set with a warning. */
static int load_path(const load_t *ld, dataset_t *d, const tb_conf_val_t *at, const char *path)
{
	char *full = resolve_path(ld, path);
	const char *why = "";
	int rc;

	if (!full)
		return TB_ENOMEM;
	rc = read_file(full, &d->text, &why);
	if (rc == TB_EIO)
		conf_warn(ld, at, "data '%s': cannot read %s: %s; set skipped", d->name, full, why);
	free(full);
	if (rc)
		return rc == TB_EIO ? 0 : rc;
	return parse_text(d);
}

static int load_url(const load_t *ld, dataset_t *d, const tb_conf_val_t *at, const char *url)
{
	if (strncmp(url, "file://", 7) == 0) {
		const char *path = url + 7;

		if (strncmp(path, "localhost/", 10) == 0)
			path += 9;
		return load_path(ld, d, at, path);
	}
	/* rog fetches http(s) at start; tunnelbox does not yet, and does
	 * what rog does when a fetch fails (§6): skip the set. */
	conf_warn(ld, at, "data '%s': url scheme not supported (only file://); set skipped", d->name);
	return 0;
}

static int parse_format(const char *s, enum data_fmt *fmt)
{
	static const struct {
		const char *name;
		enum data_fmt fmt;
	} fmts[] = {
		{"cidr", FMT_CIDR},
		{"regex", FMT_REGEX},
		{"domain", FMT_DOMAIN},
		{"lan", FMT_LAN},
	};

	for (size_t i = 0; i < TB_ARRAY_SIZE(fmts); i++) {
		if (strcmp(s, fmts[i].name) == 0) {
			*fmt = fmts[i].fmt;
			return 0;
		}
	}
	return TB_EINVAL;
}

static const dataset_t *find_data(const tb_routing_t *r, const char *name)
{
	for (size_t i = 0; i < r->ndata; i++)
		if (strcmp(r->data[i].name, name) == 0)
			return &r->data[i];
	return NULL;
}

typedef struct source {
	const char *url, *file, *text;
} source_t;

/* Every source key is looked up (and type-checked) whatever the format, so
 * none of them is reported as unknown. */
static int get_source(const load_t *ld, const tb_conf_val_t *t, source_t *src)
{
	int rc;

	memset(src, 0, sizeof(*src));
	if ((rc = opt_str(t, "url", &src->url, ld->err)) || (rc = opt_str(t, "file", &src->file, ld->err)))
		return rc;
	return opt_str(t, "data", &src->text, ld->err);
}

static int load_source(const load_t *ld, dataset_t *d, const tb_conf_val_t *t, const source_t *src)
{
	if (d->fmt == FMT_LAN)
		return load_lan(d);
	if (src->url && src->file)
		conf_warn(ld, t, "data '%s': both url and file given; using url", d->name);
	if (src->url)
		return load_url(ld, d, tb_conf_get(t, "url"), src->url);
	if (src->file)
		return load_path(ld, d, tb_conf_get(t, "file"), src->file);
	if (!src->text)
		conf_warn(ld, t, "data '%s': no url, file or data; the set is empty", d->name);
	d->text = strdup(src->text ? src->text : "");
	return d->text ? parse_text(d) : TB_ENOMEM;
}

static int load_data(const load_t *ld, dataset_t *d, tb_conf_val_t *t)
{
	const char *name, *format;
	source_t src;
	int rc;

	if ((rc = tb_conf_need_str(t, "name", &name, ld->err)))
		return rc;
	if (find_data(ld->r, name)) {
		tb_conf_set_err(ld->err, tb_conf_get(t, "name"), "duplicate [[data]] name '%s'", name);
		return TB_EINVAL;
	}
	if ((rc = tb_conf_need_str(t, "format", &format, ld->err)) || (rc = get_source(ld, t, &src)))
		return rc;
	d->name = strdup(name);
	if (!d->name)
		return TB_ENOMEM;
	if (parse_format(format, &d->fmt) != 0) {
		/* §6: rog makes the set silently unusable; tunnelbox says so. */
		const tb_conf_val_t *v = tb_conf_get(t, "format");

		conf_warn(ld, v, "data '%s': unknown format '%s'; set unusable", name, format);
		return 0;
	}
	if ((rc = load_source(ld, d, t, &src)))
		return rc;
	if (d->fmt == FMT_REGEX && !ENABLE_ROUTER_REGEX)
		conf_warn(ld, t, "data '%s': regex support not compiled in; lines are exact hosts", name);
	return 0;
}

static int load_all_data(load_t *ld)
{
	tb_conf_val_t *arr;
	int rc = get_tables(ld, ld->conf->root, "data", &arr);

	if (rc || !arr)
		return rc;
	ld->r->data = calloc(arr->u.list.n ? arr->u.list.n : 1, sizeof(dataset_t));
	if (!ld->r->data)
		return TB_ENOMEM;
	for (tb_conf_val_t *t = arr->u.list.first; t; t = t->next) {
		dataset_t *d = &ld->r->data[ld->r->ndata];

		rc = load_data(ld, d, t);
		if (d->name)
			ld->r->ndata++;
		if (rc)
			return rc;
		warn_unknown(ld, t, "[[data]]");
	}
	return 0;
}

static void data_free(dataset_t *d)
{
	for (size_t i = 0; ENABLE_ROUTER_REGEX && i < d->nre; i++) {
		regfree(d->re[i]);
		free(d->re[i]);
	}
	free(d->re);
	free(d->r4);
	free(d->r6);
	free(d->names);
	free(d->text);
	free(d->name);
}

/* ---- routers ---- */

/* §6: '/' means a CIDR, else an IP literal matches exactly, else a regex
 * (unanchored search). Invalid entries are ignored, with a warning. */
static void add_exclude(const load_t *ld, rule_t *ru, const tb_conf_val_t *e)
{
	exclude_t *x = &ru->ex[ru->nex];
	const char *s = e->u.str.s;
	const char *why = NULL;

	if (strchr(s, '/')) {
		if (!parse_prefix(s, &x->addr, &x->bits))
			why = "invalid CIDR";
	} else if (parse_prefix(s, &x->addr, &x->bits)) {
		/* an IP literal: a full-length prefix */
	} else if (!ENABLE_ROUTER_REGEX) {
		why = "regex support not compiled in";
	} else if (regcomp(&x->re, s, RE_FLAGS) != 0) {
		why = "invalid regex";
	} else {
		x->is_re = true;
		ru->ex_re = true;
	}
	if (why) {
		conf_warn(ld, e, "exclude '%s': %s; entry ignored", s, why);
		return;
	}
	ru->nex++;
}

static int load_excludes(const load_t *ld, rule_t *ru, const tb_conf_val_t *t)
{
	const tb_conf_val_t *v = tb_conf_get(t, "exclude");

	/* §6: rog rejects a rule without the key; [] is fine. */
	if (!v)
		return missing_key(ld, t, "exclude", " (rog requires it; exclude = [] for none)");
	if (v->type != TB_CONF_ARRAY) {
		tb_conf_set_err(ld->err, v, "must be a list of strings");
		return TB_EINVAL;
	}
	ru->ex = calloc(v->u.list.n ? v->u.list.n : 1, sizeof(*ru->ex));
	if (!ru->ex)
		return TB_ENOMEM;
	for (const tb_conf_val_t *e = v->u.list.first; e; e = e->next) {
		if (e->type != TB_CONF_STRING) {
			tb_conf_set_err(ld->err, e, "exclude entries must be strings");
			return TB_EINVAL;
		}
		add_exclude(ld, ru, e);
	}
	return 0;
}

static int load_rule(const load_t *ld, rule_t *ru, tb_conf_val_t *t)
{
	const char *name, *select, *dns = NULL;
	const dataset_t *d;
	int rc;

	if ((rc = tb_conf_need_str(t, "name", &name, ld->err)) ||
	    (rc = tb_conf_need_str(t, "select", &select, ld->err)) ||
	    (rc = opt_str(t, "dns", &dns, ld->err)) ||
	    (rc = opt_bool(t, "domain_to_ip", &ru->domain_to_ip, ld->err)) || (rc = load_excludes(ld, ru, t)))
		return rc;
	if ((rc = copy_str_val(&ru->select_at, tb_conf_get(t, "select"), "select")))
		return rc;
	if (dns && !(ru->dns = strdup(dns)))
		return TB_ENOMEM;
	d = find_data(ld->r, name);
	if (!d) {
		const tb_conf_val_t *v = tb_conf_get(t, "name");

		conf_warn(ld, v, "route rule: no [[data]] named '%s'; the rule never matches", name);
	}
	ru->data = d && d->usable ? d : NULL;
	warn_unknown(ld, t, "[[router.route_rules]]");
	return 0;
}

static void rule_free(rule_t *ru)
{
	for (size_t i = 0; ENABLE_ROUTER_REGEX && i < ru->nex; i++)
		if (ru->ex[i].is_re)
			regfree(&ru->ex[i].re);
	free(ru->ex);
	free(ru->select_at.u.str.s);
	free(ru->dns);
}

static int load_rules(const load_t *ld, tb_router_t *rt, const tb_conf_val_t *t)
{
	tb_conf_val_t *arr;
	int rc = get_tables(ld, t, "route_rules", &arr);

	if (rc || !arr)
		return rc;
	rt->rules = calloc(arr->u.list.n ? arr->u.list.n : 1, sizeof(*rt->rules));
	if (!rt->rules)
		return TB_ENOMEM;
	for (tb_conf_val_t *e = arr->u.list.first; e; e = e->next) {
		rc = load_rule(ld, &rt->rules[rt->nrules++], e);
		if (rc)
			return rc;
	}
	return 0;
}

static int load_router(const load_t *ld, tb_router_t *rt, tb_conf_val_t *t)
{
	const char *name, *def;
	int rc;

	if ((rc = tb_conf_need_str(t, "name", &name, ld->err)))
		return rc;
	if (tb_routing_find(ld->r, name)) {
		tb_conf_set_err(ld->err, tb_conf_get(t, "name"), "duplicate [[router]] name '%s'", name);
		return TB_EINVAL;
	}
	if ((rc = tb_conf_need_str(t, "default", &def, ld->err)))
		return rc;
	rt->name = strdup(name);
	if (!rt->name)
		return TB_ENOMEM;
	if ((rc = copy_str_val(&rt->def_at, tb_conf_get(t, "default"), "default")) ||
	    (rc = load_rules(ld, rt, t)))
		return rc;
	warn_unknown(ld, t, "[[router]]");
	return 0;
}

static void router_free(tb_router_t *rt)
{
	for (size_t i = 0; i < rt->nrules; i++)
		rule_free(&rt->rules[i]);
	free(rt->rules);
	free(rt->def_at.u.str.s);
	free(rt->name);
}

static int load_routers(load_t *ld)
{
	tb_conf_val_t *arr;
	int rc = get_tables(ld, ld->conf->root, "router", &arr);

	if (rc || !arr)
		return rc;
	ld->r->routers = calloc(arr->u.list.n ? arr->u.list.n : 1, sizeof(tb_router_t));
	if (!ld->r->routers)
		return TB_ENOMEM;
	for (tb_conf_val_t *t = arr->u.list.first; t; t = t->next) {
		tb_router_t *rt = &ld->r->routers[ld->r->nrouters];

		rc = load_router(ld, rt, t);
		if (rt->name)
			ld->r->nrouters++;
		if (rc)
			return rc;
	}
	return 0;
}

int tb_routing_load(const tb_conf_t *conf, tb_routing_t **out, tb_conf_err_t *err)
{
	tb_conf_err_t scratch;
	load_t ld = {conf, err ? err : &scratch, NULL};
	int rc;

	memset(ld.err, 0, sizeof(*ld.err));
	ld.r = calloc(1, sizeof(*ld.r));
	if (!ld.r)
		rc = TB_ENOMEM;
	else if (!(rc = load_all_data(&ld)))
		rc = load_routers(&ld);
	if (rc) {
		if (rc == TB_ENOMEM && !ld.err->msg[0])
			snprintf(ld.err->msg, sizeof(ld.err->msg), "out of memory loading routers");
		tb_routing_free(ld.r);
		return rc;
	}
	*out = ld.r;
	return 0;
}

void tb_routing_free(tb_routing_t *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nrouters; i++)
		router_free(&r->routers[i]);
	for (size_t i = 0; i < r->ndata; i++)
		data_free(&r->data[i]);
	free(r->routers);
	free(r->data);
	free(r);
}

const tb_router_t *tb_routing_find(const tb_routing_t *r, const char *name)
{
	if (!r || !name)
		return NULL;
	for (size_t i = 0; i < r->nrouters; i++)
		if (strcmp(r->routers[i].name, name) == 0)
			return &r->routers[i];
	return NULL;
}

const char *tb_router_name(const tb_router_t *r)
{
	return r->name;
}

int tb_router_foreach_connector(const tb_router_t *r,
				int (*fn)(void *arg, const char *name, const tb_conf_val_t *where), void *arg)
{
	int rc = fn(arg, r->def_at.u.str.s, &r->def_at);

	for (size_t i = 0; !rc && i < r->nrules; i++)
		rc = fn(arg, r->rules[i].select_at.u.str.s, &r->rules[i].select_at);
	return rc;
}

/* ---- matching ---- */

static bool in_ranges4(const range4_t *r, size_t n, uint32_t ip)
{
	size_t lo = 0, hi = n;

	while (lo < hi) { /* first range starting above ip */
		size_t mid = lo + (hi - lo) / 2;

		if (r[mid].lo <= ip)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo > 0 && ip <= r[lo - 1].hi;
}

static bool in_ranges6(const range6_t *r, size_t n, const uint8_t *ip)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (memcmp(r[mid].lo, ip, 16) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo > 0 && memcmp(ip, r[lo - 1].hi, 16) <= 0;
}

static bool has_name(const dataset_t *d, const char *s)
{
	return d->nnames && bsearch(s, d->names, d->nnames, sizeof(*d->names), cmp_name_key);
}

/* "a.example.com" tries "a.example.com", "example.com", "com": only whole
 * labels, so "badexample.com" never matches "example.com". */
static bool match_suffix(const dataset_t *d, const char *host)
{
	char buf[TB_HOST_MAX + 1];
	size_t n = strlen(host);
	const char *p = buf;

	if (n >= sizeof(buf))
		return false;
	memcpy(buf, host, n + 1);
	if (n && buf[n - 1] == '.')
		buf[n - 1] = '\0';
	ascii_lower(buf);
	for (;;) {
		if (has_name(d, p))
			return true;
		p = strchr(p, '.');
		if (!p)
			return false;
		p++;
	}
}

static bool match_regex(const dataset_t *d, const char *host)
{
	for (size_t i = 0; ENABLE_ROUTER_REGEX && i < d->nre; i++)
		if (regexec(d->re[i], host, 0, NULL, 0) == 0)
			return true;
	return false;
}

static bool data_match(const dataset_t *d, const cand_t *c)
{
	if (c->ip && c->ip->family == TB_AF_INET)
		return in_ranges4(d->r4, d->n4, tb_be32(c->ip->ip));
	if (c->ip)
		return c->ip->family == TB_AF_INET6 && in_ranges6(d->r6, d->n6, c->ip->ip);
	/* §6: regexes and names never match an IP host. */
	if (d->fmt == FMT_DOMAIN)
		return match_suffix(d, c->text);
	return has_name(d, c->text) || match_regex(d, c->text);
}

/* rog tests exclude regexes against every candidate's text, IPs included. */
static bool excluded(const rule_t *ru, const cand_t *c)
{
	for (size_t i = 0; i < ru->nex; i++) {
		const exclude_t *x = &ru->ex[i];

		if (ENABLE_ROUTER_REGEX && x->is_re) {
			if (regexec(&x->re, c->text, 0, NULL, 0) == 0)
				return true;
		} else if (c->ip && tb_addr_in_prefix(c->ip, &x->addr, x->bits)) {
			return true;
		}
	}
	return false;
}

static bool cand_match(const rule_t *ru, const cand_t *c)
{
	return !excluded(ru, c) && data_match(ru->data, c);
}

static void host_cand(const tb_target_t *t, cand_t *c)
{
	c->text = t->host;
	c->ip = t->is_ip ? &t->addr : NULL;
}

static bool ip_cand_match(const rule_t *ru, const tb_addr_t *ip)
{
	char text[TB_ADDR_STRLEN] = "";
	cand_t c = {text, ip};

	if (ru->ex_re)
		tb_addr_ip_str(ip, text, sizeof(text));
	return cand_match(ru, &c);
}

/* Only IP ranges can match an IP, so a set without any makes resolving pointless. */
static bool data_has_ips(const dataset_t *d)
{
	return d->n4 || d->n6;
}

bool tb_router_wants_ips(const tb_router_t *r, const tb_target_t *t, const char **dns)
{
	cand_t host;

	if (dns)
		*dns = NULL;
	if (t->is_ip)
		return false;
	host_cand(t, &host);
	for (size_t i = 0; i < r->nrules; i++) {
		const rule_t *ru = &r->rules[i];

		if (!ru->data)
			continue;
		if (cand_match(ru, &host))
			return false; /* decided before any rule needs IPs */
		if (ru->domain_to_ip && data_has_ips(ru->data)) {
			if (dns)
				*dns = ru->dns;
			return true;
		}
	}
	return false;
}

/* §6: per rule, the candidates are the host, then (domain_to_ip) its IPs;
 * an excluded candidate is skipped, the others tested against the set. */
const char *tb_router_select(const tb_router_t *r, const tb_target_t *t, const tb_addr_t *ips, size_t nips)
{
	cand_t host;

	host_cand(t, &host);
	for (size_t i = 0; i < r->nrules; i++) {
		const rule_t *ru = &r->rules[i];

		if (!ru->data)
			continue;
		if (cand_match(ru, &host))
			return ru->select_at.u.str.s;
		if (!ru->domain_to_ip || t->is_ip)
			continue;
		for (size_t j = 0; j < nips; j++)
			if (ip_cand_match(ru, &ips[j]))
				return ru->select_at.u.str.s;
	}
	return r->def_at.u.str.s;
}
