/*
 * The code and frequency tables of hl-synth (see tables.h and
 * docs/synth.md for the sources of the numbers).
 *
 * OMOP concept ids are the standard concepts of the OMOP vocabularies
 * (SNOMED conditions and procedures, LOINC measurements, RxNorm ingredients,
 * CVX vaccines, UCUM units, and the OMOP Gender/Race/Ethnicity/Visit/Type
 * Concept vocabularies) for exactly the codes written on the FHIR side.
 */
#include "tables.h"

const hl_code hl_conditions[HL_COND_N] = {
  [HL_C_OBESITY] = {"414916001", "Obesity (disorder)", 433736},
  [HL_C_HYPERTENSION] = {"59621000", "Essential hypertension (disorder)", 320128},
  [HL_C_HYPERLIPIDEMIA] = {"55822004", "Hyperlipidemia (disorder)", 432867},
  [HL_C_DIABETES] = {"44054006", "Diabetes mellitus type 2 (disorder)", 201826},
  [HL_C_CKD] = {"709044004", "Chronic kidney disease (disorder)", 46271022},
  [HL_C_CAD] = {"53741008", "Coronary arteriosclerosis (disorder)", 317576},
  [HL_C_ASTHMA] = {"195967001", "Asthma (disorder)", 317009},
  [HL_C_COPD] = {"13645005", "Chronic obstructive lung disease (disorder)", 255573},
  [HL_C_DEPRESSION] = {"35489007", "Depressive disorder (disorder)", 440383},
  [HL_C_PHARYNGITIS] = {"195662009", "Acute viral pharyngitis (disorder)", 4112343},
  [HL_C_BRONCHITIS] = {"10509002", "Acute bronchitis (disorder)", 260139},
  [HL_C_SINUSITIS] = {"444814009", "Viral sinusitis (disorder)", 40481087},
  [HL_C_OTITIS] = {"65363002", "Otitis media (disorder)", 372328},
  [HL_C_SPRAIN] = {"44465007", "Sprain of ankle (disorder)", 81151},
};

/* p_max, a50, s, min_age: see docs/synth.md "Chronic conditions". */
const hl_cond_model hl_cond_models[HL_COND_NCHRONIC] = {
  [HL_C_OBESITY] = {0.42, 12, 6, 2},
  [HL_C_HYPERTENSION] = {0.72, 55, 10, 18},
  [HL_C_HYPERLIPIDEMIA] = {0.50, 52, 9, 20},
  [HL_C_DIABETES] = {0.24, 60, 9, 20},
  [HL_C_CKD] = {0.20, 72, 8, 30},
  [HL_C_CAD] = {0.20, 70, 8, 35},
  [HL_C_ASTHMA] = {0.085, 6, 3, 1},
  [HL_C_COPD] = {0.12, 64, 8, 40},
  [HL_C_DEPRESSION] = {0.09, 25, 5, 12},
};

