/* client.h — a control-API client: one DEALER socket to the coordinator,
 * one request at a time, each with a deadline.
 *
 *   client *c; client_new(&c, "tcp://127.0.0.1:7420", 5000, &err);
 *   Foil__V1__Reply *r; client_call(c, &req, &r, &err);  ... client_free_reply(r);
 *   client_destroy(&c);
 *
 * client_call stamps req->request_id, sends, and waits up to timeout_ms
 * for the reply with that id (replies to earlier, timed-out requests are
 * dropped). A reply carrying an Error is returned as that error's code and
 * message (the reply is freed). Timeout: FOIL_EUNAVAIL "no reply from the
 * coordinator at ...", and the socket is reopened so a late reply cannot be
 * mistaken for the next one.
 *
 * The endpoint a CLI uses: client_endpoint (flag > $FOIL_COORDINATOR >
 * config file > the coordinator.json a running coordinator writes in the
 * data root > the default tcp://127.0.0.1:7420).
 */
#ifndef FOIL_COMMON_CLIENT_H
#define FOIL_COMMON_CLIENT_H

#include <stddef.h>

#include "common/err.h"
#include "foil/v1/control.pb-c.h"

#define CLIENT_DEFAULT_ENDPOINT "tcp://127.0.0.1:7420"
#define CLIENT_MAX_REPLY (64u << 20)

typedef struct client client;

/* Keys: common/auth.h's client side, from the environment ($FOIL_KEY,
 * $FOIL_SERVER_KEY, $FOIL_KEYS); client_new_keys takes files first (NULL:
 * the environment). A key the coordinator refuses gives FOIL_EUNAUTH at
 * the first call's timeout, not UNAVAILABLE. */
int client_new(client **out, const char *endpoint, int timeout_ms, foil_err *err);
int client_new_keys(client **out, const char *endpoint, int timeout_ms, const char *key, const char *server_key,
                    foil_err *err);
void client_destroy(client **c);
void client_set_timeout(client *c, int timeout_ms);
const char *client_endpoint_of(const client *c);

/* Sends req (its request_id is overwritten) and waits for the reply. On
 * FOIL_OK *reply is the caller's (free with client_free_reply). */
int client_call(client *c, Foil__V1__Request *req, Foil__V1__Reply **reply, foil_err *err);
void client_free_reply(Foil__V1__Reply *r);

/* Fills out (size n) with the coordinator endpoint: flag if not NULL/"",
 * else $FOIL_COORDINATOR, else "coordinator" of the JSON config file
 * ($FOIL_CONFIG, else $HOME/.config/foil/config.json) if it has one, else
 * "control" of <root>/coordinator.json, else the default. *source names
 * where it came from (for error messages). */
int client_endpoint(const char *flag, const char *root, char *out, size_t n, const char **source,
                    foil_err *err);

/* Maps a foil.v1.Code (gRPC number) to a foil error code and back. */
int client_code_to_err(int code);
int client_err_to_code(int err);

#endif
