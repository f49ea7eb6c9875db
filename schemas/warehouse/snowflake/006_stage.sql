-- role: SYSADMIN
-- Step 6: the external stage over the landing bucket and the file format of
-- its NDJSON objects (one FHIR resource per line, as hl-synth and the
-- ingestion API write them). scripts/snowflake-backfill copies a prefix of it
-- into RAW.FHIR_RESOURCES with backfill/copy_into_raw.sql.

CREATE FILE FORMAT IF NOT EXISTS HEALTHLAKE.RAW.FHIR_NDJSON
  TYPE = JSON
  STRIP_OUTER_ARRAY = FALSE
  COMPRESSION = AUTO
  IGNORE_UTF8_ERRORS = FALSE
  COMMENT = 'One FHIR resource per line';

CREATE STAGE IF NOT EXISTS HEALTHLAKE.RAW.LANDING
  URL = '${HL_SNOWFLAKE_S3_URL}'
  STORAGE_INTEGRATION = HL_S3_LANDING
  FILE_FORMAT = HEALTHLAKE.RAW.FHIR_NDJSON
  COMMENT = 'The landing bucket (org=<tenant>/[job=<job>/]*.ndjson)';

-- Backfill is loading, so it runs as HL_LOADER (the only role that writes RAW).
GRANT USAGE ON FILE FORMAT HEALTHLAKE.RAW.FHIR_NDJSON TO ROLE HL_LOADER;
GRANT USAGE ON STAGE HEALTHLAKE.RAW.LANDING TO ROLE HL_LOADER;
