/* linksocks_cli.c: the reference's command line (spec/linksocks.md §7).
 *
 *   tunnelbox linksocks server|client|provider|connector|version|help [flags]
 *   linksocks ...                       (a symlink: main.c dispatches on argv[0])
 *
 * Flags, defaults and environment variables are the reference's: a variable
 * counts only when its flag was not given, booleans parse as Go's ParseBool,
 * LINKSOCKS_MODE supplies a missing command. The flags become a TOML
 * configuration for the listener and connector kinds of linksocks_server.c
 * and linksocks_client.c, run by main.c like a `tunnelbox -c` file;
 * `--print-config` prints that text instead (the way from a command line to
 * a configuration file).
 *
 * The WebSocket listener defaults to 0.0.0.0:8765 here, and only here: it
 * is the reference CLI's documented default, which a drop-in replacement
 * must keep. Everything else in tunnelbox binds 127.0.0.1 unless told. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "tb/app.h"
#include "tb/linksocks.h"
#include "tb/linksocks_client.h"
#include "tb/log.h"
#include "tb/port.h"

#ifndef TB_VERSION
#define TB_VERSION "0.0.0"
#endif

#define LS_REF_VERSION "v1.7.15" /* the reference version we are compatible with */
#define THREADS_MAX 64		 /* linksocks_client.c's limit */
#define RANDOM_TOKEN_BYTES 8	 /* §6: generated tokens are 16 hex chars */
#define NO_PROXY "expected socks5://[user:pass@]host[:port] or http://[user:pass@]host[:port]"

/* The commands a flag belongs to (a mask). */
enum role {
	SRV = 1,
	CLI = 2,
	BOTH = 3
};

/* Long-only flags, past the range of short option letters. */
enum {
	O_RETRY_AUTH = 256,
	O_DIRECT_MODE,
	O_PRINT_CONFIG,
	O_IGNORE, /* v1.8 P2P and tuning flags: accepted, no effect */
	O_MAX
};

struct cli {
	enum role role;
	const char *cmd; /* the command as typed */
	bool provider;	 /* `provider`: -r forced */
	const char *token, *url, *ws_host, *socks_host, *user, *pass;
	const char *conn_token, *api_key, *upstream;
	long ws_port, socks_port, threads, buffer_size, debug;
	bool reverse, fast_open, autonomy, no_reconnect, retry_auth, print_config, no_env_proxy;
	bool ignored;	  /* where accepted-but-ignored switches land */
	bool seen[O_MAX]; /* given on the command line: its variable is ignored */
	char random_token[2 * RANDOM_TOKEN_BYTES + 1];
	char random_conn[2 * RANDOM_TOKEN_BYTES + 1];
	char *owned[16]; /* trimmed copies of environment values */
	unsigned nowned;
};

enum kind {
	F_NONE,
	F_STR,
	F_BOOL,
	F_INT
};
enum {
	NOARG = no_argument,
	ARG = required_argument,
	OPT = optional_argument
};

/* Every flag of both commands: what it sets and its variable. Switches
 * take an optional `=value`, as pflag's booleans do (`--reverse=false`). */
struct flag {
	const char *name;
	int has_arg, opt;
	unsigned roles;
	enum kind kind;
	size_t off; /* the field in struct cli */
	const char *env;
	long lo, hi;
};

