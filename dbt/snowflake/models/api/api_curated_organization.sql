{# API.CURATED_ORGANIZATION: curated_organization as hl-api-gateway reads it, limited to the
   tenants the caller's role may see (hl_tenant_filter). #}
{{ config(alias='curated_organization') }}
select
  x.tenant,
  x.id,
  x.version_id,
  x.last_updated,
  x.raw_id,
  x.resource,
  x.active,
  x.name,
  x.org_type,
  x.part_of
from {{ ref('curated_organization') }} x
where {{ hl_tenant_filter('x.tenant') }}
