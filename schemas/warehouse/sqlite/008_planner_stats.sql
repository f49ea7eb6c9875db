-- Planner statistics for the search indexes.
--
-- Without sqlite_stat1 SQLite guesses every index equally selective, and
-- for a search with LIMIT it prefers the index that yields rows already in
-- the requested order. `Observation?patient=...` (sorted by id) then walked
-- the whole UNIQUE (tenant, id) index, testing each row's patient: about
-- 0.4 s at 20,000 patients, instead of reading that patient's rows from
-- curated_observation_patient and sorting a few hundred of them.
--
-- These rows give the planner the shape of a warehouse, not its size: a
-- nominal 1,000,000 rows per table, all of one tenant (the worst case), a
-- patient with tens to hundreds of rows of each type, an id unique. The
-- plans follow from the ratios, so they hold at any size; a later ANALYZE
-- (by hand, or PRAGMA optimize) replaces them with measured figures.
-- Columns of each stat: rows, then the average rows per distinct value of
-- the first 1, 2, ... columns of the index.
--
-- tests/unit/test_api_plan.c checks the plans of the API's searches.

ANALYZE sqlite_schema;

DELETE FROM sqlite_stat1 WHERE tbl LIKE 'curated\_%' ESCAPE '\';

INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES
  ('curated_patient_row', 'sqlite_autoindex_curated_patient_row_1', '1000000 1000000 1'),
  ('curated_patient_row', 'curated_patient_birthdate', '1000000 1000000 30'),
  ('curated_encounter_row', 'sqlite_autoindex_curated_encounter_row_1', '1000000 1000000 1'),
  ('curated_encounter_row', 'curated_encounter_patient', '1000000 1000000 50 1'),
  ('curated_observation_row', 'sqlite_autoindex_curated_observation_row_1', '1000000 1000000 1'),
  ('curated_observation_row', 'curated_observation_patient', '1000000 1000000 300 10'),
  ('curated_condition_row', 'sqlite_autoindex_curated_condition_row_1', '1000000 1000000 1'),
  ('curated_condition_row', 'curated_condition_patient', '1000000 1000000 20'),
  ('curated_medication_request_row', 'sqlite_autoindex_curated_medication_request_row_1',
   '1000000 1000000 1'),
  ('curated_medication_request_row', 'curated_medication_request_patient', '1000000 1000000 20'),
  ('curated_procedure_row', 'sqlite_autoindex_curated_procedure_row_1', '1000000 1000000 1'),
  ('curated_procedure_row', 'curated_procedure_patient', '1000000 1000000 50'),
  ('curated_immunization_row', 'sqlite_autoindex_curated_immunization_row_1', '1000000 1000000 1'),
  ('curated_immunization_row', 'curated_immunization_patient', '1000000 1000000 20'),
  ('curated_organization_row', 'sqlite_autoindex_curated_organization_row_1', '1000000 1000000 1'),
  ('curated_practitioner_row', 'sqlite_autoindex_curated_practitioner_row_1', '1000000 1000000 1'),
  ('curated_token', 'curated_token_search', '4000000 4000000 500000 200000 20 20'),
  ('curated_string', 'curated_string_search', '2000000 2000000 250000 125000 2');
