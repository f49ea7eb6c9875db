{# API.CURATED_ENCOUNTER: curated_encounter as hl-api-gateway reads it, limited to the
   tenants the caller's role may see (hl_tenant_filter). #}
{{ config(alias='curated_encounter') }}
select
  x.tenant,
  x.id,
  x.version_id,
  x.last_updated,
  x.raw_id,
  x.resource,
  x.status,
  x.class,
  x.patient,
  x.period_start,
  x.period_end,
  x.practitioner,
  x.service_provider
from {{ ref('curated_encounter') }} x
where {{ hl_tenant_filter('x.tenant') }}
