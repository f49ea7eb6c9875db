{# PROVIDER from Practitioner: name = given[0] + ' ' + family as written (not
   normalized), NPI from the us-npi identifier. #}
{{ config(alias='provider') }}
with npi as (
  select tenant, id, code
  from {{ ref('curated_token') }}
  where type = 'Practitioner' and param = 'identifier' and system = 'http://hl7.org/fhir/sid/us-npi'
  qualify row_number() over (partition by tenant, id order by code) = 1
)
select
  x.tenant,
  {{ hl_omop_id('prv.code') }} as provider_id,
  coalesce(x.resource:name[0].given[0]::varchar, '') || ' ' || coalesce(x.resource:name[0].family::varchar, '') as provider_name,
  npi.code as npi,
  null::varchar as dea,
  null::number(38,0) as specialty_concept_id,
  null::number(38,0) as care_site_id,
  null::number(38,0) as year_of_birth,
  case x.gender when 'male' then 8507 when 'female' then 8532 else 0 end as gender_concept_id,
  x.id as provider_source_value,
  null::varchar as specialty_source_value,
  null::number(38,0) as specialty_source_concept_id,
  x.gender as gender_source_value,
  0 as gender_source_concept_id
from {{ ref('curated_practitioner') }} x
{{ hl_omop_join('prv', 'x.tenant', 'Practitioner', 'x.id', 'provider', 'inner') }}
left join npi
  on npi.tenant = x.tenant and npi.id = x.id
