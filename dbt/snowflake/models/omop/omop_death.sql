{# DEATH from Patient.deceasedDateTime; cause unknown (NULL). #}
{{ config(alias='death') }}
select
  p.tenant,
  {{ hl_omop_id('pid.code') }} as person_id,
  {{ hl_utc_date('p.deceased') }} as death_date,
  {{ hl_utc_datetime('p.deceased') }} as death_datetime,
  32817 as death_type_concept_id,
  null::number(38,0) as cause_concept_id,
  null::varchar as cause_source_value,
  null::number(38,0) as cause_source_concept_id
from {{ ref('curated_patient') }} p
{{ hl_omop_join('pid', 'p.tenant', 'Patient', 'p.id', 'person', 'inner') }}
where p.deceased is not null
