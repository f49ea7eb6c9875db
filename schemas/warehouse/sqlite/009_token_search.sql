-- Token search values: one row per resource and a full-text index, instead
-- of one row per value in two B-trees.
--
-- Before: curated_token held one row per token value (~3.1 per resource at
-- 20,000 patients), keyed by (raw_id, param, system, code) with the search
-- index (tenant, type, param, code, system). Those two B-tree inserts per
-- value were 43% of hl-loader's SQLite writer (docs/warehouse.md).
-- Now:
-- - curated_token_doc: one row per curated resource with token values,
--   keyed by its raw_id (appended at the end of the B-tree); `tokens` is a
--   JSON array of [param, system, code].
-- - curated_token_fts: a contentless FTS5 table, rowid = raw_id, holding two
--   terms per value (hl_wh_token_term in libstream: the exact system and
--   code, and the code under any system, each hashed with the tenant, type
--   and parameter). FTS5 keeps the terms of a transaction in memory and
--   writes them as one sorted segment at COMMIT.
-- - curated_token: a view with the former table's columns, for every
--   reader (the OMOP views, dbt's checks, sqlite3 by hand). A lookup by
--   raw_id reads one doc row; any other condition scans, so searches go
--   through curated_token_fts and confirm their matches here by raw_id.
-- hl_token_terms(tenant, type, tokens) is registered by the warehouse on
-- the connection that migrates (libstream/src/warehouse_sqlite.c).

CREATE TABLE curated_token_doc (
  raw_id               INTEGER PRIMARY KEY,
  tenant               TEXT NOT NULL,
  type                 TEXT NOT NULL,
  id                   TEXT NOT NULL,
  tokens               TEXT NOT NULL
);
INSERT INTO curated_token_doc (raw_id, tenant, type, id, tokens)
SELECT raw_id, tenant, type, id, json_group_array(json_array(param, system, code))
  FROM (SELECT raw_id, tenant, type, id, param, system, code FROM curated_token
         ORDER BY raw_id, param, system, code)
 GROUP BY raw_id;

CREATE VIRTUAL TABLE curated_token_fts USING fts5(terms, content='', detail=none, columnsize=0, tokenize='ascii');
INSERT INTO curated_token_fts (rowid, terms)
SELECT raw_id, hl_token_terms(tenant, type, tokens) FROM curated_token_doc;

DROP TABLE curated_token;
DELETE FROM sqlite_stat1 WHERE tbl = 'curated_token';

CREATE VIEW curated_token AS
SELECT d.raw_id AS raw_id, d.tenant AS tenant, d.type AS type, d.id AS id,
  CAST(json_extract(j.value, '$[0]') AS TEXT) AS param,
  CAST(json_extract(j.value, '$[1]') AS TEXT) AS system,
  CAST(json_extract(j.value, '$[2]') AS TEXT) AS code
  FROM curated_token_doc d, json_each(d.tokens) j;

-- The OMOP views read identifiers through curated_token. Joined with LEFT
-- JOIN, a view over json_each is materialized whole (every token of the
-- warehouse) before the join; as a correlated scalar subquery on raw_id it
-- reads one doc row. The views are therefore re-created with each
-- `LEFT JOIN curated_token x ON x.raw_id = (...) AND x.param = ... AND
-- x.system = ...` (one identifier of a referenced resource) written as that
-- subquery where x.code was read; their rows are unchanged (compared on the
-- 20,000-patient set, docs/warehouse.md "Token search").
DROP VIEW omop_person;
DROP VIEW omop_observation_period;
DROP VIEW omop_visit_occurrence;
DROP VIEW omop_condition_occurrence;
DROP VIEW omop_measurement;
DROP VIEW omop_drug_exposure;
DROP VIEW omop_procedure_occurrence;
DROP VIEW omop_death;
DROP VIEW omop_location;
DROP VIEW omop_care_site;
DROP VIEW omop_provider;

CREATE VIEW omop_person AS
WITH p AS (
  SELECT c.tenant, c.id, c.gender, c.birthdate,
    (SELECT t.code FROM curated_token t WHERE t.raw_id = (SELECT raw_id FROM curated_patient WHERE tenant = c.tenant AND id = c.id)
        AND t.param = 'identifier' AND t.system = 'urn:healthlake:omop:person') AS person_id,
    (SELECT t.code FROM curated_token t WHERE t.raw_id = (SELECT raw_id FROM curated_patient WHERE tenant = c.tenant AND id = c.id)
        AND t.param = 'identifier' AND t.system = 'urn:healthlake:omop:location') AS location_id,
    (SELECT json_extract(s.value, '$.valueCoding.code')
       FROM json_each(c.resource, '$.extension') e, json_each(e.value, '$.extension') s
      WHERE json_extract(e.value, '$.url') = 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-race'
        AND json_extract(s.value, '$.url') IN ('ombCategory', 'detailed')
      ORDER BY json_extract(s.value, '$.url') = 'ombCategory' DESC, s.key LIMIT 1) AS race,
    (SELECT json_extract(s.value, '$.valueCoding.code')
       FROM json_each(c.resource, '$.extension') e, json_each(e.value, '$.extension') s
      WHERE json_extract(e.value, '$.url') = 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity'
        AND json_extract(s.value, '$.url') IN ('ombCategory', 'detailed')
      ORDER BY json_extract(s.value, '$.url') = 'ombCategory' DESC, s.key LIMIT 1) AS ethnicity
  FROM curated_patient c
)
SELECT p.tenant,
  CAST(p.person_id AS INTEGER) AS person_id,
  CASE p.gender WHEN 'male' THEN 8507 WHEN 'female' THEN 8532 ELSE 0 END AS gender_concept_id,
  CAST(strftime('%Y', p.birthdate) AS INTEGER) AS year_of_birth,
  CAST(strftime('%m', p.birthdate) AS INTEGER) AS month_of_birth,
  CAST(strftime('%d', p.birthdate) AS INTEGER) AS day_of_birth,
  datetime(p.birthdate) AS birth_datetime,
  COALESCE(r.concept_id, 0) AS race_concept_id,
  CASE WHEN p.ethnicity = '2135-2' THEN 38003563 ELSE 38003564 END AS ethnicity_concept_id,
  CAST(p.location_id AS INTEGER) AS location_id,
  NULL AS provider_id,
  NULL AS care_site_id,
  p.id AS person_source_value,
  p.gender AS gender_source_value,
  0 AS gender_source_concept_id,
  p.race AS race_source_value,
  0 AS race_source_concept_id,
  p.ethnicity AS ethnicity_source_value,
  0 AS ethnicity_source_concept_id
FROM p
LEFT JOIN omop_concept_map r
  ON r.domain = 'Race' AND r.system = 'urn:oid:2.16.840.1.113883.6.238' AND r.code = p.race
WHERE p.person_id IS NOT NULL;

CREATE VIEW omop_observation_period AS
SELECT e.tenant,
  CAST(t.code AS INTEGER) AS observation_period_id,
  CAST(t.code AS INTEGER) AS person_id,
  date(min(datetime(e.period_start))) AS observation_period_start_date,
  date(max(datetime(e.period_end))) AS observation_period_end_date,
  32817 AS period_type_concept_id
FROM curated_encounter e
JOIN curated_token t
  ON t.raw_id = (SELECT raw_id FROM curated_patient WHERE tenant = e.tenant AND id = e.patient)
 AND t.param = 'identifier' AND t.system = 'urn:healthlake:omop:person'
WHERE e.period_start IS NOT NULL AND e.period_end IS NOT NULL
GROUP BY e.tenant, e.patient, t.code;

CREATE VIEW omop_visit_occurrence AS
SELECT e.tenant,
  CAST(v.code AS INTEGER) AS visit_occurrence_id,
  CAST((SELECT code FROM curated_token WHERE raw_id = (SELECT raw_id FROM curated_patient WHERE tenant = e.tenant AND id = e.patient) AND param = 'identifier' AND system = 'urn:healthlake:omop:person') AS INTEGER) AS person_id,
  CASE e.class WHEN 'AMB' THEN 9202 WHEN 'EMER' THEN 9203 WHEN 'IMP' THEN 9201 ELSE 0 END AS visit_concept_id,
  date(e.period_start) AS visit_start_date,
  datetime(e.period_start) AS visit_start_datetime,
  date(e.period_end) AS visit_end_date,
  datetime(e.period_end) AS visit_end_datetime,
  32817 AS visit_type_concept_id,
  CAST((SELECT code FROM curated_token WHERE raw_id = (SELECT raw_id FROM curated_practitioner WHERE tenant = e.tenant AND id = e.practitioner) AND param = 'identifier' AND system = 'urn:healthlake:omop:provider') AS INTEGER) AS provider_id,
  CAST((SELECT code FROM curated_token WHERE raw_id = (SELECT raw_id FROM curated_organization WHERE tenant = e.tenant AND id = e.service_provider) AND param = 'identifier' AND system = 'urn:healthlake:omop:care_site') AS INTEGER) AS care_site_id,
  json_extract(e.resource, '$.type[0].coding[0].code') AS visit_source_value,
  0 AS visit_source_concept_id,
  NULL AS admitted_from_concept_id,
  NULL AS admitted_from_source_value,
  NULL AS discharged_to_concept_id,
  NULL AS discharged_to_source_value,
  NULL AS preceding_visit_occurrence_id
FROM curated_encounter e
JOIN curated_token v
  ON v.raw_id = (SELECT raw_id FROM curated_encounter WHERE tenant = e.tenant AND id = e.id)
 AND v.param = 'identifier' AND v.system = 'urn:healthlake:omop:visit_occurrence';

CREATE VIEW omop_condition_occurrence AS
SELECT c.tenant,
  CAST(i.code AS INTEGER) AS condition_occurrence_id,
  CAST((SELECT code FROM curated_token WHERE raw_id = (SELECT raw_id FROM curated_patient WHERE tenant = c.tenant AND id = c.patient) AND param = 'identifier' AND system = 'urn:healthlake:omop:person') AS INTEGER) AS person_id,
  COALESCE(m.concept_id, 0) AS condition_concept_id,
  date(c.onset) AS condition_start_date,
  datetime(c.onset) AS condition_start_datetime,
  date(c.abatement) AS condition_end_date,
  datetime(c.abatement) AS condition_end_datetime,
  32817 AS condition_type_concept_id,
  NULL AS condition_status_concept_id,
  NULL AS stop_reason,
  NULL AS provider_id,
  CAST((SELECT code FROM curated_token WHERE raw_id = (SELECT raw_id FROM curated_encounter WHERE tenant = c.tenant AND id = c.encounter) AND param = 'identifier' AND system = 'urn:healthlake:omop:visit_occurrence') AS INTEGER) AS visit_occurrence_id,
  NULL AS visit_detail_id,
  c.code AS condition_source_value,
  COALESCE(m.concept_id, 0) AS condition_source_concept_id,
  NULL AS condition_status_source_value
FROM curated_condition c
JOIN curated_token i
  ON i.raw_id = (SELECT raw_id FROM curated_condition WHERE tenant = c.tenant AND id = c.id)
 AND i.param = 'identifier' AND i.system = 'urn:healthlake:omop:condition_occurrence'
LEFT JOIN omop_concept_map m
  ON m.domain = 'Condition' AND m.system = c.code_system AND m.code = c.code;

CREATE VIEW omop_measurement AS
WITH part AS (
  SELECT o.tenant, o.id, o.resource, o.patient, o.encounter, o.effective, 0 AS n,
         o.code_system AS system, o.code AS code, o.value_quantity AS value, o.value_unit AS unit
    FROM curated_observation o
   WHERE json_type(o.resource, '$.component') IS NULL
  UNION ALL
  SELECT o.tenant, o.id, o.resource, o.patient, o.encounter, o.effective, c.key AS n,
         json_extract(c.value, '$.code.coding[0].system'),
         json_extract(c.value, '$.code.coding[0].code'),
         json_extract(c.value, '$.valueQuantity.value'),
         COALESCE(json_extract(c.value, '$.valueQuantity.code'), json_extract(c.value, '$.valueQuantity.unit'))
    FROM curated_observation o, json_each(o.resource, '$.component') c
),
mid AS (
  SELECT part.*,
    (SELECT json_extract(i.value, '$.value') FROM json_each(part.resource, '$.identifier') i
      WHERE json_extract(i.value, '$.system') = 'urn:healthlake:omop:measurement'
        AND (SELECT count(*) FROM json_each(part.resource, '$.identifier') k
              WHERE json_extract(k.value, '$.system') = 'urn:healthlake:omop:measurement'
                AND k.key < i.key) = part.n) AS measurement_id
  FROM part
)
SELECT part.tenant,
  CAST(part.measurement_id AS INTEGER) AS measurement_id,
  CAST((SELECT code FROM curated_token WHERE raw_id = (SELECT raw_id FROM curated_patient WHERE tenant = part.tenant AND id = part.patient) AND param = 'identifier' AND system = 'urn:healthlake:omop:person') AS INTEGER) AS person_id,
  COALESCE(m.concept_id, 0) AS measurement_concept_id,
  date(part.effective) AS measurement_date,
  datetime(part.effective) AS measurement_datetime,
  NULL AS measurement_time,
  32817 AS measurement_type_concept_id,
  NULL AS operator_concept_id,
  part.value AS value_as_number,
  NULL AS value_as_concept_id,
  COALESCE(u.concept_id, 0) AS unit_concept_id,
  NULL AS range_low,
  NULL AS range_high,
  NULL AS provider_id,
  CAST((SELECT code FROM curated_token WHERE raw_id = (SELECT raw_id FROM curated_encounter WHERE tenant = part.tenant AND id = part.encounter) AND param = 'identifier' AND system = 'urn:healthlake:omop:visit_occurrence') AS INTEGER) AS visit_occurrence_id,
  NULL AS visit_detail_id,
  part.code AS measurement_source_value,
  COALESCE(m.concept_id, 0) AS measurement_source_concept_id,
  part.unit AS unit_source_value,
  NULL AS unit_source_concept_id,
  CAST(part.value AS TEXT) AS value_source_value,
  NULL AS measurement_event_id,
  NULL AS meas_event_field_concept_id
FROM mid part
LEFT JOIN omop_concept_map m
  ON m.domain = 'Measurement' AND m.system = part.system AND m.code = part.code
LEFT JOIN omop_concept_map u
  ON u.domain = 'Unit' AND u.system = 'http://unitsofmeasure.org' AND u.code = part.unit
WHERE part.measurement_id IS NOT NULL;

CREATE VIEW omop_drug_exposure AS
SELECT r.tenant,
  CAST(i.code AS INTEGER) AS drug_exposure_id,
  CAST((SELECT code FROM curated_token WHERE raw_id = (SELECT raw_id FROM curated_patient WHERE tenant = r.tenant AND id = r.patient) AND param = 'identifier' AND system = 'urn:healthlake:omop:person') AS INTEGER) AS person_id,
  COALESCE(m.concept_id, 0) AS drug_concept_id,
  date(r.authored_on) AS drug_exposure_start_date,
  datetime(r.authored_on) AS drug_exposure_start_datetime,
  date(json_extract(r.resource, '$.dispenseRequest.validityPeriod.end')) AS drug_exposure_end_date,
  datetime(json_extract(r.resource, '$.dispenseRequest.validityPeriod.end')) AS drug_exposure_end_datetime,
  NULL AS verbatim_end_date,
  32838 AS drug_type_concept_id,
  NULL AS stop_reason,
  NULL AS refills,
  json_extract(r.resource, '$.dispenseRequest.quantity.value') AS quantity,
  json_extract(r.resource, '$.dispenseRequest.expectedSupplyDuration.value') AS days_supply,
  json_extract(r.resource, '$.dosageInstruction[0].text') AS sig,
  COALESCE(rt.concept_id, 0) AS route_concept_id,
  NULL AS lot_number,
  CAST((SELECT code FROM curated_token WHERE raw_id = (SELECT raw_id FROM curated_practitioner WHERE tenant = r.tenant AND id = r.requester) AND param = 'identifier' AND system = 'urn:healthlake:omop:provider') AS INTEGER) AS provider_id,
  CAST((SELECT code FROM curated_token WHERE raw_id = (SELECT raw_id FROM curated_encounter WHERE tenant = r.tenant AND id = r.encounter) AND param = 'identifier' AND system = 'urn:healthlake:omop:visit_occurrence') AS INTEGER) AS visit_occurrence_id,
  NULL AS visit_detail_id,
  r.code AS drug_source_value,
  COALESCE(m.concept_id, 0) AS drug_source_concept_id,
  json_extract(r.resource, '$.dosageInstruction[0].route.coding[0].code') AS route_source_value,
  json_extract(r.resource, '$.dosageInstruction[0].doseAndRate[0].doseQuantity.code') AS dose_unit_source_value
FROM curated_medication_request r
JOIN curated_token i
  ON i.raw_id = (SELECT raw_id FROM curated_medication_request WHERE tenant = r.tenant AND id = r.id)
 AND i.param = 'identifier' AND i.system = 'urn:healthlake:omop:drug_exposure'
LEFT JOIN omop_concept_map m
  ON m.domain = 'Drug' AND m.system = r.code_system AND m.code = r.code
LEFT JOIN omop_concept_map rt
  ON rt.domain = 'Route' AND rt.system = 'http://snomed.info/sct'
 AND rt.code = json_extract(r.resource, '$.dosageInstruction[0].route.coding[0].code')
UNION ALL
SELECT z.tenant,
  CAST(i.code AS INTEGER),
  CAST((SELECT code FROM curated_token WHERE raw_id = (SELECT raw_id FROM curated_patient WHERE tenant = z.tenant AND id = z.patient) AND param = 'identifier' AND system = 'urn:healthlake:omop:person') AS INTEGER),
  COALESCE(m.concept_id, 0),
  date(z.occurrence),
  datetime(z.occurrence),
  date(z.occurrence),
  datetime(z.occurrence),
  NULL,
  32817,
  NULL,
  NULL,
  1,
  1,
  NULL,
  4302612,
  NULL,
  CAST((SELECT code FROM curated_token WHERE raw_id = (SELECT raw_id FROM curated_practitioner WHERE tenant = z.tenant AND id = z.performer) AND param = 'identifier' AND system = 'urn:healthlake:omop:provider') AS INTEGER),
  CAST((SELECT code FROM curated_token WHERE raw_id = (SELECT raw_id FROM curated_encounter WHERE tenant = z.tenant AND id = z.encounter) AND param = 'identifier' AND system = 'urn:healthlake:omop:visit_occurrence') AS INTEGER),
  NULL,
  z.vaccine_code,
  COALESCE(m.concept_id, 0),
  json_extract(z.resource, '$.route.coding[0].code'),
  NULL
FROM curated_immunization z
JOIN curated_token i
  ON i.raw_id = (SELECT raw_id FROM curated_immunization WHERE tenant = z.tenant AND id = z.id)
 AND i.param = 'identifier' AND i.system = 'urn:healthlake:omop:drug_exposure'
LEFT JOIN omop_concept_map m
  ON m.domain = 'Drug' AND m.system = z.vaccine_system AND m.code = z.vaccine_code;

CREATE VIEW omop_procedure_occurrence AS
SELECT x.tenant,
  CAST(i.code AS INTEGER) AS procedure_occurrence_id,
  CAST((SELECT code FROM curated_token WHERE raw_id = (SELECT raw_id FROM curated_patient WHERE tenant = x.tenant AND id = x.patient) AND param = 'identifier' AND system = 'urn:healthlake:omop:person') AS INTEGER) AS person_id,
  COALESCE(m.concept_id, 0) AS procedure_concept_id,
  date(x.performed_start) AS procedure_date,
  datetime(x.performed_start) AS procedure_datetime,
  date(x.performed_end) AS procedure_end_date,
  datetime(x.performed_end) AS procedure_end_datetime,
  32817 AS procedure_type_concept_id,
  NULL AS modifier_concept_id,
  NULL AS quantity,
  CAST((SELECT code FROM curated_token WHERE raw_id = (SELECT raw_id FROM curated_practitioner WHERE tenant = x.tenant AND id = x.performer) AND param = 'identifier' AND system = 'urn:healthlake:omop:provider') AS INTEGER) AS provider_id,
  CAST((SELECT code FROM curated_token WHERE raw_id = (SELECT raw_id FROM curated_encounter WHERE tenant = x.tenant AND id = x.encounter) AND param = 'identifier' AND system = 'urn:healthlake:omop:visit_occurrence') AS INTEGER) AS visit_occurrence_id,
  NULL AS visit_detail_id,
  x.code AS procedure_source_value,
  COALESCE(m.concept_id, 0) AS procedure_source_concept_id,
  NULL AS modifier_source_value
FROM curated_procedure x
JOIN curated_token i
  ON i.raw_id = (SELECT raw_id FROM curated_procedure WHERE tenant = x.tenant AND id = x.id)
 AND i.param = 'identifier' AND i.system = 'urn:healthlake:omop:procedure_occurrence'
LEFT JOIN omop_concept_map m
  ON m.domain = 'Procedure' AND m.system = x.code_system AND m.code = x.code;

CREATE VIEW omop_death AS
SELECT p.tenant,
  CAST(t.code AS INTEGER) AS person_id,
  date(p.deceased) AS death_date,
  datetime(p.deceased) AS death_datetime,
  32817 AS death_type_concept_id,
  NULL AS cause_concept_id,
  NULL AS cause_source_value,
  NULL AS cause_source_concept_id
FROM curated_patient p
JOIN curated_token t
  ON t.raw_id = (SELECT raw_id FROM curated_patient WHERE tenant = p.tenant AND id = p.id)
 AND t.param = 'identifier' AND t.system = 'urn:healthlake:omop:person'
WHERE p.deceased IS NOT NULL;

CREATE VIEW omop_location AS
SELECT c.tenant,
  CAST(l.code AS INTEGER) AS location_id,
  json_extract(c.resource, '$.address[0].line[0]') AS address_1,
  NULL AS address_2,
  json_extract(c.resource, '$.address[0].city') AS city,
  json_extract(c.resource, '$.address[0].state') AS state,
  json_extract(c.resource, '$.address[0].postalCode') AS zip,
  NULL AS county,
  'Patient/' || c.id AS location_source_value,
  NULL AS country_concept_id,
  json_extract(c.resource, '$.address[0].country') AS country_source_value,
  NULL AS latitude,
  NULL AS longitude
FROM curated_patient c
JOIN curated_token l
  ON l.raw_id = (SELECT raw_id FROM curated_patient WHERE tenant = c.tenant AND id = c.id)
 AND l.param = 'identifier' AND l.system = 'urn:healthlake:omop:location'
UNION ALL
SELECT o.tenant,
  CAST(l.code AS INTEGER),
  json_extract(o.resource, '$.address[0].line[0]'),
  NULL,
  json_extract(o.resource, '$.address[0].city'),
  json_extract(o.resource, '$.address[0].state'),
  json_extract(o.resource, '$.address[0].postalCode'),
  NULL,
  'Organization/' || o.id,
  NULL,
  json_extract(o.resource, '$.address[0].country'),
  NULL,
  NULL
FROM curated_organization o
JOIN curated_token cs
  ON cs.raw_id = (SELECT raw_id FROM curated_organization WHERE tenant = o.tenant AND id = o.id)
 AND cs.param = 'identifier' AND cs.system = 'urn:healthlake:omop:care_site'
JOIN curated_token l
  ON l.raw_id = (SELECT raw_id FROM curated_organization WHERE tenant = o.tenant AND id = o.id)
 AND l.param = 'identifier' AND l.system = 'urn:healthlake:omop:location';

CREATE VIEW omop_care_site AS
SELECT o.tenant,
  CAST(cs.code AS INTEGER) AS care_site_id,
  o.name AS care_site_name,
  CASE o.org_type WHEN 'HOSP' THEN 8717 WHEN 'FMC' THEN 8940 ELSE 0 END AS place_of_service_concept_id,
  CAST((SELECT code FROM curated_token WHERE raw_id = (SELECT raw_id FROM curated_organization WHERE tenant = o.tenant AND id = o.id) AND param = 'identifier' AND system = 'urn:healthlake:omop:location') AS INTEGER) AS location_id,
  o.id AS care_site_source_value,
  o.org_type AS place_of_service_source_value
FROM curated_organization o
JOIN curated_token cs
  ON cs.raw_id = (SELECT raw_id FROM curated_organization WHERE tenant = o.tenant AND id = o.id)
 AND cs.param = 'identifier' AND cs.system = 'urn:healthlake:omop:care_site';

CREATE VIEW omop_provider AS
SELECT x.tenant,
  CAST(t.code AS INTEGER) AS provider_id,
  COALESCE(json_extract(x.resource, '$.name[0].given[0]'), '') || ' ' ||
    COALESCE(json_extract(x.resource, '$.name[0].family'), '') AS provider_name,
  (SELECT n.code FROM curated_token n WHERE n.raw_id = (SELECT raw_id FROM curated_practitioner WHERE tenant = x.tenant AND id = x.id)
      AND n.param = 'identifier' AND n.system = 'http://hl7.org/fhir/sid/us-npi' LIMIT 1) AS npi,
  NULL AS dea,
  NULL AS specialty_concept_id,
  NULL AS care_site_id,
  NULL AS year_of_birth,
  CASE x.gender WHEN 'male' THEN 8507 WHEN 'female' THEN 8532 ELSE 0 END AS gender_concept_id,
  x.id AS provider_source_value,
  NULL AS specialty_source_value,
  NULL AS specialty_source_concept_id,
  x.gender AS gender_source_value,
  0 AS gender_source_concept_id
FROM curated_practitioner x
JOIN curated_token t
  ON t.raw_id = (SELECT raw_id FROM curated_practitioner WHERE tenant = x.tenant AND id = x.id)
 AND t.param = 'identifier' AND t.system = 'urn:healthlake:omop:provider';
