/*
 * Unit tests of the S3 signer and XML reader.
 *
 * Every expected signature below is a published AWS test vector: the S3 API
 * reference pages "Authenticating Requests: Using the Authorization Header"
 * (examples GET Object, PUT Object, GET Bucket Lifecycle, Get Bucket (List
 * Objects)) and "Authenticating Requests: Using Query Parameters" (presigned
 * GET), and the IAM guide's signing-key derivation example. Nothing here was
 * computed by this code and pasted back.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "hl/error.h"
#include "hl/s3.h"
#include "hl_test.h"

HL_TEST_SUITE(s3);

#define AK "AKIAIOSFODNN7EXAMPLE"
#define SK "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define HOST "examplebucket.s3.amazonaws.com"
#define EMPTY_SHA "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static time_t may24(void) {
  struct tm tm = {.tm_year = 113, .tm_mon = 4, .tm_mday = 24};
  return timegm(&tm);
}

static hl_s3_sigv4 base(const char *method, const char *path) {
  hl_s3_sigv4 s = {.method = method, .path = path, .payload_hash = EMPTY_SHA, .region = "us-east-1",
                   .service = "s3", .access_key = AK, .secret_key = SK, .now = may24()};
  return s;
}

static const char *sig_of(const hl_buf *auth) {
  const char *p = strstr(auth->data, "Signature=");
  cr_assert(p, "no signature in %s", auth->data);
  return p + 10;
}

Test(s3, signing_key_matches_the_iam_example) {
  unsigned char k[32];
  hl_s3_sigv4_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "iam", k);
  char hex[65];
  for (int i = 0; i < 32; i++)
    snprintf(hex + 2 * i, 3, "%02x", k[i]);
  cr_assert_str_eq(hex, "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
}

Test(s3, get_object_example) {
  hl_s3_kv h[] = {{"Host", HOST}, {"Range", "bytes=0-9"}, {"x-amz-content-sha256", EMPTY_SHA},
                  {"x-amz-date", "20130524T000000Z"}};
  hl_s3_sigv4 s = base("GET", "/test.txt");
  s.headers = h;
  s.nheaders = 4;
  hl_buf auth, canon;
  hl_buf_init(&auth, 0);
  hl_buf_init(&canon, 0);
  cr_assert_eq(hl_s3_sigv4_sign(&s, &auth, &canon), 0);
  cr_assert_str_eq(canon.data, "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
                               "x-amz-content-sha256:" EMPTY_SHA "\nx-amz-date:20130524T000000Z\n\n"
                               "host;range;x-amz-content-sha256;x-amz-date\n" EMPTY_SHA);
  char ch[65];
  hl_s3_sha256_hex(canon.data, canon.len, ch);
  cr_assert_str_eq(ch, "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
  cr_assert_str_eq(auth.data, "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
                              "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
                              "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  hl_buf_free(&auth);
  hl_buf_free(&canon);
}

Test(s3, put_object_example) {
  const char *body = "Welcome to Amazon S3.";
  char hash[65];
  hl_s3_sha256_hex(body, strlen(body), hash);
  cr_assert_str_eq(hash, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  hl_s3_kv h[] = {{"Date", "Fri, 24 May 2013 00:00:00 GMT"}, {"Host", HOST},
                  {"x-amz-date", "20130524T000000Z"}, {"x-amz-storage-class", "REDUCED_REDUNDANCY"},
                  {"x-amz-content-sha256", hash}};
  hl_s3_sigv4 s = base("PUT", "/test$file.text");
  s.headers = h;
  s.nheaders = 5;
  s.payload_hash = hash;
  hl_buf auth, canon;
  hl_buf_init(&auth, 0);
  hl_buf_init(&canon, 0);
  cr_assert_eq(hl_s3_sigv4_sign(&s, &auth, &canon), 0);
  cr_assert(strncmp(canon.data, "PUT\n/test%24file.text\n\n", 23) == 0, "%s", canon.data);
  cr_assert(strstr(auth.data, "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,"));
  cr_assert_str_eq(sig_of(&auth), "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
  hl_buf_free(&auth);
  hl_buf_free(&canon);
}

Test(s3, get_bucket_lifecycle_example) {
  hl_s3_kv q[] = {{"lifecycle", ""}};
  hl_s3_kv h[] = {{"host", HOST}, {"x-amz-content-sha256", EMPTY_SHA}, {"x-amz-date", "20130524T000000Z"}};
  hl_s3_sigv4 s = base("GET", "/");
  s.query = q;
  s.nquery = 1;
  s.headers = h;
  s.nheaders = 3;
  hl_buf auth, canon;
  hl_buf_init(&auth, 0);
  hl_buf_init(&canon, 0);
  cr_assert_eq(hl_s3_sigv4_sign(&s, &auth, &canon), 0);
  cr_assert(strncmp(canon.data, "GET\n/\nlifecycle=\n", 17) == 0, "%s", canon.data);
  cr_assert_str_eq(sig_of(&auth), "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
  hl_buf_free(&auth);
  hl_buf_free(&canon);
}

Test(s3, list_objects_example_sorts_the_query) {
  /* Given out of order on purpose: the canonical query is sorted. */
  hl_s3_kv q[] = {{"prefix", "J"}, {"max-keys", "2"}};
  hl_s3_kv h[] = {{"x-amz-date", "20130524T000000Z"}, {"host", HOST}, {"x-amz-content-sha256", EMPTY_SHA}};
  hl_s3_sigv4 s = base("GET", "/");
  s.query = q;
  s.nquery = 2;
  s.headers = h;
  s.nheaders = 3;
  hl_buf auth, canon;
  hl_buf_init(&auth, 0);
  hl_buf_init(&canon, 0);
  cr_assert_eq(hl_s3_sigv4_sign(&s, &auth, &canon), 0);
  cr_assert(strncmp(canon.data, "GET\n/\nmax-keys=2&prefix=J\n", 26) == 0, "%s", canon.data);
  cr_assert_str_eq(sig_of(&auth), "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
  hl_buf_free(&auth);
  hl_buf_free(&canon);
}

