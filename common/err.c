#include "common/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int foil_err_set(foil_err *err, int code, const char *fmt, ...) {
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    err->code = code;
    int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof err->msg) foil_utf8_cut(err->msg);  /* cut: at a character boundary */
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

/* ---- UTF-8 ----------------------------------------------------------------- */

size_t foil_utf8_seq(const char *s, size_t n) {
  const unsigned char *u = (const unsigned char *)s;
  if (!n) return 0;
  unsigned c = u[0];
  int k = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : -1;
  if (k < 0 || (size_t)k >= n) return 0;
  unsigned cp = k == 0 ? c : k == 1 ? c & 0x1f : k == 2 ? c & 0x0f : c & 0x07;
  for (int i = 1; i <= k; i++) {
    if ((u[i] & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (u[i] & 0x3f);
  }
  static const unsigned min[4] = {0, 0x80, 0x800, 0x10000};
  if (cp < min[k] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return (size_t)k + 1;
}

size_t foil_utf8_bad(const char *s, size_t n) {
  const unsigned char *u = (const unsigned char *)s;
  unsigned c = u[0];
  /* the range allowed for the second byte after each lead (Unicode table
   * 3-7); the later ones are plain continuation bytes */
  unsigned lo = 0x80, hi = 0xbf;
  size_t want;
  if (c >= 0xc2 && c <= 0xdf) {
    want = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    want = 3;
    if (c == 0xe0) lo = 0xa0;
    if (c == 0xed) hi = 0x9f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    want = 4;
    if (c == 0xf0) lo = 0x90;
    if (c == 0xf4) hi = 0x8f;
  } else {
    return 1; /* a continuation byte, C0, C1 or F5..FF */
  }
  size_t k = 1;
  while (k < want && k < n && u[k] >= (k == 1 ? lo : 0x80) && u[k] <= (k == 1 ? hi : 0xbf)) k++;
  return k;
}

size_t foil_utf8_cut(char *s) {
  const unsigned char *u = (const unsigned char *)s;
  size_t len = strlen(s), k = 0;
  while (k < 3 && k < len && (u[len - 1 - k] & 0xc0) == 0x80) k++;  /* continuation bytes at the end */
  if (k == len) return len;
  size_t lead = len - 1 - k;
  unsigned c = u[lead];
  size_t want = (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
  if (want > k + 1) {  /* a sequence whose last bytes were cut off */
    s[lead] = 0;
    return lead;
  }
  return len;
}

size_t foil_utf8_copy(char *dst, size_t n, const char *src) {
  if (!n) return 0;
  size_t len = src ? strlen(src) : 0;
  if (len < n) {
    memcpy(dst, src ? src : "", len + 1);
    return len;
  }
  memcpy(dst, src, n - 1);
  dst[n - 1] = 0;
  return foil_utf8_cut(dst);
}

size_t foil_utf8_scrub(char *s) {
  size_t bad = 0, len = strlen(s), i = 0;
  while (i < len) {
    size_t n = foil_utf8_seq(s + i, len - i);
    if (n) {
      i += n;
    } else {
      s[i++] = '?';
      bad++;
    }
  }
  return bad;
}
