/* rst.h — reStructuredText (as Sphinx sources use it) to plain prose.
 *
 * Keeps running text: paragraphs, list items (markers removed), block
 * quotes, definitions, and the bodies of prose-bearing directives
 * (admonitions such as note/warning/seealso, versionadded/changed and
 * deprecated with their version dropped, and the descriptions under
 * function/class/method/... whose signature lines are dropped).
 * Drops: section titles and transitions, literal blocks (after "::"),
 * doctest blocks (">>>"), comments, targets, footnote and substitution
 * definitions, field lists, grid and simple tables, and every other
 * directive with its whole body (code-block, toctree, index, table, ...).
 * Inline markup is reduced to its text: ``literal`` -> literal, *emph* ->
 * emph, :role:`title <target>` -> title, :role:`~a.b.c` -> c, :pep:`8` ->
 * PEP 8, `link <url>`_ -> link, footnote references and escapes removed.
 * A paragraph ending in "::" keeps one ":" ("Example::" -> "Example:").
 *
 * Output: the paragraphs, each one line (whitespace runs collapsed),
 * separated by "\n\n"; no leading or trailing whitespace. Paragraphs with
 * no letter are dropped.
 *
 * Ownership: *out is malloc'ed (NUL-terminated), owned by the caller.
 * Cost: linear in the input size.
 */
#ifndef FOIL_STORAGE_RST_H
#define FOIL_STORAGE_RST_H

#include <stddef.h>

#include "common/err.h"

int rst_to_prose(const char *src, size_t n, char **out, size_t *outlen, foil_err *err);

#endif
