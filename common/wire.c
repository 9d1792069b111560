/* wire.c — see wire.h. */
#include "common/wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void wire_msg_close(wire_msg *m) {
  for (int i = 0; i < m->nroute; i++) zmq_msg_close(&m->route[i]);
  m->nroute = 0;
  if (m->has_body) zmq_msg_close(&m->body);
  m->has_body = 0;
}

int wire_recv(void *sock, wire_msg *m, int router, size_t max_body, int flags, foil_err *err) {
  memset(m, 0, sizeof *m);
  int rc = FOIL_OK, nframes = 0;
  for (;;) {
    zmq_msg_t f;
    zmq_msg_init(&f);
    if (zmq_msg_recv(&f, sock, nframes ? 0 : flags) < 0) {
      int e = errno;
      zmq_msg_close(&f);
      if (nframes == 0)
        return foil_err_set(err, FOIL_EUNAVAIL, "receive: %s", e == EAGAIN ? "nothing waiting" : zmq_strerror(e));
      return foil_err_set(err, FOIL_EUNAVAIL, "receive of a multipart message: %s", zmq_strerror(e));
    }
    nframes++;
    int more = zmq_msg_more(&f);
    if (router && !m->has_body && m->nroute < WIRE_MAX_ROUTE &&
        (m->nroute == 0 || zmq_msg_size(&f) == 0) && more) {
      m->route[m->nroute++] = f;   /* the peer's id, then the REQ delimiter */
    } else if (!m->has_body) {
      m->body = f;
      m->has_body = 1;
    } else {
      zmq_msg_close(&f);
      if (!rc) rc = foil_err_set(err, FOIL_EINVAL, "a message must be one protobuf frame (got more)");
    }
    if (!more) break;
  }
  if (!rc && !m->has_body) rc = foil_err_set(err, FOIL_EINVAL, "a message without a payload frame");
  if (!rc && zmq_msg_size(&m->body) > max_body)
    rc = foil_err_set(err, FOIL_ENOMEM, "message of %zu bytes is over the limit of %zu",
                      zmq_msg_size(&m->body), max_body);
  return rc;
}

void wire_msg_peer(const wire_msg *m, char *id, size_t n) {
  if (!n) return;
  id[0] = 0;
  if (!m->nroute) return;
  size_t len = zmq_msg_size((zmq_msg_t *)&m->route[0]);
  if (len > n - 1) len = n - 1;
  memcpy(id, zmq_msg_data((zmq_msg_t *)&m->route[0]), len);
  id[len] = 0;
}

static int send_body(void *sock, const ProtobufCMessage *msg, int flags, foil_err *err) {
  size_t len = protobuf_c_message_get_packed_size(msg);
  zmq_msg_t f;
  if (zmq_msg_init_size(&f, len ? len : 1))
    return foil_err_set(err, FOIL_ENOMEM, "no memory for a %zu-byte message", len);
  protobuf_c_message_pack(msg, zmq_msg_data(&f));
  if (!len) {  /* an all-default message packs to nothing: send an empty frame */
    zmq_msg_close(&f);
    zmq_msg_init(&f);
  }
  if (zmq_msg_send(&f, sock, flags) < 0) {
    int e = errno;
    zmq_msg_close(&f);
    return foil_err_set(err, FOIL_EUNAVAIL, "send: %s", zmq_strerror(e));
  }
  return FOIL_OK;
}

int wire_reply(void *sock, const wire_msg *to, const ProtobufCMessage *msg, foil_err *err) {
  for (int i = 0; i < to->nroute; i++) {
    zmq_msg_t f;
    zmq_msg_init(&f);
    zmq_msg_copy(&f, (zmq_msg_t *)&to->route[i]);
    if (zmq_msg_send(&f, sock, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
      int e = errno;
      zmq_msg_close(&f);
      return foil_err_set(err, FOIL_EUNAVAIL, "reply: %s", zmq_strerror(e));
    }
  }
  return send_body(sock, msg, ZMQ_DONTWAIT, err);
}

int wire_send(void *sock, const char *id, const ProtobufCMessage *msg, int flags, foil_err *err) {
  if (id && zmq_send(sock, id, strlen(id), ZMQ_SNDMORE | flags) < 0)
    return foil_err_set(err, FOIL_EUNAVAIL, "send to %s: %s", id, zmq_strerror(errno));
  return send_body(sock, msg, flags, err);
}

int wire_check_len(const char *field, const char *s, size_t max, foil_err *err) {
  size_t n = s ? strlen(s) : 0;
  if (n > max) return foil_err_set(err, FOIL_EINVAL, "%s is %zu bytes, over the limit of %zu", field, n, max);
  return FOIL_OK;
}

/* 1 if s is well-formed UTF-8 (no overlongs, surrogates or > U+10FFFF) */
static int utf8_ok(const unsigned char *s) {
  const char *p = (const char *)s;
  for (size_t len = strlen(p), i = 0, n; i < len; i += n)
    if (!(n = foil_utf8_seq(p + i, len - i))) return 0;
  return 1;
}

int wire_check_msg(const ProtobufCMessage *msg, foil_err *err) {
  const ProtobufCMessageDescriptor *d = msg->descriptor;
  for (unsigned i = 0; i < msg->n_unknown_fields; i++)
    if (msg->unknown_fields[i].tag == 0)
      return foil_err_set(err, FOIL_EINVAL, "%s has a field numbered 0 (not a valid protobuf message)", d->short_name);
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    if (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE) continue;
    const char *base = (const char *)msg;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
      uint32_t which = *(const uint32_t *)(base + f->quantifier_offset);
      if (which != f->id) continue;
    }
    size_t n = 1;
    const void *const *items = (const void *const *)(base + f->offset);
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      n = *(const size_t *)(base + f->quantifier_offset);
      items = *(const void *const *const *)(base + f->offset);
    }
    for (size_t k = 0; k < n; k++) {
      const void *v = items[k];
      if (!v) continue;
      if (f->type == PROTOBUF_C_TYPE_STRING) {
        if (!utf8_ok(v))
          return foil_err_set(err, FOIL_EINVAL, "%s.%s is not valid UTF-8", d->short_name, f->name);
      } else {
        int rc = wire_check_msg(v, err);
        if (rc) return rc;
      }
    }
  }
  return FOIL_OK;
}
