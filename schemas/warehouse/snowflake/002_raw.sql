-- role: SYSADMIN
-- Step 2: the RAW layer. Columns and meanings follow the SQLite warehouse
-- (schemas/warehouse/sqlite/001_raw.sql, 002_jobs.sql; docs/warehouse.md),
-- with Snowflake types: the resource is a VARIANT, times are TIMESTAMP_TZ.
-- Snowflake does not enforce UNIQUE or PRIMARY KEY: RAW is append-only and
-- may hold the same input twice (a replayed object); the staging models keep
-- one row per resource version (dbt/snowflake/models/staging).

-- Every FHIR resource version as it arrived. hl-loader writes it through
-- Snowpipe Streaming's default pipe "FHIR_RESOURCES-STREAMING" (rows are
-- JSON objects whose keys are these column names; the pipe matches by name),
-- one channel per Kafka partition with the Kafka offset as offset token.
-- raw_id and loaded_at are filled by Snowflake (the pipe honours AUTOINCREMENT
-- and DEFAULT columns); scripts/snowflake-backfill fills them the same way.
CREATE TABLE IF NOT EXISTS HEALTHLAKE.RAW.FHIR_RESOURCES (
  raw_id          NUMBER(38,0)  COMMENT 'Row number, increasing in load order (the SQLite rowid)'
                  AUTOINCREMENT START 1 INCREMENT 1 ORDER NOT NULL,
  tenant          VARCHAR       COMMENT 'The organization (hl-org header, key prefix)' NOT NULL,
  type            VARCHAR       COMMENT 'resourceType' NOT NULL,
  id              VARCHAR       COMMENT 'Resource id' NOT NULL,
  version_id      VARCHAR       COMMENT 'meta.versionId',
  last_updated    VARCHAR       COMMENT 'meta.lastUpdated as written (ISO 8601)',
  resource        VARIANT       COMMENT 'The FHIR resource, unchanged' NOT NULL,
  job             VARCHAR       COMMENT 'Ingestion job (hl-job)',
  source          VARCHAR       COMMENT 'Object URI the resource came from (hl-source)',
  line            NUMBER(38,0)  COMMENT 'Line or entry number in the object (hl-line)',
  kafka_topic     VARCHAR       COMMENT 'Kafka coordinates of the message, for lineage',
  kafka_partition NUMBER(38,0),
  kafka_offset    NUMBER(38,0),
  ingested_at     TIMESTAMP_TZ  COMMENT 'When the object entered the platform (hl-ingested-at)' NOT NULL,
  batch_id        NUMBER(38,0)  COMMENT 'Loader batch (hl.load.committed), NULL for a backfill',
  dedup_key       VARCHAR       COMMENT 'Input record key: the loader''s SQLite dedup key in hex, or SHA-256 of path and line for a backfill',
  loaded_at       TIMESTAMP_LTZ COMMENT 'When Snowflake stored the row' DEFAULT CURRENT_TIMESTAMP() NOT NULL
)
  CLUSTER BY (tenant, type)
  CHANGE_TRACKING = TRUE
  COMMENT = 'Append-only FHIR resources (one row per arrival of a resource version)';

-- One row per committed loader batch, with its counts. ROWS is a reserved
-- word in Snowflake: the column keeps the SQLite name, quoted (upper case, so
-- it is the name an unquoted identifier would resolve to).
CREATE TABLE IF NOT EXISTS HEALTHLAKE.RAW.LOAD_BATCH (
  batch_id     NUMBER(38,0)  NOT NULL,
  committed_at TIMESTAMP_TZ  NOT NULL,
  "ROWS"       NUMBER(38,0)  NOT NULL,
  inserted     NUMBER(38,0)  NOT NULL,
  duplicate    NUMBER(38,0)  NOT NULL,
  applied      NUMBER(38,0)  NOT NULL,
  stale        NUMBER(38,0)  NOT NULL,
  rejected     NUMBER(38,0)  NOT NULL,
  PRIMARY KEY (batch_id)
);

-- Rows the loader could not take (also sent to hl.dlq).
CREATE TABLE IF NOT EXISTS HEALTHLAKE.RAW.LOAD_REJECT (
  dedup_key   VARCHAR       NOT NULL,
  tenant      VARCHAR       NOT NULL,
  type        VARCHAR,
  id          VARCHAR,
  job         VARCHAR,
  source      VARCHAR,
  line        NUMBER(38,0),
  code        VARCHAR       NOT NULL,
  detail      VARCHAR,
  batch_id    NUMBER(38,0)  NOT NULL,
  rejected_at TIMESTAMP_TZ  NOT NULL,
  PRIMARY KEY (dedup_key)
);

-- Job status: one row per (tenant, job, landed object), folded from the
-- job-status events exactly as on SQLite (docs/warehouse.md#job-states).
CREATE TABLE IF NOT EXISTS HEALTHLAKE.RAW.JOBS (
  tenant            VARCHAR       NOT NULL,
  job               VARCHAR       NOT NULL,
  uri               VARCHAR       NOT NULL,
  state             VARCHAR       COMMENT 'accepted, processing, completed or completed-with-errors' NOT NULL,
  received          NUMBER(38,0)  DEFAULT 0 NOT NULL,
  valid             NUMBER(38,0)  DEFAULT 0 NOT NULL,
  rejected          NUMBER(38,0)  DEFAULT 0 NOT NULL,
  loaded            NUMBER(38,0)  DEFAULT 0 NOT NULL,
  parsed            NUMBER(38,0)  DEFAULT 0 NOT NULL,
  parse_rejected    NUMBER(38,0)  DEFAULT 0 NOT NULL,
  validate_rejected NUMBER(38,0)  DEFAULT 0 NOT NULL,
  load_rejected     NUMBER(38,0)  DEFAULT 0 NOT NULL,
  error_code        VARCHAR,
  error_detail      VARCHAR,
  created_at        TIMESTAMP_TZ  NOT NULL,
  updated_at        TIMESTAMP_TZ  NOT NULL,
  PRIMARY KEY (tenant, job, uri)
);

-- Increment events already folded into JOBS.
CREATE TABLE IF NOT EXISTS HEALTHLAKE.RAW.JOB_EVENT_SEEN (
  event_id   VARCHAR       NOT NULL,
  applied_at TIMESTAMP_TZ  NOT NULL,
  PRIMARY KEY (event_id)
);

-- Which roles see which tenants through the API views: one row per (role,
-- tenant); tenant '*' means every tenant (the gateway's role, which scopes
-- each query by the caller's token itself). See docs/snowflake-warehouse.md.
CREATE TABLE IF NOT EXISTS HEALTHLAKE.GOVERNANCE.TENANT_ACCESS (
  role_name VARCHAR COMMENT 'Snowflake role, upper case' NOT NULL,
  tenant    VARCHAR COMMENT 'Tenant id, or * for every tenant' NOT NULL,
  PRIMARY KEY (role_name, tenant)
);

MERGE INTO HEALTHLAKE.GOVERNANCE.TENANT_ACCESS t
USING (SELECT 'HL_API_READER' AS role_name, '*' AS tenant) s
  ON t.role_name = s.role_name AND t.tenant = s.tenant
WHEN NOT MATCHED THEN INSERT (role_name, tenant) VALUES (s.role_name, s.tenant);