#define AT(field) offsetof(struct cli, field)
static const struct flag flags[] = {
	{"token", ARG, 't', BOTH, F_STR, AT(token), "LINKSOCKS_TOKEN"},
	{"url", ARG, 'u', CLI, F_STR, AT(url), "LINKSOCKS_URL"},
	{"ws-host", ARG, 'H', SRV, F_STR, AT(ws_host), "LINKSOCKS_WEBSOCKET_HOST"},
	{"ws-port", ARG, 'P', SRV, F_INT, AT(ws_port), "LINKSOCKS_WEBSOCKET_PORT", 0, 65535},
	{"reverse", OPT, 'r', BOTH, F_BOOL, AT(reverse)},
	{"connector-token", ARG, 'c', BOTH, F_STR, AT(conn_token), "LINKSOCKS_CONNECTOR_TOKEN"},
	{"connector-autonomy", OPT, 'a', SRV, F_BOOL, AT(autonomy), "LINKSOCKS_CONNECTOR_AUTONOMY"},
	{"socks-host", ARG, 's', BOTH, F_STR, AT(socks_host), "LINKSOCKS_SOCKS_HOST"},
	{"socks-port", ARG, 'p', BOTH, F_INT, AT(socks_port), "LINKSOCKS_SOCKS_PORT", 0, 65535},
	{"socks-username", ARG, 'n', BOTH, F_STR, AT(user), "LINKSOCKS_SOCKS_USERNAME"},
	{"socks-password", ARG, 'w', BOTH, F_STR, AT(pass), "LINKSOCKS_SOCKS_PASSWORD"},
	{"socks-nowait", OPT, 'i', SRV, F_BOOL, AT(ignored)},
	{"socks-no-wait", OPT, 'i', CLI, F_BOOL, AT(ignored)},
	{"api-key", ARG, 'k', SRV, F_STR, AT(api_key), "LINKSOCKS_API_KEY"},
	{"buffer-size", ARG, 'b', SRV, F_INT, AT(buffer_size), NULL, 1, 1 << 30},
	{"no-reconnect", OPT, 'R', CLI, F_BOOL, AT(no_reconnect)},
	{"retry-auth", OPT, O_RETRY_AUTH, CLI, F_BOOL, AT(retry_auth), "LINKSOCKS_RETRY_AUTH"},
	{"threads", ARG, 'T', CLI, F_INT, AT(threads), NULL, -1000000, 1000000},
	{"upstream-proxy", ARG, 'x', BOTH, F_STR, AT(upstream), "LINKSOCKS_UPSTREAM_PROXY"},
	{"fast-open", OPT, 'f', BOTH, F_BOOL, AT(fast_open), "LINKSOCKS_FASTOPEN"},
	{"no-env-proxy", OPT, 'E', CLI, F_BOOL, AT(no_env_proxy)},
	{"debug", OPT, 'd', BOTH, F_INT, AT(debug), NULL, 0, 100},
	{"connector-wait-provider", ARG, O_IGNORE, SRV},
	{"direct-enable", OPT, O_IGNORE, SRV, F_BOOL, AT(ignored)},
	{"direct-rendezvous-udp", OPT, O_IGNORE, SRV, F_BOOL, AT(ignored)},
	{"direct-rendezvous-host", ARG, O_IGNORE, SRV},
	{"direct-rendezvous-port", ARG, O_IGNORE, SRV},
	{"direct-mode", ARG, O_DIRECT_MODE, CLI},
	{"direct-discovery", ARG, O_IGNORE, CLI},
	{"direct-host-candidates", ARG, O_IGNORE, CLI},
	{"stun-server", ARG, O_IGNORE, CLI},
	{"direct-only-action", ARG, O_IGNORE, CLI},
	{"direct-upnp", OPT, O_IGNORE, CLI, F_BOOL, AT(ignored)},
	{"direct-upnp-lease", ARG, O_IGNORE, CLI},
	{"direct-upnp-keep", OPT, O_IGNORE, CLI, F_BOOL, AT(ignored)},
	{"direct-upnp-external-port", ARG, O_IGNORE, CLI},
	{"print-config", NOARG, O_PRINT_CONFIG, BOTH},
	{"help", NOARG, 'h', BOTH},
};

/* Leading ':' so getopt reports a missing value as ':' and stays quiet. */
#define SERVER_SHORT ":H:P:t:c:ab:rs:p:n:w:idk:x:fh"
#define CLIENT_SHORT ":t:u:rc:s:p:n:w:iRdT:x:fEh"

/* ---- help and version ---- */

static void root_help(void)
{
	printf("SOCKS5 over WebSocket proxy tool (tunnelbox %s, compatible with linksocks %s)\n\n"
	       "Usage:\n  linksocks [command]\n\nAvailable Commands:\n"
	       "  client      Start SOCKS5 over WebSocket proxy client\n"
	       "  connector   Alias for client command\n"
	       "  provider    Alias for client -r command\n"
	       "  server      Start SOCKS5 over WebSocket proxy server\n"
	       "  version     Print the version number\n"
	       "  help        Help about any command\n\n"
	       "LINKSOCKS_MODE=server|client|forward|connector|provider|reverse supplies a missing command.\n"
	       "Use \"linksocks [command] --help\" for more information about a command.\n",
	       TB_VERSION, LS_REF_VERSION);
}

