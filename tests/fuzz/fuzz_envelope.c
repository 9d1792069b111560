/* fuzz_envelope.c — decoding of every foil.v1 envelope, as each daemon and
 * client does on receipt: protobuf-c unpack, the UTF-8 check of every string
 * and of field numbers (wire_check_msg); a message that passes must re-pack
 * to bytes that decode and re-pack to the same bytes (the coordinator stores
 * re-packed job specs and reads them back on restart); and the
 * CLI's JSON rendering of replies (--json). The first input byte picks the
 * envelope: 0 Request, 1 Reply, 2 WorkerMessage, 3 CoordinatorMessage,
 * 4 ServeRequest, 5 ServeReply, 6 PretrainSpec (foil-run's spec message,
 * checked by spec_proto_unpack as foil-run does). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/pbjson.h"
#include "common/wire.h"
#include "foil/v1/control.pb-c.h"
#include "foil/v1/pretrain.pb-c.h"
#include "foil/v1/search.pb-c.h"
#include "foil/v1/worker.pb-c.h"
#include "worker/run/spec.h"
#include "worker/run/spec_proto.h"

static const ProtobufCMessageDescriptor *const kinds[] = {
    &foil__v1__request__descriptor,        &foil__v1__reply__descriptor,
    &foil__v1__worker_message__descriptor, &foil__v1__coordinator_message__descriptor,
    &foil__v1__serve_request__descriptor,  &foil__v1__serve_reply__descriptor,
    &foil__v1__pretrain_spec__descriptor,
};
enum { NKINDS = sizeof kinds / sizeof kinds[0] };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  unsigned which = data[0] % NKINDS;
  data++, size--;
  if (which == 6) {  /* foil-run's path: unpack + every range check */
    spec s;
    foil_err err = {0};
    if (!spec_proto_unpack(&s, data, size, &err)) spec_free(&s);
  }
  ProtobufCMessage *m = protobuf_c_message_unpack(kinds[which], NULL, size, data);
  if (!m) return 0;
  foil_err err = {0};
  int bad = wire_check_msg(m, &err);
  if (bad) {
    protobuf_c_message_free_unpacked(m, NULL);
    return 0;
  }
  size_t len = protobuf_c_message_get_packed_size(m);
  uint8_t *buf = malloc(len ? len : 1);
  if (protobuf_c_message_pack(m, buf) != len) abort();
  ProtobufCMessage *m2 = protobuf_c_message_unpack(kinds[which], NULL, len, buf);
  if (!m2) abort();  /* what we pack must decode */
  size_t len2 = protobuf_c_message_get_packed_size(m2);
  uint8_t *buf2 = malloc(len2 ? len2 : 1);
  protobuf_c_message_pack(m2, buf2);
  if (len2 != len || memcmp(buf, buf2, len)) abort();  /* and be stable */
  if (which == 1 || which == 5) {  /* the CLI prints replies as JSON */
    cJSON *j = pbjson_from_message(m);
    char *text = cJSON_PrintUnformatted(j);
    free(text);
    cJSON_Delete(j);
  }
  free(buf), free(buf2);
  protobuf_c_message_free_unpacked(m2, NULL);
  protobuf_c_message_free_unpacked(m, NULL);
  return 0;
}
