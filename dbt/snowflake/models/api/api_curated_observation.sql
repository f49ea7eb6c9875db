{# API.CURATED_OBSERVATION: curated_observation as hl-api-gateway reads it, limited to the
   tenants the caller's role may see (hl_tenant_filter). #}
{{ config(alias='curated_observation') }}
select
  x.tenant,
  x.id,
  x.version_id,
  x.last_updated,
  x.raw_id,
  x.resource,
  x.status,
  x.patient,
  x.encounter,
  x.code_system,
  x.code,
  x.category,
  x.effective,
  x.value_quantity,
  x.value_unit
from {{ ref('curated_observation') }} x
where {{ hl_tenant_filter('x.tenant') }}
