{# The newest version of every Condition per (tenant, id), with the search columns
   of curated_condition in schemas/warehouse/curated_contract.json. #}
select
    tenant,
    id,
    version_id,
    last_updated,
    raw_id,
    resource,
    {{ hl_ref_id("resource:subject.reference::varchar") }} as patient,
    {{ hl_ref_id("resource:encounter.reference::varchar") }} as encounter,
    resource:code.coding[0].system::varchar as code_system,
    resource:code.coding[0].code::varchar as code,
    resource:clinicalStatus.coding[0].code::varchar as clinical_status,
    resource:verificationStatus.coding[0].code::varchar as verification_status,
    coalesce(resource:onsetDateTime::varchar, resource:onsetPeriod."start"::varchar) as onset,
    coalesce(resource:abatementDateTime::varchar, resource:abatementPeriod."end"::varchar) as abatement,
    resource:recordedDate::varchar as recorded_date
from {{ ref('stg_fhir__resources') }}
where type = 'Condition'
qualify {{ hl_newest_first() }} = 1