const hl_obs_code hl_obs_codes[HL_OBS_N] = {
  [HL_O_BP_PANEL] = {{"85354-9", "Blood pressure panel with all children optional", 0}, NULL, 0, 0, 1},
  [HL_O_SYSTOLIC] = {{"8480-6", "Systolic blood pressure", 3004249}, "mm[Hg]", 8876, 0, 1},
  [HL_O_DIASTOLIC] = {{"8462-4", "Diastolic blood pressure", 3012888}, "mm[Hg]", 8876, 0, 1},
  [HL_O_HEART_RATE] = {{"8867-4", "Heart rate", 3027018}, "/min", 8541, 0, 1},
  [HL_O_HEIGHT] = {{"8302-2", "Body height", 3036277}, "cm", 8582, 1, 1},
  [HL_O_WEIGHT] = {{"29463-7", "Body weight", 3025315}, "kg", 9529, 1, 1},
  [HL_O_BMI] = {{"39156-5", "Body mass index (BMI) [Ratio]", 3038553}, "kg/m2", 9531, 1, 1},
  [HL_O_HBA1C] = {{"4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", 3004410}, "%", 8554, 1, 0},
  [HL_O_GLUCOSE] = {{"2345-7", "Glucose [Mass/volume] in Serum or Plasma", 3004501}, "mg/dL", 8840, 0, 0},
  [HL_O_CHOLESTEROL] = {{"2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", 3027114}, "mg/dL", 8840, 0, 0},
  [HL_O_TRIGLYCERIDE] = {{"2571-8", "Triglyceride [Mass/volume] in Serum or Plasma", 3022192}, "mg/dL", 8840, 0, 0},
  [HL_O_HDL] = {{"2085-9", "Cholesterol in HDL [Mass/volume] in Serum or Plasma", 3007070}, "mg/dL", 8840, 0, 0},
  [HL_O_LDL] = {{"13457-7", "Cholesterol in LDL [Mass/volume] in Serum or Plasma by calculation", 3028437}, "mg/dL", 8840, 0, 0},
  [HL_O_CREATININE] = {{"2160-0", "Creatinine [Mass/volume] in Serum or Plasma", 3016723}, "mg/dL", 8840, 2, 0},
  [HL_O_EGFR] = {{"33914-3", "Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum or Plasma by Creatinine-based formula (MDRD)", 3049187}, "mL/min/{1.73_m2}", 8795, 0, 0},
};

#define ORAL "26643006", "Oral route", 4132161
#define INHALED "447694001", "Respiratory tract route", 0
#define SUBCUT "34206005", "Subcutaneous route", 4142048
const hl_med_code hl_meds[HL_MED_N] = {
  [HL_M_METFORMIN] = {{"6809", "metformin", 1503297}, 500, "mg", 2, ORAL, "500 mg by mouth twice daily"},
  [HL_M_INSULIN] = {{"274783", "insulin glargine", 1502905}, 20, "[iU]", 1, SUBCUT, "20 units under the skin once daily"},
  [HL_M_LISINOPRIL] = {{"29046", "lisinopril", 1308216}, 10, "mg", 1, ORAL, "10 mg by mouth once daily"},
  [HL_M_AMLODIPINE] = {{"17767", "amlodipine", 1332418}, 5, "mg", 1, ORAL, "5 mg by mouth once daily"},
  [HL_M_HCTZ] = {{"5487", "hydrochlorothiazide", 974166}, 25, "mg", 1, ORAL, "25 mg by mouth once daily"},
  [HL_M_ATORVASTATIN] = {{"83367", "atorvastatin", 1545958}, 20, "mg", 1, ORAL, "20 mg by mouth once daily"},
  [HL_M_ALBUTEROL] = {{"435", "albuterol", 1154343}, 0.18, "mg", 4, INHALED, "2 puffs inhaled every 6 hours as needed"},
  [HL_M_FLUTICASONE] = {{"41126", "fluticasone", 1149380}, 0.088, "mg", 2, INHALED, "2 puffs inhaled twice daily"},
  [HL_M_TIOTROPIUM] = {{"69120", "tiotropium", 1106776}, 0.018, "mg", 1, INHALED, "1 capsule inhaled once daily"},
  [HL_M_AMOXICILLIN] = {{"723", "amoxicillin", 1713332}, 500, "mg", 3, ORAL, "500 mg by mouth three times daily for 10 days"},
  [HL_M_IBUPROFEN] = {{"5640", "ibuprofen", 1177480}, 400, "mg", 3, ORAL, "400 mg by mouth every 8 hours as needed"},
  [HL_M_ACETAMINOPHEN] = {{"161", "acetaminophen", 1125315}, 500, "mg", 3, ORAL, "500 mg by mouth every 8 hours as needed"},
  [HL_M_SERTRALINE] = {{"36437", "sertraline", 739138}, 50, "mg", 1, ORAL, "50 mg by mouth once daily"},
  [HL_M_METOPROLOL] = {{"6918", "metoprolol", 1307046}, 50, "mg", 2, ORAL, "50 mg by mouth twice daily"},
};

