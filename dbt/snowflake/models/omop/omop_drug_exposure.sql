{# DRUG_EXPOSURE from MedicationRequest (type 32838 "EHR prescription") and
   Immunization (type 32817, quantity 1, days supply 1, route 4302612
   intramuscular). #}
{{ config(alias='drug_exposure') }}
select
  r.tenant,
  {{ hl_omop_id('did.code') }} as drug_exposure_id,
  {{ hl_omop_id('pid.code') }} as person_id,
  coalesce(m.concept_id, 0) as drug_concept_id,
  {{ hl_utc_date('r.authored_on') }} as drug_exposure_start_date,
  {{ hl_utc_datetime('r.authored_on') }} as drug_exposure_start_datetime,
  {{ hl_utc_date("r.resource:dispenseRequest.validityPeriod.\"end\"::varchar") }} as drug_exposure_end_date,
  {{ hl_utc_datetime("r.resource:dispenseRequest.validityPeriod.\"end\"::varchar") }} as drug_exposure_end_datetime,
  null::date as verbatim_end_date,
  32838 as drug_type_concept_id,
  null::varchar as stop_reason,
  null::number(38,0) as refills,
  r.resource:dispenseRequest.quantity.value::float as quantity,
  r.resource:dispenseRequest.expectedSupplyDuration.value::number(38,0) as days_supply,
  r.resource:dosageInstruction[0].text::varchar as sig,
  coalesce(rt.concept_id, 0) as route_concept_id,
  null::varchar as lot_number,
  {{ hl_omop_id('prv.code') }} as provider_id,
  {{ hl_omop_id('vid.code') }} as visit_occurrence_id,
  null::number(38,0) as visit_detail_id,
  r.code as drug_source_value,
  coalesce(m.concept_id, 0) as drug_source_concept_id,
  r.resource:dosageInstruction[0].route.coding[0].code::varchar as route_source_value,
  r.resource:dosageInstruction[0].doseAndRate[0].doseQuantity.code::varchar as dose_unit_source_value
from {{ ref('curated_medication_request') }} r
{{ hl_omop_join('did', 'r.tenant', 'MedicationRequest', 'r.id', 'drug_exposure', 'inner') }}
{{ hl_omop_join('pid', 'r.tenant', 'Patient', 'r.patient', 'person') }}
{{ hl_omop_join('prv', 'r.tenant', 'Practitioner', 'r.requester', 'provider') }}
{{ hl_omop_join('vid', 'r.tenant', 'Encounter', 'r.encounter', 'visit_occurrence') }}
{{ hl_concept_join('m', 'Drug', 'r.code_system', 'r.code') }}
{{ hl_concept_join('rt', 'Route', "'http://snomed.info/sct'", 'r.resource:dosageInstruction[0].route.coding[0].code::varchar') }}
union all
select
  z.tenant,
  {{ hl_omop_id('did.code') }},
  {{ hl_omop_id('pid.code') }},
  coalesce(m.concept_id, 0),
  {{ hl_utc_date('z.occurrence') }},
  {{ hl_utc_datetime('z.occurrence') }},
  {{ hl_utc_date('z.occurrence') }},
  {{ hl_utc_datetime('z.occurrence') }},
  null::date,
  32817,
  null::varchar,
  null::number(38,0),
  1::float,
  1::number(38,0),
  null::varchar,
  4302612,
  null::varchar,
  {{ hl_omop_id('prv.code') }},
  {{ hl_omop_id('vid.code') }},
  null::number(38,0),
  z.vaccine_code,
  coalesce(m.concept_id, 0),
  z.resource:route.coding[0].code::varchar,
  null::varchar
from {{ ref('curated_immunization') }} z
{{ hl_omop_join('did', 'z.tenant', 'Immunization', 'z.id', 'drug_exposure', 'inner') }}
{{ hl_omop_join('pid', 'z.tenant', 'Patient', 'z.patient', 'person') }}
{{ hl_omop_join('prv', 'z.tenant', 'Practitioner', 'z.performer', 'provider') }}
{{ hl_omop_join('vid', 'z.tenant', 'Encounter', 'z.encounter', 'visit_occurrence') }}
{{ hl_concept_join('m', 'Drug', 'z.vaccine_system', 'z.vaccine_code') }}
