/*
 * hl-api-token: local keys and tokens for hl-api-gateway (demo, tests,
 * benchmarks). Not for production: real tokens come from an identity
 * provider.
 *
 *   hl-api-token keygen --key-out KEY.json --jwks-out JWKS.json [--alg RS256|ES256] [--kid KID]
 *   hl-api-token mint (--key KEY.json | --hs256-secret S) --tenant T [--scope SCOPES]
 *                     [--sub S] [--iss I] [--aud A] [--ttl SECONDS] [--patient ID] [--nbf-in SECONDS]
 */
#include <cjose/cjose.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(void) {
  fputs("usage:\n"
        "  hl-api-token keygen --key-out KEY.json --jwks-out JWKS.json [--alg RS256|ES256] [--kid KID]\n"
        "  hl-api-token mint (--key KEY.json | --hs256-secret S) --tenant T [--scope S] [--sub S]\n"
        "                    [--iss I] [--aud A] [--ttl SECONDS] [--patient ID] [--nbf-in SECONDS]\n"
        "Defaults: iss https://healthlake.local/dev, aud healthlake-api, scope system/*.read, ttl 3600.\n",
        stderr);
}

static const char *arg(int argc, char **argv, const char *name, const char *def) {
  for (int i = 2; i + 1 < argc; i++)
    if (!strcmp(argv[i], name))
      return argv[i + 1];
  return def;
}

static int write_file(const char *path, const char *s) {
  FILE *f = fopen(path, "w");
  if (!f || fputs(s, f) < 0 || fputc('\n', f) < 0) {
    perror(path);
    if (f)
      fclose(f);
    return -1;
  }
  return fclose(f);
}

static int keygen(int argc, char **argv) {
  const char *key_out = arg(argc, argv, "--key-out", NULL), *jwks_out = arg(argc, argv, "--jwks-out", NULL);
  const char *alg = arg(argc, argv, "--alg", "RS256"), *kid = arg(argc, argv, "--kid", "dev-1");
  if (!key_out || !jwks_out || (strcmp(alg, "RS256") && strcmp(alg, "ES256"))) {
    usage();
    return 2;
  }
  cjose_err e;
  static const uint8_t exp[] = {1, 0, 1};
  cjose_jwk_t *k = !strcmp(alg, "RS256") ? cjose_jwk_create_RSA_random(2048, exp, 3, &e)
                                          : cjose_jwk_create_EC_random(CJOSE_JWK_EC_P_256, &e);
  if (!k || !cjose_jwk_set_kid(k, kid, strlen(kid), &e)) {
    fprintf(stderr, "hl-api-token: key generation failed: %s\n", e.message);
    return 1;
  }
  char *priv = cjose_jwk_to_json(k, true, &e), *pub = cjose_jwk_to_json(k, false, &e);
  json_t *pj = pub ? json_loads(pub, 0, NULL) : NULL, *sj = priv ? json_loads(priv, 0, NULL) : NULL;
  int rc = 1;
  if (pj && sj) {
    json_object_set_new(pj, "use", json_string("sig"));
    json_object_set_new(pj, "alg", json_string(alg));
    json_object_set_new(sj, "alg", json_string(alg));
    json_t *set = json_pack("{s:[O]}", "keys", pj);
    char *a = json_dumps(sj, JSON_COMPACT), *b = json_dumps(set, JSON_COMPACT);
    rc = (a && b && write_file(key_out, a) == 0 && write_file(jwks_out, b) == 0) ? 0 : 1;
    free(a);
    free(b);
    json_decref(set);
  }
  json_decref(pj);
  json_decref(sj);
  free(priv);
  free(pub);
  cjose_jwk_release(k);
  return rc;
}

static int mint(int argc, char **argv) {
  const char *keyf = arg(argc, argv, "--key", NULL), *secret = arg(argc, argv, "--hs256-secret", NULL);
  const char *tenant = arg(argc, argv, "--tenant", NULL);
  if ((!keyf && !secret) || !tenant) {
    usage();
    return 2;
  }
  cjose_err e;
  cjose_jwk_t *k = NULL;
  const char *alg = "HS256";
  char kid[128] = "";
  if (keyf) {
    json_t *kj = json_load_file(keyf, 0, NULL);
    const char *a = json_string_value(json_object_get(kj, "alg"));
    const char *kd = json_string_value(json_object_get(kj, "kid"));
    alg = a && !strcmp(a, "ES256") ? "ES256" : "RS256";
    snprintf(kid, sizeof kid, "%s", kd ? kd : "");
    char *s = kj ? json_dumps(kj, JSON_COMPACT) : NULL;
    k = s ? cjose_jwk_import(s, strlen(s), &e) : NULL;
    free(s);
    json_decref(kj);
  } else {
    k = cjose_jwk_create_oct_spec((const uint8_t *)secret, strlen(secret), &e);
  }
  if (!k) {
    fprintf(stderr, "hl-api-token: cannot load the key\n");
    return 1;
  }
  long ttl = atol(arg(argc, argv, "--ttl", "3600")), nbf_in = atol(arg(argc, argv, "--nbf-in", "0"));
  time_t now = time(NULL);
  json_t *claims = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I}", "iss",
                             arg(argc, argv, "--iss", "https://healthlake.local/dev"), "aud",
                             arg(argc, argv, "--aud", "healthlake-api"), "sub", arg(argc, argv, "--sub", "dev-user"),
                             "tenant", tenant, "scope", arg(argc, argv, "--scope", "system/*.read"), "iat",
                             (json_int_t)now, "nbf", (json_int_t)(now + nbf_in), "exp", (json_int_t)(now + ttl));
  const char *pat = arg(argc, argv, "--patient", NULL);
  if (pat)
    json_object_set_new(claims, "patient", json_string(pat));
  char *payload = json_dumps(claims, JSON_COMPACT);
  cjose_header_t *h = cjose_header_new(&e);
  cjose_header_set(h, CJOSE_HDR_ALG, alg, &e);
  cjose_header_set(h, "typ", "JWT", &e);
  if (kid[0])
    cjose_header_set(h, CJOSE_HDR_KID, kid, &e);
  cjose_jws_t *jws = cjose_jws_sign(k, h, (const uint8_t *)payload, strlen(payload), &e);
  const char *out = NULL;
  int rc = 1;
  if (jws && cjose_jws_export(jws, &out, &e)) {
    printf("%s\n", out);
    rc = 0;
  } else {
    fprintf(stderr, "hl-api-token: signing failed: %s\n", e.message);
  }
  cjose_jws_release(jws);
  cjose_header_release(h);
  free(payload);
  json_decref(claims);
  cjose_jwk_release(k);
  return rc;
}

int main(int argc, char **argv) {
  if (argc >= 2 && !strcmp(argv[1], "keygen"))
    return keygen(argc, argv);
  if (argc >= 2 && !strcmp(argv[1], "mint"))
    return mint(argc, argv);
  usage();
  return argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) ? 0 : 2;
}
