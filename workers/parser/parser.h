/*
 * hl-parser's processing of one landed object, without Kafka: read the
 * object named by a landing event (file:// inside the landing directory, or
 * s3:// through a reader the caller supplies), split it, and hand every
 * resource and every reject to a sink. The worker glue (parser_worker.c)
 * turns the sink calls into messages on hl.fhir.raw and hl.dlq.
 */
#ifndef HL_PARSER_PARSER_H
#define HL_PARSER_PARSER_H

#include <stddef.h>
#include <stdint.h>

#include "hl/landing.h"
#include "split.h"

/*
 * Reads an s3:// object in chunks: calls chunk() for each, in order, every
 * byte once. Returns 0 at the end of the object, the negative value chunk()
 * returned when it stopped the read, HL_ENOTFOUND when the object does not
 * exist, HL_EPARSE when it can never be read (dead-letter it), or HL_EIO for
 * a failure worth retrying. detail (never NULL) receives a description of a
 * failure.
 */
typedef int hl_parser_s3_read_fn(void *ud, const char *bucket, const char *key,
                                 int (*chunk)(void *cud, const void *data, size_t len), void *cud,
                                 char *detail, size_t detail_len);

typedef struct hl_parser_opts {
  const char *landing_dir;     /* file:// URIs must resolve inside it; NULL refuses file:// */
  size_t max_line_bytes;       /* 0: splitter default */
  size_t max_document_bytes;   /* 0: splitter default */
  size_t read_chunk;           /* 0: 1 MiB */
  hl_parser_s3_read_fn *s3_read; /* NULL refuses s3:// */
  void *s3_ud;
} hl_parser_opts;

typedef struct hl_parser_sink {
  void *ud;
  int (*resource)(void *ud, const hl_landing_event *ev, const hl_split_record *r);
  int (*reject)(void *ud, const hl_landing_event *ev, const hl_split_reject *r);
} hl_parser_sink;

/* Why an object as a whole could not be parsed (its event goes to the DLQ). */
typedef struct hl_parser_result {
  uint64_t emitted;
  uint64_t rejected;
  uint64_t lines;
  uint64_t bytes;
  const char *code;  /* NULL on success; else "object-not-found", "unsupported-format",
                        "forbidden-uri", "unreadable-object", "read-error" */
  char detail[512];
} hl_parser_result;

/*
 * An hl_parser_s3_read_fn on libstream's S3 client (ud is an hl_s3 *): one
 * streamed GetObject, which the client resumes with ranged GETs after a
 * broken connection. 404 is HL_ENOTFOUND; other 4xx answers except 403, 408
 * and 429 are HL_EPARSE; 403 (credentials or policy, which an operator can
 * fix), 5xx, throttling and transport errors after the client's retries are
 * HL_EIO.
 */
int hl_parser_s3_reader(void *ud, const char *bucket, const char *key,
                        int (*chunk)(void *cud, const void *data, size_t len), void *cud,
                        char *detail, size_t detail_len);

/*
 * Processes one object. Returns 0 when the object was read to the end
 * (resources and rejects went to the sink), HL_EPARSE when the event itself
 * must be dead-lettered (res->code says why), HL_EIO on a transient read
 * failure (try again later), or a negative value a sink callback returned.
 */
int hl_parser_process(const hl_parser_opts *opts, const hl_landing_event *ev,
                      const hl_parser_sink *sink, hl_parser_result *res);

#endif
