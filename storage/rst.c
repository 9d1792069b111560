/* rst.c — reStructuredText to plain prose (see rst.h).
 *
 * Block level works on lines and their indentation: each block is either
 * dropped (with everything indented under it) or turned into one output
 * paragraph; inline markup is reduced per paragraph.
 */
#include "storage/rst.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  const char *s; /* line start, without indentation */
  size_t n;      /* length without indentation and trailing whitespace */
  int indent;    /* columns (tabs to multiples of 8); -1 for a blank line */
} line_t;

typedef struct {
  char *b;
  size_t n, cap;
  int oom;
} sbuf;

static void sb_put(sbuf *o, const char *s, size_t k) {
  if (o->oom) return;
  if (o->n + k + 1 > o->cap) {
    size_t cap = o->cap ? o->cap : 4096;
    while (cap < o->n + k + 1) cap *= 2;
    char *nb = realloc(o->b, cap);
    if (!nb) {
      o->oom = 1;
      return;
    }
    o->b = nb;
    o->cap = cap;
  }
  memcpy(o->b + o->n, s, k);
  o->n += k;
  o->b[o->n] = '\0';
}

static void sb_putc(sbuf *o, char c) { sb_put(o, &c, 1); }

/* ---- lines ------------------------------------------------------------------------ */

static line_t *split_lines(const char *src, size_t n, size_t *count) {
  size_t cap = 64, k = 0;
  line_t *L = malloc(cap * sizeof *L);
  if (!L) return NULL;
  size_t i = 0;
  while (i < n) {
    size_t e = i;
    while (e < n && src[e] != '\n') e++;
    size_t a = i;
    int ind = 0;
    while (a < e && (src[a] == ' ' || src[a] == '\t')) {
      ind = src[a] == '\t' ? (ind / 8 + 1) * 8 : ind + 1;
      a++;
    }
    size_t z = e;
    while (z > a && (src[z - 1] == ' ' || src[z - 1] == '\t' || src[z - 1] == '\r')) z--;
    if (k == cap) {
      cap *= 2;
      line_t *nl = realloc(L, cap * sizeof *L);
      if (!nl) {
        free(L);
        return NULL;
      }
      L = nl;
    }
    L[k].s = src + a;
    L[k].n = z - a;
    L[k].indent = z > a ? ind : -1;
    k++;
    i = e + 1;
  }
  *count = k;
  return L;
}

static int blank(const line_t *l) { return l->indent < 0; }

static int starts(const line_t *l, const char *p) {
  size_t k = strlen(p);
  return l->n >= k && !strncmp(l->s, p, k);
}

/* a line made of one repeated punctuation character (section adornment) */
static int adornment(const line_t *l) {
  if (blank(l) || l->n < 2 || !ispunct((unsigned char)l->s[0])) return 0;
  for (size_t i = 1; i < l->n; i++)
    if (l->s[i] != l->s[0]) return 0;
  return 1;
}

static int grid_border(const line_t *l) {
  if (l->n < 3 || l->s[0] != '+' || l->s[l->n - 1] != '+') return 0;
  for (size_t i = 0; i < l->n; i++)
    if (!strchr("+-=", l->s[i])) return 0;
  return 1;
}

/* "=====  ====" : simple-table border with at least two columns, or one
 * column followed by table rows (checked by the caller) */
static int simple_border(const line_t *l) {
  if (l->n < 1 || l->s[0] != '=') return 0;
  int gap = 0;
  for (size_t i = 0; i < l->n; i++) {
    if (l->s[i] == ' ') gap = 1;
    else if (l->s[i] != '=') return 0;
  }
  return gap;
}

/* first line index after the block that starts at i: every following line
 * that is blank or indented deeper than `ind` */
static size_t skip_indented(const line_t *L, size_t n, size_t i, int ind) {
  while (i < n && (blank(&L[i]) || L[i].indent > ind)) i++;
  /* give back trailing blank lines (harmless either way) */
  return i;
}

/* ---- inline markup ----------------------------------------------------------------- */

static int is_start_ctx(char c) { return c == ' ' || strchr("'\"([{<-/:\xE2", c) != NULL; }
static int is_end_ctx(char c) { return c == ' ' || strchr("'\")]}>-/:.,;!?\\\xE2", c) != NULL; }

/* Reduces the inline markup of one paragraph p[0..n) and appends it to o,
 * whitespace collapsed. */
