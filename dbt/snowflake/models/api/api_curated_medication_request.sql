{# API.CURATED_MEDICATION_REQUEST: curated_medication_request as hl-api-gateway reads it, limited to the
   tenants the caller's role may see (hl_tenant_filter). #}
{{ config(alias='curated_medication_request') }}
select
  x.tenant,
  x.id,
  x.version_id,
  x.last_updated,
  x.raw_id,
  x.resource,
  x.status,
  x.intent,
  x.patient,
  x.encounter,
  x.code_system,
  x.code,
  x.authored_on,
  x.requester
from {{ ref('curated_medication_request') }} x
where {{ hl_tenant_filter('x.tenant') }}
