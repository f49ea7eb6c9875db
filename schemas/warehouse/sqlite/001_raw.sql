-- RAW: every FHIR resource version as it arrived, append-only.
-- Idempotency: dedup_key is SHA-256 over (tenant, type, id, job, source,
-- line, resource bytes), so a replay of the same input from any stage
-- upstream (a re-consumed Kafka message, a re-parsed object) inserts
-- nothing; the Kafka coordinates are recorded but are not part of the key.
CREATE TABLE raw (
  raw_id          INTEGER PRIMARY KEY,
  tenant          TEXT    NOT NULL,
  type            TEXT    NOT NULL,
  id              TEXT    NOT NULL,
  version_id      TEXT,
  last_updated    TEXT,
  resource        TEXT    NOT NULL,
  job             TEXT,
  source          TEXT,
  line            INTEGER,
  kafka_topic     TEXT,
  kafka_partition INTEGER,
  kafka_offset    INTEGER,
  ingested_at     TEXT    NOT NULL,
  batch_id        INTEGER NOT NULL,
  dedup_key       BLOB    NOT NULL UNIQUE
);

-- One row per committed batch (the warehouse batch id of hl.load.committed).
CREATE TABLE load_batch (
  batch_id     INTEGER PRIMARY KEY,
  committed_at TEXT    NOT NULL,
  rows         INTEGER NOT NULL,
  inserted     INTEGER NOT NULL,
  duplicate    INTEGER NOT NULL,
  applied      INTEGER NOT NULL,
  stale        INTEGER NOT NULL,
  rejected     INTEGER NOT NULL
);

-- Rows the loader could not take (sent to hl.dlq by the loader); keyed like
-- raw so that a replay counts a rejection once.
CREATE TABLE load_reject (
  dedup_key   BLOB PRIMARY KEY,
  tenant      TEXT NOT NULL,
  type        TEXT,
  id          TEXT,
  job         TEXT,
  source      TEXT,
  line        INTEGER,
  code        TEXT NOT NULL,
  detail      TEXT,
  batch_id    INTEGER NOT NULL,
  rejected_at TEXT NOT NULL
) WITHOUT ROWID;
