-- role: USERADMIN
-- Step 3: the three functional roles, each with the least it needs
-- (privileges in 004_grants.sql), and the service users that take them.
-- Users authenticate with a key pair only (no password): the public keys are
-- set by scripts/snowflake-apply from HL_SNOWFLAKE_*_PUBLIC_KEY when given
-- (ALTER USER ... SET RSA_PUBLIC_KEY, docs/snowflake-warehouse.md).

CREATE ROLE IF NOT EXISTS HL_LOADER
  COMMENT = 'hl-loader: writes RAW (Snowpipe Streaming and SQL API), nothing else';
CREATE ROLE IF NOT EXISTS HL_TRANSFORMER
  COMMENT = 'dbt: reads RAW, owns STAGING, CURATED, OMOP and API';
CREATE ROLE IF NOT EXISTS HL_API_READER
  COMMENT = 'hl-api-gateway: reads the API schema views only';

-- System-defined role hierarchy: SYSADMIN can manage what these roles create.
GRANT ROLE HL_LOADER TO ROLE SYSADMIN;
GRANT ROLE HL_TRANSFORMER TO ROLE SYSADMIN;
GRANT ROLE HL_API_READER TO ROLE SYSADMIN;

CREATE USER IF NOT EXISTS HL_LOADER_SVC
  TYPE = SERVICE DEFAULT_ROLE = HL_LOADER DEFAULT_WAREHOUSE = HL_LOAD_WH
  DEFAULT_NAMESPACE = 'HEALTHLAKE.RAW' COMMENT = 'hl-loader service user (key-pair JWT)';
CREATE USER IF NOT EXISTS HL_DBT_SVC
  TYPE = SERVICE DEFAULT_ROLE = HL_TRANSFORMER DEFAULT_WAREHOUSE = HL_TRANSFORM_WH
  DEFAULT_NAMESPACE = 'HEALTHLAKE.CURATED' COMMENT = 'dbt service user (key-pair JWT)';
CREATE USER IF NOT EXISTS HL_API_SVC
  TYPE = SERVICE DEFAULT_ROLE = HL_API_READER DEFAULT_WAREHOUSE = HL_API_WH
  DEFAULT_NAMESPACE = 'HEALTHLAKE.API' COMMENT = 'hl-api-gateway service user (key-pair JWT)';

GRANT ROLE HL_LOADER TO USER HL_LOADER_SVC;
GRANT ROLE HL_TRANSFORMER TO USER HL_DBT_SVC;
GRANT ROLE HL_API_READER TO USER HL_API_SVC;
