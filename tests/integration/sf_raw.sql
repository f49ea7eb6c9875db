-- The RAW tables the snowflake loader backend writes, for hl-sf-standin:
-- the columns of schemas/warehouse/snowflake/002_raw.sql (branch sfdbt) in
-- the stand-in's translation subset (no AUTOINCREMENT, COMMENT or CLUSTER
-- BY), and the named streaming pipe of 007_streaming_pipe.sql.
CREATE SCHEMA IF NOT EXISTS RAW;
CREATE TABLE IF NOT EXISTS RAW.FHIR_RESOURCES (
  tenant VARCHAR NOT NULL, type VARCHAR NOT NULL, id VARCHAR NOT NULL, version_id VARCHAR,
  last_updated VARCHAR, resource VARIANT NOT NULL, job VARCHAR, source VARCHAR, line NUMBER(38,0),
  kafka_topic VARCHAR, kafka_partition NUMBER(38,0), kafka_offset NUMBER(38,0),
  ingested_at TIMESTAMP_TZ NOT NULL, batch_id NUMBER(38,0), dedup_key VARCHAR,
  loaded_at TIMESTAMP_LTZ DEFAULT CURRENT_TIMESTAMP NOT NULL);
CREATE TABLE IF NOT EXISTS RAW.LOAD_REJECT (
  dedup_key VARCHAR NOT NULL, tenant VARCHAR NOT NULL, type VARCHAR, id VARCHAR, job VARCHAR,
  source VARCHAR, line NUMBER(38,0), code VARCHAR NOT NULL, detail VARCHAR,
  batch_id NUMBER(38,0) NOT NULL, rejected_at TIMESTAMP_TZ NOT NULL, PRIMARY KEY (dedup_key));
CREATE TABLE IF NOT EXISTS RAW.JOBS (
  tenant VARCHAR NOT NULL, job VARCHAR NOT NULL, uri VARCHAR NOT NULL, state VARCHAR NOT NULL,
  received NUMBER(38,0) DEFAULT 0 NOT NULL, valid NUMBER(38,0) DEFAULT 0 NOT NULL,
  rejected NUMBER(38,0) DEFAULT 0 NOT NULL, loaded NUMBER(38,0) DEFAULT 0 NOT NULL,
  parsed NUMBER(38,0) DEFAULT 0 NOT NULL, parse_rejected NUMBER(38,0) DEFAULT 0 NOT NULL,
  validate_rejected NUMBER(38,0) DEFAULT 0 NOT NULL, load_rejected NUMBER(38,0) DEFAULT 0 NOT NULL,
  error_code VARCHAR, error_detail VARCHAR, created_at TIMESTAMP_TZ NOT NULL,
  updated_at TIMESTAMP_TZ NOT NULL, PRIMARY KEY (tenant, job, uri));
CREATE TABLE IF NOT EXISTS RAW.JOB_EVENT_SEEN (
  event_id VARCHAR NOT NULL, applied_at TIMESTAMP_TZ NOT NULL, PRIMARY KEY (event_id));
CREATE PIPE IF NOT EXISTS RAW.FHIR_RESOURCES_STREAM AS COPY INTO RAW.FHIR_RESOURCES
  FROM TABLE(DATA_SOURCE(TYPE => 'STREAMING'));
