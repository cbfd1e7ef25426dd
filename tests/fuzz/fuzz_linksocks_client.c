/* fuzz_linksocks_client.c: the client dial's parsers (linksocks_client.h):
 * the configured URL, a redirect's Location (from the network) resolved
 * against it, NO_PROXY matching and proxy URLs.
 *
 * Input: one selector byte, then text (cut at the first NUL):
 *   0  a URL for tb_ls_url_parse, then as a Location against a fixed base
 *   1  a Location against ws://base:80/b/c/d;p?q
 *   2  "NO_PROXY\nHOST", the port from the text's length
 *   3  a proxy URL, whose canonical form must read back the same */
#include <stdlib.h>
#include <string.h>

#include "tb/linksocks_client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_url(const tb_ls_url_t *u)
{
	if (u->path[0] != '/' || strlen(u->path) >= sizeof(u->path) || strlen(u->query) >= sizeof(u->query) ||
	    !u->host[0] || !u->hosthdr[0] || u->port == 0)
		abort();
	/* What goes into the request line is visible ASCII only. */
	for (const char *p = u->path; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			abort();
	for (const char *p = u->query; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			abort();
}

static void resolve(const char *loc)
{
	static tb_ls_url_t base, out, again;

	if (tb_ls_url_parse("ws://base:80/b/c/d;p?q", &base) != 0)
		abort();
	if (tb_ls_url_resolve(&base, loc, &out) != 0)
		return;
	check_url(&out);
	/* The result resolves onto itself as an absolute-path reference. */
	tb_ls_url_resolve(&out, out.path, &again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static tb_ls_url_t u;
	char text[4096], out[TB_LS_PROXY_URL_MAX], out2[TB_LS_PROXY_URL_MAX], *nl;
	size_t n;
	int kind;

	if (size < 1)
		return 0;
	n = size - 1 < sizeof(text) - 1 ? size - 1 : sizeof(text) - 1;
	memcpy(text, data + 1, n);
	text[n] = '\0';
	switch (data[0] & 3) {
	case 0:
		if (tb_ls_url_parse(text, &u) == 0)
			check_url(&u);
		resolve(text);
		break;
	case 1:
		resolve(text);
		break;
	case 2:
		if ((nl = strchr(text, '\n')) != NULL) {
			*nl = '\0';
			tb_ls_proxy_bypass(text, nl + 1, (uint16_t)n);
		}
		tb_ls_proxy_bypass(NULL, text, 80);
		break;
	case 3:
		kind = tb_ls_proxy_url(text, out, sizeof(out));
		if (kind > 0 && (tb_ls_proxy_url(out, out2, sizeof(out2)) != kind || strcmp(out, out2) != 0))
			abort();
		break;
	}
	return 0;
}
