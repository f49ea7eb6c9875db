{# Every row of RAW.FHIR_RESOURCES with its provenance, one row per arrival
   of a resource version. The typed staging models read this one. #}
select
    raw_id,
    tenant,
    type,
    id,
    nullif(version_id, '') as version_id,
    nullif(last_updated, '') as last_updated,
    resource,
    job,
    source,
    line,
    kafka_topic,
    kafka_partition,
    kafka_offset,
    ingested_at,
    loaded_at
from {{ source('raw', 'fhir_resources') }}