static void server_help(void)
{
	puts("Start SOCKS5 over WebSocket proxy server\n\nUsage:\n  linksocks server [flags]\n\n"
	     "Flags ([VARIABLE] applies when the flag is not given):\n"
	     "  -H, --ws-host HOST         listen address (default 0.0.0.0) [LINKSOCKS_WEBSOCKET_HOST]\n"
	     "  -P, --ws-port PORT         listen port (default 8765) [LINKSOCKS_WEBSOCKET_PORT]\n"
	     "  -t, --token TOKEN          forward token, or reverse token with -r; random (and printed)\n"
	     "                             when omitted [LINKSOCKS_TOKEN]\n"
	     "  -r, --reverse              SOCKS5 on the server, providers reach the network\n"
	     "  -s, --socks-host HOST      reverse SOCKS5 address (default 127.0.0.1) [LINKSOCKS_SOCKS_HOST]\n"
	     "  -p, --socks-port PORT      reverse SOCKS5 port (default 9870) [LINKSOCKS_SOCKS_PORT]\n"
	     "  -n, --socks-username USER  with -w: SOCKS5 authentication [LINKSOCKS_SOCKS_USERNAME]\n"
	     "  -w, --socks-password PASS  [LINKSOCKS_SOCKS_PASSWORD]\n"
	     "  -f, --fast-open            send data before the target answers [LINKSOCKS_FASTOPEN]\n"
	     "  -d, --debug                debug logs\n"
	     "  -c, --connector-token TOK  with -r: agent mode token (random when omitted)\n"
	     "                             [LINKSOCKS_CONNECTOR_TOKEN]\n"
	     "  -a, --connector-autonomy   providers manage connector tokens (no SOCKS5 port)\n"
	     "  -k, --api-key KEY          enable the HTTP API (/api/*); CLI tokens are then ignored\n"
	     "  -x, --upstream-proxy URL   socks5:// or http:// proxy for the dials [LINKSOCKS_UPSTREAM_PROXY]\n"
	     "  -b, -i, --connector-wait-provider, --direct-*: accepted, no effect\n"
	     "      --print-config         print the equivalent tunnelbox configuration and exit");
}

static void client_help(const char *cmd)
{
	printf("Start SOCKS5 over WebSocket proxy client%s\n\nUsage:\n  linksocks %s [flags]\n\n"
	       "Flags ([VARIABLE] applies when the flag is not given):\n"
	       "  -t, --token TOKEN          token (empty: \"anonymous\") [LINKSOCKS_TOKEN]\n"
	       "  -u, --url URL              server (default ws://localhost:8765) [LINKSOCKS_URL]\n"
	       "  -r, --reverse              provider: dial targets for the server's SOCKS5 users\n"
	       "  -s, --socks-host HOST      SOCKS5 address (default 127.0.0.1) [LINKSOCKS_SOCKS_HOST]\n"
	       "  -p, --socks-port PORT      SOCKS5 port (default 9870) [LINKSOCKS_SOCKS_PORT]\n"
	       "  -n, --socks-username USER  with -w: SOCKS5 authentication [LINKSOCKS_SOCKS_USERNAME]\n"
	       "  -w, --socks-password PASS  [LINKSOCKS_SOCKS_PASSWORD]\n"
	       "  -T, --threads N            parallel WebSockets (default 1, <0: CPUs, at most %d)\n"
	       "  -f, --fast-open            send data before the target answers [LINKSOCKS_FASTOPEN]\n"
	       "  -R, --no-reconnect         do not reconnect\n"
	       "      --retry-auth           keep retrying a refused token [LINKSOCKS_RETRY_AUTH]\n"
	       "  -d, --debug                debug logs\n"
	       "  -c, --connector-token TOK  with -r: register this connector token (autonomy)\n"
	       "  -x, --upstream-proxy URL   with -r: socks5:// or http:// proxy for the dials\n"
	       "  -E, --no-env-proxy         ignore HTTP_PROXY/HTTPS_PROXY/NO_PROXY for the WebSocket dial\n"
	       "  -i, --direct-mode relay-only|auto, --direct-*, --stun-server: accepted, no effect\n"
	       "      --print-config         print the equivalent tunnelbox configuration and exit\n",
	       strcmp(cmd, "provider") == 0 ? " as a provider (client -r)" : "", cmd, THREADS_MAX);
}

static int command_help(enum role role, const char *cmd)
{
	if (role == SRV)
		server_help();
	else
		client_help(cmd);
	return 0;
}

