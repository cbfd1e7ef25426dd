/* test_lwipopts.c: port/lwip/lwipopts.h derives lwIP's options from Kconfig.
 *
 * Each case writes a generated/config.h that includes this build's real one
 * and overrides a few lwIP symbols, then compiles lwIP's core/init.c (where
 * lwIP keeps its compile-time sanity checks), tcp.c, mem.c and memp.c against
 * it with -fsyntax-only. Good combinations must compile; impossible ones must
 * stop at lwipopts.h's #error, whose message is checked. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "generated/config.h"

struct combo {
	const char *name;
	const char *overrides; /* lines appended to the config header */
	const char *error;     /* NULL: must compile; else a substring of the #error */
};

static const struct combo combos[] = {
	{"board defaults", "", NULL},
	{"small router: no IPv6, no DNS, heap model, 536-byte MSS",
	 "#define ENABLE_LWIP_IPV6 0\n#define ENABLE_LWIP_DNS 0\n#define ENABLE_LWIP_MEM_HEAP 1\n"
	 "#define ENABLE_LWIP_MEM_POOLS 0\n#define CONFIG_LWIP_TCP_MSS 536\n#define CONFIG_LWIP_TCP_WND 2920\n"
	 "#define CONFIG_LWIP_TCP_SND_BUF 2920\n#define CONFIG_LWIP_TCP_PCBS 4\n#define CONFIG_LWIP_UDP_PCBS 2\n",
	 NULL},
	{"lwIP port with ARP and DNS, pools",
	 "#define ENABLE_PORT_LWIP 1\n#define ENABLE_LWIP_DNS 1\n#define ENABLE_LWIP_IPV6 1\n", NULL},
	{"window scaling: 256 KiB window, 128 KiB send buffer",
	 "#define ENABLE_LWIP_WND_SCALE 1\n#define CONFIG_LWIP_TCP_WND 262144\n#define CONFIG_LWIP_TCP_SND_BUF 131072\n",
	 NULL},
	{"explicit sizes, no checksums",
	 "#define ENABLE_LWIP_CHECKSUM_CHECK 0\n#define ENABLE_LWIP_CHECKSUM_GEN 0\n#define CONFIG_LWIP_MEM_SIZE_KB 512\n"
	 "#define CONFIG_LWIP_PBUF_POOL_SIZE 200\n#define CONFIG_LWIP_TCP_SEGS 1000\n#define CONFIG_LWIP_TCP_WND 65535\n"
	 "#define CONFIG_LWIP_TCP_SND_BUF 65535\n",
	 NULL},
	{"128 KiB window without window scaling",
	 "#define ENABLE_LWIP_WND_SCALE 0\n#define CONFIG_LWIP_TCP_WND 131072\n", "needs CONFIG_LWIP_WND_SCALE"},
	{"fewer segments than one send queue",
	 "#define CONFIG_LWIP_TCP_SND_BUF 65535\n#define CONFIG_LWIP_TCP_MSS 1460\n#define CONFIG_LWIP_TCP_SEGS 16\n",
	 "below one full send queue"},
	{"lwIP port for jumbo frames: 8960-byte MSS, window scaling (the linux-lwip board)",
	 "#define ENABLE_PORT_LWIP 1\n#define ENABLE_LWIP_WND_SCALE 1\n#define CONFIG_LWIP_TCP_MSS 8960\n"
	 "#define CONFIG_LWIP_TCP_WND 262144\n#define CONFIG_LWIP_TCP_SND_BUF 131072\n",
	 NULL},
	{"largest MSS the Kconfig range allows (16000)",
	 "#define ENABLE_LWIP_WND_SCALE 1\n#define CONFIG_LWIP_TCP_MSS 16000\n#define CONFIG_LWIP_TCP_WND 262144\n",
	 NULL},
	{"receive pool smaller than the window",
	 "#define CONFIG_LWIP_TCP_WND 65535\n#define CONFIG_LWIP_PBUF_POOL_SIZE 8\n", "cannot hold one receive window"},
};