const hl_code hl_procs[HL_PROC_N] = {
  [HL_P_COLONOSCOPY] = {"73761001", "Colonoscopy (procedure)", 4249893},
  [HL_P_MAMMOGRAPHY] = {"71651007", "Mammography (procedure)", 4324693},
};

const hl_code hl_vaccines[HL_VAX_N] = {
  [HL_V_FLU_PF] = {"140", "Influenza, seasonal, injectable, preservative free", 40213154},
  [HL_V_FLU] = {"141", "Influenza, seasonal, injectable", 40213153},
};

const hl_enc_code hl_encs[HL_ENC_N] = {
  [HL_E_WELLNESS_CHILD] = {{"410620009", "Well child visit (procedure)", 0}, "AMB", "ambulatory", 9202},
  [HL_E_WELLNESS_ADULT] = {{"162673000", "General examination of patient (procedure)", 0}, "AMB", "ambulatory", 9202},
  [HL_E_CHECKUP] = {{"185349003", "Encounter for check up (procedure)", 0}, "AMB", "ambulatory", 9202},
  [HL_E_SYMPTOM] = {{"185345009", "Encounter for symptom (procedure)", 0}, "AMB", "ambulatory", 9202},
  [HL_E_EMERGENCY] = {{"50849002", "Emergency room admission (procedure)", 0}, "EMER", "emergency", 9203},
  [HL_E_INPATIENT] = {{"32485007", "Hospital admission (procedure)", 0}, "IMP", "inpatient encounter", 9201},
};

/* US resident population by 5-year age band, 2020 Census (percent), and the male share. */
const hl_age_band hl_age_bands[] = {
  {0, 4, 5.7, 0.511},   {5, 9, 6.0, 0.511},   {10, 14, 6.4, 0.511}, {15, 19, 6.5, 0.511},
  {20, 24, 6.5, 0.510}, {25, 29, 6.9, 0.507}, {30, 34, 6.8, 0.503}, {35, 39, 6.6, 0.500},
  {40, 44, 6.2, 0.497}, {45, 49, 6.1, 0.495}, {50, 54, 6.2, 0.493}, {55, 59, 6.5, 0.487},
  {60, 64, 6.3, 0.478}, {65, 69, 5.4, 0.469}, {70, 74, 4.3, 0.458}, {75, 79, 2.9, 0.441},
  {80, 84, 1.8, 0.413}, {85, 99, 1.9, 0.355},
};
const size_t hl_age_nbands = sizeof(hl_age_bands) / sizeof(hl_age_bands[0]);

/* 2020 Census race alone or in combination collapsed to OMB categories (percent). */
const hl_race hl_races[] = {
  {"2106-3", "White", 8527, 61.6},
  {"2054-5", "Black or African American", 8516, 12.4},
  {"2028-9", "Asian", 8515, 6.0},
  {"1002-5", "American Indian or Alaska Native", 8657, 1.1},
  {"2076-8", "Native Hawaiian or Other Pacific Islander", 8557, 0.2},
  {"2131-1", "Other Race", 0, 18.7},
};
const size_t hl_nraces = sizeof(hl_races) / sizeof(hl_races[0]);
const double hl_hispanic_share = 18.7;

/* Weights: approximate US Social Security Administration counts (thousands), 1920-2020. */
const hl_name hl_male_names[] = {
  {"James", 4765}, {"Robert", 4706}, {"John", 4525}, {"Michael", 4405}, {"David", 3621},
  {"William", 3614}, {"Richard", 2539}, {"Joseph", 2595}, {"Thomas", 2307}, {"Christopher", 2045},
  {"Charles", 2224}, {"Daniel", 1918}, {"Matthew", 1610}, {"Anthony", 1436}, {"Mark", 1355},
  {"Donald", 1383}, {"Steven", 1290}, {"Andrew", 1283}, {"Paul", 1277}, {"Joshua", 1227},
  {"Kenneth", 1112}, {"Kevin", 1178}, {"Brian", 1186}, {"George", 1405}, {"Timothy", 1080},
  {"Ronald", 1020}, {"Jason", 1073}, {"Edward", 1013}, {"Jeffrey", 976}, {"Ryan", 953},
  {"Jacob", 928}, {"Gary", 903}, {"Nicholas", 903}, {"Eric", 852}, {"Jonathan", 848},
  {"Stephen", 818}, {"Larry", 807}, {"Justin", 781}, {"Scott", 776}, {"Brandon", 761},
  {"Benjamin", 750}, {"Samuel", 727}, {"Gregory", 709}, {"Alexander", 703}, {"Patrick", 664},
  {"Frank", 661}, {"Raymond", 659}, {"Jack", 624}, {"Dennis", 615}, {"Jerry", 605},
  {"Tyler", 591}, {"Aaron", 575}, {"Jose", 567}, {"Adam", 558}, {"Nathan", 555},
  {"Henry", 551}, {"Zachary", 534}, {"Douglas", 533}, {"Peter", 531}, {"Kyle", 514},
};
const size_t hl_nmale_names = sizeof(hl_male_names) / sizeof(hl_male_names[0]);

