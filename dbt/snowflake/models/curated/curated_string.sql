{# String search values, normalized for prefix search, one row per value,
   for every search parameter of
   schemas/warehouse/curated_contract.json (search_params). Built from the
   curated tables, so its rows always belong to the current versions. A
   table, rebuilt in full on every run: it has no version column to tell an
   incremental run which resources changed. #}
{{ config(materialized='table', contract={'enforced': true}) }}
select distinct raw_id, tenant, type, id, param, value
from (
  {{ hl_string_rows('curated_patient', 'Patient', 'name', outer='name', leaf='family') }}
  union all
  {{ hl_string_rows('curated_patient', 'Patient', 'name', outer='name', leaf='given', leaf_array=true) }}
  union all
  {{ hl_string_rows('curated_patient', 'Patient', 'name', outer='name', leaf='prefix', leaf_array=true) }}
  union all
  {{ hl_string_rows('curated_patient', 'Patient', 'name', outer='name', leaf='suffix', leaf_array=true) }}
  union all
  {{ hl_string_rows('curated_patient', 'Patient', 'name', outer='name', leaf='text') }}
  union all
  {{ hl_string_rows('curated_patient', 'Patient', 'family', outer='name', leaf='family') }}
  union all
  {{ hl_string_rows('curated_patient', 'Patient', 'given', outer='name', leaf='given', leaf_array=true) }}
  union all
  {{ hl_string_rows('curated_organization', 'Organization', 'name', leaf='name') }}
  union all
  {{ hl_string_rows('curated_organization', 'Organization', 'name', outer='alias') }}
  union all
  {{ hl_string_rows('curated_practitioner', 'Practitioner', 'name', outer='name', leaf='family') }}
  union all
  {{ hl_string_rows('curated_practitioner', 'Practitioner', 'name', outer='name', leaf='given', leaf_array=true) }}
  union all
  {{ hl_string_rows('curated_practitioner', 'Practitioner', 'name', outer='name', leaf='prefix', leaf_array=true) }}
  union all
  {{ hl_string_rows('curated_practitioner', 'Practitioner', 'name', outer='name', leaf='suffix', leaf_array=true) }}
  union all
  {{ hl_string_rows('curated_practitioner', 'Practitioner', 'name', outer='name', leaf='text') }}
  union all
  {{ hl_string_rows('curated_practitioner', 'Practitioner', 'family', outer='name', leaf='family') }}
  union all
  {{ hl_string_rows('curated_practitioner', 'Practitioner', 'given', outer='name', leaf='given', leaf_array=true) }}
) rows_
