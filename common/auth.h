/* auth.h — who may talk to a foil socket: ZeroMQ CURVE keys, one ZAP
 * handler per process with a deny-by-default allow-list, and the roles a
 * daemon authorizes requests by.
 *
 * Certificates are small text files (ZeroMQ's Z85 text of 32-byte keys):
 *
 *   NAME.key          public; goes into a server's allow-list directory
 *     # foil certificate (public)
 *     name = alice
 *     role = submitter          admin | submitter | reader | worker
 *     public-key = <40 Z85 characters>
 *
 *   NAME.key_secret   the key pair, mode 0600; stays with its owner
 *     the same lines plus  secret-key = <40 Z85 characters>
 *
 * Server side (auth_new): a daemon given its own key pair (--curve-key) and
 * an allow-list directory (--allow-keys) runs a ZAP handler thread on
 * inproc://zeromq.zap.01 of its ZeroMQ context. The handler is the only
 * place keys are checked: a CURVE client whose public key is not one of
 * the directory's *.key files is refused during the handshake, so no
 * message of it ever reaches foil code. An accepted one gets the User-Id
 * "ROLE:NAME" that every message it sends carries (auth_peer reads it).
 * The directory is read at start and again after auth_request_reload
 * (SIGHUP): the handler thread itself rereads it between two ZAP requests,
 * so a reload never races a check; an unreadable directory keeps the old
 * list. Without a key and a directory the daemon runs without
 * authentication, and auth_server_socket lets it listen on loopback only
 * (unless opts.insecure), and every peer counts as admin.
 *
 * Client side (auth_client_load): its key pair and the server's public key
 * from flags, else $FOIL_KEY / $FOIL_SERVER_KEY, else $FOIL_KEYS/client.key_secret
 * and $FOIL_KEYS/server.key; none of them: plain (NULL mechanism) sockets.
 *
 * Ownership: auth owns its thread and its ZAP socket, not the context;
 * auth_destroy before zmq_ctx_term. Cost: one ZAP round trip (inproc) and
 * a linear scan of the allow-list per connection, nothing per message.
 */
#ifndef FOIL_COMMON_AUTH_H
#define FOIL_COMMON_AUTH_H

#include <stddef.h>
#include <stdio.h>
#include <zmq.h>

#include "common/err.h"

#define AUTH_Z85_LEN 40       /* Z85 text of a 32-byte key */
#define AUTH_MAX_NAME 64

enum { AUTH_NONE = 0, AUTH_ADMIN, AUTH_SUBMITTER, AUTH_READER, AUTH_WORKER };

typedef struct {
  char name[AUTH_MAX_NAME + 1];
  int role;                        /* AUTH_ADMIN ... AUTH_WORKER */
  char pub[AUTH_Z85_LEN + 1];
  char sec[AUTH_Z85_LEN + 1];      /* "" in a public certificate */
} auth_cert;

const char *auth_role_name(int role);   /* "admin", ...; "none" */
int auth_role_parse(const char *s);     /* AUTH_NONE if not a role */

/* Reads a certificate file; need_secret: it must hold the secret key too.
 * FOIL_EINVAL naming the file and line for anything malformed; a secret
 * file readable by group or others is refused (FOIL_EPERM). */
int auth_cert_load(const char *path, int need_secret, auth_cert *out, foil_err *err);

/* Writes a fresh key pair as dir/NAME.key (0644) and dir/NAME.key_secret
 * (0600), each atomically; FOIL_EEXIST if either is already there. name:
 * letters, digits, '.', '_', '-'. */
int auth_keys_gen(const char *dir, const char *name, int role, foil_err *err);

/* ---- server side ------------------------------------------------------ */

typedef struct auth auth;

typedef struct {
  const char *key;        /* this server's NAME.key_secret; NULL: no CURVE */
  const char *allow;      /* the allow-list directory; NULL: no CURVE */
  int insecure;           /* without CURVE, allow non-loopback endpoints */
  FILE *log;              /* NULL: stderr */
  const char *component;  /* for log lines, e.g. "coordinator" */
} auth_opts;

/* Both key and allow, or neither (FOIL_EINVAL otherwise). With both, loads
 * them and starts the ZAP handler on zctx; FOIL_EUNAVAIL if this libzmq
 * has no CURVE. */