/* §7: `linksocks version vX.Y.Z os/arch`, with Go's names for the arch. */
static int print_version(void)
{
	const char *arch =
#if defined(__x86_64__)
		"amd64";
#elif defined(__i386__)
		"386";
#elif defined(__aarch64__)
		"arm64";
#elif defined(__arm__)
		"arm";
#elif defined(__mips__)
		(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__) ?
			(__SIZEOF_POINTER__ == 8 ? "mips64le" : "mipsle") :
			(__SIZEOF_POINTER__ == 8 ? "mips64" : "mips");
#elif defined(__powerpc64__)
		__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? "ppc64le" : "ppc64";
#elif defined(__riscv)
		"riscv64";
#elif defined(__s390x__)
		"s390x";
#else
		"unknown";
#endif

	printf("linksocks version %s (tunnelbox %s) linux/%s\n", LS_REF_VERSION, TB_VERSION, arch);
	return 0;
}

/* ---- flags and variables ---- */

static int usage_err(const struct cli *c, const char *fmt, ...) TB_PRINTF(2, 3);
static int usage_err(const struct cli *c, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "linksocks %s: ", c->cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nRun 'linksocks %s --help' for usage.\n", c->cmd);
	return 2;
}

/* Go's strconv.ParseBool, which the reference uses for flags and variables. */
static int parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"1", "t", "T", "TRUE", "true", "True"};
	static const char *const no[] = {"0", "f", "F", "FALSE", "false", "False"};

	for (size_t i = 0; i < TB_ARRAY_SIZE(yes); i++) {
		if (strcmp(s, yes[i]) == 0 || strcmp(s, no[i]) == 0) {
			*out = strcmp(s, yes[i]) == 0;
			return 0;
		}
	}
	return -1;
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (!*s || *end || errno || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

static const struct flag *find_flag(enum role role, int opt)
{
	for (size_t i = 0; i < TB_ARRAY_SIZE(flags); i++)
		if (flags[i].opt == opt && (flags[i].roles & role))
			return &flags[i];
	return NULL;
}

/* One flag (arg NULL for a bare switch or count) or variable; `what`
 * names it in messages. */
static int set_opt(struct cli *c, const struct flag *f, const char *arg, const char *what)
{
	void *field = (char *)c + f->off;
	bool b = true;

	if (f->opt == 'd' && !arg) {
		c->debug++; /* a count: -dd */
	} else if (f->kind == F_BOOL) {
		if (arg && parse_bool(arg, &b) < 0)
			return usage_err(c, "invalid %s: \"%s\" (expected true or false)", what, arg);
		*(bool *)field = b;
	} else if (f->kind == F_STR) {
		*(const char **)field = arg;
	} else if (f->kind == F_INT && parse_long(arg, f->lo, f->hi, field) < 0) {
		return usage_err(c, "invalid %s: \"%s\"", what, arg);
	} else if (f->opt == O_DIRECT_MODE && strcmp(arg, "relay-only") != 0 && strcmp(arg, "auto") != 0) {
		return usage_err(c, "--direct-mode %s: tunnelbox relays only (relay-only or auto)", arg);
	} else if (f->opt == O_PRINT_CONFIG) {
		c->print_config = true;
	}
	return 0;
}

/* -1 to go on, else the exit code (help printed, or a usage error). */
static int parse_flags(struct cli *c, int argc, char **argv)
{
	struct option opts[TB_ARRAY_SIZE(flags) + 1];
	const char *shorts = c->role == SRV ? SERVER_SHORT : CLIENT_SHORT;
	const struct flag *f;
	char what[48];
	size_t n = 0;
	int opt, rc;

	for (size_t i = 0; i < TB_ARRAY_SIZE(flags); i++)
		if (flags[i].roles & c->role)
			opts[n++] = (struct option){flags[i].name, flags[i].has_arg, NULL, flags[i].opt};
	opts[n] = (struct option){NULL, 0, NULL, 0};
	optind = 0; /* glibc: a full re-initialisation */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, shorts, opts, NULL)) != -1) {
		if (opt == '?' && optopt > 0 && optopt < 128) /* a short one */
			return usage_err(c, "unknown flag: -%c", optopt);
		if (opt == '?' || opt == ':')
			return usage_err(c, "%s: %s", opt == ':' ? "flag needs an argument" : "unknown flag",
					 argv[optind - 1]);
		if (opt == 'h')
			return command_help(c->role, c->cmd);
		if (!(f = find_flag(c->role, opt)))
			continue;
		c->seen[opt] = true;
		snprintf(what, sizeof(what), "--%s", f->name);
		if ((rc = set_opt(c, f, optarg, what)) != 0)
			return rc;
	}
	if (optind < argc)
		return usage_err(c, "unexpected argument '%s'", argv[optind]);
	return -1;
}

