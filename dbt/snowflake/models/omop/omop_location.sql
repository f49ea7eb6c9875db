{# LOCATION: the address of each person (Patient.address[0]) and of each
   facility Organization (one with care_site and location identifiers). #}
{{ config(alias='location') }}
select
  c.tenant,
  {{ hl_omop_id('loc.code') }} as location_id,
  c.resource:address[0].line[0]::varchar as address_1,
  null::varchar as address_2,
  c.resource:address[0].city::varchar as city,
  c.resource:address[0].state::varchar as state,
  c.resource:address[0].postalCode::varchar as zip,
  null::varchar as county,
  'Patient/' || c.id as location_source_value,
  null::number(38,0) as country_concept_id,
  c.resource:address[0].country::varchar as country_source_value,
  null::float as latitude,
  null::float as longitude
from {{ ref('curated_patient') }} c
{{ hl_omop_join('loc', 'c.tenant', 'Patient', 'c.id', 'location', 'inner') }}
union all
select
  o.tenant,
  {{ hl_omop_id('loc.code') }},
  o.resource:address[0].line[0]::varchar,
  null::varchar,
  o.resource:address[0].city::varchar,
  o.resource:address[0].state::varchar,
  o.resource:address[0].postalCode::varchar,
  null::varchar,
  'Organization/' || o.id,
  null::number(38,0),
  o.resource:address[0].country::varchar,
  null::float,
  null::float
from {{ ref('curated_organization') }} o
{{ hl_omop_join('cs', 'o.tenant', 'Organization', 'o.id', 'care_site', 'inner') }}
{{ hl_omop_join('loc', 'o.tenant', 'Organization', 'o.id', 'location', 'inner') }}
