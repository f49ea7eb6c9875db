{# API.CURATED_STRING: curated_string as hl-api-gateway reads it, limited to the
   tenants the caller's role may see (hl_tenant_filter). #}
{{ config(alias='curated_string') }}
select
  x.tenant,
  x.type,
  x.id,
  x.param,
  x.value
from {{ ref('curated_string') }} x
where {{ hl_tenant_filter('x.tenant') }}
