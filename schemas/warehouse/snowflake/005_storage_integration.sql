-- role: ACCOUNTADMIN
-- Step 5: the S3 storage integration for the landing bucket (bulk backfill).
-- Only ACCOUNTADMIN (or a role with CREATE INTEGRATION) may create it. After
-- the first run, DESC INTEGRATION HL_S3_LANDING gives STORAGE_AWS_IAM_USER_ARN
-- and STORAGE_AWS_EXTERNAL_ID for the trust policy of ${HL_SNOWFLAKE_S3_ROLE_ARN}
-- (docs/snowflake-warehouse.md#applying-the-ddl).

CREATE STORAGE INTEGRATION IF NOT EXISTS HL_S3_LANDING
  TYPE = EXTERNAL_STAGE
  STORAGE_PROVIDER = 'S3'
  ENABLED = TRUE
  STORAGE_AWS_ROLE_ARN = '${HL_SNOWFLAKE_S3_ROLE_ARN}'
  STORAGE_ALLOWED_LOCATIONS = ('${HL_SNOWFLAKE_S3_URL}')
  COMMENT = 'Read-only access to the Healthlake landing bucket';

GRANT USAGE ON INTEGRATION HL_S3_LANDING TO ROLE SYSADMIN;
