/* wire.h — protobuf messages over ZeroMQ frames, as every foil socket
 * carries them (DESIGN.md "Protocol").
 *
 * A message is the routing frames a ROUTER socket adds (the peer's id, and
 * an empty delimiter when the peer is a REQ socket) followed by exactly one
 * frame holding one packed protobuf message. wire_recv reads a whole
 * multipart message, always consuming every frame, and checks its shape
 * and size, so a caller can answer a bad one with an error and go on.
 *
 * Ownership: a wire_msg owns its frames until wire_msg_close. Cost: one
 * copy of the payload into a zmq_msg on send (packing), none on receive.
 */
#ifndef FOIL_COMMON_WIRE_H
#define FOIL_COMMON_WIRE_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "common/err.h"

#define WIRE_MAX_ROUTE 4   /* routing frames kept for the reply */

typedef struct {
  zmq_msg_t route[WIRE_MAX_ROUTE];
  int nroute;
  zmq_msg_t body;
  int has_body;
} wire_msg;

/* Receives one multipart message. router: the socket is a ROUTER (leading
 * frames are routing frames). Returns FOIL_OK with m->body the payload;
 * FOIL_EINVAL for a message of the wrong shape (no payload, too many
 * frames), FOIL_ENOMEM for a payload over max_body: m still holds the
 * routing frames so the caller can reply. FOIL_EUNAVAIL when nothing
 * arrived (non-blocking flags, EAGAIN) or the socket failed. Always close
 * m afterwards, whatever the result. */
int wire_recv(void *sock, wire_msg *m, int router, size_t max_body, int flags, foil_err *err);
void wire_msg_close(wire_msg *m);

/* The routing id of a ROUTER message (its first frame) copied into id,
 * NUL-terminated, at most n-1 bytes; "" if none. */
void wire_msg_peer(const wire_msg *m, char *id, size_t n);

/* Sends msg as a reply to `to` (its routing frames first). */
int wire_reply(void *sock, const wire_msg *to, const ProtobufCMessage *msg, foil_err *err);

/* Sends msg to peer `id` on a ROUTER (id NULL: a DEALER's single frame).
 * flags: e.g. ZMQ_DONTWAIT. FOIL_EUNAVAIL when the peer is not connected
 * (ROUTER_MANDATORY) or the send would block. */
int wire_send(void *sock, const char *id, const ProtobufCMessage *msg, int flags, foil_err *err);

/* Bytes of a string field are checked with this: FOIL_EINVAL naming the
 * field when s is longer than max. */
int wire_check_len(const char *field, const char *s, size_t max, foil_err *err);

/* What protobuf-c does not check on unpack, checked on every received
 * message: proto3 strings must be UTF-8, and no field may have number 0
 * (invalid in protobuf; protobuf-c keeps one, spelled with a padded
 * varint, as an unknown field, and a message re-packed with it no longer
 * unpacks — a stored job spec would then not load). Walks msg (nested
 * messages too) and returns FOIL_EINVAL naming the first offending field.
 * Cost: one pass over the strings. */
int wire_check_msg(const ProtobufCMessage *msg, foil_err *err);

#endif
