/* err.h — foil's error codes and the error record library code fills.
 *
 * Library functions return 0 (FOIL_OK) or a negative code, and, when the
 * caller passed a foil_err, a message a person can act on. Only main()
 * turns an error into an exit. The codes are the canonical set gRPC users
 * know, so the control API and the CLI can carry them unchanged.
 *
 * foil_err is a plain value (no allocation): declare one on the stack,
 * pass its address, read .msg when a call fails. err may be NULL anywhere.
 */
#ifndef FOIL_COMMON_ERR_H
#define FOIL_COMMON_ERR_H

#include <stddef.h>

enum {
  FOIL_OK = 0,
  FOIL_EINVAL = -3,             /* INVALID_ARGUMENT */
  FOIL_EDEADLINE = -4,          /* DEADLINE_EXCEEDED */
  FOIL_ENOTFOUND = -5,          /* NOT_FOUND */
  FOIL_EEXIST = -6,             /* ALREADY_EXISTS */
  FOIL_EPERM = -7,              /* PERMISSION_DENIED */
  FOIL_ENOMEM = -8,             /* RESOURCE_EXHAUSTED */
  FOIL_EPRECOND = -9,           /* FAILED_PRECONDITION */
  FOIL_EABORTED = -10,          /* ABORTED */
  FOIL_EUNAVAIL = -14,          /* UNAVAILABLE */
  FOIL_EINTERNAL = -13,         /* INTERNAL */
  FOIL_EUNAUTH = -16,           /* UNAUTHENTICATED */
};

typedef struct {
  int code;
  char msg[512];
} foil_err;

/* Sets err (if not NULL) to code and a printf-style message; returns code,
 * so callers can write `return foil_err_set(err, FOIL_EINVAL, "...")`. */
int foil_err_set(foil_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The canonical name of a code, e.g. "INVALID_ARGUMENT". */
const char *foil_err_name(int code);
/* The process exit status the CLI uses for a code (documented in the
 * README): 0 OK, 2 INVALID_ARGUMENT, 3 NOT_FOUND, 4 ALREADY_EXISTS,
 * 5 PERMISSION_DENIED, 6 RESOURCE_EXHAUSTED, 7 FAILED_PRECONDITION,
 * 8 ABORTED, 9 DEADLINE_EXCEEDED, 10 UNAVAILABLE, 11 INTERNAL,
 * 12 UNAUTHENTICATED, 1 anything else. */
int foil_err_exit_code(int code);

/* UTF-8 text that was cut to fit a buffer: protobuf strings must be valid
 * UTF-8, so text carried in a message is cut at a character boundary.
 * foil_utf8_cut shortens s (NUL-terminated, in place) so it does not end
 * inside a multi-byte sequence; returns the new length. Cost: one strlen,
 * then the last 4 bytes. foil_utf8_copy is snprintf(dst, n, "%s", src) cut that way
 * (n >= 1); returns the bytes copied. foil_err_set and the coordinator's
 * and worker's copies of reasons and messages use these. */
size_t foil_utf8_cut(char *s);
size_t foil_utf8_copy(char *dst, size_t n, const char *src);
/* Bytes (1 to 4) of the well-formed UTF-8 sequence at s, of which n bytes
 * are readable; 0 when none starts there (a bad lead or continuation byte,
 * an overlong form, a surrogate, a code point over U+10FFFF, or a sequence
 * cut by the end). A NUL is a one-byte sequence. The one decoder of the
 * tree: foil_utf8_scrub, wire_check_msg and foil data's text checks use it. */
size_t foil_utf8_seq(const char *s, size_t n);
/* Where foil_utf8_seq(s, n) is 0 (n >= 1): bytes (1 to 3) of the maximal
 * subpart of the ill-formed sequence at s, i.e. the lead byte and the
 * continuation bytes after it that a well-formed sequence could still have
 * (Unicode's "substitution of maximal subparts", as Rust's
 * String::from_utf8_lossy and Python's errors="replace" do). Replacing each
 * such subpart by one U+FFFD gives their output. O(1). */
size_t foil_utf8_bad(const char *s, size_t n);
/* Replaces every byte that is not part of well-formed UTF-8 (no
 * overlongs, surrogates or code points over U+10FFFF) with '?', in place;
 * returns how many were replaced. O(length). */
size_t foil_utf8_scrub(char *s);

#endif
