{# OMOP ids come from the identifiers urn:healthlake:omop:<table> of the
   resources (docs/fhir-omop-mapping.md#linking), kept in curated_token
   (param 'identifier'); a reference resolves through the referenced
   resource's identifier in the same tenant, as in the SQLite views
   (schemas/warehouse/sqlite/005_omop_views.sql).

   hl_omop_join(alias, tenant, rtype, id, table, kind): a join to that
   identifier row; `kind` is 'left' for a reference that may be missing,
   'inner' for the row's own id (no identifier, no OMOP row). #}
{% macro hl_omop_join(alias, tenant, rtype, id, table, kind='left') -%}
  {{ kind }} join {{ ref('curated_token') }} {{ alias }}
    on {{ alias }}.tenant = {{ tenant }} and {{ alias }}.type = '{{ rtype }}' and {{ alias }}.id = {{ id }}
   and {{ alias }}.param = 'identifier' and {{ alias }}.system = 'urn:healthlake:omop:{{ table }}'
{%- endmacro %}

{# An OMOP id (a 64-bit integer) from an identifier value. #}
{% macro hl_omop_id(expr) -%}
  try_to_number({{ expr }})::number(38,0)
{%- endmacro %}

{# A code's standard concept from the seed omop_concept_map (the mapping
   table of docs/fhir-omop-mapping.md, also schemas/warehouse/sqlite/
   004_omop_concepts.sql); an unmapped code joins nothing and gives 0. #}
{% macro hl_concept_join(alias, domain, system, code) -%}
  left join {{ ref('omop_concept_map') }} {{ alias }}
    on {{ alias }}.domain = '{{ domain }}' and {{ alias }}.system = {{ system }} and {{ alias }}.code = {{ code }}
{%- endmacro %}