Test(s3, presigned_get_example_through_the_client) {
  hl_s3_config cfg = {.endpoint = "https://s3.amazonaws.com", .region = "us-east-1", .access_key = AK,
                      .secret_key = SK};
  hl_s3 *s3 = NULL;
  cr_assert_eq(hl_s3_new(&cfg, &s3), 0);
  char *url = NULL;
  cr_assert_eq(hl_s3_presign_at(s3, "GET", "examplebucket", "test.txt", 86400, may24(), &url), 0);
  cr_assert_str_eq(url, "https://examplebucket.s3.amazonaws.com/test.txt"
                        "?X-Amz-Algorithm=AWS4-HMAC-SHA256"
                        "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
                        "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
                        "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
  free(url);
  cr_assert_eq(hl_s3_presign_at(s3, "DELETE", "examplebucket", "test.txt", 60, may24(), &url), -EINVAL);
  cr_assert_eq(hl_s3_presign_at(s3, "GET", "examplebucket", "test.txt", 604801, may24(), &url), -EINVAL);
  cr_assert_eq(hl_s3_presign_at(s3, "GET", "examplebucket", "test.txt", 0, may24(), &url), -EINVAL);
  hl_s3_free(s3);
}

Test(s3, presign_path_style_encodes_the_key_and_carries_the_token) {
  hl_s3_config cfg = {.endpoint = "http://127.0.0.1:9000/", .region = "eu-west-1", .access_key = "AK",
                      .secret_key = "SK", .session_token = "tok/en+=", .path_style = true};
  hl_s3 *s3 = NULL;
  cr_assert_eq(hl_s3_new(&cfg, &s3), 0);
  char *url = NULL;
  cr_assert_eq(hl_s3_presign_at(s3, "PUT", "Bucket_1", "org=7/a b/é.json", 300, may24(), &url), 0);
  cr_assert(strncmp(url, "http://127.0.0.1:9000/Bucket_1/org%3D7/a%20b/%C3%A9.json?", 57) == 0, "%s", url);
  cr_assert(strstr(url, "&X-Amz-Security-Token=tok%2Fen%2B%3D&"), "%s", url);
  free(url);
  hl_s3_free(s3);
}

Test(s3, client_refuses_bad_settings) {
  hl_s3 *s3 = NULL;
  hl_s3_config none = {.endpoint = "http://127.0.0.1:1"};
  cr_assert_eq(hl_s3_new(&none, &s3), -EINVAL);
  hl_s3_config half = {.endpoint = "http://127.0.0.1:1", .access_key = "a"};
  cr_assert_eq(hl_s3_new(&half, &s3), -EINVAL);
  hl_s3_config badep = {.endpoint = "ftp://x", .access_key = "a", .secret_key = "b"};
  cr_assert_eq(hl_s3_new(&badep, &s3), -EINVAL);
  hl_s3_config pathep = {.endpoint = "http://x/prefix", .access_key = "a", .secret_key = "b"};
  cr_assert_eq(hl_s3_new(&pathep, &s3), -EINVAL);
  cr_assert_null(s3);
  /* A virtual-hosted client refuses a bucket that is not a DNS label. */
  hl_s3_config ok = {.endpoint = "http://127.0.0.1:1", .access_key = "a", .secret_key = "b"};
  cr_assert_eq(hl_s3_new(&ok, &s3), 0);
  char *url = NULL;
  cr_assert_eq(hl_s3_presign_at(s3, "GET", "Upper", "k", 60, may24(), &url), -EINVAL);
  cr_assert_eq(hl_s3_presign_at(s3, "GET", "b", "", 60, may24(), &url), -EINVAL);
  cr_assert_null(url);
  hl_s3_free(s3);
  cr_assert_null(hl_s3_free(NULL));
}

Test(s3, uri_encoding) {
  hl_buf b;
  hl_buf_init(&b, 0);
  cr_assert_eq(hl_s3_uri_encode(&b, "a-b_c.d~e/f g+h*%", 17, true), 0);
  cr_assert_str_eq(b.data, "a-b_c.d~e/f%20g%2Bh%2A%25");
  hl_buf_reset(&b);
  cr_assert_eq(hl_s3_uri_encode(&b, "a/b=\xc3\xa9", 6, false), 0);
  cr_assert_str_eq(b.data, "a%2Fb%3D%C3%A9");
  hl_buf_free(&b);
}

static const char *LIST_XML =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
    "<Name>b</Name><Prefix>org=1/</Prefix><KeyCount>3</KeyCount><MaxKeys>3</MaxKeys>"
    "<IsTruncated>true</IsTruncated>"
    "<Contents><Key>org=1/a&amp;b &lt;c&gt;.ndjson</Key><LastModified>2026-01-02T03:04:05.000Z</LastModified>"
    "<ETag>&quot;5d41402abc4b2a76b9719d911017c592&quot;</ETag><Size>5</Size>"
    "<Owner><ID>x</ID><Size>99</Size></Owner><StorageClass>STANDARD</StorageClass></Contents>\n"
    "  <Contents><Key><![CDATA[org=1/<raw>&amp;]]></Key><Size>0</Size><ETag>\"e\"</ETag></Contents>"
    "<!-- a comment --><Contents><Key>org=1/&#233;&#x1F600;</Key><Size>9223372036854775807</Size></Contents>"
    "<CommonPrefixes><Prefix>org=1/sub/</Prefix></CommonPrefixes>"
    "<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>"
    "<ContinuationToken>prev</ContinuationToken></ListBucketResult>";

Test(s3, parses_a_list_page) {
  hl_s3_list_page p = {0};
  cr_assert_eq(hl_s3_parse_list(LIST_XML, strlen(LIST_XML), &p), 0);
  cr_assert_eq(p.count, 3);
  cr_assert_str_eq(p.objects[0].key, "org=1/a&b <c>.ndjson");
  cr_assert_eq(p.objects[0].size, 5); /* Owner/Size is not the object's size. */
  cr_assert_str_eq(p.objects[0].etag, "\"5d41402abc4b2a76b9719d911017c592\"");
  cr_assert_str_eq(p.objects[0].last_modified, "2026-01-02T03:04:05.000Z");
  cr_assert_str_eq(p.objects[1].key, "org=1/<raw>&amp;");
  cr_assert_eq(p.objects[1].size, 0);
  cr_assert_str_eq(p.objects[2].key, "org=1/\xc3\xa9\xf0\x9f\x98\x80");
  cr_assert_eq(p.objects[2].size, 9223372036854775807LL);
  cr_assert(p.truncated);
  cr_assert_str_eq(p.next_token, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");
  cr_assert_eq(p.nprefixes, 1);
  cr_assert_str_eq(p.common_prefixes[0], "org=1/sub/");
  hl_s3_list_page_clear(&p);
  cr_assert_null(p.objects);
}

Test(s3, parses_an_empty_and_a_self_closing_page) {
  const char *x = "<ListBucketResult><Name>b</Name><Prefix/><KeyCount>0</KeyCount>"
                  "<IsTruncated>false</IsTruncated></ListBucketResult>";
  hl_s3_list_page p = {0};
  cr_assert_eq(hl_s3_parse_list(x, strlen(x), &p), 0);
  cr_assert_eq(p.count, 0);
  cr_assert_not(p.truncated);
  cr_assert_null(p.next_token);
  hl_s3_list_page_clear(&p);
  const char *ns = "<s3:ListBucketResult xmlns:s3=\"u\"><s3:Contents><s3:Key>k</s3:Key><s3:Size>1</s3:Size>"
                   "</s3:Contents><s3:IsTruncated>false</s3:IsTruncated></s3:ListBucketResult>";
  cr_assert_eq(hl_s3_parse_list(ns, strlen(ns), &p), 0);
  cr_assert_eq(p.count, 1);
  cr_assert_str_eq(p.objects[0].key, "k");
  hl_s3_list_page_clear(&p);
}

static int parse(const char *x) {
  hl_s3_list_page p = {0};
  int r = hl_s3_parse_list(x, strlen(x), &p);
  if (r < 0)
    cr_assert_null(p.objects, "a failed parse leaves nothing behind");
  hl_s3_list_page_clear(&p);
  return r;
}

#define C(body) "<ListBucketResult><Contents>" body "</Contents></ListBucketResult>"

Test(s3, refuses_bad_list_documents) {
  cr_assert_eq(parse(""), HL_EPARSE);
  cr_assert_eq(parse("<Error><Code>x</Code></Error>"), HL_EPARSE);
  cr_assert_eq(parse("<ListBucketResult>"), HL_EPARSE);
  cr_assert_eq(parse("<ListBucketResult></ListBucket>"), HL_EPARSE);
  cr_assert_eq(parse("<ListBucketResult><a></b></ListBucketResult>"), HL_EPARSE);
  cr_assert_eq(parse("<ListBucketResult/><ListBucketResult/>"), HL_EPARSE);
  cr_assert_eq(parse("text<ListBucketResult/>"), HL_EPARSE);
  cr_assert_eq(parse("<!DOCTYPE x [<!ENTITY a \"b\">]><ListBucketResult/>"), HL_EPARSE);
  cr_assert_eq(parse(C("<Key>k</Key>")), HL_EPARSE);                         /* no Size */
  cr_assert_eq(parse(C("<Size>1</Size>")), HL_EPARSE);                        /* no Key */
  cr_assert_eq(parse(C("<Key>k</Key><Size>-1</Size>")), HL_EPARSE);
  cr_assert_eq(parse(C("<Key>k</Key><Size>1x</Size>")), HL_EPARSE);
  cr_assert_eq(parse(C("<Key>k</Key><Size>99999999999999999999</Size>")), HL_EPARSE);
  cr_assert_eq(parse(C("<Key>a&bogus;</Key><Size>1</Size>")), HL_EPARSE);
  cr_assert_eq(parse(C("<Key>a&amp</Key><Size>1</Size>")), HL_EPARSE);
  cr_assert_eq(parse(C("<Key>a&#0;</Key><Size>1</Size>")), HL_EPARSE);
  cr_assert_eq(parse(C("<Key>a&#xD800;</Key><Size>1</Size>")), HL_EPARSE);
  cr_assert_eq(parse(C("<Key>a&#x110000;</Key><Size>1</Size>")), HL_EPARSE);
  cr_assert_eq(parse(C("<Key>a&#;</Key><Size>1</Size>")), HL_EPARSE);
  cr_assert_eq(parse(C("<Key></Key><Size>1</Size>")), HL_EPARSE);
  cr_assert_eq(parse(C("<Key>a</Key><Key>b</Key><Size>1</Size>")), HL_EPARSE);
  cr_assert_eq(parse("<ListBucketResult><IsTruncated>maybe</IsTruncated></ListBucketResult>"), HL_EPARSE);
  /* Truncated without a token would stop a listing half-way, silently. */
  cr_assert_eq(parse("<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>"), HL_EPARSE);
  cr_assert_eq(parse("<ListBucketResult><a x=\"1></ListBucketResult>"), HL_EPARSE);
  cr_assert_eq(parse("<ListBucketResult><![CDATA[x</ListBucketResult>"), HL_EPARSE);
  cr_assert_eq(parse("<ListBucketResult><!-- x </ListBucketResult>"), HL_EPARSE);
}

Test(s3, caps_depth_and_key_length) {
  char deep[600] = "<ListBucketResult>";
  for (int i = 0; i < 20; i++)
    strcat(deep, "<a>");
  for (int i = 0; i < 20; i++)
    strcat(deep, "</a>");
  strcat(deep, "</ListBucketResult>");
  cr_assert_eq(parse(deep), HL_ELIMIT);
  char key[1100];
  memset(key, 'k', 1025);
  key[1025] = '\0';
  char doc[1300];
  snprintf(doc, sizeof doc, C("<Key>%s</Key><Size>1</Size>"), key);
  cr_assert_eq(parse(doc), HL_EPARSE);
  key[1024] = '\0';
  snprintf(doc, sizeof doc, C("<Key>%s</Key><Size>1</Size>"), key);
  cr_assert_eq(parse(doc), 0);
}

Test(s3, parses_an_error_document) {
  const char *x = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SignatureDoesNotMatch</Code>"
                  "<Message>The request signature we calculated does not match &amp; so on</Message>"
                  "<StringToSign>AWS4</StringToSign><RequestId>4442587FB7D0A2F9</RequestId></Error>";
  hl_s3_error e = {.http_status = 403};
  cr_assert_eq(hl_s3_parse_error(x, strlen(x), &e), 0);
  cr_assert_eq(e.http_status, 403);
  cr_assert_str_eq(e.code, "SignatureDoesNotMatch");
  cr_assert_str_eq(e.message, "The request signature we calculated does not match & so on");
  cr_assert_str_eq(e.request_id, "4442587FB7D0A2F9");
  char s[512];
  cr_assert(strstr(hl_s3_error_str(&e, s, sizeof s), "HTTP 403 SignatureDoesNotMatch"));
  hl_s3_error e2 = {0};
  cr_assert_eq(hl_s3_parse_error("<Other/>", 8, &e2), HL_EPARSE);
  cr_assert_str_eq(e2.code, "");
}

static const char *lookup(const char *name, void *ud) {
  const char *const *kv = ud;
  for (; *kv; kv += 2)
    if (strcmp(kv[0], name) == 0)
      return kv[1];
  return NULL;
}

static const hl_config_var vars[] = {HL_CONFIG_S3_VARS};
static const hl_config_spec spec = {"hl-test", "test", vars, sizeof vars / sizeof vars[0]};

Test(s3, config_from_the_environment) {
  const char *env[] = {"AWS_ACCESS_KEY_ID", "ak", "AWS_SECRET_ACCESS_KEY", "sk", "AWS_DEFAULT_REGION",
                       "eu-central-1", "HL_S3_ENDPOINT", "http://127.0.0.1:9000", "HL_S3_FORCE_PATH_STYLE",
                       "true", "HL_S3_RETRY_BASE", "50ms", NULL};
  hl_config *c = NULL;
  char err[256];
  cr_assert_eq(hl_config_load_from(&spec, lookup, env, &c, err, sizeof err), 0, "%s", err);
  hl_s3_config sc;
  cr_assert_eq(hl_s3_config_from(c, &sc, err, sizeof err), 0, "%s", err);
  cr_assert_str_eq(sc.region, "eu-central-1");
  cr_assert_str_eq(sc.endpoint, "http://127.0.0.1:9000");
  cr_assert(sc.path_style);
  cr_assert_eq(sc.retry_base_ms, 50);
  cr_assert_eq(sc.max_retries, 5);
  hl_s3 *s3 = NULL;
  cr_assert_eq(hl_s3_new(&sc, &s3), 0);
  hl_s3_free(s3);
  hl_config_free(c);

  const char *half[] = {"AWS_ACCESS_KEY_ID", "ak", NULL};
  cr_assert_eq(hl_config_load_from(&spec, lookup, half, &c, err, sizeof err), 0);
  cr_assert_eq(hl_s3_config_from(c, &sc, err, sizeof err), HL_ECONFIG);
  cr_assert(strstr(err, "AWS_SECRET_ACCESS_KEY"));
  hl_config_free(c);

  const char *container[] = {"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/x", "AWS_REGION",
                             "us-west-2", NULL};
  cr_assert_eq(hl_config_load_from(&spec, lookup, container, &c, err, sizeof err), 0);
  cr_assert_eq(hl_s3_config_from(c, &sc, err, sizeof err), 0, "%s", err);
  cr_assert_str_eq(sc.container_credentials_uri, "http://169.254.170.2/v2/credentials/x");
  cr_assert_str_eq(sc.region, "us-west-2");
  hl_config_free(c);

  const char *web[] = {"AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/secrets/eks.amazonaws.com/serviceaccount/token",
                       "AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/hl", NULL};
  cr_assert_eq(hl_config_load_from(&spec, lookup, web, &c, err, sizeof err), 0);
  cr_assert_eq(hl_s3_config_from(c, &sc, err, sizeof err), 0, "%s", err);
  cr_assert_str_eq(sc.role_arn, "arn:aws:iam::123456789012:role/hl");
  cr_assert_str_eq(sc.role_session_name, "healthlake");
  cr_assert_eq(hl_s3_new(&sc, &s3), 0);
  hl_s3_free(s3);
  hl_config_free(c);

  const char *nothing[] = {NULL};
  cr_assert_eq(hl_config_load_from(&spec, lookup, nothing, &c, err, sizeof err), 0);
  cr_assert_eq(hl_s3_config_from(c, &sc, err, sizeof err), HL_ECONFIG);
  cr_assert(strstr(err, "no S3 credentials"));
  hl_config_free(c);
}
