/* sword.h — reading a SWORD Bible module stored with the zText driver, and
 * turning its OSIS markup into plain prose.
 *
 * A zText module's data directory (the conf file's DataPath) holds, per
 * testament ("ot", "nt"), three files:
 *   <t>.bzs  block index: per block 12 bytes, little-endian uint32
 *            offset into <t>.bzz, compressed size, uncompressed size;
 *   <t>.bzv  verse index: per entry 10 bytes, little-endian uint32 block
 *            number, uint32 offset into the uncompressed block, uint16 size;
 *   <t>.bzz  the blocks, each a zlib stream (CompressType=ZIP).
 * Entries of the verse index follow the versification: entry 0 is empty,
 * 1 the testament heading, then for each book its introduction, and for
 * each chapter its heading followed by its verses (so Genesis 1:1 is entry
 * 4 of "ot"). With BlockType=BOOK every block holds one book.
 *
 * Checks: file sizes must be whole records, every block must lie inside
 * the .bzz and inflate to exactly its recorded size (a recorded size beyond
 * zlib's 1032:1 is refused before anything is allocated), every verse must
 * lie inside its block; failures are INVALID_ARGUMENT naming the file and
 * the offset (or entry), never a crash.
 *
 * Ownership: sword_open returns a module freed with sword_close; it keeps
 * the two index files in memory and the most recently used block
 * decompressed (a verse pointer stays valid until the next sword_verse
 * call on the same module). Cost: reading a whole testament in index order
 * inflates each block once.
 */
#ifndef FOIL_STORAGE_SWORD_H
#define FOIL_STORAGE_SWORD_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

enum { SWORD_OT = 0, SWORD_NT = 1 };

typedef struct sword_mod sword_mod;

/* Reads the DataPath of a module's .conf file (mods.d/<name>.conf) and
 * resolves it against the library root (the directory above mods.d).
 * Refuses modules whose ModDrv is not zText or whose CompressType is not
 * ZIP. *datapath is malloc'ed. */
int sword_conf_datapath(const char *conf_path, char **datapath, foil_err *err);

/* Opens the module in directory dir. A testament whose files are all
 * missing is treated as empty; at least one must exist. */
int sword_open(sword_mod **out, const char *dir, foil_err *err);
void sword_close(sword_mod **m);

/* Number of verse-index entries of a testament (0 if absent). */
size_t sword_count(const sword_mod *m, int testament);
/* Entry i's raw markup (*text, *len; not NUL-terminated; len 0 for empty
 * entries) and its block number. */
int sword_verse(sword_mod *m, int testament, size_t i, const char **text, size_t *len,
                uint32_t *block, foil_err *err);

/* Appends the prose of OSIS markup to a malloc'ed buffer (*buf, *len,
 * *cap; NUL-terminated). Keeps word text, quotes and divine names; drops
 * notes (footnotes, cross references), titles, speakers, Strong's numbers
 * and every other attribute; decodes the XML entities. Paragraph marks
 * (<div type="x-p">, <lb type="x-p">, chapters, line groups) become "\n\n",
 * poetry lines "\n"; other whitespace runs become one space. Text appended
 * to a non-empty *buf is separated from it by whitespace (a space unless
 * the new text starts with closing punctuation), and whitespace already at
 * the end of *buf merges with the next, so verses can be appended one
 * after another. */
int sword_osis_text(const char *markup, size_t n, char **buf, size_t *len, size_t *cap,
                    foil_err *err);

#endif
