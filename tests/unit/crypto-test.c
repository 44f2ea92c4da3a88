/* SPDX-License-Identifier: ISC */
/* Unit tests for crypto.c: base64 against RFC 4648 vectors, padding rules, long input in
 * chunks, and HMAC-SHA256 against RFC 4231. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "tap.h"

static const struct {
	const char *plain;
	const char *b64;
} vectors[] = {
	{ "", "" },
	{ "f", "Zg==" },
	{ "fo", "Zm8=" },
	{ "foo", "Zm9v" },
	{ "foob", "Zm9vYg==" },
	{ "fooba", "Zm9vYmE=" },
	{ "foobar", "Zm9vYmFy" },
};

START_TEST(base64_rfc4648)
{
	size_t i, n;
	char *enc;
	unsigned char *dec;

	for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		enc = crypto_base64_encode(vectors[i].plain, strlen(vectors[i].plain));
		ck_assert_str_eq(enc, vectors[i].b64);
		free(enc);
		dec = crypto_base64_decode(vectors[i].b64, strlen(vectors[i].b64), &n);
		ck_assert_ptr_nonnull(dec);
		ck_assert_uint_eq(n, strlen(vectors[i].plain));
		ck_assert_mem_eq(dec, vectors[i].plain, n);
		ck_assert_int_eq(dec[n], '\0');
		free(dec);
	}
}
END_TEST

START_TEST(base64_unpadded)
{
	static const char *const in[] = { "Zg", "Zm8", "Zm9vYg", "Zm9vYmE" };
	static const char *const out[] = { "f", "fo", "foob", "fooba" };
	unsigned char *dec;
	size_t i, n;

	for (i = 0; i < 4; i++) {
		dec = crypto_base64_decode(in[i], strlen(in[i]), &n);
		ck_assert_ptr_nonnull(dec);
		ck_assert_uint_eq(n, strlen(out[i]));
		ck_assert_mem_eq(dec, out[i], n);
		free(dec);
	}
}
END_TEST

START_TEST(base64_invalid)
{
	static const char *const bad[] = { "Z", "Zg=", "Zg===", "=Zg=", "Zm9v!", "Zm9vYg=a",
		"Zm 9v", "Zm9vY===", "Zm-_", "Zm9vYmFy\n" };
	size_t i, n;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(crypto_base64_decode(bad[i], strlen(bad[i]), &n) == NULL,
		    "accepted \"%s\"", bad[i]);
	/* A NUL inside the given length is not base64 either. */
	ck_assert_ptr_null(crypto_base64_decode("Zm\0v", 4, &n));
}
END_TEST

/* Binary data longer than one EVP chunk survives a round trip, at every tail length. */
START_TEST(base64_round_trip_long)
{
	size_t len = 200000 + (size_t)_i, i, n;
	unsigned char *data = malloc(len), *dec;
	char *enc;

	for (i = 0; i < len; i++)
		data[i] = (unsigned char)(i * 7 + i / 251);
	enc = crypto_base64_encode(data, len);
	ck_assert_uint_eq(strlen(enc), 4 * ((len + 2) / 3));
	dec = crypto_base64_decode(enc, strlen(enc), &n);
	ck_assert_ptr_nonnull(dec);
	ck_assert_uint_eq(n, len);
	ck_assert_mem_eq(dec, data, len);
	free(enc);
	free(dec);
	free(data);
}
END_TEST

static void
hex(const unsigned char *mac, char out[2 * CRYPTO_SHA256_LEN + 1])
{
	size_t i;

	for (i = 0; i < CRYPTO_SHA256_LEN; i++)
		snprintf(out + 2 * i, 3, "%02x", mac[i]);
}

START_TEST(hmac_rfc4231)
{
	unsigned char mac[CRYPTO_SHA256_LEN], key1[20], key6[131];
	char h[2 * CRYPTO_SHA256_LEN + 1];
	const char *m6 = "Test Using Larger Than Block-Size Key - Hash Key First";

	/* Test case 2 */
	ck_assert_int_eq(crypto_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, mac), 0);
	hex(mac, h);
	ck_assert_str_eq(h, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
	/* Test case 1 */
	memset(key1, 0x0b, sizeof(key1));
	ck_assert_int_eq(crypto_hmac_sha256(key1, sizeof(key1), "Hi There", 8, mac), 0);
	hex(mac, h);
	ck_assert_str_eq(h, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
	/* Test case 6: a key longer than the block */
	memset(key6, 0xaa, sizeof(key6));
	ck_assert_int_eq(crypto_hmac_sha256(key6, sizeof(key6), m6, strlen(m6), mac), 0);
	hex(mac, h);
	ck_assert_str_eq(h, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}
END_TEST

static Suite *
crypto_suite(void)
{
	Suite *s = suite_create("crypto");
	TCase *tc = tcase_create("base64");

	tcase_add_test(tc, base64_rfc4648);
	tcase_add_test(tc, base64_unpadded);
	tcase_add_test(tc, base64_invalid);
	tcase_add_loop_test(tc, base64_round_trip_long, 0, 3);
	suite_add_tcase(s, tc);
	tc = tcase_create("hmac");
	tcase_add_test(tc, hmac_rfc4231);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tap_run(crypto_suite());
}
