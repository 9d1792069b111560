/* fuzz_coord_api.c — the coordinator's control API (coord_api_handle: every
 * request handler: submit, get, watch, list, cancel, logs, workers, drain) on
 * an in-memory coordinator with a temporary SQLite store
 * (coord_harness.h). The input is the frame body as received. */
#include "tests/fuzz/coord_harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  harness_init();
  harness_feed(1, data, size);
  return 0;
}
