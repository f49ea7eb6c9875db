{# The newest version of every Organization per (tenant, id), with the search columns
   of curated_organization in schemas/warehouse/curated_contract.json. #}
select
    tenant,
    id,
    version_id,
    last_updated,
    raw_id,
    resource,
    resource:active::boolean as active,
    resource:name::varchar as name,
    resource:type[0].coding[0].code::varchar as org_type,
    {{ hl_ref_id("resource:partOf.reference::varchar") }} as part_of
from {{ ref('stg_fhir__resources') }}
where type = 'Organization'
qualify {{ hl_newest_first() }} = 1
