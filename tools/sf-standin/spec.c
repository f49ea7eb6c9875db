#define _GNU_SOURCE
/* See spec.h. */
#include "spec.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SPEC_MAX_DEPTH 32
#define SPEC_MAX_QUERY 32

struct sf_spec {
  json_t *doc;
};

sf_spec *sf_spec_load(const char *path, char *err, size_t errlen) {
  json_error_t je;
  json_t *doc = json_load_file(path, 0, &je);
  if (!json_is_object(doc) || !json_is_object(json_object_get(doc, "paths"))) {
    snprintf(err, errlen, "cannot read the OpenAPI document %s: %s", path, doc ? "no paths" : je.text);
    json_decref(doc);
    return NULL;
  }
  sf_spec *s = calloc(1, sizeof *s);
  if (!s) {
    json_decref(doc);
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  s->doc = doc;
  return s;
}

sf_spec *sf_spec_free(sf_spec *s) {
  if (s) {
    json_decref(s->doc);
    free(s);
  }
  return NULL;
}

/* Follows "#/a/b/c" references inside the document. */
static json_t *deref(const sf_spec *s, json_t *node) {
  for (int hops = 0; hops < 8 && json_is_object(node); hops++) {
    const char *ref = json_string_value(json_object_get(node, "$ref"));
    if (!ref)
      return node;
    if (strncmp(ref, "#/", 2) != 0)
      return NULL;
    json_t *cur = s->doc;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", ref + 2);
    for (char *save = NULL, *tok = strtok_r(buf, "/", &save); tok && cur; tok = strtok_r(NULL, "/", &save))
      cur = json_object_get(cur, tok);
    node = cur;
  }
  return node;
}

bool sf_spec_is_uuid(const char *v, size_t n) {
  if (n != 36)
    return false;
  for (int i = 0; i < 36; i++) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (v[i] != '-')
        return false;
    } else if (!isxdigit((unsigned char)v[i])) {
      return false;
    }
  }
  return true;
}

static bool fail(char *err, size_t errlen, const char *where, const char *what) {
  snprintf(err, errlen, "%s: %s", where, what);
  return false;
}

static bool validate(const sf_spec *s, json_t *schema, json_t *v, const char *where, int depth, char *err,
                     size_t errlen) {
  schema = deref(s, schema);
  if (!json_is_object(schema) || depth > SPEC_MAX_DEPTH)
    return true; /* nothing (readable) to check against */
  if (json_is_null(v))
    return json_is_true(json_object_get(schema, "nullable")) ? true
                                                              : fail(err, errlen, where, "null is not allowed");
  const char *type = json_string_value(json_object_get(schema, "type"));
  if (type) {
    bool ok = (!strcmp(type, "object") && json_is_object(v)) || (!strcmp(type, "array") && json_is_array(v)) ||
              (!strcmp(type, "string") && json_is_string(v)) || (!strcmp(type, "integer") && json_is_integer(v)) ||
              (!strcmp(type, "number") && json_is_number(v)) || (!strcmp(type, "boolean") && json_is_boolean(v));
    if (!ok) {
      char what[64];
      snprintf(what, sizeof what, "expected %s", type);
      return fail(err, errlen, where, what);
    }
  }
  json_t *en = json_object_get(schema, "enum");
  if (json_is_array(en)) {
    bool found = false;
    for (size_t i = 0; i < json_array_size(en) && !found; i++)
      found = json_equal(json_array_get(en, i), v);
    if (!found)
      return fail(err, errlen, where, "not one of the enumerated values");
  }
  const char *format = json_string_value(json_object_get(schema, "format"));
  if (format && !strcmp(format, "uuid") && json_is_string(v) &&
      !sf_spec_is_uuid(json_string_value(v), json_string_length(v)))
    return fail(err, errlen, where, "not a UUID");
  json_t *min = json_object_get(schema, "minimum");
  if (json_is_number(min) && json_is_number(v) && json_number_value(v) < json_number_value(min))
    return fail(err, errlen, where, "below the minimum");
  if (json_is_object(v)) {
    json_t *req = json_object_get(schema, "required");
    for (size_t i = 0; i < json_array_size(req); i++) {
      const char *name = json_string_value(json_array_get(req, i));
      if (name && !json_object_get(v, name)) {
        char what[128];
        snprintf(what, sizeof what, "required property %s is missing", name);
        return fail(err, errlen, where, what);
      }
    }
    json_t *props = json_object_get(schema, "properties");
    const char *key;
    json_t *val;
    json_object_foreach(v, key, val) {
      json_t *ps = json_object_get(props, key);
      if (!ps)
        continue; /* additionalProperties is not restricted by the document */
      char sub[256];
      snprintf(sub, sizeof sub, "%s.%s", where, key);
      if (!validate(s, ps, val, sub, depth + 1, err, errlen))
        return false;
    }
  }
  if (json_is_array(v)) {
    json_t *mi = json_object_get(schema, "minItems");
    if (json_is_integer(mi) && (json_int_t)json_array_size(v) < json_integer_value(mi))
      return fail(err, errlen, where, "too few items");
    json_t *items = json_object_get(schema, "items");
    for (size_t i = 0; items && i < json_array_size(v); i++) {
      char sub[256];
      snprintf(sub, sizeof sub, "%s[%zu]", where, i);
      if (!validate(s, items, json_array_get(v, i), sub, depth + 1, err, errlen))
        return false;
    }
  }
  return true;
}