/* Go's strings.TrimSpace, for variables and LINKSOCKS_MODE. */
static const char *trim(const char *s, size_t *len)
{
	const char *end;

	while (isspace((unsigned char)*s))
		s++;
	for (end = s + strlen(s); end > s && isspace((unsigned char)end[-1]); end--)
		;
	*len = (size_t)(end - s);
	return s;
}

/* §7: a variable applies when its flag was not given; values are trimmed
 * and an empty one is no value. */
static int apply_env(struct cli *c)
{
	for (size_t i = 0; i < TB_ARRAY_SIZE(flags); i++) {
		const struct flag *f = &flags[i];
		const char *v = f->env ? getenv(f->env) : NULL;
		size_t n;
		int rc;

		if (!v || !(f->roles & c->role) || c->seen[f->opt])
			continue;
		v = trim(v, &n);
		if (n == 0 || c->nowned == TB_ARRAY_SIZE(c->owned))
			continue;
		if (!(c->owned[c->nowned] = strndup(v, n)))
			return 1;
		if ((rc = set_opt(c, f, c->owned[c->nowned++], f->env)) != 0)
			return rc;
	}
	return -1;
}

/* ---- the TOML text ---- */

/* A TOML basic string: '"' and '\' escaped, control bytes as \uXXXX. A
 * token may hold any of them; UTF-8 passes through (conf.c checks it). */
static void put_quoted(FILE *t, const char *s)
{
	fputc('"', t);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			fprintf(t, "\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f)
			fprintf(t, "\\u%04x", ch);
		else
			fputc(ch, t);
	}
	fputc('"', t);
}

static void put_str(FILE *t, const char *key, const char *s)
{
	fprintf(t, "%s = ", key);
	put_quoted(t, s);
	fputc('\n', t);
}

static void put_direct_router(FILE *t)
{
	fputs("\n[[connector]]\nname = \"direct\"\nproto = \"direct\"\n"
	      "\n[[router]]\nname = \"main\"\ndefault = \"direct\"\n",
	      t);
}

/* -x/--upstream-proxy: the proto of a [[connector]] for the URL, or NULL. */
static const char *upstream_proto(const char *url)
{
	if (strncasecmp(url, "socks5://", 9) == 0 || strncasecmp(url, "socks5h://", 10) == 0)
		return "socks5";
	if (strncasecmp(url, "http://", 7) == 0)
		return "http";
	return NULL;
}

/* The dialing side's router: through the upstream proxy when -x applies. */
static void put_egress_router(const struct cli *c, FILE *t, bool dials)
{
	if (!dials || !c->upstream || !*c->upstream) {
		put_direct_router(t);
		return;
	}
	fputs("\n[[connector]]\nname = \"upstream\"\n", t);
	put_str(t, "proto", upstream_proto(c->upstream));
	put_str(t, "url", c->upstream);
	fputs("\n[[router]]\nname = \"main\"\ndefault = \"upstream\"\n", t);
}

/* "ip:port" for a listener; Go listens everywhere on an empty host. */
static int endpoint(const struct cli *c, const char *flag, const char *host, long port, char *buf, size_t len)
{
	tb_addr_t a;

	if (!*host)
		host = "0.0.0.0";
	else if (strcmp(host, "localhost") == 0)
		host = "127.0.0.1";
	if (tb_addr_parse_ip(host, &a) < 0)
		return usage_err(c, "%s: expected an IP address, got '%s'", flag, host);
	a.port = (uint16_t)port;
	tb_addr_str(&a, buf, len);
	return 0;
}

static bool socks_auth(const struct cli *c)
{
	bool u = c->user && *c->user, p = c->pass && *c->pass;

	/* §7: used only when both are set. */
	if (u != p)
		tb_warn("linksocks: a SOCKS5 username or password alone: no authentication");
	return u && p;
}

/* A flag tunnelbox cannot honour yet: an error where the reference would
 * use it, a warning where the reference ignores it too. */
static int unsupported(const struct cli *c, bool set, bool effective, const char *flag, const char *why)
{
	if (!set)
		return 0;
	if (effective)
		return usage_err(c, "%s: %s", flag, why);
	tb_warn("linksocks %s: %s has no effect here (as in the reference); ignored", c->cmd, flag);
	return 0;
}

static bool given(const char *s)
{
	return s && *s;
}

/* -b: the reference's batching buffer B (§4.2) is our largest Data message. */
static void put_batch(const struct cli *c, FILE *t)
{
	long b = c->buffer_size;

	if (b == 0 || b == 1048576)
		return;
	if (b < 1024 || b > (long)TB_LS_BATCH_MAX) {
		b = b < 1024 ? 1024 : (long)TB_LS_BATCH_MAX;
		tb_warn("linksocks server: -b %ld: Data messages are batched up to %ld bytes", c->buffer_size, b);
	}
	fprintf(t, "batch_max = %ld\n", b);
}

