-- Each resource is stored once: in RAW.
--
-- Before: every curated_<type> table held the full resource as well as RAW,
-- so each ~1 KB resource was written twice (into the WAL and again at
-- checkpoints), in a rowid table with a separate (tenant, id) index.
-- Now the rows live in curated_<type>_row: the contract's columns without
-- `resource`. raw_id is the table's INTEGER PRIMARY KEY (its rowid): it
-- only grows, so a new curated row is appended at the end of the B-tree.
-- UNIQUE (tenant, id) is the contract's primary key.
--
-- curated_<type> is a view with exactly the contract's columns, in order;
-- its `resource` is a scalar subquery on RAW by rowid, evaluated only when
-- a query reads the column: counts, searches on search columns and the
-- OMOP views' raw_id lookups never touch RAW, and the view is a plain
-- one-table view that SQLite flattens into any query (a join to RAW would
-- not be left out of aggregate queries). A curated row's raw_id is always a
-- RAW row of the same tenant, type and id (RAW is append-only), so
-- `resource` is never NULL. The writer (libstream/src/warehouse_sqlite.c)
-- writes curated_<type>_row; readers (the API, the OMOP views, dbt's
-- checks) use the views as before.
--
-- Existing rows move over with their raw_id. The OMOP views refer to
-- curated_<type> by name and need no change: nothing is renamed, so no
-- view is rewritten.

CREATE TABLE curated_patient_row (
  tenant               TEXT NOT NULL,
  id                   TEXT NOT NULL,
  version_id           TEXT,
  last_updated         TEXT,
  raw_id               INTEGER NOT NULL PRIMARY KEY,
  active               INTEGER,
  gender               TEXT,
  birthdate            TEXT,
  family               TEXT,
  given                TEXT,
  deceased             TEXT,
  organization         TEXT,
  UNIQUE (tenant, id)
);
INSERT INTO curated_patient_row (tenant, id, version_id, last_updated, raw_id, active, gender, birthdate, family, given, deceased, organization)
SELECT tenant, id, version_id, last_updated, raw_id, active, gender, birthdate, family, given, deceased, organization FROM curated_patient ORDER BY raw_id;
DROP TABLE curated_patient;
CREATE VIEW curated_patient AS
SELECT c.tenant, c.id, c.version_id, c.last_updated, c.raw_id, (SELECT r.resource FROM raw r WHERE r.raw_id = c.raw_id) AS resource, c.active, c.gender, c.birthdate, c.family, c.given, c.deceased, c.organization
  FROM curated_patient_row c;
CREATE INDEX curated_patient_birthdate ON curated_patient_row (tenant, birthdate);

CREATE TABLE curated_encounter_row (
  tenant               TEXT NOT NULL,
  id                   TEXT NOT NULL,
  version_id           TEXT,
  last_updated         TEXT,
  raw_id               INTEGER NOT NULL PRIMARY KEY,
  status               TEXT,
  class                TEXT,
  patient              TEXT,
  period_start         TEXT,
  period_end           TEXT,
  practitioner         TEXT,
  service_provider     TEXT,
  UNIQUE (tenant, id)
);
INSERT INTO curated_encounter_row (tenant, id, version_id, last_updated, raw_id, status, class, patient, period_start, period_end, practitioner, service_provider)
SELECT tenant, id, version_id, last_updated, raw_id, status, class, patient, period_start, period_end, practitioner, service_provider FROM curated_encounter ORDER BY raw_id;
DROP TABLE curated_encounter;
CREATE VIEW curated_encounter AS
SELECT c.tenant, c.id, c.version_id, c.last_updated, c.raw_id, (SELECT r.resource FROM raw r WHERE r.raw_id = c.raw_id) AS resource, c.status, c.class, c.patient, c.period_start, c.period_end, c.practitioner, c.service_provider
  FROM curated_encounter_row c;
CREATE INDEX curated_encounter_patient ON curated_encounter_row (tenant, patient, period_start);

