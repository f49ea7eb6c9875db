-- role: HL_TRANSFORMER
-- Step 8: the SQL functions hl-api-gateway calls (workers/api-gateway/
-- store_snowflake.c). Date search parameters and date sorts compare
-- [lo, hi) millisecond ranges, exactly as on SQLite: HL_LO(s) is the first
-- millisecond a FHIR date, dateTime or instant s covers, HL_HI(s) the first
-- one after it (a year, a month, a day, a minute, a second or the precision
-- of its fraction). Both answer NULL for text that is not a date.
--
-- They live in API, the schema the gateway reads (HL_API_SNOWFLAKE_SCHEMA =
-- API in production): the gateway runs its statements with that schema as
-- the session schema and calls them unqualified. HL_TRANSFORMER owns API
-- (004_grants.sql), so it owns these functions too and grants USAGE to the
-- API reader. CREATE OR REPLACE keeps the file re-runnable; it holds no data.
-- A date-only or year/month value is read as UTC; run the gateway's user
-- with TIMEZONE = 'UTC' (docs/snowflake.md).

CREATE OR REPLACE FUNCTION HEALTHLAKE.API.HL_LO(S VARCHAR)
  RETURNS NUMBER(38,0)
  COMMENT = 'First epoch millisecond a FHIR date/dateTime/instant covers (hl-api-gateway date search)'
AS $$
  DATE_PART(EPOCH_MILLISECOND, CASE LENGTH(S)
    WHEN 4 THEN TRY_TO_TIMESTAMP_TZ(S || '-01-01T00:00:00Z')
    WHEN 7 THEN TRY_TO_TIMESTAMP_TZ(S || '-01T00:00:00Z')
    WHEN 10 THEN TRY_TO_TIMESTAMP_TZ(S || 'T00:00:00Z')
    ELSE TRY_TO_TIMESTAMP_TZ(S) END)
$$;

CREATE OR REPLACE FUNCTION HEALTHLAKE.API.HL_HI(S VARCHAR)
  RETURNS NUMBER(38,0)
  COMMENT = 'First epoch millisecond after a FHIR date/dateTime/instant, at its precision (hl-api-gateway date search)'
AS $$
  CASE LENGTH(S)
    WHEN 4 THEN DATE_PART(EPOCH_MILLISECOND, DATEADD(YEAR, 1, TRY_TO_TIMESTAMP_TZ(S || '-01-01T00:00:00Z')))
    WHEN 7 THEN DATE_PART(EPOCH_MILLISECOND, DATEADD(MONTH, 1, TRY_TO_TIMESTAMP_TZ(S || '-01T00:00:00Z')))
    WHEN 10 THEN DATE_PART(EPOCH_MILLISECOND, DATEADD(DAY, 1, TRY_TO_TIMESTAMP_TZ(S || 'T00:00:00Z')))
    ELSE HEALTHLAKE.API.HL_LO(S) + CASE
      WHEN REGEXP_LIKE(S, '.*T[0-9]{2}:[0-9]{2}(Z|[+-].*)?') THEN 60000
      WHEN NOT REGEXP_LIKE(S, '.*:[0-9]{2}\\.[0-9]+.*') THEN 1000
      WHEN LENGTH(REGEXP_SUBSTR(S, '\\.([0-9]+)', 1, 1, 'e')) = 1 THEN 100
      WHEN LENGTH(REGEXP_SUBSTR(S, '\\.([0-9]+)', 1, 1, 'e')) = 2 THEN 10
      ELSE 1 END END
$$;

GRANT USAGE ON FUNCTION HEALTHLAKE.API.HL_LO(VARCHAR) TO ROLE HL_API_READER;
GRANT USAGE ON FUNCTION HEALTHLAKE.API.HL_HI(VARCHAR) TO ROLE HL_API_READER;