/* "title <target>" (x[xl-1] == '>'): keeps the title, trimmed. Returns 1
 * when it did; 0 when there is no title before the last '<'. */
static int strip_target(const char **x, size_t *xl) {
  const char *lt = NULL;
  for (size_t k = 0; k + 1 < *xl; k++)
    if ((*x)[k] == '<') lt = *x + k;
  if (!lt || lt == *x) return 0;
  *xl = (size_t)(lt - *x);
  while (*xl && (*x)[*xl - 1] == ' ') (*xl)--;
  return 1;
}

static void inline_text(const char *p, size_t n, sbuf *o) {
  sbuf t = {0};
  size_t i = 0;
  /* Searches for a closing mark that failed once fail for every later
   * start too (they look at a suffix of the same bytes): remembered, so a
   * paragraph of unclosed openers ("*a*b *a*b ...") stays linear rather
   * than scanning to its end from each. no_bq: no backquote at or after
   * this; role_from: a role name run that failed ends here; no_close[k-1]:
   * no closing "*" (k 1) or "**" (k 2) after this. */
  size_t no_bq = SIZE_MAX, role_from = 0, no_close[2] = {SIZE_MAX, SIZE_MAX};
  while (i < n) {
    char c = p[i];
    char prev = i ? p[i - 1] : ' ';
    if (c == '\\' && i + 1 < n) {
      if (p[i + 1] != ' ') sb_putc(&t, p[i + 1]);
      i += 2;
      continue;
    }
    if (c == '`' && i + 1 < n && p[i + 1] == '`') {
      const char *e = i + 2 < n ? strstr(p + i + 2, "``") : NULL;
      if (e && (size_t)(e - p) < n) {
        sb_put(&t, p + i + 2, (size_t)(e - p) - i - 2);
        i = (size_t)(e - p) + 2;
        continue;
      }
    }
    /* :role:`text` */
    if (c == ':' && is_start_ctx(prev) && i >= role_from) {
      size_t j = i + 1;
      while (j < n && (isalnum((unsigned char)p[j]) || strchr("_.:+-", p[j]))) j++;
      role_from = j; /* a ':' inside this run would end here too, and fail the same way */
      if (j > i + 1 && j + 1 < n && p[j - 1] == ':' && p[j] == '`' && p[j + 1] != '`') {
        const char *e = j + 1 < no_bq ? memchr(p + j + 1, '`', n - j - 1) : NULL;
        if (!e && j + 1 < no_bq) no_bq = j + 1;
        if (e) {
          const char *role = p + i + 1;
          size_t rl = j - 1 - (i + 1);
          const char *x = p + j + 1;
          size_t xl = (size_t)(e - x);
          /* title <target> */
          if (xl && x[xl - 1] == '>') strip_target(&x, &xl);
          if (xl && x[0] == '!') x++, xl--;
          if (xl && x[0] == '~') {
            x++, xl--;
            for (size_t k = xl; k > 0; k--)
              if (x[k - 1] == '.') {
                xl -= k;
                x += k;
                break;
              }
          }
          if ((rl == 3 && !strncmp(role, "pep", 3)) || (rl == 3 && !strncmp(role, "rfc", 3)))
            sb_put(&t, rl == 3 && role[0] == 'p' ? "PEP " : "RFC ", 4);
          sb_put(&t, x, xl);
          i = (size_t)(e - p) + 1;
          while (i < n && p[i] == '_') i++;
          continue;
        }
      }
    }
    /* `interpreted` or `reference <url>`_ */
    if (c == '`' && is_start_ctx(prev) && i + 1 < n && p[i + 1] != ' ') {
      const char *e = i + 1 < no_bq ? memchr(p + i + 1, '`', n - i - 1) : NULL;
      if (!e && i + 1 < no_bq) no_bq = i + 1;
      if (e) {
        const char *x = p + i + 1;
        size_t xl = (size_t)(e - x);
        if (xl && x[xl - 1] == '>' && !strip_target(&x, &xl) && x[0] == '<') {
          x++, xl -= 2; /* `<url>`_ : keep the url */
        }
        sb_put(&t, x, xl);
        i = (size_t)(e - p) + 1;
        while (i < n && p[i] == '_') i++;
        continue;
      }
    }
    /* *emphasis* and **strong** */
    if (c == '*' && is_start_ctx(prev)) {
      size_t k = i + 1 < n && p[i + 1] == '*' ? 2 : 1;
      if (i + k < n && p[i + k] != ' ' && p[i + k] != '*' && i + k < no_close[k - 1]) {
        size_t j = i + k;
        size_t found = 0;
        while (j + k <= n) {
          if (p[j] == '*' && (k == 1 || (j + 1 < n && p[j + 1] == '*')) && p[j - 1] != ' ' &&
              (j + k == n || is_end_ctx(p[j + k]))) {
            found = j;
            break;
          }
          j++;
        }
        if (found) {
          sb_put(&t, p + i + k, found - i - k);
          i = found + k;
          continue;
        }
        no_close[k - 1] = i + k;
      }
    }
    /* footnote and citation references: [#]_, [1]_, [#name]_ */
    if (c == '[') { /* (a reference is at most 32 bytes: no need to look further) */
      const char *e = memchr(p + i, ']', n - i < 34 ? n - i : 34);
      if (e && (size_t)(e - p) + 1 < n && e[1] == '_' && (size_t)(e - p) - i <= 32) {
        int ok = 1;
        for (const char *q = p + i + 1; q < e; q++)
          if (*q == ' ') ok = 0;
        if (ok) {
          while (t.n && t.b[t.n - 1] == ' ') t.n--;
          i = (size_t)(e - p) + 2;
          continue;
        }
      }
    }
    sb_putc(&t, c);
    i++;
  }
  /* collapse whitespace into o */
  int letter = 0;
  for (size_t k = 0; k < t.n; k++)
    if (isalpha((unsigned char)t.b[k])) letter = 1;
  if (letter && !t.oom) {
    if (o->n) sb_put(o, "\n\n", 2);
    int sp = 0, any = 0;
    for (size_t k = 0; k < t.n; k++) {
      char ch = t.b[k];
      if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r') {
        sp = 1;
        continue;
      }
      if (sp && any) sb_putc(o, ' ');
      sp = 0;
      any = 1;
      sb_putc(o, ch);
    }
  }
  if (t.oom) o->oom = 1;
  free(t.b);
}

