{# API.CURATED_TOKEN: curated_token as hl-api-gateway reads it, limited to the
   tenants the caller's role may see (hl_tenant_filter). #}
{{ config(alias='curated_token') }}
select
  x.tenant,
  x.type,
  x.id,
  x.param,
  x.system,
  x.code
from {{ ref('curated_token') }} x
where {{ hl_tenant_filter('x.tenant') }}
