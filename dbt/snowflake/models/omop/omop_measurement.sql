{# MEASUREMENT from Observation: one row per component (a blood-pressure
   panel gives systolic then diastolic), else one row; the n-th
   urn:healthlake:omop:measurement identifier (array order) is the id of the
   n-th row. #}
{{ config(alias='measurement') }}
with part as (
  select o.tenant, o.id, o.patient, o.encounter, o.effective, 0 as n,
         o.code_system as system, o.code as code, o.value_quantity as value, o.value_unit as unit,
         o.resource:valueQuantity.value::varchar as value_text
  from {{ ref('curated_observation') }} o
  where o.resource:component is null
  union all
  select o.tenant, o.id, o.patient, o.encounter, o.effective, c.index as n,
         c.value:code.coding[0].system::varchar,
         c.value:code.coding[0].code::varchar,
         c.value:valueQuantity.value::float,
         coalesce(c.value:valueQuantity.code::varchar, c.value:valueQuantity.unit::varchar),
         c.value:valueQuantity.value::varchar
  from {{ ref('curated_observation') }} o,
       lateral flatten(input => o.resource:component) c
),
mid as (
  select o.tenant, o.id, i.value:value::varchar as measurement_id,
         row_number() over (partition by o.tenant, o.id order by i.index) - 1 as n
  from {{ ref('curated_observation') }} o,
       lateral flatten(input => o.resource:identifier) i
  where i.value:system::varchar = 'urn:healthlake:omop:measurement'
)
select
  part.tenant,
  {{ hl_omop_id('mid.measurement_id') }} as measurement_id,
  {{ hl_omop_id('pid.code') }} as person_id,
  coalesce(m.concept_id, 0) as measurement_concept_id,
  {{ hl_utc_date('part.effective') }} as measurement_date,
  {{ hl_utc_datetime('part.effective') }} as measurement_datetime,
  null::varchar as measurement_time,
  32817 as measurement_type_concept_id,
  null::number(38,0) as operator_concept_id,
  part.value as value_as_number,
  null::number(38,0) as value_as_concept_id,
  coalesce(u.concept_id, 0) as unit_concept_id,
  null::float as range_low,
  null::float as range_high,
  null::number(38,0) as provider_id,
  {{ hl_omop_id('vid.code') }} as visit_occurrence_id,
  null::number(38,0) as visit_detail_id,
  part.code as measurement_source_value,
  coalesce(m.concept_id, 0) as measurement_source_concept_id,
  part.unit as unit_source_value,
  null::number(38,0) as unit_source_concept_id,
  part.value_text as value_source_value,
  null::number(38,0) as measurement_event_id,
  null::number(38,0) as meas_event_field_concept_id
from part
join mid
  on mid.tenant = part.tenant and mid.id = part.id and mid.n = part.n
{{ hl_omop_join('pid', 'part.tenant', 'Patient', 'part.patient', 'person') }}
{{ hl_omop_join('vid', 'part.tenant', 'Encounter', 'part.encounter', 'visit_occurrence') }}
{{ hl_concept_join('m', 'Measurement', 'part.system', 'part.code') }}
{{ hl_concept_join('u', 'Unit', "'http://unitsofmeasure.org'", 'part.unit') }}
