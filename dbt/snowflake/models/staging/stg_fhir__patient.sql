{# The newest version of every Patient per (tenant, id), with the search columns
   of curated_patient in schemas/warehouse/curated_contract.json. #}
select
    tenant,
    id,
    version_id,
    last_updated,
    raw_id,
    resource,
    resource:active::boolean as active,
    resource:gender::varchar as gender,
    resource:birthDate::varchar as birthdate,
    {{ hl_normalize("resource:name[0].family::varchar") }} as family,
    {{ hl_normalize("resource:name[0].given[0]::varchar") }} as given,
    resource:deceasedDateTime::varchar as deceased,
    {{ hl_ref_id("resource:managingOrganization.reference::varchar") }} as organization
from {{ ref('stg_fhir__resources') }}
where type = 'Patient'
qualify {{ hl_newest_first() }} = 1
