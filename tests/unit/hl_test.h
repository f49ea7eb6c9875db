/*
 * Helpers shared by the criterion unit tests.
 *
 * Criterion runs every test in a forked child, so LeakSanitizer's report at
 * exit would not fail the test. Suites declared with HL_TEST_SUITE run a
 * recoverable leak check at the end of each test and fail it on any leak.
 */
#ifndef HL_TEST_H
#define HL_TEST_H

#include <criterion/criterion.h>

#if defined(__SANITIZE_ADDRESS__)
#define HL_TEST_HAVE_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HL_TEST_HAVE_LSAN 1
#endif
#endif

#ifdef HL_TEST_HAVE_LSAN
#include <sanitizer/lsan_interface.h>
static inline void hl_test_leak_check(void) {
  cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "LeakSanitizer found leaks (see stderr)");
}
#else
static inline void hl_test_leak_check(void) {}
#endif

#define HL_TEST_SUITE(name, ...) TestSuite(name, .fini = hl_test_leak_check, ##__VA_ARGS__)

#endif
