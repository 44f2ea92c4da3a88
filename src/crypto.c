/* SPDX-License-Identifier: ISC */
/* Base64 and HMAC-SHA256 over OpenSSL libcrypto; the only file that includes OpenSSL.
 * EVP_EncodeBlock/EVP_DecodeBlock take int lengths, so long input goes in chunks. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "crypto.h"
#include "xmalloc.h"

#define CRYPTO_B64_CHARS    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
#define CRYPTO_ENCODE_CHUNK (3 * 16384) /* bytes in, a multiple of 3 */
#define CRYPTO_DECODE_CHUNK (4 * 16384) /* characters in, a multiple of 4 */

char *
crypto_base64_encode(const void *data, size_t len)
{
	const unsigned char *in = data;
	char *out = xmalloc(4 * ((len + 2) / 3) + 1);
	size_t i, o = 0, c;

	out[0] = '\0';
	for (i = 0; i < len; i += c) {
		c = len - i < CRYPTO_ENCODE_CHUNK ? len - i : CRYPTO_ENCODE_CHUNK;
		o += (size_t)EVP_EncodeBlock((unsigned char *)out + o, in + i, (int)c);
	}
	out[o] = '\0';
	return out;
}

/* Characters of data before the padding of S, or -1 when S is not base64. */
static long long
crypto_base64_span(const char *s, size_t len)
{
	size_t n = 0, i;

	while (n < len && s[n] != '\0' && strchr(CRYPTO_B64_CHARS, s[n]) != NULL)
		n++;
	if (len - n > 2 || n % 4 == 1)
		return -1;
	for (i = n; i < len; i++) {
		if (s[i] != '=')
			return -1;
	}
	if (len > n && len % 4 != 0)
		return -1;
	return (long long)n;
}

unsigned char *
crypto_base64_decode(const char *s, size_t len, size_t *outlen)
{
	long long span = crypto_base64_span(s, len);
	size_t n, m, i, o = 0, c;
	unsigned char *out;
	char *padded;

	if (span < 0)
		return NULL;
	n = (size_t)span;
	m = (n + 3) / 4 * 4;
	padded = xmalloc(m);
	memcpy(padded, s, n);
	memset(padded + n, '=', m - n);
	out = xmalloc(m / 4 * 3 + 1);
	for (i = 0; i < m; i += c) {
		c = m - i < CRYPTO_DECODE_CHUNK ? m - i : CRYPTO_DECODE_CHUNK;
		if (EVP_DecodeBlock(out + o, (unsigned char *)padded + i, (int)c) < 0) {
			free(padded);
			free(out);
			return NULL;
		}
		o += c / 4 * 3;
	}
	free(padded);
	*outlen = o - (m - n); /* each '=' stands for one byte that is not there */
	out[*outlen] = '\0';
	return out;
}

int
crypto_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t msglen,
    unsigned char out[CRYPTO_SHA256_LEN])
{
	unsigned int outlen = 0;

	if (keylen > INT_MAX)
		return -1;
	if (HMAC(EVP_sha256(), key, (int)keylen, msg, msglen, out, &outlen) == NULL)
		return -1;
	return outlen == CRYPTO_SHA256_LEN ? 0 : -1;
}
