-- role: SYSADMIN
-- Healthlake on Snowflake, step 1: the database, its schemas and the
-- warehouses. Every statement is safe to run again (IF NOT EXISTS), so
-- scripts/snowflake-apply can apply the whole directory on every deploy.
-- Object names are fixed; ${...} values come from the environment of
-- scripts/snowflake-apply (docs/snowflake-warehouse.md).

CREATE DATABASE IF NOT EXISTS HEALTHLAKE
  COMMENT = 'Healthlake: FHIR RAW, dbt-curated tables, OMOP CDM v5.4 and the API views';

-- RAW is written by the loader only; STAGING, CURATED, OMOP and API are
-- built by dbt (dbt/snowflake); GOVERNANCE holds the tenant mapping.
CREATE SCHEMA IF NOT EXISTS HEALTHLAKE.RAW
  COMMENT = 'Append-only FHIR resources as loaded, and the loader job tables';
CREATE SCHEMA IF NOT EXISTS HEALTHLAKE.STAGING
  COMMENT = 'dbt: typed views, newest version of every resource';
CREATE SCHEMA IF NOT EXISTS HEALTHLAKE.CURATED
  COMMENT = 'dbt: curated tables of schemas/warehouse/curated_contract.json';
CREATE SCHEMA IF NOT EXISTS HEALTHLAKE.OMOP
  COMMENT = 'dbt: OMOP CDM v5.4 tables derived from the curated tables';
CREATE SCHEMA IF NOT EXISTS HEALTHLAKE.API
  COMMENT = 'dbt: tenant-scoped secure views read by hl-api-gateway';
CREATE SCHEMA IF NOT EXISTS HEALTHLAKE.GOVERNANCE
  COMMENT = 'Tenant mapping used by the API views; managed by the administrators only';

-- One warehouse per workload, so that a dbt run never slows API reads.
CREATE WAREHOUSE IF NOT EXISTS HL_LOAD_WH
  WAREHOUSE_SIZE = 'XSMALL' AUTO_SUSPEND = 60 AUTO_RESUME = TRUE INITIALLY_SUSPENDED = TRUE
  COMMENT = 'hl-loader (SQL API statements; Snowpipe Streaming is serverless)';
CREATE WAREHOUSE IF NOT EXISTS HL_TRANSFORM_WH
  WAREHOUSE_SIZE = 'SMALL' AUTO_SUSPEND = 60 AUTO_RESUME = TRUE INITIALLY_SUSPENDED = TRUE
  COMMENT = 'dbt runs and bulk backfill COPY INTO';
CREATE WAREHOUSE IF NOT EXISTS HL_API_WH
  WAREHOUSE_SIZE = 'XSMALL' AUTO_SUSPEND = 300 AUTO_RESUME = TRUE INITIALLY_SUSPENDED = TRUE
  COMMENT = 'hl-api-gateway reads';
