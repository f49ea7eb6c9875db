{# Models go to the schema named in dbt_project.yml (STAGING, CURATED, OMOP,
   API) as is, not to <target schema>_<name> as dbt does by default: the
   roles and grants of schemas/warehouse/snowflake name these schemas. #}
{% macro generate_schema_name(custom_schema_name, node) -%}
  {%- if custom_schema_name is none -%}
    {{ target.schema | trim }}
  {%- else -%}
    {{ custom_schema_name | trim | upper }}
  {%- endif -%}
{%- endmacro %}
