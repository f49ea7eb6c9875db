{# The newest version of every MedicationRequest per (tenant, id), with the search columns
   of curated_medication_request in schemas/warehouse/curated_contract.json. #}
select
    tenant,
    id,
    version_id,
    last_updated,
    raw_id,
    resource,
    resource:status::varchar as status,
    resource:intent::varchar as intent,
    {{ hl_ref_id("resource:subject.reference::varchar") }} as patient,
    {{ hl_ref_id("resource:encounter.reference::varchar") }} as encounter,
    resource:medicationCodeableConcept.coding[0].system::varchar as code_system,
    resource:medicationCodeableConcept.coding[0].code::varchar as code,
    resource:authoredOn::varchar as authored_on,
    {{ hl_ref_id("resource:requester.reference::varchar") }} as requester
from {{ ref('stg_fhir__resources') }}
where type = 'MedicationRequest'
qualify {{ hl_newest_first() }} = 1
