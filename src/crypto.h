/* SPDX-License-Identifier: ISC */
/* The little cryptography we need, over OpenSSL libcrypto: base64 and HMAC-SHA256. */
#ifndef CRYPTO_H
#define CRYPTO_H

#include <stddef.h>

#define CRYPTO_SHA256_LEN 32

/* Standard-alphabet, padded base64 of LEN bytes, NUL-terminated. Caller frees. */
char *crypto_base64_encode(const void *, size_t len);
/*
 * Decode LEN characters of standard-alphabet base64, padded or not. Returns the bytes
 * (NUL-terminated for convenience, *outlen without it) or NULL when the text is not
 * base64. Caller frees.
 */
unsigned char *crypto_base64_decode(const char *, size_t len, size_t *outlen);
/* HMAC-SHA256 of MSG under KEY into OUT. 0 or -1. */
int crypto_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t msglen,
    unsigned char out[CRYPTO_SHA256_LEN]);

#endif
