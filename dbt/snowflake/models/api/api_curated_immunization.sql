{# API.CURATED_IMMUNIZATION: curated_immunization as hl-api-gateway reads it, limited to the
   tenants the caller's role may see (hl_tenant_filter). #}
{{ config(alias='curated_immunization') }}
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
  x.vaccine_system,
  x.vaccine_code,
  x.occurrence,
  x.performer
from {{ ref('curated_immunization') }} x
where {{ hl_tenant_filter('x.tenant') }}
