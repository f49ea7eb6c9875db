{# API.JOBS: jobs as hl-api-gateway reads it, limited to the
   tenants the caller's role may see (hl_tenant_filter). #}
{{ config(alias='jobs') }}
select
  x.tenant,
  x.job,
  x.uri,
  x.state,
  x.received,
  x.valid,
  x.rejected,
  x.loaded,
  x.parsed,
  x.parse_rejected,
  x.validate_rejected,
  x.load_rejected,
  x.error_code,
  x.error_detail,
  x.created_at,
  x.updated_at
from {{ source('raw', 'jobs') }} x
where {{ hl_tenant_filter('x.tenant') }}
