{# API.CURATED_PROCEDURE: curated_procedure as hl-api-gateway reads it, limited to the
   tenants the caller's role may see (hl_tenant_filter). #}
{{ config(alias='curated_procedure') }}
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
  x.performed_start,
  x.performed_end,
  x.performer
from {{ ref('curated_procedure') }} x
where {{ hl_tenant_filter('x.tenant') }}
