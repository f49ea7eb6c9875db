{# VISIT_OCCURRENCE from Encounter: class AMB/EMER/IMP to 9202/9203/9201. #}
{{ config(alias='visit_occurrence') }}
select
  e.tenant,
  {{ hl_omop_id('vid.code') }} as visit_occurrence_id,
  {{ hl_omop_id('pid.code') }} as person_id,
  case e.class when 'AMB' then 9202 when 'EMER' then 9203 when 'IMP' then 9201 else 0 end as visit_concept_id,
  {{ hl_utc_date('e.period_start') }} as visit_start_date,
  {{ hl_utc_datetime('e.period_start') }} as visit_start_datetime,
  {{ hl_utc_date('e.period_end') }} as visit_end_date,
  {{ hl_utc_datetime('e.period_end') }} as visit_end_datetime,
  32817 as visit_type_concept_id,
  {{ hl_omop_id('prv.code') }} as provider_id,
  {{ hl_omop_id('cs.code') }} as care_site_id,
  e.resource:type[0].coding[0].code::varchar as visit_source_value,
  0 as visit_source_concept_id,
  null::number(38,0) as admitted_from_concept_id,
  null::varchar as admitted_from_source_value,
  null::number(38,0) as discharged_to_concept_id,
  null::varchar as discharged_to_source_value,
  null::number(38,0) as preceding_visit_occurrence_id
from {{ ref('curated_encounter') }} e
{{ hl_omop_join('vid', 'e.tenant', 'Encounter', 'e.id', 'visit_occurrence', 'inner') }}
{{ hl_omop_join('pid', 'e.tenant', 'Patient', 'e.patient', 'person') }}
{{ hl_omop_join('prv', 'e.tenant', 'Practitioner', 'e.practitioner', 'provider') }}
{{ hl_omop_join('cs', 'e.tenant', 'Organization', 'e.service_provider', 'care_site') }}
