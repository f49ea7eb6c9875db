/* The served FHIR types and their search parameters (see fhirtypes.h). */
#include "fhirtypes.h"

#include <string.h>

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

const hl_api_param_def hl_api_common_params[] = {
    {"_id", HL_SP_TOKEN, HL_SP_COLUMN, "id", NULL, NULL, NULL, true, "Logical id of the resource."},
    {"_lastUpdated", HL_SP_DATE, HL_SP_COLUMN, "last_updated", NULL, NULL, NULL, true,
     "When the resource version last changed (meta.lastUpdated)."},
};
const size_t hl_api_ncommon_params = COUNT(hl_api_common_params);

#define GENDER_SYS "http://hl7.org/fhir/administrative-gender"

static const hl_api_param_def patient_params[] = {
    {"name", HL_SP_STRING, HL_SP_SIDE_STRING, "name", NULL, NULL, NULL, false,
     "Any part of a name (family, given, prefix, suffix, text); prefix match."},
    {"family", HL_SP_STRING, HL_SP_SIDE_STRING, "family", NULL, NULL, NULL, true,
     "Family name; prefix match. Sorts by the first family name."},
    {"given", HL_SP_STRING, HL_SP_SIDE_STRING, "given", NULL, NULL, NULL, false,
     "Given name; prefix match."},
    {"birthdate", HL_SP_DATE, HL_SP_COLUMN, "birthdate", NULL, NULL, NULL, true, "Date of birth."},
    {"gender", HL_SP_TOKEN, HL_SP_COLUMN, "gender", NULL, GENDER_SYS, NULL, false,
     "Administrative gender."},
    {"identifier", HL_SP_TOKEN, HL_SP_SIDE_TOKEN, "identifier", NULL, NULL, NULL, false,
     "A patient identifier (system|value)."},
    {"organization", HL_SP_REFERENCE, HL_SP_COLUMN, "organization", NULL, NULL, "Organization",
     false, "The managing organization."},
};

static const hl_api_param_def encounter_params[] = {
    {"patient", HL_SP_REFERENCE, HL_SP_COLUMN, "patient", NULL, NULL, "Patient", false,
     "The patient present at the encounter."},
    {"subject", HL_SP_REFERENCE, HL_SP_COLUMN, "patient", NULL, NULL, "Patient", false,
     "The subject of the encounter (a Patient)."},
    {"date", HL_SP_DATE, HL_SP_COLUMN, "period_start", "period_end", NULL, NULL, true,
     "The period of the encounter."},
    {"status", HL_SP_TOKEN, HL_SP_COLUMN, "status", NULL, "http://hl7.org/fhir/encounter-status",
     NULL, false, "planned | arrived | in-progress | finished | ..."},
    {"class", HL_SP_TOKEN, HL_SP_COLUMN, "class", NULL,
     "http://terminology.hl7.org/CodeSystem/v3-ActCode", NULL, false,
     "Classification of the encounter (AMB, EMER, IMP, ...)."},
    {"type", HL_SP_TOKEN, HL_SP_SIDE_TOKEN, "type", NULL, NULL, NULL, false,
     "Specific type of encounter."},
    {"identifier", HL_SP_TOKEN, HL_SP_SIDE_TOKEN, "identifier", NULL, NULL, NULL, false,
     "An identifier of the encounter."},
};

static const hl_api_param_def observation_params[] = {
    {"patient", HL_SP_REFERENCE, HL_SP_COLUMN, "patient", NULL, NULL, "Patient", false,
     "The subject patient."},
    {"subject", HL_SP_REFERENCE, HL_SP_COLUMN, "patient", NULL, NULL, "Patient", false,
     "The subject of the observation (a Patient)."},
    {"encounter", HL_SP_REFERENCE, HL_SP_COLUMN, "encounter", NULL, NULL, "Encounter", false,
     "The encounter of the observation."},
    {"code", HL_SP_TOKEN, HL_SP_SIDE_TOKEN, "code", NULL, NULL, NULL, false,
     "The code of the observation (any coding)."},
    {"category", HL_SP_TOKEN, HL_SP_SIDE_TOKEN, "category", NULL, NULL, NULL, false,
     "The classification of the observation."},
    {"status", HL_SP_TOKEN, HL_SP_COLUMN, "status", NULL, "http://hl7.org/fhir/observation-status",
     NULL, false, "The status of the observation."},
    {"date", HL_SP_DATE, HL_SP_COLUMN, "effective", NULL, NULL, NULL, true,
     "Clinically relevant time (effective[x])."},
    {"value-quantity", HL_SP_QUANTITY, HL_SP_COLUMN, "value_quantity", NULL, NULL, NULL, false,
     "The value of the observation (valueQuantity), with an optional |system|code unit."},
    {"identifier", HL_SP_TOKEN, HL_SP_SIDE_TOKEN, "identifier", NULL, NULL, NULL, false,
     "An identifier of the observation."},
};