CREATE TABLE curated_observation_row (
  tenant               TEXT NOT NULL,
  id                   TEXT NOT NULL,
  version_id           TEXT,
  last_updated         TEXT,
  raw_id               INTEGER NOT NULL PRIMARY KEY,
  status               TEXT,
  patient              TEXT,
  encounter            TEXT,
  code_system          TEXT,
  code                 TEXT,
  category             TEXT,
  effective            TEXT,
  value_quantity       REAL,
  value_unit           TEXT,
  UNIQUE (tenant, id)
);
INSERT INTO curated_observation_row (tenant, id, version_id, last_updated, raw_id, status, patient, encounter, code_system, code, category, effective, value_quantity, value_unit)
SELECT tenant, id, version_id, last_updated, raw_id, status, patient, encounter, code_system, code, category, effective, value_quantity, value_unit FROM curated_observation ORDER BY raw_id;
DROP TABLE curated_observation;
CREATE VIEW curated_observation AS
SELECT c.tenant, c.id, c.version_id, c.last_updated, c.raw_id, (SELECT r.resource FROM raw r WHERE r.raw_id = c.raw_id) AS resource, c.status, c.patient, c.encounter, c.code_system, c.code, c.category, c.effective, c.value_quantity, c.value_unit
  FROM curated_observation_row c;
CREATE INDEX curated_observation_patient ON curated_observation_row (tenant, patient, code);

CREATE TABLE curated_condition_row (
  tenant               TEXT NOT NULL,
  id                   TEXT NOT NULL,
  version_id           TEXT,
  last_updated         TEXT,
  raw_id               INTEGER NOT NULL PRIMARY KEY,
  patient              TEXT,
  encounter            TEXT,
  code_system          TEXT,
  code                 TEXT,
  clinical_status      TEXT,
  verification_status  TEXT,
  onset                TEXT,
  abatement            TEXT,
  recorded_date        TEXT,
  UNIQUE (tenant, id)
);
INSERT INTO curated_condition_row (tenant, id, version_id, last_updated, raw_id, patient, encounter, code_system, code, clinical_status, verification_status, onset, abatement, recorded_date)
SELECT tenant, id, version_id, last_updated, raw_id, patient, encounter, code_system, code, clinical_status, verification_status, onset, abatement, recorded_date FROM curated_condition ORDER BY raw_id;
DROP TABLE curated_condition;
CREATE VIEW curated_condition AS
SELECT c.tenant, c.id, c.version_id, c.last_updated, c.raw_id, (SELECT r.resource FROM raw r WHERE r.raw_id = c.raw_id) AS resource, c.patient, c.encounter, c.code_system, c.code, c.clinical_status, c.verification_status, c.onset, c.abatement, c.recorded_date
  FROM curated_condition_row c;
CREATE INDEX curated_condition_patient ON curated_condition_row (tenant, patient);

CREATE TABLE curated_medication_request_row (
  tenant               TEXT NOT NULL,
  id                   TEXT NOT NULL,
  version_id           TEXT,
  last_updated         TEXT,
  raw_id               INTEGER NOT NULL PRIMARY KEY,
  status               TEXT,
  intent               TEXT,
  patient              TEXT,
  encounter            TEXT,
  code_system          TEXT,
  code                 TEXT,
  authored_on          TEXT,
  requester            TEXT,
  UNIQUE (tenant, id)
);
INSERT INTO curated_medication_request_row (tenant, id, version_id, last_updated, raw_id, status, intent, patient, encounter, code_system, code, authored_on, requester)
SELECT tenant, id, version_id, last_updated, raw_id, status, intent, patient, encounter, code_system, code, authored_on, requester FROM curated_medication_request ORDER BY raw_id;
DROP TABLE curated_medication_request;
CREATE VIEW curated_medication_request AS
SELECT c.tenant, c.id, c.version_id, c.last_updated, c.raw_id, (SELECT r.resource FROM raw r WHERE r.raw_id = c.raw_id) AS resource, c.status, c.intent, c.patient, c.encounter, c.code_system, c.code, c.authored_on, c.requester
  FROM curated_medication_request_row c;
CREATE INDEX curated_medication_request_patient ON curated_medication_request_row (tenant, patient);