/* Joins lines [a, b) with spaces (each from `from` columns of text on) and
 * emits them as one paragraph. first_skip drops bytes of the first line. */
static void emit_lines(const line_t *L, size_t a, size_t b, size_t first_skip, sbuf *o) {
  sbuf p = {0};
  for (size_t i = a; i < b; i++) {
    if (blank(&L[i])) continue;
    size_t sk = i == a ? first_skip : 0;
    if (sk > L[i].n) sk = L[i].n;
    const char *s = L[i].s + sk;
    size_t k = L[i].n - sk;
    if (k >= 2 && s[0] == '|' && s[1] == ' ') s += 2, k -= 2; /* line blocks */
    if (p.n) sb_putc(&p, ' ');
    sb_put(&p, s, k);
  }
  if (p.oom) o->oom = 1;
  if (p.n) inline_text(p.b, p.n, o);
  free(p.b);
}

/* ---- directives ------------------------------------------------------------------ */

/* how a directive's content is treated */
enum { DIR_DROP, DIR_ADMON, DIR_DESC };

static int directive_kind(const char *name, size_t n, int *args) {
  static const char *admon[] = {"note", "warning", "seealso", "important", "caution", "tip", "hint",
                                "attention", "danger", "error", "impl-detail", "container",
                                "glossary", NULL};
  static const char *arg1[] = {"versionadded", "versionchanged", "deprecated", "topic", "sidebar",
                               "admonition", "only", NULL};
  static const char *desc[] = {"function", "method", "attribute", "data", "class", "exception",
                               "cmdoption", "option", "opcode", "envvar", "decorator",
                               "decoratormethod", "coroutinemethod", "coroutinefunction",
                               "classmethod", "staticmethod", "abstractmethod", "2to3fixer",
                               "pdbcommand", "describe", "object", "awaitablefunction",
                               "awaitablemethod", "property", "type", "member", "macro", "var",
                               "struct", NULL};
  *args = 0;
  for (int i = 0; admon[i]; i++)
    if (strlen(admon[i]) == n && !strncmp(admon[i], name, n)) return DIR_ADMON;
  for (int i = 0; arg1[i]; i++)
    if (strlen(arg1[i]) == n && !strncmp(arg1[i], name, n)) {
      *args = 1;
      if (!strncmp(name, "topic", 5) || !strncmp(name, "sidebar", 7) || !strncmp(name, "admonition", 10) ||
          !strncmp(name, "only", 4))
        *args = 99; /* the whole first line is a title or an expression */
      return DIR_ADMON;
    }
  if (n == 18 && !strncmp(name, "deprecated-removed", 18)) {
    *args = 2;
    return DIR_ADMON;
  }
  /* domain prefixes: c:function, py:method, ... */
  const char *colon = memchr(name, ':', n);
  if (colon) {
    n -= (size_t)(colon + 1 - name);
    name = colon + 1;
  }
  for (int i = 0; desc[i]; i++)
    if (strlen(desc[i]) == n && !strncmp(desc[i], name, n)) return DIR_DESC;
  return DIR_DROP;
}