static int server_text(struct cli *c, FILE *t)
{
	char ep[TB_ADDR_STRLEN], socks[TB_ADDR_STRLEN];
	uint8_t r[RANDOM_TOKEN_BYTES];
	int rc;

	if ((rc = unsupported(c, given(c->upstream) && !upstream_proto(c->upstream), !c->reverse,
			      "-x/--upstream-proxy", NO_PROXY)) ||
	    (rc = unsupported(c, given(c->upstream) && c->reverse, false, "-x/--upstream-proxy", NO_PROXY)) ||
	    (rc = endpoint(c, "-H/--ws-host", c->ws_host, c->ws_port, ep, sizeof(ep))) ||
	    (rc = endpoint(c, "-s/--socks-host", c->socks_host, c->socks_port, socks, sizeof(socks))))
		return rc;
	if (given(c->api_key)) {
		/* §7: with an API key the reference ignores every CLI token;
		 * tokens come from POST /api/token (§8), their SOCKS5 ports
		 * on -s's host. */
		fputs("# linksocks server -k, from the command line\n", t);
		fputs("[[listener]]\nname = \"linksocks\"\nproto = \"linksocks\"\n", t);
		put_str(t, "endpoint", ep);
		fputs("router = \"main\"\n", t);
		if (c->fast_open)
			fputs("fast_open = true\n", t);
		put_batch(c, t);
		put_str(t, "api_key", c->api_key);
		if (given(c->socks_host))
			put_str(t, "api_socks_host", c->socks_host);
		put_egress_router(c, t, true); /* API forward tokens dial */
		return 0;
	}
	if (!given(c->token)) {
		if (tb_port_random(r, sizeof(r)) < 0)
			return 1;
		for (size_t i = 0; i < sizeof(r); i++)
			snprintf(c->random_token + 2 * i, 3, "%02x", r[i]);
		c->token = c->random_token;
	}
	/* §7: agent mode; with -r and without -a a connector token exists,
	 * random when -c is not given. */
	if (c->reverse && !c->autonomy && !given(c->conn_token)) {
		if (tb_port_random(r, sizeof(r)) < 0)
			return 1;
		for (size_t i = 0; i < sizeof(r); i++)
			snprintf(c->random_conn + 2 * i, 3, "%02x", r[i]);
		c->conn_token = c->random_conn;
	}
	if (!c->reverse && given(c->conn_token))
		tb_warn("linksocks server: -c has no effect without -r (as in the reference); ignored");
	fprintf(t, "# linksocks server%s, from the command line\n", c->reverse ? " -r" : "");
	fputs("[[listener]]\nname = \"linksocks\"\nproto = \"linksocks\"\n", t);
	put_str(t, "endpoint", ep);
	fputs("router = \"main\"\n", t);
	if (c->fast_open)
		fputs("fast_open = true\n", t);
	put_batch(c, t);
	if (!c->reverse) {
		fputs("tokens = [", t);
		put_quoted(t, c->token);
		fputs("]\n", t);
	} else {
		fputs("\n[[listener.reverse]]\n", t);
		put_str(t, "token", c->token);
		put_str(t, "socks", socks);
		if (socks_auth(c)) {
			put_str(t, "user", c->user);
			put_str(t, "pass", c->pass);
		}
		if (c->autonomy) {
			/* §4.5: providers manage the connector tokens. */
			fputs("autonomy = true\n", t);
		} else {
			fputs("\n[[listener.connector]]\n", t);
			put_str(t, "token", c->conn_token);
			put_str(t, "reverse", c->token);
		}
	}
	put_egress_router(c, t, !c->reverse);
	return 0;
}

/* Go's getEnvAny: the first of the names that is set and not empty. */
static const char *env_any(const char *upper, const char *lower, const char **name)
{
	const char *v = getenv(upper);

	*name = upper;
	if (v && *v)
		return v;
	*name = lower;
	v = getenv(lower);
	return v && *v ? v : NULL;
}

/* §2.2: the WebSocket dial honours http_proxy/https_proxy as the reference
 * (Go's http.ProxyFromEnvironment) unless -E. Decided here, for the URL's
 * host, and written as `proxy = ...`: the loopback and NO_PROXY exemptions
 * depend on it. 0, or a usage error. */
