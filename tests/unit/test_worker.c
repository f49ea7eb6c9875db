#include "hl_test.h"
HL_TEST_SUITE(worker);
