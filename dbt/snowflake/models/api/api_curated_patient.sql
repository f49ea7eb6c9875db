{# API.CURATED_PATIENT: curated_patient as hl-api-gateway reads it, limited to the
   tenants the caller's role may see (hl_tenant_filter). #}
{{ config(alias='curated_patient') }}
select
  x.tenant,
  x.id,
  x.version_id,
  x.last_updated,
  x.raw_id,
  x.resource,
  x.active,
  x.gender,
  x.birthdate,
  x.family,
  x.given,
  x.deceased,
  x.organization
from {{ ref('curated_patient') }} x
where {{ hl_tenant_filter('x.tenant') }}