bool sf_spec_validate(const sf_spec *s, json_t *schema, json_t *value, const char *where, char *err,
                      size_t errlen) {
  return validate(s, schema, value, where, 0, err, errlen);
}

/* A query or path value checked against a parameter schema (values are text). */
static bool check_scalar(const sf_spec *s, json_t *schema, const char *name, const char *value, char *err,
                         size_t errlen) {
  schema = deref(s, schema);
  const char *type = json_string_value(json_object_get(schema, "type"));
  json_t *v = NULL;
  if (type && !strcmp(type, "boolean")) {
    if (strcmp(value, "true") && strcmp(value, "false"))
      return fail(err, errlen, name, "expected true or false");
    v = json_boolean(!strcmp(value, "true"));
  } else if (type && !strcmp(type, "integer")) {
    char *end;
    long long n = strtoll(value, &end, 10);
    if (!*value || *end)
      return fail(err, errlen, name, "expected an integer");
    v = json_integer(n);
  } else {
    v = json_string(value);
  }
  bool ok = v && validate(s, schema, v, name, 0, err, errlen);
  json_decref(v);
  return ok;
}

static int hexval(int c) {
  return isdigit(c) ? c - '0' : isxdigit(c) ? (tolower(c) - 'a' + 10) : -1;
}

/* Percent-decodes (and '+' -> ' ') n bytes of s into out (cap bytes). */
static void url_decode(const char *s, size_t n, char *out, size_t cap) {
  size_t o = 0;
  for (size_t i = 0; i < n && o + 1 < cap; i++) {
    if (s[i] == '%' && i + 2 < n && hexval((unsigned char)s[i + 1]) >= 0 && hexval((unsigned char)s[i + 2]) >= 0) {
      out[o++] = (char)(hexval((unsigned char)s[i + 1]) * 16 + hexval((unsigned char)s[i + 2]));
      i += 2;
    } else {
      out[o++] = s[i] == '+' ? ' ' : s[i];
    }
  }
  out[o] = '\0';
}

static bool in_list(const char *list, const char *name) {
  size_t n = strlen(name);
  for (const char *p = list; p && *p;) {
    const char *bar = strchr(p, '|');
    size_t len = bar ? (size_t)(bar - p) : strlen(p);
    if (len == n && !strncmp(p, name, n))
      return true;
    p = bar ? bar + 1 : NULL;
  }
  return false;
}

/* Collects the parameters of an operation: path-level first, operation-level override. */
static size_t params_of(const sf_spec *s, json_t *path_item, json_t *op, json_t **out, size_t cap) {
  size_t n = 0;
  json_t *lists[2] = {json_object_get(path_item, "parameters"), json_object_get(op, "parameters")};
  for (int l = 0; l < 2; l++)
    for (size_t i = 0; i < json_array_size(lists[l]) && n < cap; i++) {
      json_t *p = deref(s, json_array_get(lists[l], i));
      if (json_is_object(p))
        out[n++] = p;
    }
  return n;
}

