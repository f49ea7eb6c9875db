{# The current version of every Condition (contract: _curated.yml, equal to
   schemas/warehouse/curated_contract.json). Incremental: a run merges only
   the resources whose newest version changed since the last run. #}
{{ config(
    materialized='incremental',
    unique_key=['tenant', 'id'],
    incremental_strategy='merge',
    on_schema_change='fail',
    contract={'enforced': true}
) }}
select
    s.tenant,
    s.id,
    s.version_id,
    s.last_updated,
    s.raw_id,
    s.resource,
    s.patient,
    s.encounter,
    s.code_system,
    s.code,
    s.clinical_status,
    s.verification_status,
    s.onset,
    s.abatement,
    s.recorded_date
from {{ ref('stg_fhir__condition') }} s
{% if is_incremental() %}
left join {{ this }} t
  on t.tenant = s.tenant and t.id = s.id
where t.raw_id is null or t.raw_id <> s.raw_id
{% endif %}
