{# API.CURATED_CONDITION: curated_condition as hl-api-gateway reads it, limited to the
   tenants the caller's role may see (hl_tenant_filter). #}
{{ config(alias='curated_condition') }}
select
  x.tenant,
  x.id,
  x.version_id,
  x.last_updated,
  x.raw_id,
  x.resource,
  x.patient,
  x.encounter,
  x.code_system,
  x.code,
  x.clinical_status,
  x.verification_status,
  x.onset,
  x.abatement,
  x.recorded_date
from {{ ref('curated_condition') }} x
where {{ hl_tenant_filter('x.tenant') }}
