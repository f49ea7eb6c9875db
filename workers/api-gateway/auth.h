/*
 * Bearer JWT authentication and SMART on FHIR scopes.
 *
 * RS256 and ES256 tokens are verified against a JWKS (a file, and/or a URL
 * fetched with libcurl, cached and fetched again when a token names an
 * unknown kid, at most once per refresh interval); HS256 only with a
 * configured secret and allow_hs256. "none", any other alg, a key whose
 * type does not fit the alg (algorithm confusion) and "crit" headers are
 * refused. iss and aud must equal the configured values, exp is required,
 * exp and nbf are checked with a bounded clock skew. The tenant comes from
 * a configurable claim. Not thread-safe: one thread (the loop).
 */
#ifndef HL_API_AUTH_H
#define HL_API_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define HL_API_MAX_TOKEN_BYTES 8192

typedef struct hl_api_auth hl_api_auth;

typedef struct hl_api_auth_opts {
  const char *jwks_file;   /* may be NULL/"" */
  const char *jwks_url;    /* may be NULL/"" */
  const char *issuer;      /* required */
  const char *audience;    /* required */
  long skew_s;             /* allowed clock skew for exp/nbf, 0..300 */
  bool allow_hs256;
  const char *hs256_secret; /* used only with allow_hs256 (>= 32 bytes) */
  const char *tenant_claim; /* "tenant" */
  const char *ingest_scope; /* the scope of the ingestion API */
  long refresh_min_s;       /* least time between two JWKS URL fetches (<0: 30 s) */
  long fetch_timeout_ms;    /* JWKS URL fetch timeout (default 3000) */
} hl_api_auth_opts;

/* Who is calling and what they may do. */
typedef struct hl_api_principal {
  char sub[129];
  char tenant[65];
  char patient[65];       /* SMART launch patient ("" when none) */
  uint32_t read_broad;    /* types readable (read) under user/ or system/ scopes: bit i = hl_api_types[i] */
  uint32_t search_broad;  /* types searchable under user/ or system/ scopes */
  uint32_t read_patient;  /* types readable only within the patient's compartment */
  uint32_t search_patient;
  bool ingest;            /* holds the ingestion scope */
} hl_api_principal;

/*
 * Loads the keys (the JWKS file now; the URL now when given, a failure to
 * fetch it is logged and retried on use). 0, HL_ECONFIG (message in err),
 * -ENOMEM.
 */
int hl_api_auth_new(const hl_api_auth_opts *opts, hl_api_auth **out, char *err, size_t errlen);
hl_api_auth *hl_api_auth_free(hl_api_auth *a);

/*
 * Verifies an Authorization header value ("Bearer <jwt>"; NULL when
 * absent) at time now. 0 and *p filled, or HL_EPARSE/HL_ENOTFOUND-style
 * negative codes: every failure means 401; reason (a short word for metrics)
 * and err (detail for the OperationOutcome) are set.
 */
int hl_api_auth_verify(hl_api_auth *a, const char *authorization, time_t now, hl_api_principal *p,
                       const char **reason, char *err, size_t errlen);

/* Parses a SMART scope string (space-separated) into p (exposed for tests). */
void hl_api_scopes_parse(const char *scopes, const char *ingest_scope, hl_api_principal *p);

/* Number of keys loaded (tests). */
size_t hl_api_auth_nkeys(const hl_api_auth *a);

#endif