/* The symbols a case may override, undefined first so redefinition is clean. */
static const char *const undefs[] = {
	"ENABLE_LWIP_IPV6", "ENABLE_LWIP_DNS", "ENABLE_LWIP_MEM_HEAP", "ENABLE_LWIP_MEM_POOLS",
	"ENABLE_PORT_LWIP", "ENABLE_LWIP_WND_SCALE", "ENABLE_LWIP_CHECKSUM_CHECK", "ENABLE_LWIP_CHECKSUM_GEN",
	"CONFIG_LWIP_TCP_MSS", "CONFIG_LWIP_TCP_WND", "CONFIG_LWIP_TCP_SND_BUF", "CONFIG_LWIP_TCP_PCBS",
	"CONFIG_LWIP_UDP_PCBS", "CONFIG_LWIP_MEM_SIZE_KB", "CONFIG_LWIP_PBUF_POOL_SIZE", "CONFIG_LWIP_TCP_SEGS",
};

static char tmpdir[64];

static int setup(void **state)
{
	char cmd[256];

	(void)state;
	snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", TB_LWIP_CC);
	if (system(cmd) != 0)
		return 0; /* no compiler here (a target board): every case skips */
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/tb-lwipopts-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	snprintf(cmd, sizeof(cmd), "%s/generated", tmpdir);
	assert_int_equal(mkdir(cmd, 0700), 0);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	if (tmpdir[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		assert_int_equal(system(cmd), 0);
	}
	return 0;
}

static bool file_contains(const char *path, const char *needle)
{
	static char text[64 * 1024];
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return false;
	n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	return strstr(text, needle) != NULL;
}

static void run_combo(const struct combo *c)
{
	char path[128], log[128], cmd[2048];
	FILE *f;
	int rc;

	if (!tmpdir[0])
		skip();
	snprintf(path, sizeof(path), "%s/generated/config.h", tmpdir);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "#include \"%s\"\n", TB_GEN_CONFIG);
	for (size_t i = 0; i < sizeof(undefs) / sizeof(undefs[0]); i++)
		if (strstr(c->overrides, undefs[i]))
			fprintf(f, "#undef %s\n", undefs[i]);
	fputs(c->overrides, f);
	/* The tun2socks hooks resize pools for their own sessions: only the
	 * board's own combination sees them. */
	if (c != &combos[0])
		fputs("#undef ENABLE_TUN2SOCKS\n#define ENABLE_TUN2SOCKS 0\n", f);
	fclose(f);

	snprintf(log, sizeof(log), "%s/cc.log", tmpdir);
	snprintf(cmd, sizeof(cmd),
		 "cd '%s' && for f in core/init.c core/tcp.c core/mem.c core/memp.c core/ipv4/etharp.c; do "
		 "%s -std=gnu11 -fsyntax-only -Wall -Werror -Wno-address -I'%s' -I'%s/port/lwip' -I'%s/src/include' "
		 "-I'%s/include' -D_GNU_SOURCE src/$f || exit 1; done >'%s' 2>&1",
		 TB_LWIP_DIR, TB_LWIP_CC, tmpdir, TB_SRCDIR, TB_LWIP_DIR, TB_SRCDIR, log);
	rc = system(cmd);
	if (c->error == NULL) {
		if (rc != 0) {
			snprintf(cmd, sizeof(cmd), "cat '%s' >&2", log);
			(void)system(cmd);
			fail_msg("'%s' does not compile", c->name);
		}
	} else {
		assert_int_not_equal(rc, 0);
		if (!file_contains(log, c->error))
			fail_msg("'%s' failed, but not with \"%s\"", c->name, c->error);
	}
}

#define COMBO_TEST(i)                                                                              \
	static void test_combo_##i(void **state)                                                   \
	{                                                                                          \
		(void)state;                                                                       \
		print_message("# %s\n", combos[i].name);                                           \
		run_combo(&combos[i]);                                                             \
	}
COMBO_TEST(0)
COMBO_TEST(1)
COMBO_TEST(2)
COMBO_TEST(3)
COMBO_TEST(4)
COMBO_TEST(5)
COMBO_TEST(6)
COMBO_TEST(7)
COMBO_TEST(8)
COMBO_TEST(9)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_combo_0), cmocka_unit_test(test_combo_1), cmocka_unit_test(test_combo_2),
		cmocka_unit_test(test_combo_3), cmocka_unit_test(test_combo_4), cmocka_unit_test(test_combo_5),
		cmocka_unit_test(test_combo_6), cmocka_unit_test(test_combo_7), cmocka_unit_test(test_combo_8),
		cmocka_unit_test(test_combo_9),
	};

	_Static_assert(sizeof(combos) / sizeof(combos[0]) == 10, "one test per combination");
	return cmocka_run_group_tests(tests, setup, teardown);
}
