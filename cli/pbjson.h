/* pbjson.h — any protobuf-c message as a cJSON object, for `--json`.
 *
 * Field names are the .proto names (snake_case). Every field is written,
 * zero values included, except unset oneof members and unset submessages;
 * enums as their names ("JOB_RUNNING"), 64-bit integers as JSON numbers
 * (exact up to 2^53), bytes as base64, repeated fields as arrays.
 *
 * Ownership: the caller frees the result with cJSON_Delete. Cost: one pass
 * over the message; NULL only when out of memory.
 */
#ifndef FOIL_CLI_PBJSON_H
#define FOIL_CLI_PBJSON_H

#include <cjson/cJSON.h>
#include <protobuf-c/protobuf-c.h>

cJSON *pbjson_from_message(const ProtobufCMessage *m);
/* Writes m as indented JSON and a newline to stdout; FOIL_OK or
 * FOIL_ENOMEM. */
int pbjson_print(const ProtobufCMessage *m);

#endif
