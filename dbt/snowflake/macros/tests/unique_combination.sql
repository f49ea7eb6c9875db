{# Generic test: no two rows share the values of `columns` (a composite key
   such as (tenant, id); dbt's built-in `unique` takes one column). #}
{% test unique_combination(model, columns) %}
select {{ columns | join(', ') }}, count(*) as n
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}