int sf_spec_check_request(const sf_spec *s, const char *tmpl, const char *method, const char *query,
                          const char *const *path_params, sf_spec_header_fn header, void *ud,
                          const char *content_type, json_t *body, const char *extra_query, char *err,
                          size_t errlen) {
  json_t *item = json_object_get(json_object_get(s->doc, "paths"), tmpl);
  json_t *op = json_object_get(item, method);
  if (!op) {
    snprintf(err, errlen, "no operation %s %s in the API description", method, tmpl);
    return 405;
  }
  json_t *params[64];
  size_t np = params_of(s, item, op, params, 64);
  /* Split the query string once. */
  char names[SPEC_MAX_QUERY][64], values[SPEC_MAX_QUERY][512];
  size_t nq = 0;
  for (const char *p = query && *query ? query : NULL; p;) {
    const char *amp = strchr(p, '&');
    size_t len = amp ? (size_t)(amp - p) : strlen(p);
    if (len) {
      if (nq == SPEC_MAX_QUERY) {
        snprintf(err, errlen, "too many query parameters");
        return 400;
      }
      const char *eq = memchr(p, '=', len);
      size_t kl = eq ? (size_t)(eq - p) : len;
      url_decode(p, kl, names[nq], sizeof names[nq]);
      if (eq)
        url_decode(eq + 1, len - kl - 1, values[nq], sizeof values[nq]);
      else
        values[nq][0] = '\0';
      nq++;
    }
    p = amp ? amp + 1 : NULL;
  }
  for (size_t q = 0; q < nq; q++) {
    bool known = in_list(extra_query, names[q]);
    for (size_t i = 0; i < np && !known; i++) {
      const char *in = json_string_value(json_object_get(params[i], "in"));
      const char *name = json_string_value(json_object_get(params[i], "name"));
      known = in && name && !strcmp(in, "query") && !strcmp(name, names[q]);
    }
    if (!known) {
      snprintf(err, errlen, "unknown query parameter %s", names[q]);
      return 400;
    }
  }
  for (size_t i = 0; i < np; i++) {
    const char *in = json_string_value(json_object_get(params[i], "in"));
    const char *name = json_string_value(json_object_get(params[i], "name"));
    json_t *schema = json_object_get(params[i], "schema");
    bool required = json_is_true(json_object_get(params[i], "required"));
    bool allow_empty = json_is_true(json_object_get(params[i], "allowEmptyValue"));
    if (!in || !name)
      continue;
    const char *value = NULL;
    if (!strcmp(in, "header")) {
      value = header(ud, name);
    } else if (!strcmp(in, "query")) {
      for (size_t q = 0; q < nq && !value; q++)
        if (!strcmp(names[q], name))
          value = values[q];
    } else if (!strcmp(in, "path")) {
      for (size_t k = 0; path_params && path_params[k] && !value; k += 2)
        if (!strcmp(path_params[k], name))
          value = path_params[k + 1];
    }
    if (!value) {
      if (required) {
        snprintf(err, errlen, "required %s parameter %s is missing", in, name);
        return 400;
      }
      continue;
    }
    if (!*value && !allow_empty && (required || strcmp(in, "header") != 0)) {
      snprintf(err, errlen, "%s parameter %s must not be empty", in, name);
      return 400;
    }
    if (*value && !check_scalar(s, schema, name, value, err, errlen))
      return 400;
  }
  json_t *rb = deref(s, json_object_get(op, "requestBody"));
  if (rb) {
    json_t *media = json_object_get(json_object_get(rb, "content"), "application/json");
    if (content_type && *content_type && strncasecmp(content_type, "application/json", 16) != 0) {
      snprintf(err, errlen, "Content-Type %s is not supported (application/json only)", content_type);
      return 415;
    }
    if (!body) {
      if (json_is_true(json_object_get(rb, "required"))) {
        snprintf(err, errlen, "the request body is required (JSON)");
        return 400;
      }
    } else if (!validate(s, json_object_get(media, "schema"), body, "body", 0, err, errlen)) {
      return 400;
    }
  }
  return 0;
}

bool sf_spec_check_response(const sf_spec *s, const char *tmpl, const char *method, int status, json_t *body,
                            char *err, size_t errlen) {
  json_t *op = json_object_get(json_object_get(json_object_get(s->doc, "paths"), tmpl), method);
  char code[8];
  snprintf(code, sizeof code, "%d", status);
  json_t *resp = deref(s, json_object_get(json_object_get(op, "responses"), code));
  if (!resp) {
    snprintf(err, errlen, "status %d is not documented for %s %s", status, method, tmpl);
    return false;
  }
  json_t *schema = json_object_get(json_object_get(json_object_get(resp, "content"), "application/json"), "schema");
  if (!schema)
    return true;
  return validate(s, schema, body, "response", 0, err, errlen);
}
