{# API.LOAD_REJECT: load_reject as hl-api-gateway reads it, limited to the
   tenants the caller's role may see (hl_tenant_filter). #}
{{ config(alias='load_reject') }}
select
  x.dedup_key,
  x.tenant,
  x.type,
  x.id,
  x.job,
  x.source,
  x.line,
  x.code,
  x.detail,
  x.batch_id,
  x.rejected_at
from {{ source('raw', 'load_reject') }} x
where {{ hl_tenant_filter('x.tenant') }}
