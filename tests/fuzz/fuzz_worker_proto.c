/* fuzz_worker_proto.c — the coordinator's worker protocol (coord_wp_handle:
 * register, heartbeat, started, progress, finished) from the registered
 * worker "fuzz-worker" (routing id "fuzz-worker/f0221": a Register of any
 * other name is refused) of an in-memory coordinator (coord_harness.h), which
 * has a running pretrain and command job to report on. The input is the
 * frame body as received. */
#include "tests/fuzz/coord_harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  harness_init();
  harness_feed(0, data, size);
  return 0;
}
