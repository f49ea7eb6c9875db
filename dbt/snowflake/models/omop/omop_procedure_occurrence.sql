{# PROCEDURE_OCCURRENCE from Procedure: SNOMED code to concept; dates from
   performedPeriod (or performedDateTime). #}
{{ config(alias='procedure_occurrence') }}
select
  x.tenant,
  {{ hl_omop_id('xid.code') }} as procedure_occurrence_id,
  {{ hl_omop_id('pid.code') }} as person_id,
  coalesce(m.concept_id, 0) as procedure_concept_id,
  {{ hl_utc_date('x.performed_start') }} as procedure_date,
  {{ hl_utc_datetime('x.performed_start') }} as procedure_datetime,
  {{ hl_utc_date('x.performed_end') }} as procedure_end_date,
  {{ hl_utc_datetime('x.performed_end') }} as procedure_end_datetime,
  32817 as procedure_type_concept_id,
  null::number(38,0) as modifier_concept_id,
  null::number(38,0) as quantity,
  {{ hl_omop_id('prv.code') }} as provider_id,
  {{ hl_omop_id('vid.code') }} as visit_occurrence_id,
  null::number(38,0) as visit_detail_id,
  x.code as procedure_source_value,
  coalesce(m.concept_id, 0) as procedure_source_concept_id,
  null::varchar as modifier_source_value
from {{ ref('curated_procedure') }} x
{{ hl_omop_join('xid', 'x.tenant', 'Procedure', 'x.id', 'procedure_occurrence', 'inner') }}
{{ hl_omop_join('pid', 'x.tenant', 'Patient', 'x.patient', 'person') }}
{{ hl_omop_join('prv', 'x.tenant', 'Practitioner', 'x.performer', 'provider') }}
{{ hl_omop_join('vid', 'x.tenant', 'Encounter', 'x.encounter', 'visit_occurrence') }}
{{ hl_concept_join('m', 'Procedure', 'x.code_system', 'x.code') }}
