-- Curated tables: the current version of every resource (newest wins by
-- versionId, then lastUpdated), with the search columns of the column
-- contract (schemas/warehouse/curated_contract.json, checked by a test and
-- at open) and the full resource. Multi-valued search parameters live in
-- the side tables curated_token and curated_string.

CREATE TABLE curated_patient (
  tenant               TEXT NOT NULL,
  id                   TEXT NOT NULL,
  version_id           TEXT,
  last_updated         TEXT,
  raw_id               INTEGER NOT NULL,
  resource             TEXT NOT NULL,
  active               INTEGER,
  gender               TEXT,
  birthdate            TEXT,
  family               TEXT,
  given                TEXT,
  deceased             TEXT,
  organization         TEXT,
  PRIMARY KEY (tenant, id)
);

CREATE TABLE curated_encounter (
  tenant               TEXT NOT NULL,
  id                   TEXT NOT NULL,
  version_id           TEXT,
  last_updated         TEXT,
  raw_id               INTEGER NOT NULL,
  resource             TEXT NOT NULL,
  status               TEXT,
  class                TEXT,
  patient              TEXT,
  period_start         TEXT,
  period_end           TEXT,
  practitioner         TEXT,
  service_provider     TEXT,
  PRIMARY KEY (tenant, id)
);

CREATE TABLE curated_observation (
  tenant               TEXT NOT NULL,
  id                   TEXT NOT NULL,
  version_id           TEXT,
  last_updated         TEXT,
  raw_id               INTEGER NOT NULL,
  resource             TEXT NOT NULL,
  status               TEXT,
  patient              TEXT,
  encounter            TEXT,
  code_system          TEXT,
  code                 TEXT,
  category             TEXT,
  effective            TEXT,
  value_quantity       REAL,
  value_unit           TEXT,
  PRIMARY KEY (tenant, id)
);

CREATE TABLE curated_condition (
  tenant               TEXT NOT NULL,
  id                   TEXT NOT NULL,
  version_id           TEXT,
  last_updated         TEXT,
  raw_id               INTEGER NOT NULL,
  resource             TEXT NOT NULL,
  patient              TEXT,
  encounter            TEXT,
  code_system          TEXT,
  code                 TEXT,
  clinical_status      TEXT,
  verification_status  TEXT,
  onset                TEXT,
  abatement            TEXT,
  recorded_date        TEXT,
  PRIMARY KEY (tenant, id)
);

CREATE TABLE curated_medication_request (
  tenant               TEXT NOT NULL,
  id                   TEXT NOT NULL,
  version_id           TEXT,
  last_updated         TEXT,
  raw_id               INTEGER NOT NULL,
  resource             TEXT NOT NULL,
  status               TEXT,
  intent               TEXT,
  patient              TEXT,
  encounter            TEXT,
  code_system          TEXT,
  code                 TEXT,
  authored_on          TEXT,
  requester            TEXT,
  PRIMARY KEY (tenant, id)
);

CREATE TABLE curated_procedure (
  tenant               TEXT NOT NULL,
  id                   TEXT NOT NULL,
  version_id           TEXT,
  last_updated         TEXT,
  raw_id               INTEGER NOT NULL,
  resource             TEXT NOT NULL,
  status               TEXT,
  patient              TEXT,
  encounter            TEXT,
  code_system          TEXT,
  code                 TEXT,
  performed_start      TEXT,
  performed_end        TEXT,
  performer            TEXT,
  PRIMARY KEY (tenant, id)
);

CREATE TABLE curated_immunization (
  tenant               TEXT NOT NULL,
  id                   TEXT NOT NULL,
  version_id           TEXT,
  last_updated         TEXT,
  raw_id               INTEGER NOT NULL,
  resource             TEXT NOT NULL,
  status               TEXT,
  patient              TEXT,
  encounter            TEXT,
  vaccine_system       TEXT,
  vaccine_code         TEXT,
  occurrence           TEXT,
  performer            TEXT,
  PRIMARY KEY (tenant, id)
);

CREATE TABLE curated_organization (
  tenant               TEXT NOT NULL,
  id                   TEXT NOT NULL,
  version_id           TEXT,
  last_updated         TEXT,
  raw_id               INTEGER NOT NULL,
  resource             TEXT NOT NULL,
  active               INTEGER,
  name                 TEXT,
  org_type             TEXT,
  part_of              TEXT,
  PRIMARY KEY (tenant, id)
);

CREATE TABLE curated_practitioner (
  tenant               TEXT NOT NULL,
  id                   TEXT NOT NULL,
  version_id           TEXT,
  last_updated         TEXT,
  raw_id               INTEGER NOT NULL,
  resource             TEXT NOT NULL,
  active               INTEGER,
  gender               TEXT,
  family               TEXT,
  given                TEXT,
  PRIMARY KEY (tenant, id)
);

-- Token search parameters (system|code), one row per value.
CREATE TABLE curated_token (
  tenant               TEXT NOT NULL,
  type                 TEXT NOT NULL,
  id                   TEXT NOT NULL,
  param                TEXT NOT NULL,
  system               TEXT NOT NULL,
  code                 TEXT NOT NULL,
  PRIMARY KEY (tenant, type, id, param, system, code)
) WITHOUT ROWID;

-- String search parameters, normalized for prefix search.
CREATE TABLE curated_string (
  tenant               TEXT NOT NULL,
  type                 TEXT NOT NULL,
  id                   TEXT NOT NULL,
  param                TEXT NOT NULL,
  value                TEXT NOT NULL,
  PRIMARY KEY (tenant, type, id, param, value)
) WITHOUT ROWID;

-- Search indexes (not part of the column contract).
CREATE INDEX curated_token_search ON curated_token (tenant, type, param, code, system);
CREATE INDEX curated_string_search ON curated_string (tenant, type, param, value);
CREATE INDEX curated_patient_birthdate ON curated_patient (tenant, birthdate);
CREATE INDEX curated_encounter_patient ON curated_encounter (tenant, patient, period_start);
CREATE INDEX curated_observation_patient ON curated_observation (tenant, patient, code);
CREATE INDEX curated_condition_patient ON curated_condition (tenant, patient);
CREATE INDEX curated_medication_request_patient ON curated_medication_request (tenant, patient);
CREATE INDEX curated_procedure_patient ON curated_procedure (tenant, patient);
CREATE INDEX curated_immunization_patient ON curated_immunization (tenant, patient);