static int env_proxy(struct cli *c, char *out, size_t cap)
{
	const char *http_name, *https_name, *no_name, *name;
	const char *http = env_any("HTTP_PROXY", "http_proxy", &http_name);
	const char *https = env_any("HTTPS_PROXY", "https_proxy", &https_name);
	const char *no = env_any("NO_PROXY", "no_proxy", &no_name);
	tb_ls_url_t *u;
	int rc;

	out[0] = '\0';
	if (c->no_env_proxy || (!http && !https))
		return 0;
	if (!(u = malloc(sizeof(*u))))
		return 1;
	if (tb_ls_url_parse(c->url, u) < 0) {
		free(u); /* the configuration check reports the URL */
		return 0;
	}
	name = u->tls ? https_name : http_name;
	if (!u->tls && http && getenv("REQUEST_METHOD")) {
		/* Go refuses HTTP_PROXY in a CGI environment (httpoxy). */
		tb_warn("linksocks: REQUEST_METHOD is set (CGI): %s ignored", name);
		http = NULL;
	}
	rc = tb_ls_proxy_for(u, http, https, no, out, cap);
	free(u);
	if (rc == TB_ENOTSUP)
		return usage_err(c, "%s: an https:// proxy is not supported; use http:// or socks5://, or -E",
				 name);
	if (rc < 0) {
		/* Go ignores a value it cannot parse; say so at least. */
		tb_warn("linksocks: %s: not a proxy URL; ignored", name);
		out[0] = '\0';
	}
	return 0;
}

static void put_client_keys(const struct cli *c, FILE *t, const char *proxy)
{
	long threads = c->threads;

	/* §2.6: below 0 means one per CPU, 0 means 1. */
	if (threads < 0)
		threads = sysconf(_SC_NPROCESSORS_ONLN);
	if (threads < 1)
		threads = 1;
	if (threads > THREADS_MAX) {
		tb_warn("linksocks: %ld threads capped to %d", threads, THREADS_MAX);
		threads = THREADS_MAX;
	}
	put_str(t, "url", c->url);
	if (given(c->token))
		put_str(t, "token", c->token);
	if (threads != 1)
		fprintf(t, "threads = %ld\n", threads);
	if (c->fast_open)
		fputs("fast_open = true\n", t);
	if (c->no_reconnect)
		fputs("reconnect = false\n", t);
	if (c->retry_auth)
		fputs("retry_auth = true\n", t);
	if (*proxy)
		put_str(t, "proxy", proxy); /* from the environment */
}

static int client_text(struct cli *c, FILE *t)
{
	char socks[TB_ADDR_STRLEN], proxy[TB_LS_PROXY_URL_MAX];
	int rc;

	if ((rc = unsupported(c, given(c->upstream) && !upstream_proto(c->upstream), c->reverse,
			      "-x/--upstream-proxy", NO_PROXY)) ||
	    (rc = unsupported(c, given(c->upstream) && !c->reverse, false, "-x/--upstream-proxy",
			      NO_PROXY)) ||
	    (rc = env_proxy(c, proxy, sizeof(proxy))))
		return rc;
	fprintf(t, "# linksocks %s, from the command line\n", c->cmd);
	if (c->reverse) {
		fputs("[[listener]]\nname = \"provider\"\nproto = \"linksocks-provider\"\nrouter = \"main\"\n",
		      t);
		put_client_keys(c, t, proxy);
		if (given(c->conn_token))
			put_str(t, "connector_token", c->conn_token);
		put_egress_router(c, t, true);
		return 0;
	}
	if ((rc = endpoint(c, "-s/--socks-host", c->socks_host, c->socks_port, socks, sizeof(socks))))
		return rc;
	fputs("[[listener]]\nname = \"socks\"\nproto = \"socks5\"\n", t);
	put_str(t, "endpoint", socks);
	fputs("router = \"main\"\n", t);
	if (socks_auth(c)) {
		fputs("auth = { user = ", t);
		put_quoted(t, c->user);
		fputs(", pass = ", t);
		put_quoted(t, c->pass);
		fputs(" }\n", t);
	}
	fputs("\n[[connector]]\nname = \"linksocks\"\nproto = \"linksocks\"\n", t);
	put_client_keys(c, t, proxy);
	fputs("\n[[router]]\nname = \"main\"\ndefault = \"linksocks\"\n", t);
	return 0;
}

/* What the reference prints at start-up; a generated token is known only
 * from here. */