const hl_name hl_female_names[] = {
  {"Mary", 3196}, {"Patricia", 1558}, {"Jennifer", 1468}, {"Linda", 1448}, {"Elizabeth", 1636},
  {"Barbara", 1434}, {"Susan", 1108}, {"Jessica", 1046}, {"Sarah", 1086}, {"Karen", 985},
  {"Lisa", 964}, {"Nancy", 1005}, {"Betty", 993}, {"Sandra", 873}, {"Margaret", 1229},
  {"Ashley", 855}, {"Kimberly", 838}, {"Emily", 849}, {"Donna", 823}, {"Michelle", 814},
  {"Carol", 808}, {"Amanda", 776}, {"Melissa", 756}, {"Deborah", 740}, {"Stephanie", 742},
  {"Dorothy", 730}, {"Rebecca", 700}, {"Sharon", 677}, {"Laura", 676}, {"Cynthia", 660},
  {"Amy", 645}, {"Kathleen", 651}, {"Angela", 632}, {"Shirley", 600}, {"Brenda", 606},
  {"Emma", 621}, {"Anna", 612}, {"Pamela", 581}, {"Nicole", 571}, {"Samantha", 560},
  {"Katherine", 563}, {"Christine", 548}, {"Helen", 560}, {"Debra", 548}, {"Rachel", 549},
  {"Carolyn", 537}, {"Janet", 537}, {"Maria", 529}, {"Catherine", 520}, {"Heather", 505},
  {"Diane", 496}, {"Olivia", 492}, {"Julie", 480}, {"Joyce", 476}, {"Victoria", 465},
  {"Ruth", 460}, {"Virginia", 455}, {"Lauren", 448}, {"Kelly", 446}, {"Christina", 438},
};
const size_t hl_nfemale_names = sizeof(hl_female_names) / sizeof(hl_female_names[0]);

/* Weights: 2010 Census surname frequency per 100,000 people. */
const hl_name hl_surnames[] = {
  {"Smith", 828}, {"Johnson", 655}, {"Williams", 551}, {"Brown", 487}, {"Jones", 483},
  {"Garcia", 396}, {"Miller", 394}, {"Davis", 382}, {"Rodriguez", 311}, {"Martinez", 298},
  {"Hernandez", 296}, {"Lopez", 247}, {"Gonzalez", 239}, {"Wilson", 237}, {"Anderson", 234},
  {"Thomas", 221}, {"Taylor", 221}, {"Moore", 209}, {"Jackson", 205}, {"Martin", 201},
  {"Lee", 200}, {"Perez", 194}, {"Thompson", 188}, {"White", 186}, {"Harris", 172},
  {"Sanchez", 167}, {"Clark", 156}, {"Ramirez", 155}, {"Lewis", 150}, {"Robinson", 150},
  {"Walker", 147}, {"Young", 140}, {"Allen", 140}, {"King", 137}, {"Wright", 135},
  {"Scott", 127}, {"Torres", 121}, {"Nguyen", 120}, {"Hill", 119}, {"Flores", 118},
  {"Green", 118}, {"Adams", 117}, {"Nelson", 116}, {"Baker", 115}, {"Hall", 114},
  {"Rivera", 111}, {"Campbell", 111}, {"Mitchell", 109}, {"Carter", 107}, {"Roberts", 107},
  {"Gomez", 104}, {"Phillips", 103}, {"Evans", 102}, {"Turner", 99}, {"Diaz", 99},
  {"Parker", 99}, {"Cruz", 97}, {"Edwards", 97}, {"Collins", 96}, {"Reyes", 96},
  {"O'Brien", 40}, {"Muñoz", 57},
};
const size_t hl_nsurnames = sizeof(hl_surnames) / sizeof(hl_surnames[0]);