CREATE TABLE curated_procedure_row (
  tenant               TEXT NOT NULL,
  id                   TEXT NOT NULL,
  version_id           TEXT,
  last_updated         TEXT,
  raw_id               INTEGER NOT NULL PRIMARY KEY,
  status               TEXT,
  patient              TEXT,
  encounter            TEXT,
  code_system          TEXT,
  code                 TEXT,
  performed_start      TEXT,
  performed_end        TEXT,
  performer            TEXT,
  UNIQUE (tenant, id)
);
INSERT INTO curated_procedure_row (tenant, id, version_id, last_updated, raw_id, status, patient, encounter, code_system, code, performed_start, performed_end, performer)
SELECT tenant, id, version_id, last_updated, raw_id, status, patient, encounter, code_system, code, performed_start, performed_end, performer FROM curated_procedure ORDER BY raw_id;
DROP TABLE curated_procedure;
CREATE VIEW curated_procedure AS
SELECT c.tenant, c.id, c.version_id, c.last_updated, c.raw_id, (SELECT r.resource FROM raw r WHERE r.raw_id = c.raw_id) AS resource, c.status, c.patient, c.encounter, c.code_system, c.code, c.performed_start, c.performed_end, c.performer
  FROM curated_procedure_row c;
CREATE INDEX curated_procedure_patient ON curated_procedure_row (tenant, patient);

CREATE TABLE curated_immunization_row (
  tenant               TEXT NOT NULL,
  id                   TEXT NOT NULL,
  version_id           TEXT,
  last_updated         TEXT,
  raw_id               INTEGER NOT NULL PRIMARY KEY,
  status               TEXT,
  patient              TEXT,
  encounter            TEXT,
  vaccine_system       TEXT,
  vaccine_code         TEXT,
  occurrence           TEXT,
  performer            TEXT,
  UNIQUE (tenant, id)
);
INSERT INTO curated_immunization_row (tenant, id, version_id, last_updated, raw_id, status, patient, encounter, vaccine_system, vaccine_code, occurrence, performer)
SELECT tenant, id, version_id, last_updated, raw_id, status, patient, encounter, vaccine_system, vaccine_code, occurrence, performer FROM curated_immunization ORDER BY raw_id;
DROP TABLE curated_immunization;
CREATE VIEW curated_immunization AS
SELECT c.tenant, c.id, c.version_id, c.last_updated, c.raw_id, (SELECT r.resource FROM raw r WHERE r.raw_id = c.raw_id) AS resource, c.status, c.patient, c.encounter, c.vaccine_system, c.vaccine_code, c.occurrence, c.performer
  FROM curated_immunization_row c;
CREATE INDEX curated_immunization_patient ON curated_immunization_row (tenant, patient);

CREATE TABLE curated_organization_row (
  tenant               TEXT NOT NULL,
  id                   TEXT NOT NULL,
  version_id           TEXT,
  last_updated         TEXT,
  raw_id               INTEGER NOT NULL PRIMARY KEY,
  active               INTEGER,
  name                 TEXT,
  org_type             TEXT,
  part_of              TEXT,
  UNIQUE (tenant, id)
);
INSERT INTO curated_organization_row (tenant, id, version_id, last_updated, raw_id, active, name, org_type, part_of)
SELECT tenant, id, version_id, last_updated, raw_id, active, name, org_type, part_of FROM curated_organization ORDER BY raw_id;
DROP TABLE curated_organization;
CREATE VIEW curated_organization AS
SELECT c.tenant, c.id, c.version_id, c.last_updated, c.raw_id, (SELECT r.resource FROM raw r WHERE r.raw_id = c.raw_id) AS resource, c.active, c.name, c.org_type, c.part_of
  FROM curated_organization_row c;

CREATE TABLE curated_practitioner_row (
  tenant               TEXT NOT NULL,
  id                   TEXT NOT NULL,
  version_id           TEXT,
  last_updated         TEXT,
  raw_id               INTEGER NOT NULL PRIMARY KEY,
  active               INTEGER,
  gender               TEXT,
  family               TEXT,
  given                TEXT,
  UNIQUE (tenant, id)
);
INSERT INTO curated_practitioner_row (tenant, id, version_id, last_updated, raw_id, active, gender, family, given)
SELECT tenant, id, version_id, last_updated, raw_id, active, gender, family, given FROM curated_practitioner ORDER BY raw_id;
DROP TABLE curated_practitioner;
CREATE VIEW curated_practitioner AS
SELECT c.tenant, c.id, c.version_id, c.last_updated, c.raw_id, (SELECT r.resource FROM raw r WHERE r.raw_id = c.raw_id) AS resource, c.active, c.gender, c.family, c.given
  FROM curated_practitioner_row c;
