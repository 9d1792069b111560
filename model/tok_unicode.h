/* tok_unicode.h — UTF-8 and the Unicode character classes the tokenizers
 * need (categories from libutf8proc; ASCII answered from tables).
 *
 * All functions are pure and cheap (table lookups); no allocation.
 */
#ifndef FOIL_MODEL_TOK_UNICODE_H
#define FOIL_MODEL_TOK_UNICODE_H

#include <stddef.h>
#include <stdint.h>

/* Decodes the code point at s[i] (strict UTF-8: no overlongs, surrogates or
 * values above U+10FFFF). Returns its byte length 1..4, or 0 if the bytes
 * there are not valid UTF-8. */
int tok_utf8_next(const uint8_t *s, size_t len, size_t i, int32_t *cp);
/* Offset of the first invalid byte, or len when all of s is valid. */
size_t tok_utf8_check(const char *s, size_t len);
/* Writes cp as UTF-8 into out (>= 4 bytes); returns the byte count. */
int tok_utf8_put(int32_t cp, char *out);

/* White_Space as Rust's char::is_whitespace and Oniguruma's \s. */
int tok_is_space(int32_t cp);
/* BERT: Unicode P* categories, plus ASCII 33-47, 58-64, 91-96, 123-126. */
int tok_is_bert_punct(int32_t cp);
/* BERT clean_text drops it: NUL, U+FFFD, and categories Cc Cf Co Cs except
 * tab, newline and carriage return. */
int tok_is_bert_drop(int32_t cp);
/* BERT's CJK ideograph blocks (padded with spaces). */
int tok_is_cjk(int32_t cp);
/* \p{L} and \p{N}. */
int tok_is_letter(int32_t cp);
int tok_is_number(int32_t cp);
/* Canonical decomposition (NFD) of cp with nonspacing marks (Mn) dropped,
 * each remaining code point lower-cased; writes up to cap code points into
 * out and returns the count (0 when everything was dropped). */
int tok_strip_lower(int32_t cp, int32_t *out, int cap);

#endif
