-- role: SYSADMIN
-- Step 7: the Snowpipe Streaming pipe hl-loader writes RAW through.
--
-- Every table has a default pipe, "FHIR_RESOURCES-STREAMING", created on the
-- first channel open; it matches row keys to column names and needs no DDL.
-- This named pipe does the same with an explicit column list and casts, so
-- that the server, not the client, assigns raw_id and loaded_at (a row can
-- not forge them) and a mistyped value fails at ingestion, not in dbt.
-- Either pipe takes the same rows: one JSON object per row, keys = column
-- names (docs/snowflake-warehouse.md#streaming-into-raw).

CREATE PIPE IF NOT EXISTS HEALTHLAKE.RAW.FHIR_RESOURCES_STREAM
  COMMENT = 'Snowpipe Streaming (high-performance) into RAW.FHIR_RESOURCES'
  AS COPY INTO HEALTHLAKE.RAW.FHIR_RESOURCES (
       tenant, type, id, version_id, last_updated, resource, job, source, line,
       kafka_topic, kafka_partition, kafka_offset, ingested_at, batch_id, dedup_key)
     FROM (
       SELECT $1:tenant::VARCHAR,
              $1:type::VARCHAR,
              $1:id::VARCHAR,
              $1:version_id::VARCHAR,
              $1:last_updated::VARCHAR,
              $1:resource,
              $1:job::VARCHAR,
              $1:source::VARCHAR,
              $1:line::NUMBER(38,0),
              $1:kafka_topic::VARCHAR,
              $1:kafka_partition::NUMBER(38,0),
              $1:kafka_offset::NUMBER(38,0),
              $1:ingested_at::TIMESTAMP_TZ,
              $1:batch_id::NUMBER(38,0),
              $1:dedup_key::VARCHAR
         FROM TABLE(DATA_SOURCE(TYPE => 'STREAMING')));

-- Opening channels, appending rows and reading channel status.
GRANT OPERATE, MONITOR ON PIPE HEALTHLAKE.RAW.FHIR_RESOURCES_STREAM TO ROLE HL_LOADER;
