{# CARE_SITE: facility Organizations only (the tenant Organization has no
   care_site identifier and no row); HOSP -> 8717, FMC -> 8940. #}
{{ config(alias='care_site') }}
select
  o.tenant,
  {{ hl_omop_id('cs.code') }} as care_site_id,
  o.name as care_site_name,
  case o.org_type when 'HOSP' then 8717 when 'FMC' then 8940 else 0 end as place_of_service_concept_id,
  {{ hl_omop_id('loc.code') }} as location_id,
  o.id as care_site_source_value,
  o.org_type as place_of_service_source_value
from {{ ref('curated_organization') }} o
{{ hl_omop_join('cs', 'o.tenant', 'Organization', 'o.id', 'care_site', 'inner') }}
{{ hl_omop_join('loc', 'o.tenant', 'Organization', 'o.id', 'location') }}
