{# The newest version of every Encounter per (tenant, id), with the search columns
   of curated_encounter in schemas/warehouse/curated_contract.json. #}
select
    tenant,
    id,
    version_id,
    last_updated,
    raw_id,
    resource,
    resource:status::varchar as status,
    resource:class.code::varchar as class,
    {{ hl_ref_id("resource:subject.reference::varchar") }} as patient,
    resource:period."start"::varchar as period_start,
    resource:period."end"::varchar as period_end,
    {{ hl_ref_id("resource:participant[0].individual.reference::varchar") }} as practitioner,
    {{ hl_ref_id("resource:serviceProvider.reference::varchar") }} as service_provider
from {{ ref('stg_fhir__resources') }}
where type = 'Encounter'
qualify {{ hl_newest_first() }} = 1