const char *const hl_streets[] = {
  "Main St", "Oak St", "Pine St", "Maple Ave", "Cedar Ln", "Elm St", "Washington Ave",
  "Lake Dr", "Hill Rd", "Park Ave", "Church St", "Sunset Blvd", "River Rd", "Mill St",
  "Highland Ave", "Franklin St", "Jefferson St", "Lincoln Ave", "Walnut St", "Spring St",
};
const size_t hl_nstreets = sizeof(hl_streets) / sizeof(hl_streets[0]);

/* 2020 Census apportionment population (millions), largest city, a ZIP3 prefix there. */
const hl_state hl_states[] = {
  {"CA", "Los Angeles", 900, 39.54}, {"TX", "Houston", 770, 29.15}, {"FL", "Jacksonville", 322, 21.54},
  {"NY", "New York", 100, 20.20},    {"PA", "Philadelphia", 191, 13.00}, {"IL", "Chicago", 606, 12.81},
  {"OH", "Columbus", 432, 11.80},    {"GA", "Atlanta", 303, 10.71},     {"NC", "Charlotte", 282, 10.44},
  {"MI", "Detroit", 482, 10.08},     {"NJ", "Newark", 71, 9.29},          {"VA", "Virginia Beach", 234, 8.63},
  {"WA", "Seattle", 981, 7.71},      {"AZ", "Phoenix", 850, 7.15},        {"MA", "Boston", 21, 7.03},
  {"TN", "Nashville", 372, 6.91},    {"IN", "Indianapolis", 462, 6.79},   {"MD", "Baltimore", 212, 6.18},
  {"MO", "Kansas City", 641, 6.15},  {"WI", "Milwaukee", 532, 5.89},      {"CO", "Denver", 802, 5.77},
  {"MN", "Minneapolis", 554, 5.71},  {"SC", "Charleston", 294, 5.12},     {"AL", "Birmingham", 352, 5.02},
  {"LA", "New Orleans", 701, 4.66},  {"KY", "Louisville", 402, 4.51},     {"OR", "Portland", 972, 4.24},
  {"OK", "Oklahoma City", 731, 3.96},{"CT", "Bridgeport", 66, 3.61},      {"UT", "Salt Lake City", 841, 3.27},
  {"IA", "Des Moines", 503, 3.19},   {"NV", "Las Vegas", 891, 3.10},      {"AR", "Little Rock", 722, 3.01},
  {"MS", "Jackson", 392, 2.96},      {"KS", "Wichita", 672, 2.94},        {"NM", "Albuquerque", 871, 2.12},
  {"NE", "Omaha", 681, 1.96},        {"ID", "Boise", 837, 1.84},          {"WV", "Charleston", 253, 1.79},
  {"HI", "Honolulu", 968, 1.46},     {"NH", "Manchester", 31, 1.38},      {"ME", "Portland", 41, 1.36},
  {"RI", "Providence", 29, 1.10},    {"MT", "Billings", 591, 1.08},       {"DE", "Wilmington", 198, 0.99},
  {"SD", "Sioux Falls", 571, 0.89},  {"ND", "Fargo", 581, 0.78},          {"AK", "Anchorage", 995, 0.73},
  {"DC", "Washington", 200, 0.69},   {"VT", "Burlington", 54, 0.64},      {"WY", "Cheyenne", 820, 0.58},
};
const size_t hl_nstates = sizeof(hl_states) / sizeof(hl_states[0]);
