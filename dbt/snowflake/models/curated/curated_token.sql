{# Token search values (system|code), one row per value, for every
   search parameter of
   schemas/warehouse/curated_contract.json (search_params). Built from the
   curated tables, so its rows always belong to the current versions. A
   table, rebuilt in full on every run: it has no version column to tell an
   incremental run which resources changed. #}
{{ config(materialized='table', contract={'enforced': true}) }}
select distinct raw_id, tenant, type, id, param, system, code
from (
  {{ hl_token_rows('curated_patient', 'Patient', 'identifier', 'identifier', code='value') }}
  union all
  {{ hl_token_rows('curated_encounter', 'Encounter', 'identifier', 'identifier', code='value') }}
  union all
  {{ hl_token_rows('curated_encounter', 'Encounter', 'type', 'type', inner='coding') }}
  union all
  {{ hl_token_rows('curated_observation', 'Observation', 'identifier', 'identifier', code='value') }}
  union all
  {{ hl_token_rows('curated_observation', 'Observation', 'code', 'code.coding') }}
  union all
  {{ hl_token_rows('curated_observation', 'Observation', 'category', 'category', inner='coding') }}
  union all
  {{ hl_token_rows('curated_observation', 'Observation', 'component-code', 'component', inner='code.coding') }}
  union all
  {{ hl_token_rows('curated_condition', 'Condition', 'identifier', 'identifier', code='value') }}
  union all
  {{ hl_token_rows('curated_condition', 'Condition', 'code', 'code.coding') }}
  union all
  {{ hl_token_rows('curated_condition', 'Condition', 'category', 'category', inner='coding') }}
  union all
  {{ hl_token_rows('curated_condition', 'Condition', 'clinical-status', 'clinicalStatus.coding') }}
  union all
  {{ hl_token_rows('curated_medication_request', 'MedicationRequest', 'identifier', 'identifier', code='value') }}
  union all
  {{ hl_token_rows('curated_medication_request', 'MedicationRequest', 'code', 'medicationCodeableConcept.coding') }}
  union all
  {{ hl_token_rows('curated_procedure', 'Procedure', 'identifier', 'identifier', code='value') }}
  union all
  {{ hl_token_rows('curated_procedure', 'Procedure', 'code', 'code.coding') }}
  union all
  {{ hl_token_rows('curated_immunization', 'Immunization', 'identifier', 'identifier', code='value') }}
  union all
  {{ hl_token_rows('curated_immunization', 'Immunization', 'vaccine-code', 'vaccineCode.coding') }}
  union all
  {{ hl_token_rows('curated_organization', 'Organization', 'identifier', 'identifier', code='value') }}
  union all
  {{ hl_token_rows('curated_practitioner', 'Practitioner', 'identifier', 'identifier', code='value') }}
) rows_
