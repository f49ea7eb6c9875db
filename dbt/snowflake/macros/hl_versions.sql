{# hl_newest_first(): a row number that is 1 for the version of a resource
   that wins on SQLite (hl_wh_version_cmp in libstream/src/warehouse.c,
   docs/warehouse.md#newest-version-wins), over the rows of one (tenant, id):

   1. a row with a meta.versionId beats one without;
   2. two all-digit versionIds compare as integers of any length ("10" beats
      "9", leading zeros ignored), other versionIds compare as bytes;
   3. on equal versionIds, meta.lastUpdated compares as an instant (time
      zones and fractions honoured; unparseable text as bytes), a missing one
      lowest;
   4. on a complete tie the first arrival (lowest raw_id) wins, as SQLite
      keeps the first and counts later equal versions as stale.

   Pairwise, C compares an all-digit versionId with another by bytes, which
   is not a total order (9 < 10 < 1a < 9); a sort needs one, so all-digit
   versionIds rank above the others here. The two agree whenever the
   versionIds of a resource are all digits or all not. #}
{% macro hl_newest_first() -%}
  row_number() over (
    partition by tenant, id
    order by
      iff(version_id is null or version_id = '', 0, 1) desc,
      iff(regexp_like(version_id, '[0-9]+'), 1, 0) desc,
      iff(regexp_like(version_id, '[0-9]+'), length(coalesce(nullif(ltrim(version_id, '0'), ''), '0')), null) desc nulls last,
      iff(regexp_like(version_id, '[0-9]+'), coalesce(nullif(ltrim(version_id, '0'), ''), '0'), version_id) desc nulls last,
      try_to_timestamp_tz(last_updated, 'auto') desc nulls last,
      nullif(last_updated, '') desc nulls last,
      raw_id asc
  )
{%- endmacro %}

{# hl_utc_datetime(expr), hl_utc_date(expr): a FHIR date, dateTime or
   instant as UTC TIMESTAMP_NTZ / DATE, like SQLite's datetime(x) and date(x)
   in schemas/warehouse/sqlite/005_omop_views.sql: a value with a time zone
   is converted to UTC; a date alone is midnight of that date. #}
{% macro hl_utc_datetime(expr) -%}
  iff(length({{ expr }}) <= 10,
      try_to_timestamp_ntz({{ expr }}, 'auto'),
      convert_timezone('UTC', try_to_timestamp_tz({{ expr }}, 'auto'))::timestamp_ntz)
{%- endmacro %}

{% macro hl_utc_date(expr) -%}
  ({{ hl_utc_datetime(expr) }})::date
{%- endmacro %}
