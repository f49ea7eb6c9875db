{# OBSERVATION_PERIOD: per person, the earliest Encounter start to the latest
   Encounter end (encounters with both); none for a person without any. #}
{{ config(alias='observation_period') }}
select
  e.tenant,
  {{ hl_omop_id('pid.code') }} as observation_period_id,
  {{ hl_omop_id('pid.code') }} as person_id,
  min({{ hl_utc_datetime('e.period_start') }})::date as observation_period_start_date,
  max({{ hl_utc_datetime('e.period_end') }})::date as observation_period_end_date,
  32817 as period_type_concept_id
from {{ ref('curated_encounter') }} e
{{ hl_omop_join('pid', 'e.tenant', 'Patient', 'e.patient', 'person', 'inner') }}
where e.period_start is not null and e.period_end is not null
group by e.tenant, e.patient, pid.code
