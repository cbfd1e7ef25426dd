/* aesgcm.c: mbedTLS's own AEAD speed, the ceiling for linksocks over wss.
 *
 * Seals (and opens) BYTES of data in 16 KiB records, the way a TLS 1.2
 * record layer does: one AEAD call per record, a fresh 12-byte nonce per
 * record (4-byte salt + 8-byte counter), 13 bytes of additional data, a
 * 16-byte tag. Single-threaded, the same library the daemon links. Built
 * and run by tests/bench/run.sh:
 *
 *   cc -O2 -o aesgcm aesgcm.c -lmbedcrypto
 *   aesgcm [BYTES [SIDE]]     sizes take K, M, G suffixes
 *
 * AES-128-GCM and AES-256-GCM encryption run over BYTES (default 1G): that is
 * the ceiling the wss rows are compared with. The side measurements, over
 * SIDE bytes (default 256M, 0 skips them), are the same ciphers' decryption
 * (what the receiving end of a flow pays) and ChaCha20-Poly1305 both ways.
 * One line per cipher and direction:
 *   aead cipher=aes-128-gcm op=encrypt bytes=1073741824 seconds=0.512 MBps=2097.2
 * MB = 10^6 bytes. ChaCha20-Poly1305 is measured as well: it is the first
 * suite in mbedTLS 2.28's default preference list, so it is what two mbedTLS
 * peers negotiate unless one of them sets its own list. Exit status 0, or 1
 * if the library refused a key or an authentic record. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mbedtls/chachapoly.h>
#include <mbedtls/gcm.h>

#define RECORD 16384
#define TAG 16
#define AAD 13

static unsigned char g_in[RECORD], g_out[RECORD], g_back[RECORD];

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* TLS 1.2 AEAD nonce: implicit salt, then the 64-bit explicit part. */
static void make_nonce(unsigned char nonce[12], uint64_t seq)
{
	memcpy(nonce, "\x5a\x17\xc3\x01", 4);
	for (int i = 0; i < 8; i++)
		nonce[4 + i] = (unsigned char)(seq >> (56 - 8 * i));
}

/* seq_num(8) type(1) version(2) length(2), as TLS 1.2 authenticates. */
static void make_aad(unsigned char aad[AAD], uint64_t seq)
{
	for (int i = 0; i < 8; i++)
		aad[i] = (unsigned char)(seq >> (56 - 8 * i));
	aad[8] = 23, aad[9] = 3, aad[10] = 3;
	aad[11] = RECORD >> 8, aad[12] = RECORD & 0xff;
}

static void report(const char *cipher, const char *op, uint64_t bytes, double secs)
{
	printf("aead cipher=%s op=%s bytes=%" PRIu64 " seconds=%.3f MBps=%.1f\n", cipher, op, bytes, secs,
	       secs > 0 ? (double)bytes / secs / 1e6 : 0.0);
	fflush(stdout);
}

static int bench_gcm(unsigned keybits, uint64_t total, uint64_t side)
{
	mbedtls_gcm_context gcm;
	unsigned char key[32], nonce[12], aad[AAD], tag[TAG];
	char name[16];
	uint64_t seq, n = (total + RECORD - 1) / RECORD;
	double t0;
	int rc = 0;

	snprintf(name, sizeof(name), "aes-%u-gcm", keybits);
	for (unsigned i = 0; i < sizeof(key); i++)
		key[i] = (unsigned char)(i * 7 + 1);
	mbedtls_gcm_init(&gcm);
	if (mbedtls_gcm_setkey(&gcm, MBEDTLS_CIPHER_ID_AES, key, keybits) != 0) {
		fprintf(stderr, "aesgcm: %s: setkey failed\n", name);
		rc = 1;
		goto out;
	}
	t0 = now_s();
	for (seq = 0; seq < n; seq++) {
		make_nonce(nonce, seq);
		make_aad(aad, seq);
		if (mbedtls_gcm_crypt_and_tag(&gcm, MBEDTLS_GCM_ENCRYPT, RECORD, nonce, 12, aad, AAD, g_in, g_out,
					      TAG, tag) != 0) {
			fprintf(stderr, "aesgcm: %s: encryption failed\n", name);
			rc = 1;
			goto out;
		}
	}
	report(name, "encrypt", n * RECORD, now_s() - t0);
	/* Open the last sealed record over and over: every call must
	 * authenticate, so none of it can be skipped. */
	seq = n - 1;
	make_nonce(nonce, seq);
	make_aad(aad, seq);
	n = (side + RECORD - 1) / RECORD;
	if (n == 0)
		goto out;
	t0 = now_s();
	for (uint64_t i = 0; i < n; i++) {
		if (mbedtls_gcm_auth_decrypt(&gcm, RECORD, nonce, 12, aad, AAD, tag, TAG, g_out, g_back) != 0) {
			fprintf(stderr, "aesgcm: %s: an authentic record did not open\n", name);
			rc = 1;
			goto out;
		}
	}
	report(name, "decrypt", n * RECORD, now_s() - t0);
	if (memcmp(g_back, g_in, RECORD) != 0) {
		fprintf(stderr, "aesgcm: %s: round trip differs\n", name);
		rc = 1;
	}
out:
	mbedtls_gcm_free(&gcm);
	return rc;
}