static const hl_api_param_def condition_params[] = {
    {"patient", HL_SP_REFERENCE, HL_SP_COLUMN, "patient", NULL, NULL, "Patient", false,
     "The subject patient."},
    {"subject", HL_SP_REFERENCE, HL_SP_COLUMN, "patient", NULL, NULL, "Patient", false,
     "The subject of the condition (a Patient)."},
    {"encounter", HL_SP_REFERENCE, HL_SP_COLUMN, "encounter", NULL, NULL, "Encounter", false,
     "The encounter the condition was asserted in."},
    {"code", HL_SP_TOKEN, HL_SP_SIDE_TOKEN, "code", NULL, NULL, NULL, false,
     "The code of the condition."},
    {"category", HL_SP_TOKEN, HL_SP_SIDE_TOKEN, "category", NULL, NULL, NULL, false,
     "The category of the condition."},
    {"clinical-status", HL_SP_TOKEN, HL_SP_SIDE_TOKEN, "clinical-status", NULL, NULL, NULL, false,
     "active | recurrence | relapse | inactive | remission | resolved."},
    {"onset-date", HL_SP_DATE, HL_SP_COLUMN, "onset", NULL, NULL, NULL, true,
     "Date of onset (onsetDateTime or onsetPeriod.start)."},
    {"identifier", HL_SP_TOKEN, HL_SP_SIDE_TOKEN, "identifier", NULL, NULL, NULL, false,
     "An identifier of the condition."},
};

static const hl_api_param_def medreq_params[] = {
    {"patient", HL_SP_REFERENCE, HL_SP_COLUMN, "patient", NULL, NULL, "Patient", false,
     "The subject patient."},
    {"subject", HL_SP_REFERENCE, HL_SP_COLUMN, "patient", NULL, NULL, "Patient", false,
     "The subject of the request (a Patient)."},
    {"code", HL_SP_TOKEN, HL_SP_SIDE_TOKEN, "code", NULL, NULL, NULL, false,
     "The medication code."},
    {"status", HL_SP_TOKEN, HL_SP_COLUMN, "status", NULL,
     "http://hl7.org/fhir/CodeSystem/medicationrequest-status", NULL, false,
     "The status of the prescription."},
    {"intent", HL_SP_TOKEN, HL_SP_COLUMN, "intent", NULL,
     "http://hl7.org/fhir/CodeSystem/medicationrequest-intent", NULL, false,
     "The intent of the prescription."},
    {"authoredon", HL_SP_DATE, HL_SP_COLUMN, "authored_on", NULL, NULL, NULL, true,
     "When the prescription was written."},
    {"identifier", HL_SP_TOKEN, HL_SP_SIDE_TOKEN, "identifier", NULL, NULL, NULL, false,
     "An identifier of the request."},
};

static const hl_api_param_def procedure_params[] = {
    {"patient", HL_SP_REFERENCE, HL_SP_COLUMN, "patient", NULL, NULL, "Patient", false,
     "The subject patient."},
    {"subject", HL_SP_REFERENCE, HL_SP_COLUMN, "patient", NULL, NULL, "Patient", false,
     "The subject of the procedure (a Patient)."},
    {"code", HL_SP_TOKEN, HL_SP_SIDE_TOKEN, "code", NULL, NULL, NULL, false,
     "The code of the procedure."},
    {"status", HL_SP_TOKEN, HL_SP_COLUMN, "status", NULL, "http://hl7.org/fhir/event-status", NULL,
     false, "The status of the procedure."},
    {"date", HL_SP_DATE, HL_SP_COLUMN, "performed_start", "performed_end", NULL, NULL, true,
     "When the procedure was performed."},
    {"identifier", HL_SP_TOKEN, HL_SP_SIDE_TOKEN, "identifier", NULL, NULL, NULL, false,
     "An identifier of the procedure."},
};

