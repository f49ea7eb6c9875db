/*
 * Helpers shared by the Snowflake tests (unit and integration).
 */
#ifndef HL_SF_TEST_H
#define HL_SF_TEST_H

#include <criterion/criterion.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <string.h>

/* A fresh 2048-bit RSA key as PKCS#8 PEM (malloc'ed); *keep (may be NULL) receives the key. */
static inline char *hl_sf_test_key_pem(EVP_PKEY **keep) {
  EVP_PKEY *k = EVP_RSA_gen(2048);
  cr_assert_not_null(k);
  BIO *b = BIO_new(BIO_s_mem());
  cr_assert(PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) == 1);
  char *data;
  long n = BIO_get_mem_data(b, &data);
  char *pem = strndup(data, (size_t)n);
  BIO_free(b);
  if (keep)
    *keep = k;
  else
    EVP_PKEY_free(k);
  return pem;
}

#endif