int auth_new(auth **out, void *zctx, const auth_opts *o, foil_err *err);
void auth_destroy(auth **a);
int auth_enabled(const auth *a);
/* Makes this process hold its secret key out of reach: no core file, and
 * no ptrace or /proc/PID/mem by the same user (its jobs), PR_SET_DUMPABLE
 * 0 (a child's exec makes it dumpable again). auth_new calls it when it
 * loads a server key; a client that keeps a key for its lifetime
 * (foil-worker) calls it itself. */
void auth_protect_process(void);

/* Call before zmq_bind(sock, endpoint): with CURVE makes sock a CURVE
 * server under the ZAP handler; without, refuses (FOIL_EPERM, saying what
 * to do) an endpoint other than loopback / ipc:// / inproc:// unless
 * opts.insecure. */
int auth_server_socket(auth *a, void *sock, const char *endpoint, foil_err *err);
/* auth_server_socket for a socket only worker keys may reach (the
 * coordinator's worker port): the ZAP handler refuses every other role
 * during the handshake, so no reader or submitter key can even connect
 * there (and, with ROUTER_HANDOVER, take over a worker's routing id). */
int auth_worker_socket(auth *a, void *sock, const char *endpoint, foil_err *err);

/* Async-signal-safe: the handler rereads the allow-list directory at its
 * next turn (within a fifth of a second). */
void auth_request_reload(void);

/* Who sent a message (its payload frame): the role, and the name copied
 * into name (size n). Without CURVE: AUTH_ADMIN and "". With CURVE and no
 * User-Id (cannot happen for an accepted peer): AUTH_NONE. */
int auth_peer(const auth *a, zmq_msg_t *frame, char *name, size_t n);

/* Keys the ZAP handler accepted and refused so far (for logs and tests). */
void auth_counts(auth *a, unsigned long *accepted, unsigned long *refused);

/* ---- client side ------------------------------------------------------ */

typedef struct {
  int on;
  char pub[AUTH_Z85_LEN + 1], sec[AUTH_Z85_LEN + 1], server[AUTH_Z85_LEN + 1];
} auth_client;

/* key: the client's NAME.key_secret, server_key: the server's NAME.key
 * (or its .key_secret: only the public key is read); NULL or "" falls back
 * to the environment as above. c->on = 0 when nothing names keys. */
int auth_client_load(auth_client *c, const char *key, const char *server_key, foil_err *err);
/* Call before zmq_connect: makes sock a CURVE client when c->on. */
int auth_client_socket(const auth_client *c, void *sock, foil_err *err);

/* A refused key is silence on the socket; a monitor tells it apart from a
 * server that is down. auth_watch (before zmq_connect) opens *mon, a PAIR
 * socket on zctx (NULL if monitoring is not possible: then nothing is
 * told); auth_handshake_failed drains it and returns why the last
 * handshake failed since the previous call, or NULL; auth_unwatch closes
 * it (before closing sock). */
void auth_watch(void *zctx, void *sock, void **mon);
const char *auth_handshake_failed(void *mon, const auth_client *c);
void auth_unwatch(void *sock, void **mon);

/* auth_handshake_failed, with the failures since the previous call also
 * added to n[kind] by kind, for a caller that acts on them (foil-worker).
 * What a client can tell, with libzmq 4.3 (tests/integration/cluster_auth.py):
 *   AUTH_HS_REFUSED   ZMQ_EVENT_HANDSHAKE_FAILED_AUTH: the server's ZAP
 *                     handler refused this client's key (not in its
 *                     allow-list);
 *   AUTH_HS_PROTOCOL  ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL: the sides speak
 *                     different mechanisms (a client without keys to a
 *                     CURVE server), or the peer broke the protocol;
 *   AUTH_HS_CLOSED    ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL: the server
 *                     closed the connection during the handshake — what a
 *                     wrong server key gives (the server cannot open the
 *                     client's HELLO and hangs up without a word), and a
 *                     CURVE client to a server without CURVE; also a server
 *                     going away or timing out mid-handshake, which passes.
 * After REFUSED or PROTOCOL libzmq never connects that socket again (it
 * stays silent until closed and reopened, whatever the server's allow-list
 * says later); after CLOSED it reconnects, every 100 ms. */
enum { AUTH_HS_REFUSED, AUTH_HS_PROTOCOL, AUTH_HS_CLOSED, AUTH_HS_KINDS };
const char *auth_handshake_count(void *mon, const auth_client *c, unsigned n[AUTH_HS_KINDS]);

#endif
