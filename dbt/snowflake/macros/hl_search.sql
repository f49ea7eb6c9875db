{# Rows of the search side tables (curated_token, curated_string), keyed
   by the raw_id of the curated row as on SQLite (migration 006), for one
   search parameter of schemas/warehouse/curated_contract.json. `outer` is
   the path of the array to expand from the resource root; `inner`, when
   given, the path of an array inside each element to expand as well (for
   paths such as type[*].coding[*]). An element without a code (or value)
   gives no row; a missing system is stored as '', as on SQLite. #}
{% macro hl_token_rows(model, rtype, param, outer, inner=none, system='system', code='code') -%}
  select c.raw_id, c.tenant, '{{ rtype }}' as type, c.id, '{{ param }}' as param,
         coalesce(e.value:{{ system }}::varchar, '') as system,
         e.value:{{ code }}::varchar as code
  from {{ ref(model) }} c,
  {%- if inner %}
       lateral flatten(input => c.resource:{{ outer }}) o,
       lateral flatten(input => o.value:{{ inner }}) e
  {%- else %}
       lateral flatten(input => c.resource:{{ outer }}) e
  {%- endif %}
  where e.value:{{ code }}::varchar is not null
{%- endmacro %}

{# String search values, normalized (hl_normalize). `outer` as above; `leaf`
   the member of each element that holds the text; `leaf_array` true when that
   member is itself an array of strings (given, prefix, suffix); with no
   `leaf` the elements themselves are the text (Organization.alias[*]). With
   no `outer` the leaf is read from the resource root (Organization.name). #}
{% macro hl_string_rows(model, rtype, param, outer=none, leaf=none, leaf_array=false) -%}
  {%- if outer and leaf_array -%}{%- set val = 'v.value' -%}
  {%- elif outer and leaf -%}{%- set val = 'o.value:' ~ leaf -%}
  {%- elif outer -%}{%- set val = 'o.value' -%}
  {%- else -%}{%- set val = 'c.resource:' ~ leaf -%}{%- endif %}
  select c.raw_id, c.tenant, '{{ rtype }}' as type, c.id, '{{ param }}' as param,
         {{ hl_normalize(val ~ '::varchar') }} as value
  from {{ ref(model) }} c
  {%- if outer %},
       lateral flatten(input => c.resource:{{ outer }}) o
  {%- endif %}
  {%- if outer and leaf_array %},
       lateral flatten(input => o.value:{{ leaf }}) v
  {%- endif %}
  where {{ val }}::varchar is not null
{%- endmacro %}
