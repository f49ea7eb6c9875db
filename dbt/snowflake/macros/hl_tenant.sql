{# Tenant isolation of the API views. GOVERNANCE.TENANT_ACCESS lists, per
   role, the tenants it may read ('*' = all: the gateway's role, which scopes
   every query by the caller's token itself). A row is visible when a role
   active in the session maps to its tenant. The views are SECURE, so a
   reader sees neither this predicate nor the tables behind it, and the
   optimizer cannot push the reader's own predicates ahead of it. #}
{% macro hl_tenant_filter(tenant_expr) -%}
  exists (
    select 1
    from {{ source('governance', 'tenant_access') }} a
    where (a.tenant = {{ tenant_expr }} or a.tenant = '*')
      and is_role_in_session(a.role_name)
  )
{%- endmacro %}
