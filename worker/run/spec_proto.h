/* spec_proto.h — the pretrain spec as a foil.v1.PretrainSpec message
 * (proto/foil/v1/pretrain.proto), the form the control API carries.
 *
 * spec_proto_pack writes every field of a parsed spec (so the receiver
 * needs no defaults), device and precision included. spec_proto_unpack
 * turns a message into the JSON spec's keys — only the fields the sender
 * set — and checks it with spec_parse, so a message and a JSON file obey
 * the same defaults, ranges and error messages (naming the key). A float
 * field becomes the shortest decimal that names the same float (0.99f is
 * 0.99), so pack then unpack gives back the same spec, bounds included. Malformed bytes are an error, never
 * a crash. Ownership: the packed buffer is malloc'ed (caller frees); the
 * unpacked spec is freed with spec_free.
 */
#ifndef FOIL_WORKER_RUN_SPEC_PROTO_H
#define FOIL_WORKER_RUN_SPEC_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "worker/run/spec.h"

int spec_proto_pack(const spec *s, uint8_t **buf, size_t *len, foil_err *err);
int spec_proto_unpack(spec *s, const uint8_t *buf, size_t len, foil_err *err);

#endif