static void announce(const struct cli *c)
{
	if (c->role != SRV)
		return;
	tb_info("Configuration:");
	if (given(c->api_key)) {
		tb_info("  API: enabled at /api/* (command-line tokens ignored)");
		return;
	}
	tb_info("  Mode: %s", c->reverse ? "reverse proxy (SOCKS5 on server -> client -> network)" :
					   "forward proxy (SOCKS5 on client -> server -> network)");
	tb_info("  Token: %s", c->token);
	if (c->reverse && c->autonomy) {
		tb_info("  Connector autonomy: providers add their own connector tokens");
	} else if (c->reverse) {
		tb_info("  SOCKS5 port: %ld", c->socks_port);
		tb_info("  Connector token: %s", c->conn_token);
	}
}

/* ---- commands ---- */

static int run_command(struct cli *c, int argc, char **argv)
{
	char *text = NULL;
	size_t len = 0;
	FILE *t;
	int rc, level;

	if ((rc = parse_flags(c, argc, argv)) >= 0 || (rc = apply_env(c)) >= 0)
		return rc;
	if (c->provider)
		c->reverse = true; /* as the reference: `provider -r=false` still provides */
	level = c->debug > 0 ? TB_LOG_DEBUG : TB_LOG_INFO;
	tb_log_init(level, false, "linksocks");
	if (!(t = open_memstream(&text, &len)))
		return 1;
	rc = c->role == SRV ? server_text(c, t) : client_text(c, t);
	if (fclose(t) != 0 && rc == 0)
		rc = 1;
	if (rc == 0 && c->print_config) {
		fputs(text, stdout);
	} else if (rc == 0) {
		announce(c);
		rc = tb_main_run_text("linksocks", text, level);
	}
	free(text);
	return rc;
}

static const char *mode_command(const char *mode)
{
	static const char *const map[][2] = {
		{"server", "server"},	    {"client", "client"},     {"forward", "client"},
		{"connector", "connector"}, {"provider", "provider"}, {"reverse", "provider"},
	};
	size_t n;

	mode = trim(mode, &n);
	for (size_t i = 0; i < TB_ARRAY_SIZE(map); i++)
		if (strlen(map[i][0]) == n && strncasecmp(mode, map[i][0], n) == 0)
			return map[i][1];
	return NULL;
}

/* `help [command]`. */
static int help_command(int argc, char **argv)
{
	const char *cmd = argc > 2 ? mode_command(argv[2]) : NULL;

	if (!cmd) {
		root_help();
		return 0;
	}
	return command_help(strcmp(cmd, "server") == 0 ? SRV : CLI, cmd);
}

static int dispatch(int argc, char **argv)
{
	struct cli c = {
		.cmd = argc > 1 ? argv[1] : "",
		.url = "ws://localhost:8765",
		.ws_host = "0.0.0.0",
		.ws_port = 8765,
		.socks_host = "127.0.0.1",
		.socks_port = 9870,
		.threads = 1,
	};
	int rc;

	if (argc < 2 || strcmp(c.cmd, "-h") == 0 || strcmp(c.cmd, "--help") == 0)
		return help_command(1, argv);
	if (strcmp(c.cmd, "help") == 0)
		return help_command(argc, argv);
	if (strcmp(c.cmd, "version") == 0)
		return print_version();
	c.provider = strcmp(c.cmd, "provider") == 0;
	if (strcmp(c.cmd, "server") == 0) {
		c.role = SRV;
	} else if (c.provider || strcmp(c.cmd, "client") == 0 || strcmp(c.cmd, "connector") == 0) {
		c.role = CLI;
	} else {
		fprintf(stderr, "linksocks: unknown command \"%s\"\nRun 'linksocks --help' for usage.\n",
			c.cmd);
		return 2;
	}
	rc = run_command(&c, argc - 1, argv + 1);
	for (unsigned i = 0; i < c.nowned; i++)
		free(c.owned[i]);
	return rc;
}

int tb_linksocks_main(int argc, char **argv)
{
	const char *env = getenv("LINKSOCKS_MODE"), *cmd;
	char **args;
	int rc;

	/* §7: LINKSOCKS_MODE supplies the command when argv[1] is missing or a flag. */
	if ((argc > 1 && argv[1][0] != '-') || !env || !(cmd = mode_command(env)))
		return dispatch(argc, argv);
	if (!(args = calloc((size_t)argc + 2, sizeof(*args))))
		return 1;
	args[0] = argv[0];
	args[1] = (char *)cmd;
	memcpy(args + 2, argv + 1, (size_t)(argc - 1) * sizeof(*args));
	rc = dispatch(argc + 1, args);
	free(args);
	return rc;
}
