{# The newest version of every Procedure per (tenant, id), with the search columns
   of curated_procedure in schemas/warehouse/curated_contract.json. #}
select
    tenant,
    id,
    version_id,
    last_updated,
    raw_id,
    resource,
    resource:status::varchar as status,
    {{ hl_ref_id("resource:subject.reference::varchar") }} as patient,
    {{ hl_ref_id("resource:encounter.reference::varchar") }} as encounter,
    resource:code.coding[0].system::varchar as code_system,
    resource:code.coding[0].code::varchar as code,
    coalesce(resource:performedDateTime::varchar, resource:performedPeriod."start"::varchar) as performed_start,
    resource:performedPeriod."end"::varchar as performed_end,
    {{ hl_ref_id("resource:performer[0].actor.reference::varchar") }} as performer
from {{ ref('stg_fhir__resources') }}
where type = 'Procedure'
qualify {{ hl_newest_first() }} = 1