static const hl_api_param_def immunization_params[] = {
    {"patient", HL_SP_REFERENCE, HL_SP_COLUMN, "patient", NULL, NULL, "Patient", false,
     "The patient vaccinated."},
    {"vaccine-code", HL_SP_TOKEN, HL_SP_SIDE_TOKEN, "vaccine-code", NULL, NULL, NULL, false,
     "The vaccine product administered."},
    {"status", HL_SP_TOKEN, HL_SP_COLUMN, "status", NULL,
     "http://hl7.org/fhir/event-status", NULL, false, "completed | entered-in-error | not-done."},
    {"date", HL_SP_DATE, HL_SP_COLUMN, "occurrence", NULL, NULL, NULL, true,
     "When the vaccine was administered."},
    {"identifier", HL_SP_TOKEN, HL_SP_SIDE_TOKEN, "identifier", NULL, NULL, NULL, false,
     "An identifier of the immunization."},
};

static const hl_api_param_def organization_params[] = {
    {"name", HL_SP_STRING, HL_SP_SIDE_STRING, "name", NULL, NULL, NULL, false,
     "Name or alias of the organization; prefix match."},
    {"identifier", HL_SP_TOKEN, HL_SP_SIDE_TOKEN, "identifier", NULL, NULL, NULL, false,
     "An identifier of the organization."},
};

static const hl_api_param_def practitioner_params[] = {
    {"name", HL_SP_STRING, HL_SP_SIDE_STRING, "name", NULL, NULL, NULL, false,
     "Any part of a name; prefix match."},
    {"family", HL_SP_STRING, HL_SP_SIDE_STRING, "family", NULL, NULL, NULL, true,
     "Family name; prefix match."},
    {"given", HL_SP_STRING, HL_SP_SIDE_STRING, "given", NULL, NULL, NULL, false,
     "Given name; prefix match."},
    {"gender", HL_SP_TOKEN, HL_SP_COLUMN, "gender", NULL, GENDER_SYS, NULL, false,
     "Administrative gender."},
    {"identifier", HL_SP_TOKEN, HL_SP_SIDE_TOKEN, "identifier", NULL, NULL, NULL, false,
     "An identifier of the practitioner."},
};

#define T(name, table, pcol, params) {name, table, pcol, params, COUNT(params)}
const hl_api_type_def hl_api_types[] = {
    T("Patient", "curated_patient", "id", patient_params),
    T("Encounter", "curated_encounter", "patient", encounter_params),
    T("Observation", "curated_observation", "patient", observation_params),
    T("Condition", "curated_condition", "patient", condition_params),
    T("MedicationRequest", "curated_medication_request", "patient", medreq_params),
    T("Procedure", "curated_procedure", "patient", procedure_params),
    T("Immunization", "curated_immunization", "patient", immunization_params),
    T("Organization", "curated_organization", NULL, organization_params),
    T("Practitioner", "curated_practitioner", NULL, practitioner_params),
};
const size_t hl_api_ntypes = COUNT(hl_api_types);

const hl_api_type_def *hl_api_type_find(const char *type) {
  int i = hl_api_type_index(type);
  return i < 0 ? NULL : &hl_api_types[i];
}

int hl_api_type_index(const char *type) {
  if (!type)
    return -1;
  for (size_t i = 0; i < hl_api_ntypes; i++)
    if (!strcmp(hl_api_types[i].type, type))
      return (int)i;
  return -1;
}

const hl_api_param_def *hl_api_param_find(const hl_api_type_def *t, const char *name) {
  for (size_t i = 0; i < hl_api_ncommon_params; i++)
    if (!strcmp(hl_api_common_params[i].name, name))
      return &hl_api_common_params[i];
  for (size_t i = 0; t && i < t->nparams; i++)
    if (!strcmp(t->params[i].name, name))
      return &t->params[i];
  return NULL;
}

const char *hl_api_sp_kind_name(hl_api_sp_kind k) {
  switch (k) {
  case HL_SP_STRING: return "string";
  case HL_SP_TOKEN: return "token";
  case HL_SP_DATE: return "date";
  case HL_SP_REFERENCE: return "reference";
  case HL_SP_QUANTITY: return "quantity";
  }
  return "special";
}
