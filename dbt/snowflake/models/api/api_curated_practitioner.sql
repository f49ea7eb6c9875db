{# API.CURATED_PRACTITIONER: curated_practitioner as hl-api-gateway reads it, limited to the
   tenants the caller's role may see (hl_tenant_filter). #}
{{ config(alias='curated_practitioner') }}
select
  x.tenant,
  x.id,
  x.version_id,
  x.last_updated,
  x.raw_id,
  x.resource,
  x.active,
  x.gender,
  x.family,
  x.given
from {{ ref('curated_practitioner') }} x
where {{ hl_tenant_filter('x.tenant') }}
