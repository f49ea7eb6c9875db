{# The newest version of every Observation per (tenant, id), with the search columns
   of curated_observation in schemas/warehouse/curated_contract.json. #}
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
    resource:category[0].coding[0].code::varchar as category,
    coalesce(resource:effectiveDateTime::varchar, resource:effectiveInstant::varchar,
             resource:effectivePeriod."start"::varchar) as effective,
    resource:valueQuantity.value::float as value_quantity,
    coalesce(resource:valueQuantity.code::varchar, resource:valueQuantity.unit::varchar) as value_unit
from {{ ref('stg_fhir__resources') }}
where type = 'Observation'
qualify {{ hl_newest_first() }} = 1
