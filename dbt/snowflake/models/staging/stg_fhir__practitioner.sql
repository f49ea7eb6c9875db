{# The newest version of every Practitioner per (tenant, id), with the search columns
   of curated_practitioner in schemas/warehouse/curated_contract.json. #}
select
    tenant,
    id,
    version_id,
    last_updated,
    raw_id,
    resource,
    resource:active::boolean as active,
    resource:gender::varchar as gender,
    {{ hl_normalize("resource:name[0].family::varchar") }} as family,
    {{ hl_normalize("resource:name[0].given[0]::varchar") }} as given
from {{ ref('stg_fhir__resources') }}
where type = 'Practitioner'
qualify {{ hl_newest_first() }} = 1
