/* tok_unicode.c — see tok_unicode.h. */
#include "model/tok_unicode.h"

#include <utf8proc.h>

#include "model/tok_unicode_hf.h"

/* Hugging Face's BERT answers (TOK_HF_* flags, | 0x80 so that 0 means "not
 * listed") for a code point where they differ from utf8proc's categories;
 * 0 elsewhere. Binary search over tok_hf_classes: O(log 117). */
static int hf_classes(int32_t cp) {
  int lo = 0, hi = (int)(sizeof tok_hf_classes / sizeof *tok_hf_classes) - 1;
  if (cp < tok_hf_classes[0].lo || cp > tok_hf_classes[hi].hi) return 0;
  while (lo <= hi) {
    int mid = (lo + hi) / 2;
    if (cp < tok_hf_classes[mid].lo) {
      hi = mid - 1;
    } else if (cp > tok_hf_classes[mid].hi) {
      lo = mid + 1;
    } else {
      return tok_hf_classes[mid].flags | 0x80;
    }
  }
  return 0;
}

int tok_utf8_next(const uint8_t *s, size_t len, size_t i, int32_t *cp) {
  uint8_t c = s[i];
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  size_t left = len - i;
  if (c >= 0xC2 && c <= 0xDF) {
    if (left < 2 || (s[i + 1] & 0xC0) != 0x80) return 0;
    *cp = ((c & 0x1F) << 6) | (s[i + 1] & 0x3F);
    return 2;
  }
  if (c >= 0xE0 && c <= 0xEF) {
    if (left < 3 || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80) return 0;
    int32_t v = ((c & 0x0F) << 12) | ((s[i + 1] & 0x3F) << 6) | (s[i + 2] & 0x3F);
    if (v < 0x800 || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (left < 4 || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80 ||
        (s[i + 3] & 0xC0) != 0x80)
      return 0;
    int32_t v = ((c & 0x07) << 18) | ((s[i + 1] & 0x3F) << 12) | ((s[i + 2] & 0x3F) << 6) |
                (s[i + 3] & 0x3F);
    if (v < 0x10000 || v > 0x10FFFF) return 0;
    *cp = v;
    return 4;
  }
  return 0;
}

size_t tok_utf8_check(const char *s, size_t len) {
  const uint8_t *u = (const uint8_t *)s;
  size_t i = 0;
  while (i < len) {
    if (u[i] < 0x80) {
      i++;
      continue;
    }
    int32_t cp;
    int k = tok_utf8_next(u, len, i, &cp);
    if (!k) return i;
    i += (size_t)k;
  }
  return len;
}

int tok_utf8_put(int32_t cp, char *out) {
  uint8_t *o = (uint8_t *)out;
  if (cp < 0x80) {
    o[0] = (uint8_t)cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = (uint8_t)(0xC0 | (cp >> 6));
    o[1] = (uint8_t)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (uint8_t)(0xE0 | (cp >> 12));
    o[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (uint8_t)(0x80 | (cp & 0x3F));
    return 3;
  }
  o[0] = (uint8_t)(0xF0 | (cp >> 18));
  o[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
  o[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
  o[3] = (uint8_t)(0x80 | (cp & 0x3F));
  return 4;
}

int tok_is_space(int32_t cp) {
  if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
  return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
         cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

int tok_is_bert_punct(int32_t cp) {
  if (cp < 0x80)
    return (cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) ||
           (cp >= 123 && cp <= 126);
  int hf = hf_classes(cp);
  if (hf) return (hf & TOK_HF_PUNCT) != 0;
  utf8proc_category_t c = utf8proc_category(cp);
  return c >= UTF8PROC_CATEGORY_PC && c <= UTF8PROC_CATEGORY_PO;
}

int tok_is_bert_drop(int32_t cp) {
  if (cp == '\t' || cp == '\n' || cp == '\r') return 0;
  if (cp < 0x20 || cp == 0x7F) return 1;
  if (cp < 0x80) return 0;
  if (cp == 0xFFFD) return 1;
  int hf = hf_classes(cp);
  if (hf) return (hf & TOK_HF_DROP) != 0;
  utf8proc_category_t c = utf8proc_category(cp);
  return c == UTF8PROC_CATEGORY_CC || c == UTF8PROC_CATEGORY_CF || c == UTF8PROC_CATEGORY_CS ||
         c == UTF8PROC_CATEGORY_CO;
}

int tok_is_cjk(int32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
         (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
         (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B920 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

int tok_is_letter(int32_t cp) {
  if (cp < 0x80) return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
  utf8proc_category_t c = utf8proc_category(cp);
  return c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO;
}

int tok_is_number(int32_t cp) {
  if (cp < 0x80) return cp >= '0' && cp <= '9';
  utf8proc_category_t c = utf8proc_category(cp);
  return c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO;
}

int tok_strip_lower(int32_t cp, int32_t *out, int cap) {
  if (cp < 0x80) {
    if (cap < 1) return 0;
    out[0] = (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
    return 1;
  }
  utf8proc_int32_t buf[32];
  int last = 0;
  utf8proc_ssize_t k = utf8proc_decompose_char(cp, buf, 32, UTF8PROC_DECOMPOSE, &last);
  if (k < 0 || k > 32) {
    buf[0] = cp;
    k = 1;
  }
  int n = 0;
  for (utf8proc_ssize_t i = 0; i < k; i++) {
    int hf = hf_classes(buf[i]);
    if (hf ? (hf & TOK_HF_MARK) != 0 : utf8proc_category(buf[i]) == UTF8PROC_CATEGORY_MN) continue;
    int32_t lc = buf[i];
    if (lc == 0x130) { /* the one unconditional multi-character lower case */
      if (n < cap) out[n++] = 'i';
      lc = 0x307;
    } else {
      lc = utf8proc_tolower(lc);
    }
    if (n < cap) out[n++] = lc;
  }
  return n;
}