static int bench_chachapoly(uint64_t total)
{
	mbedtls_chachapoly_context cp;
	unsigned char key[32], nonce[12], aad[AAD], tag[TAG];
	uint64_t seq, n = (total + RECORD - 1) / RECORD;
	double t0;
	int rc = 0;

	for (unsigned i = 0; i < sizeof(key); i++)
		key[i] = (unsigned char)(i * 5 + 3);
	mbedtls_chachapoly_init(&cp);
	if (mbedtls_chachapoly_setkey(&cp, key) != 0) {
		fprintf(stderr, "aesgcm: chacha20-poly1305: setkey failed\n");
		rc = 1;
		goto out;
	}
	t0 = now_s();
	for (seq = 0; seq < n; seq++) {
		make_nonce(nonce, seq);
		make_aad(aad, seq);
		if (mbedtls_chachapoly_encrypt_and_tag(&cp, RECORD, nonce, aad, AAD, g_in, g_out, tag) != 0) {
			fprintf(stderr, "aesgcm: chacha20-poly1305: encryption failed\n");
			rc = 1;
			goto out;
		}
	}
	report("chacha20-poly1305", "encrypt", n * RECORD, now_s() - t0);
	seq = n - 1;
	make_nonce(nonce, seq);
	make_aad(aad, seq);
	t0 = now_s();
	for (uint64_t i = 0; i < n; i++) {
		if (mbedtls_chachapoly_auth_decrypt(&cp, RECORD, nonce, aad, AAD, tag, g_out, g_back) != 0) {
			fprintf(stderr, "aesgcm: chacha20-poly1305: an authentic record did not open\n");
			rc = 1;
			goto out;
		}
	}
	report("chacha20-poly1305", "decrypt", n * RECORD, now_s() - t0);
	if (memcmp(g_back, g_in, RECORD) != 0) {
		fprintf(stderr, "aesgcm: chacha20-poly1305: round trip differs\n");
		rc = 1;
	}
out:
	mbedtls_chachapoly_free(&cp);
	return rc;
}

static uint64_t parse_size(const char *s, uint64_t min)
{
	char *end;
	uint64_t v = strtoull(s, &end, 10);
	switch (*end) {
	case 'K':
		v <<= 10, end++;
		break;
	case 'M':
		v <<= 20, end++;
		break;
	case 'G':
		v <<= 30, end++;
		break;
	}
	if (end == s || *end || *s == '-' || v < min || v > (64ull << 30)) {
		fputs("usage: aesgcm [BYTES [SIDE]]   (K/M/G suffixes, up to 64G;\n"
		      "       defaults 1G and 256M; SIDE 0 skips decryption and chacha20-poly1305)\n",
		      stderr);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	uint64_t total = argc > 1 ? parse_size(argv[1], RECORD) : 1ull << 30;
	uint64_t side = argc > 2 ? parse_size(argv[2], 0) : 256ull << 20;
	int rc = 0;

	if (argc > 3)
		parse_size("", 0); /* usage */

	for (unsigned i = 0; i < RECORD; i++)
		g_in[i] = (unsigned char)(i * 31 + 7);
	rc |= bench_gcm(128, total, side);
	rc |= bench_gcm(256, total, side);
	if (side)
		rc |= bench_chachapoly(side);
	return rc;
}
