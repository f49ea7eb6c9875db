-- Job status: one row per (tenant, job, landed object), folded from the
-- workers' job-status events (schemas/events/job-status.schema.json) and from
-- the loader's own batch commits. See docs/warehouse.md for the state rules.
CREATE TABLE jobs (
  tenant            TEXT    NOT NULL,
  job               TEXT    NOT NULL,
  uri               TEXT    NOT NULL,
  state             TEXT    NOT NULL CHECK (state IN ('accepted', 'processing', 'completed', 'completed-with-errors')),
  received          INTEGER NOT NULL DEFAULT 0,
  valid             INTEGER NOT NULL DEFAULT 0,
  rejected          INTEGER NOT NULL DEFAULT 0,
  loaded            INTEGER NOT NULL DEFAULT 0,
  parsed            INTEGER NOT NULL DEFAULT 0,
  parse_rejected    INTEGER NOT NULL DEFAULT 0,
  validate_rejected INTEGER NOT NULL DEFAULT 0,
  load_rejected     INTEGER NOT NULL DEFAULT 0,
  error_code        TEXT,
  error_detail      TEXT,
  created_at        TEXT    NOT NULL,
  updated_at        TEXT    NOT NULL,
  PRIMARY KEY (tenant, job, uri)
) WITHOUT ROWID;

-- Delta events already folded (validate and load counts are increments).
CREATE TABLE job_event_seen (
  event_id   TEXT PRIMARY KEY,
  applied_at TEXT NOT NULL
) WITHOUT ROWID;
