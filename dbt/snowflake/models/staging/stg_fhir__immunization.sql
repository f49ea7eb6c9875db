{# The newest version of every Immunization per (tenant, id), with the search columns
   of curated_immunization in schemas/warehouse/curated_contract.json. #}
select
    tenant,
    id,
    version_id,
    last_updated,
    raw_id,
    resource,
    resource:status::varchar as status,
    {{ hl_ref_id("resource:patient.reference::varchar") }} as patient,
    {{ hl_ref_id("resource:encounter.reference::varchar") }} as encounter,
    resource:vaccineCode.coding[0].system::varchar as vaccine_system,
    resource:vaccineCode.coding[0].code::varchar as vaccine_code,
    resource:occurrenceDateTime::varchar as occurrence,
    {{ hl_ref_id("resource:performer[0].actor.reference::varchar") }} as performer
from {{ ref('stg_fhir__resources') }}
where type = 'Immunization'
qualify {{ hl_newest_first() }} = 1
