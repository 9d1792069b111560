/* simctg.h — SimCTG's token-level contrastive loss (Su et al. 2022, "A
 * Contrastive Framework for Neural Text Generation") on a decoder's
 * last-layer states, forward and backward.
 *
 * For each row b with mask[b, ·] (1 real, 0 padding), L_b = Σ_t mask[b,t],
 * unit states u_t = h_t/||h_t||, cosines s_ij = <u_i, u_j>:
 *     loss = (1/Z) Σ_b Σ_{i<L_b} mask[b,i] Σ_{j<L_b, j≠i} max(0, ρ − s_ii + s_ij)
 * with Z = Σ_b L_b(L_b − 1) (or a normalizer the caller gives, e.g. the
 * global one of a data-parallel batch). s_ii is computed (≈ 1), so the term
 * is max(0, ρ − 1 + cos(h_i, h_j)) up to rounding.
 *
 * This is yxuansu/SimCTG's `contrastive_loss` (simctg/lossfunction.py and
 * language_modelling/loss_func.py) term for term, quirks included:
 *   - rows are assumed RIGHT-padded: the pair mask keeps the first L_b
 *     positions (L_b counts the real tokens), not the positions where
 *     mask = 1; each row sum is then also multiplied by mask[b,i]. With a
 *     right-padded mask both agree; with holes they differ as SimCTG does.
 *   - the normalizer counts ordered pairs (i,j), i ≠ j, of real tokens.
 *   - a hinge exactly at 0 has zero gradient (torch's relu).
 *   - h/||h|| has no epsilon in SimCTG; here the norm is clamped at 1e-12
 *     (kernels.h l2norm), which differs only for an all-zero state.
 * Z = 0 (no row with two real tokens) gives loss 0 and zero gradient
 * (SimCTG would divide by zero).
 *
 * Ownership: a simctg object owns scratch sized to the largest batch seen
 * (unit states, norms, one T×T similarity block); free with
 * simctg_destroy(&s). Cost: B·T²·C multiply-adds forward, 2× that backward.
 * Nothing here does I/O.
 */
#ifndef FOIL_MODEL_SIMCTG_H
#define FOIL_MODEL_SIMCTG_H

#include <stdint.h>

#include "common/err.h"

typedef struct simctg simctg;

int simctg_new(simctg **out, foil_err *err);
void simctg_destroy(simctg **s);

/* Z of a batch: Σ_b L_b(L_b − 1), L_b = real tokens of row b (mask NULL:
 * every row has T). */
double simctg_pairs(const uint8_t *mask, int B, int T);

/* hidden [B,T,C], mask [B,T] (NULL: all real), margin ρ; norm > 0 is Z
 * (<= 0: this batch's own simctg_pairs). Writes *loss and, when dhidden
 * [B,T,C] is not NULL, d(loss)/d(hidden) into it (overwritten, not
 * accumulated). Errors: FOIL_EINVAL on bad sizes, FOIL_ENOMEM. */
int simctg_loss(simctg *s, const float *hidden, const uint8_t *mask, int B, int T, int C,
                float margin, double norm, float *loss, float *dhidden, foil_err *err);

#endif