/* the length of a list item's marker ("* ", "- ", "1. ", "(a) ", "#. "), 0 if none */
static size_t list_marker(const line_t *l) {
  if (l->n >= 2 && strchr("*-+", l->s[0]) && l->s[1] == ' ') return 2;
  if (l->n >= 4 && !strncmp(l->s, "\xE2\x80\xA2 ", 4)) return 4;
  size_t d = 0;
  int paren = l->s[0] == '(';
  if (paren) d++;
  size_t ds = d;
  while (d < l->n && d - ds < 3 && (isdigit((unsigned char)l->s[d]) || l->s[d] == '#')) d++;
  if (d == ds && d < l->n && isalpha((unsigned char)l->s[d]) && d + 1 < l->n &&
      (l->s[d + 1] == '.' || l->s[d + 1] == ')'))
    d++;
  if (d > ds && d + 1 < l->n && (l->s[d] == '.' || l->s[d] == ')') && l->s[d + 1] == ' ' &&
      (!paren || l->s[d] == ')'))
    return d + 2;
  return 0;
}

/* ---- blocks ---------------------------------------------------------------------- */

int rst_to_prose(const char *src, size_t srcn, char **out, size_t *outlen, foil_err *err) {
  *out = NULL;
  if (outlen) *outlen = 0;
  size_t n = 0;
  line_t *L = split_lines(src, srcn, &n);
  if (!L) return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  sbuf o = {0};
  sb_put(&o, "", 0);
  size_t i = 0;
  while (i < n && !o.oom) {
    const line_t *l = &L[i];
    if (blank(l)) {
      i++;
      continue;
    }
    int ind = l->indent;
    /* explicit markup: directives, comments, targets, footnotes */
    if (starts(l, "..") && (l->n == 2 || l->s[2] == ' ')) {
      const char *s = l->s + 3;
      size_t k = l->n > 3 ? l->n - 3 : 0, nm = 0;
      while (nm < k && (isalnum((unsigned char)s[nm]) || strchr("_-:", s[nm]))) nm++;
      int is_dir = nm >= 3 && s[nm - 1] == ':' && s[nm - 2] == ':';
      int args = 0, kind = DIR_DROP;
      if (is_dir) kind = directive_kind(s, nm - 2, &args);
      if (!is_dir || kind == DIR_DROP) {
        i = skip_indented(L, n, i + 1, ind);
        continue;
      }
      /* the rest of the first line: arguments, then (admonitions) content */
      size_t a = nm;
      while (a < k && s[a] == ' ') a++;
      size_t first_off = (size_t)(s - l->s) + a;
      if (kind == DIR_DESC || args == 99) {
        first_off = l->n;
      } else {
        for (int g = 0; g < args; g++) {
          while (first_off < l->n && l->s[first_off] != ' ') first_off++;
          while (first_off < l->n && l->s[first_off] == ' ') first_off++;
        }
      }
      size_t j = i + 1;
      if (kind == DIR_DESC) {
        /* more signatures and options until the first blank line */
        while (j < n && !blank(&L[j]) && L[j].indent > ind) j++;
        i = j;
        continue;
      }
      /* admonition: options (":name: value") then content lines */
      while (j < n && !blank(&L[j]) && L[j].indent > ind && L[j].s[0] == ':' &&
             !memchr(L[j].s, '`', L[j].n < 2 ? L[j].n : 2))
        j++;
      size_t e = j;
      while (e < n && !blank(&L[e]) && L[e].indent > ind) e++;
      /* emit the first line's content together with its continuation */
      sbuf p = {0};
      if (first_off < l->n) sb_put(&p, l->s + first_off, l->n - first_off);
      for (size_t q = j; q < e; q++) {
        if (p.n) sb_putc(&p, ' ');
        sb_put(&p, L[q].s, L[q].n);
      }
      if (p.oom) o.oom = 1;
      if (p.n) inline_text(p.b, p.n, &o);
      free(p.b);
      i = e; /* the body, indented, continues as ordinary blocks */
      continue;
    }
    if (starts(l, "__ ")) {
      i = skip_indented(L, n, i + 1, ind);
      continue;
    }
    /* section titles: text + underline, or overline + text + underline */
    if (adornment(l) && i + 2 < n && !blank(&L[i + 1]) && adornment(&L[i + 2]) &&
        L[i + 2].s[0] == l->s[0]) {
      i += 3;
      continue;
    }
    if (!adornment(l) && i + 1 < n && adornment(&L[i + 1]) && L[i + 1].indent == ind &&
        L[i + 1].n >= 3 && !grid_border(&L[i + 1])) {
      i += 2;
      continue;
    }
    if (adornment(l) && l->n >= 4 && !simple_border(l) && l->s[0] != '=') { /* transition */
      i++;
      continue;
    }
    /* tables */
    if (grid_border(l)) {
      while (i < n && !blank(&L[i])) i++;
      continue;
    }
    if (simple_border(l) || (adornment(l) && l->s[0] == '=')) {
      /* skip to the border that ends the table (one followed by a blank line) */
      size_t j = i + 1;
      while (j < n) {
        if ((simple_border(&L[j]) || (adornment(&L[j]) && L[j].s[0] == '=')) &&
            (j + 1 == n || blank(&L[j + 1])))
          break;
        j++;
      }
      i = j < n ? j + 1 : n;
      continue;
    }
    /* doctest blocks */
    if (starts(l, ">>>")) {
      while (i < n && !blank(&L[i])) i++;
      continue;
    }
    /* field lists (":name: body"; a role at the start of a line has a backquote) */
    if (l->s[0] == ':' && l->n > 2) {
      const char *e = memchr(l->s + 1, ':', l->n - 1);
      if (e && (size_t)(e - l->s) + 1 <= l->n &&
          ((size_t)(e - l->s) + 1 == l->n || e[1] == ' ')) {
        i = skip_indented(L, n, i + 1, ind);
        continue;
      }
    }
    size_t mark = list_marker(l);
    /* a paragraph: lines at this indentation until a blank line */
    size_t j = i + 1;
    int item_ind = mark ? ind + (int)mark : ind;
    while (j < n && !blank(&L[j]) &&
           (L[j].indent == ind || (mark && L[j].indent == item_ind)) &&
           !(L[j].indent == ind && (starts(&L[j], ".. ") || list_marker(&L[j]))))
      j++;
    /* a definition list term: one line directly followed by deeper text */
    if (!mark && j == i + 1 && j < n && !blank(&L[j]) && L[j].indent > ind) {
      i++;
      continue;
    }
    const line_t *last = &L[j - 1];
    int literal = last->n >= 2 && last->s[last->n - 2] == ':' && last->s[last->n - 1] == ':';
    if (literal) {
      /* "text::" -> "text:", "text ::" -> "text", "::" -> nothing */
      sbuf p = {0};
      for (size_t q = i; q < j; q++) {
        size_t sk = q == i ? mark : 0;
        size_t k = L[q].n - (sk < L[q].n ? sk : L[q].n);
        const char *s = L[q].s + sk;
        if (q == j - 1) {
          k -= 1; /* drop one ':' */
          if (k >= 1 && s[k - 1] == ':' && (k == 1 || s[k - 2] == ' ')) {
            k -= 1;
            while (k && s[k - 1] == ' ') k--;
          }
        }
        if (p.n) sb_putc(&p, ' ');
        sb_put(&p, s, k);
      }
      if (p.oom) o.oom = 1;
      if (p.n) inline_text(p.b, p.n, &o);
      free(p.b);
      /* the literal block: everything indented deeper than the paragraph */
      i = skip_indented(L, n, j, ind);
      continue;
    }
    emit_lines(L, i, j, mark, &o);
    i = j;
  }
  free(L);
  if (o.oom) {
    free(o.b);
    return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  }
  *out = o.b;
  if (outlen) *outlen = o.n;
  return FOIL_OK;
}
