#include "common/err.h"

#include <stdarg.h>
#include <stdio.h>

int foil_err_set(foil_err *err, int code, const char *fmt, ...) {
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    err->code = code;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
  }
  return code;
}

const char *foil_err_name(int code) {
  switch (code) {
    case FOIL_OK: return "OK";
    case FOIL_EINVAL: return "INVALID_ARGUMENT";
    case FOIL_EDEADLINE: return "DEADLINE_EXCEEDED";
    case FOIL_ENOTFOUND: return "NOT_FOUND";
    case FOIL_EEXIST: return "ALREADY_EXISTS";
    case FOIL_EPERM: return "PERMISSION_DENIED";
    case FOIL_ENOMEM: return "RESOURCE_EXHAUSTED";
    case FOIL_EPRECOND: return "FAILED_PRECONDITION";
    case FOIL_EABORTED: return "ABORTED";
    case FOIL_EUNAVAIL: return "UNAVAILABLE";
    case FOIL_EINTERNAL: return "INTERNAL";
    case FOIL_EUNAUTH: return "UNAUTHENTICATED";
    default: return "UNKNOWN";
  }
}

int foil_err_exit_code(int code) {
  switch (code) {
    case FOIL_OK: return 0;
    case FOIL_EINVAL: return 2;
    case FOIL_ENOTFOUND: return 3;
    case FOIL_EEXIST: return 4;
    case FOIL_EPERM: return 5;
    case FOIL_ENOMEM: return 6;
    case FOIL_EPRECOND: return 7;
    case FOIL_EABORTED: return 8;
    case FOIL_EDEADLINE: return 9;
    case FOIL_EUNAVAIL: return 10;
    case FOIL_EINTERNAL: return 11;
    case FOIL_EUNAUTH: return 12;
    default: return 1;
  }
}
