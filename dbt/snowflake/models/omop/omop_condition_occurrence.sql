{# CONDITION_OCCURRENCE from Condition: SNOMED code to concept; end from
   abatement (NULL while active). #}
{{ config(alias='condition_occurrence') }}
select
  c.tenant,
  {{ hl_omop_id('cid.code') }} as condition_occurrence_id,
  {{ hl_omop_id('pid.code') }} as person_id,
  coalesce(m.concept_id, 0) as condition_concept_id,
  {{ hl_utc_date('c.onset') }} as condition_start_date,
  {{ hl_utc_datetime('c.onset') }} as condition_start_datetime,
  {{ hl_utc_date('c.abatement') }} as condition_end_date,
  {{ hl_utc_datetime('c.abatement') }} as condition_end_datetime,
  32817 as condition_type_concept_id,
  null::number(38,0) as condition_status_concept_id,
  null::varchar as stop_reason,
  null::number(38,0) as provider_id,
  {{ hl_omop_id('vid.code') }} as visit_occurrence_id,
  null::number(38,0) as visit_detail_id,
  c.code as condition_source_value,
  coalesce(m.concept_id, 0) as condition_source_concept_id,
  null::varchar as condition_status_source_value
from {{ ref('curated_condition') }} c
{{ hl_omop_join('cid', 'c.tenant', 'Condition', 'c.id', 'condition_occurrence', 'inner') }}
{{ hl_omop_join('pid', 'c.tenant', 'Patient', 'c.patient', 'person') }}
{{ hl_omop_join('vid', 'c.tenant', 'Encounter', 'c.encounter', 'visit_occurrence') }}
{{ hl_concept_join('m', 'Condition', 'c.code_system', 'c.code') }}
