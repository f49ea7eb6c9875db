{# OMOP CDM v5.4 PERSON from Patient (docs/fhir-omop-mapping.md), a leading
   tenant column then the CDM columns in CDM order, as the SQLite view
   omop_person. Race and ethnicity: the us-core extension's ombCategory code,
   else its first detailed code. #}
{{ config(alias='person') }}
with ext as (
  select c.tenant, c.id, e.value:url::varchar as ext_url,
         s.value:valueCoding.code::varchar as code,
         row_number() over (partition by c.tenant, c.id, e.value:url::varchar
                            order by iff(s.value:url::varchar = 'ombCategory', 0, 1), e.index, s.index) as n
  from {{ ref('curated_patient') }} c,
       lateral flatten(input => c.resource:extension) e,
       lateral flatten(input => e.value:extension) s
  where e.value:url::varchar in ('http://hl7.org/fhir/us/core/StructureDefinition/us-core-race',
                                 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity')
    and s.value:url::varchar in ('ombCategory', 'detailed')
)
select
  p.tenant,
  {{ hl_omop_id('pid.code') }} as person_id,
  case p.gender when 'male' then 8507 when 'female' then 8532 else 0 end as gender_concept_id,
  year(try_to_date(p.birthdate))::number(38,0) as year_of_birth,
  month(try_to_date(p.birthdate))::number(38,0) as month_of_birth,
  day(try_to_date(p.birthdate))::number(38,0) as day_of_birth,
  {{ hl_utc_datetime('p.birthdate') }} as birth_datetime,
  coalesce(rc.concept_id, 0) as race_concept_id,
  iff(eth.code = '2135-2', 38003563, 38003564) as ethnicity_concept_id,
  {{ hl_omop_id('loc.code') }} as location_id,
  null::number(38,0) as provider_id,
  null::number(38,0) as care_site_id,
  p.id as person_source_value,
  p.gender as gender_source_value,
  0 as gender_source_concept_id,
  race.code as race_source_value,
  0 as race_source_concept_id,
  eth.code as ethnicity_source_value,
  0 as ethnicity_source_concept_id
from {{ ref('curated_patient') }} p
{{ hl_omop_join('pid', 'p.tenant', 'Patient', 'p.id', 'person', 'inner') }}
{{ hl_omop_join('loc', 'p.tenant', 'Patient', 'p.id', 'location') }}
left join ext race
  on race.tenant = p.tenant and race.id = p.id and race.n = 1
 and race.ext_url = 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-race'
left join ext eth
  on eth.tenant = p.tenant and eth.id = p.id and eth.n = 1
 and eth.ext_url = 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity'
{{ hl_concept_join('rc', 'Race', "'urn:oid:2.16.840.1.113883.6.238'", 'race.code') }}
