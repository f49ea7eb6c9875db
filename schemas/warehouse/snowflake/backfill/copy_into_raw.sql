-- Bulk backfill: copy the NDJSON objects under a prefix of the landing stage
-- into RAW.FHIR_RESOURCES. Run by scripts/snowflake-backfill (role HL_LOADER,
-- warehouse HL_LOAD_WH), which substitutes ${PREFIX} (a path under the stage,
-- e.g. org=org-1/ or org=org-1/job=j7/) and ${FORCE} (FALSE unless --force).
--
-- Provenance matches the streaming path: the tenant is the first org=<id>
-- path segment, the job the first job=<id> directory (else backfill- and 24
-- hex digits of SHA-256 of the path, stable across re-runs), the source the
-- object URI, the line its 1-based row number; Kafka coordinates are NULL.
-- COPY keeps per-table load metadata for 64 days and skips files it already
-- loaded, so running the same backfill again inserts nothing (FORCE = FALSE).
-- Lines that are not JSON or lack resourceType/id are skipped and reported in
-- the COPY result (ON_ERROR = CONTINUE); objects outside org=<id>/ load nothing.

COPY INTO HEALTHLAKE.RAW.FHIR_RESOURCES (
       tenant, type, id, version_id, last_updated, resource, job, source, line,
       ingested_at, dedup_key)
  FROM (
    SELECT REGEXP_SUBSTR(METADATA$FILENAME, '(^|/)org=([A-Za-z0-9._-]{1,64})/', 1, 1, 'e', 2),
           $1:resourceType::VARCHAR,
           $1:id::VARCHAR,
           $1:meta.versionId::VARCHAR,
           $1:meta.lastUpdated::VARCHAR,
           $1,
           COALESCE(REGEXP_SUBSTR(METADATA$FILENAME, '(^|/)job=([A-Za-z0-9._-]{1,64})/', 1, 1, 'e', 2),
                    'backfill-' || LEFT(SHA2(METADATA$FILENAME, 256), 24)),
           '${HL_SNOWFLAKE_S3_URL}' || METADATA$FILENAME,
           METADATA$FILE_ROW_NUMBER,
           METADATA$START_SCAN_TIME,
           SHA2(METADATA$FILENAME || ':' || METADATA$FILE_ROW_NUMBER::VARCHAR, 256)
      FROM @HEALTHLAKE.RAW.LANDING/${PREFIX})
  FILE_FORMAT = (FORMAT_NAME = 'HEALTHLAKE.RAW.FHIR_NDJSON')
  PATTERN = '.*[.]ndjson([.]gz)?'
  ON_ERROR = CONTINUE
  FORCE = ${FORCE};
