/*
 * Starts and stops tests/integration/s3/s3-front.js (s3rver behind a
 * SigV4-checking front) for the C integration tests. One front per test
 * process; it listens on 127.0.0.1 and exits when its stdin closes.
 */
#ifndef HL_TEST_S3FRONT_H
#define HL_TEST_S3FRONT_H

/*
 * Starts the front with one access key pair and the given buckets (nbuckets
 * >= 1). Returns NULL and sets *port when it runs, or the reason to skip the
 * tests: HL_SOURCE_ROOT unset, node or the s3rver package missing, or the
 * front not starting.
 */
const char *hl_test_s3front_start(const char *access_key, const char *secret_key,
                                  const char *const *buckets, int nbuckets, int *port);
/* Stops the front (closes its stdin, then kills it after 5 s). Safe to call twice. */
void hl_test_s3front_stop(void);

#endif
