/*
 * The C ABI of dropmax, tested from C (run by capi/check.sh, linked against the static library).
 *
 * Every result is checked against values computed here, independently of the library:
 *   - the softmax in double from the logits (the scores z_j = scale * x_j + b_j rounded to float
 *     as the library defines them), within dropmax's documented bound
 *     |Y - Y*| <= (1e-6 + 2^-24 |z_j - m|) Y* (+ 1e-30);
 *   - the dropout mask from its written definition (dropmax::dropout docs), with a Philox4x32-10
 *     written here and checked against Random123's known-answer vectors; the kept fraction of a
 *     long row against p;
 *   - the backward dx_j = s P_j (G_j - sum_k P_k G_k), G_j = keep_j ? dy_j / q : 0, in double;
 *   - the error codes of bad arguments, and that no output is touched on error.
 * Prints "C test: N passed, M failed" and exits 1 if anything failed.
 */
#include "dropmax.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passed, failed;

#define CHECK(cond, ...)                                         \
    do {                                                         \
        if (cond) {                                              \
            passed++;                                            \
        } else {                                                 \
            failed++;                                            \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                        \
            fputc('\n', stderr);                                 \
        }                                                        \
    } while (0)

/* ---------------------------------------------------------------------------------------- */
/* Independent references                                                                    */
/* ---------------------------------------------------------------------------------------- */

/* Philox4x32-10 (Salmon et al., SC11), as Random123 defines it. */
static void philox(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3], k0 = key[0], k1 = key[1];
    int round;
    for (round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1, n3 = (uint32_t)p0;
        c0 = n0, c1 = n1, c2 = n2, c3 = n3;
        k0 += 0x9E3779B9u, k1 += 0xBB67AE85u;
    }
    out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

/* The mask's definition (dropmax::dropout): U(r, j) = B << 24 | T, keep iff U >= D. */
static uint32_t mask_uniform(uint64_t seed, uint64_t offset, uint64_t row, uint32_t j) {
    uint32_t key[2], ctr[4], out[4], b, t;
    uint64_t r = offset + row;
    key[0] = (uint32_t)seed, key[1] = (uint32_t)(seed >> 32);
    ctr[0] = j / 16, ctr[1] = 0;
    ctr[2] = (uint32_t)r, ctr[3] = (uint32_t)(r >> 32);
    philox(ctr, key, out);
    b = (out[(j / 4) % 4] >> (8 * (j % 4))) & 0xFFu;
    ctr[0] = j, ctr[1] = 1;
    philox(ctr, key, out);
    t = out[0] & 0xFFFFFFu;
    return b << 24 | t;
}

static uint64_t threshold(double p) { return (uint64_t)llround(p * 4294967296.0); }

/* The exact keep probability q = (2^32 - D) / 2^32. */
static double keep_prob(double p) { return (4294967296.0 - (double)threshold(p)) / 4294967296.0; }

static int keep_ref(const DropmaxDropout *d, uint64_t row, uint32_t j) {
    uint64_t t = threshold(d->p);
    if (t == 0) return 1;
    if (t >= 4294967296u) return 0;
    return (uint64_t)mask_uniform(d->seed, d->offset, row, j) >= t;
}

/* Visibility of column j of row i under a mask (NULL = none), the header's definition. */
static int visible(const DropmaxMask *m, size_t i, size_t j) {
    size_t q;
    if (m == NULL) return 1;
    q = m->query_pos + i;
    if (j >= m->key_len) return 0;
    switch (m->kind) {
    case DROPMAX_MASK_NONE: return 1;
    case DROPMAX_MASK_CAUSAL: return j <= q;
    case DROPMAX_MASK_WINDOW: return j <= q && j + m->window > q;
    case DROPMAX_MASK_BAND:
        return (m->before == DROPMAX_UNBOUNDED || j + m->before >= q) &&
               (m->after == DROPMAX_UNBOUNDED || j <= q + m->after);
    default: return 0;
    }
}

/* Row i of the softmax in double: P[j], and zdiff[j] = |z_j - m| for the error bound.
 * Returns the row maximum m (float, as the library's statistics hold it) and S in *sum. */
static float ref_softmax(const float *x, size_t i, size_t cols, float scale, const float *bias,
                         const DropmaxMask *mask, double *P, double *zdiff, double *sum) {
    size_t j;
    float m = -INFINITY;
    double s = 0.0;
    for (j = 0; j < cols; j++) {
        float z = scale * x[j];
        if (bias) z = z + bias[j];
        if (visible(mask, i, j) && z > m) m = z;
    }
    for (j = 0; j < cols; j++) {
        float z = scale * x[j];
        if (bias) z = z + bias[j];
        P[j] = visible(mask, i, j) ? exp((double)z - (double)m) : 0.0;
        zdiff[j] = fabs((double)z - (double)m);
        s += P[j];
    }
    for (j = 0; j < cols; j++) P[j] /= s;
    *sum = s;
    return m;
}

/* dropmax's documented accuracy bound for an output whose exact value is `ref`. */
static int within_bound(float y, double ref, double zdiff) {
    return fabs((double)y - ref) <= (1e-6 + ldexp(zdiff, -24)) * ref + 1e-30;
}

/* dx_j = s P_j (G_j - sum_k P_k G_k), G_j = keep_j ? dy_j / q : 0 (keep = NULL: evaluation);
 * tol[j] = a bound on the rounding error of a float evaluation of the same formula. */
static void ref_backward(size_t cols, float scale, const double *P, const float *dy,
                         const unsigned char *keep, double q, double *dx, double *tol) {
    size_t j;
    double dot = 0.0, mag = 0.0;
    for (j = 0; j < cols; j++) {
        double g = keep == NULL ? dy[j] : (keep[j] ? dy[j] / q : 0.0);
        dot += P[j] * g;
        mag += fabs(P[j] * g);
    }
    for (j = 0; j < cols; j++) {
        double g = keep == NULL ? dy[j] : (keep[j] ? dy[j] / q : 0.0);
        dx[j] = scale * P[j] * (g - dot);
        tol[j] = 1e-5 * fabs(scale) * P[j] * (fabs(g) + mag) + 1e-30;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Helpers                                                                                   */
/* ---------------------------------------------------------------------------------------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15u;
static float uniform(float lo, float hi) {
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return lo + (hi - lo) * (float)((double)(rng_state >> 11) / 9007199254740992.0);
}
static void fill_uniform(float *v, size_t n, float lo, float hi) {
    size_t i;
    for (i = 0; i < n; i++) v[i] = uniform(lo, hi);
}
static void fill(float *v, size_t n, float value) {
    size_t i;
    for (i = 0; i < n; i++) v[i] = value;
}
static int all_equal(const float *v, size_t n, float value) {
    size_t i;
    for (i = 0; i < n; i++)
        if (memcmp(&v[i], &value, sizeof value) != 0) return 0;
    return 1;
}
static void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size);
    if (p == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}
static int bit(const uint8_t *bits, size_t j) { return bits[j / 8] >> (j % 8) & 1; }

enum { ROWS = 3, COLS = 7, NBYTES = (COLS + 7) / 8 };
static const float SCALE = 0.5f;

/* ---------------------------------------------------------------------------------------- */
/* Tests                                                                                     */
/* ---------------------------------------------------------------------------------------- */

static void test_philox_kat(void) {
    /* Random123 kat_vectors, philox4x32 10 rounds. */
    static const uint32_t in[3][6] = {
        {0, 0, 0, 0, 0, 0},
        {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
        {0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u}};
    static const uint32_t want[3][4] = {{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u},
                                        {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu},
                                        {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}};
    int v;
    for (v = 0; v < 3; v++) {
        uint32_t out[4];
        philox(in[v], in[v] + 4, out);
        CHECK(memcmp(out, want[v], sizeof out) == 0, "Philox KAT vector %d", v);
    }
}

/* Evaluation forward, with and without mask and bias, against the softmax in double. */
static void test_forward_eval(void) {
    float x[ROWS * COLS], y[ROWS * COLS], bias[COLS];
    DropmaxRowStats st[ROWS];
    DropmaxMask causal = dropmax_mask_causal(2);
    DropmaxMask band = dropmax_mask_band(1, 1, 2);
    const DropmaxMask *masks[3];
    int c;
    causal.key_len = 6;
    masks[0] = NULL, masks[1] = &causal, masks[2] = &band;
    fill_uniform(x, ROWS * COLS, -4.0f, 4.0f);
    fill_uniform(bias, COLS, -1.0f, 1.0f);
    for (c = 0; c < 6; c++) {
        const DropmaxMask *mask = masks[c % 3];
        const float *b = c >= 3 ? bias : NULL;
        size_t i, j, bad = 0, masked_bad = 0, stats_bad = 0;
        int rc = dropmax_forward(SCALE, NULL, mask, NULL, b, b ? COLS : 0, 0, COLS, x, ROWS * COLS, y,
                                 ROWS * COLS, st, ROWS);
        CHECK(rc == DROPMAX_OK, "eval forward case %d: status %d", c, rc);
        for (i = 0; i < ROWS; i++) {
            double P[COLS], zd[COLS], sum;
            float m = ref_softmax(x + i * COLS, i, COLS, SCALE, b, mask, P, zd, &sum);
            for (j = 0; j < COLS; j++) {
                float v = y[i * COLS + j];
                if (!visible(mask, i, j)) masked_bad += v != 0.0f;
                else if (!within_bound(v, P[j], zd[j])) {
                    bad++;
                    fprintf(stderr, "  case %d (%lu,%lu): %.9g vs %.9g\n", c, (unsigned long)i,
                            (unsigned long)j, v, P[j]);
                }
            }
            stats_bad += st[i].max != m || fabs(st[i].sum - sum) > 1e-6 * sum;
        }
        CHECK(bad == 0, "eval forward case %d: %lu outputs outside the bound", c, (unsigned long)bad);
        CHECK(masked_bad == 0, "eval forward case %d: masked outputs not 0", c);
        CHECK(stats_bad == 0, "eval forward case %d: statistics differ", c);
    }
}

/* Training forward: each output is 0 exactly where the mask drops, else P_j / q; the mask
 * equals the exported bits, dropmax_keep and the definition computed here. */
static void test_forward_train(void) {
    float x[ROWS * COLS], y[ROWS * COLS], ye[ROWS * COLS];
    DropmaxDropout d;
    uint8_t bits[NBYTES];
    size_t i, j, bad = 0, pattern_bad = 0, bits_bad = 0, keep_bad = 0, kept = 0;
    uint64_t first_row = 11;
    int rc;
    d.p = 0.25, d.seed = 0x0123456789ABCDEFu, d.offset = 1000;
    fill_uniform(x, ROWS * COLS, -3.0f, 3.0f);
    rc = dropmax_forward(SCALE, &d, NULL, NULL, NULL, 0, first_row, COLS, x, ROWS * COLS, y,
                         ROWS * COLS, NULL, 0);
    CHECK(rc == DROPMAX_OK, "train forward: status %d", rc);
    rc = dropmax_forward(SCALE, NULL, NULL, NULL, NULL, 0, first_row, COLS, x, ROWS * COLS, ye,
                         ROWS * COLS, NULL, 0);
    CHECK(rc == DROPMAX_OK, "eval forward: status %d", rc);
    for (i = 0; i < ROWS; i++) {
        double P[COLS], zd[COLS], sum, q = keep_prob(d.p);
        ref_softmax(x + i * COLS, i, COLS, SCALE, NULL, NULL, P, zd, &sum);
        rc = dropmax_mask_bits(&d, first_row + i, bits, NBYTES);
        CHECK(rc == DROPMAX_OK, "mask_bits: status %d", rc);
        for (j = 0; j < NBYTES * 8; j++) {
            uint8_t k = 2;
            int want = keep_ref(&d, first_row + i, (uint32_t)j);
            bits_bad += bit(bits, j) != want;
            rc = dropmax_keep(&d, first_row + i, (uint32_t)j, &k);
            keep_bad += rc != DROPMAX_OK || k != want;
        }
        for (j = 0; j < COLS; j++) {
            float v = y[i * COLS + j];
            int k = bit(bits, j);
            kept += (size_t)k;
            pattern_bad += (v != 0.0f) != k;
            /* Kept: the eval output times 1/(1-p), within the bound of the exact value. */
            if (k && (!within_bound(v, P[j] / q, zd[j]) ||
                      fabs(v - ye[i * COLS + j] / q) > 2e-6 * ye[i * COLS + j] / q))
                bad++;
        }
    }
    CHECK(bits_bad == 0, "exported mask bits differ from the definition in %lu places",
          (unsigned long)bits_bad);
    CHECK(keep_bad == 0, "dropmax_keep differs from the definition in %lu places",
          (unsigned long)keep_bad);
    CHECK(pattern_bad == 0, "train forward: zero pattern differs from the mask in %lu places",
          (unsigned long)pattern_bad);
    CHECK(bad == 0, "train forward: %lu kept outputs are not P / q", (unsigned long)bad);
    CHECK(kept > 0 && kept < ROWS * COLS, "train forward: %lu of %d kept", (unsigned long)kept,
          ROWS * COLS);
}

/* A longer matrix: the mask (past the 256- and 4096-column blocks) against the definition, the
 * zero pattern against it, and the kept fraction against 1 - p. */
static void test_long_rows(void) {
    enum { R = 4, C = 5000, B = (C + 7) / 8 };
    float *x = xcalloc(R * C, sizeof *x), *y = xcalloc(R * C, sizeof *y);
    uint8_t *bits = xcalloc(B, 1);
    DropmaxDropout d;
    size_t i, j, kept = 0, bits_bad = 0, pattern_bad = 0;
    double frac, sigma;
    int rc;
    d.p = 0.3, d.seed = 42, d.offset = (uint64_t)1 << 40;
    fill_uniform(x, R * C, -2.0f, 2.0f);
    rc = dropmax_forward(1.0f, &d, NULL, NULL, NULL, 0, 0, C, x, R * C, y, R * C, NULL, 0);
    CHECK(rc == DROPMAX_OK, "long forward: status %d", rc);
    for (i = 0; i < R; i++) {
        rc = dropmax_mask_bits(&d, i, bits, B);
        CHECK(rc == DROPMAX_OK, "long mask_bits: status %d", rc);
        for (j = 0; j < C; j++) {
            int k = bit(bits, j);
            kept += (size_t)k;
            bits_bad += k != keep_ref(&d, i, (uint32_t)j);
            pattern_bad += (y[i * C + j] != 0.0f) != k;
        }
    }
    frac = (double)kept / (R * C);
    sigma = sqrt(d.p * (1 - d.p) / (R * C));
    CHECK(bits_bad == 0, "long rows: %lu mask bits differ from the definition",
          (unsigned long)bits_bad);
    CHECK(pattern_bad == 0, "long rows: %lu zeros differ from the mask", (unsigned long)pattern_bad);
    CHECK(fabs(frac - (1 - d.p)) < 5 * sigma, "long rows: kept fraction %.4f, want %.4f +- %.4f",
          frac, 1 - d.p, 5 * sigma);
    free(x), free(y), free(bits);
}

/* Backward (saved P and recomputed from logits + statistics), evaluation and training, against
 * dx in double from the same P with the mask from the exported bits. */
static void test_backward(void) {
    float x[ROWS * COLS], P[ROWS * COLS], dy[ROWS * COLS], dx[ROWS * COLS], dx2[ROWS * COLS];
    DropmaxRowStats st[ROWS];
    DropmaxDropout d;
    DropmaxMask causal = dropmax_mask_causal(1);
    int c;
    d.p = 0.2, d.seed = 7, d.offset = 3;
    fill_uniform(x, ROWS * COLS, -3.0f, 3.0f);
    fill_uniform(dy, ROWS * COLS, -1.0f, 1.0f);
    for (c = 0; c < 4; c++) {
        const DropmaxDropout *dd = c & 1 ? &d : NULL;
        const DropmaxMask *mask = c & 2 ? &causal : NULL;
        size_t i, j, bad = 0, bad2 = 0, masked_bad = 0;
        uint64_t first_row = 5;
        int rc = dropmax_forward(SCALE, NULL, mask, NULL, NULL, 0, first_row, COLS, x, ROWS * COLS, P,
                                 ROWS * COLS, st, ROWS);
        CHECK(rc == DROPMAX_OK, "backward case %d: forward status %d", c, rc);
        rc = dropmax_backward(SCALE, dd, mask, NULL, NULL, 0, first_row, COLS, P, ROWS * COLS, dy,
                              ROWS * COLS, dx, ROWS * COLS);
        CHECK(rc == DROPMAX_OK, "backward case %d: status %d", c, rc);
        rc = dropmax_backward_recompute(SCALE, dd, mask, NULL, NULL, 0, first_row, COLS, x, ROWS * COLS,
                                        st, ROWS, dy, ROWS * COLS, dx2, ROWS * COLS, NULL);
        CHECK(rc == DROPMAX_OK, "backward_recompute case %d: status %d", c, rc);
        for (i = 0; i < ROWS; i++) {
            double Pd[COLS], Pi[COLS], zd[COLS], sum, ref[COLS], tol[COLS], ref2[COLS], tol2[COLS];
            unsigned char keep[COLS];
            uint8_t bits[NBYTES];
            rc = dropmax_mask_bits(dd, first_row + i, bits, NBYTES);
            CHECK(rc == DROPMAX_OK, "backward mask_bits: status %d", rc);
            for (j = 0; j < COLS; j++) keep[j] = (unsigned char)bit(bits, j), Pd[j] = P[i * COLS + j];
            /* Saved P: the reference from the same P. Recomputed: from the softmax in double. */
            ref_backward(COLS, SCALE, Pd, dy + i * COLS, dd ? keep : NULL, keep_prob(d.p), ref, tol);
            ref_softmax(x + i * COLS, i, COLS, SCALE, NULL, mask, Pi, zd, &sum);
            ref_backward(COLS, SCALE, Pi, dy + i * COLS, dd ? keep : NULL, keep_prob(d.p), ref2, tol2);
            for (j = 0; j < COLS; j++) {
                if (!visible(mask, i, j)) {
                    masked_bad += dx[i * COLS + j] != 0.0f || dx2[i * COLS + j] != 0.0f;
                    continue;
                }
                bad += fabs(dx[i * COLS + j] - ref[j]) > tol[j];
                bad2 += fabs(dx2[i * COLS + j] - ref2[j]) > tol2[j];
            }
        }
        CHECK(bad == 0, "backward case %d: %lu values off", c, (unsigned long)bad);
        CHECK(bad2 == 0, "backward_recompute case %d: %lu values off", c, (unsigned long)bad2);
        CHECK(masked_bad == 0, "backward case %d: masked gradients not 0", c);
    }
}

/* More than one internal chunk of 64 rows, with statistics: one call equals row-by-row calls
 * (row ids first_row + i, query positions query_pos + i) bit for bit, forward and backward. */
static void test_row_splits(void) {
    enum { R = 150, C = 161 };
    float *x = xcalloc(R * C, sizeof *x), *y = xcalloc(R * C, sizeof *y);
    float *y1 = xcalloc(R * C, sizeof *y1), *dy = xcalloc(R * C, sizeof *dy);
    float *dx = xcalloc(R * C, sizeof *dx), *dx1 = xcalloc(R * C, sizeof *dx1);
    float *xy = xcalloc(R * C, sizeof *xy), bias[C];
    DropmaxRowStats st[R], st1[R], st2[R];
    DropmaxDropout d;
    DropmaxMask mask = dropmax_mask_window(3, 20);
    size_t i;
    int rc, rc1 = DROPMAX_OK, rc2 = DROPMAX_OK;
    d.p = 0.1, d.seed = 99, d.offset = 0;
    fill_uniform(x, R * C, -5.0f, 5.0f);
    fill_uniform(dy, R * C, -1.0f, 1.0f);
    fill_uniform(bias, C, -0.5f, 0.5f);
    rc = dropmax_forward(0.7f, &d, &mask, NULL, bias, C, 8, C, x, R * C, y, R * C, st, R);
    CHECK(rc == DROPMAX_OK, "split forward: status %d", rc);
    for (i = 0; i < R && rc1 == DROPMAX_OK; i++) {
        DropmaxMask mi = mask;
        mi.query_pos += i;
        rc1 = dropmax_forward(0.7f, &d, &mi, NULL, bias, C, 8 + i, C, x + i * C, C, y1 + i * C, C,
                              st1 + i, 1);
    }
    CHECK(rc1 == DROPMAX_OK, "row-by-row forward: status %d", rc1);
    CHECK(memcmp(y, y1, R * C * sizeof *y) == 0, "one call != row-by-row (outputs)");
    CHECK(memcmp(st, st1, sizeof st) == 0, "one call != row-by-row (statistics)");
    memcpy(xy, x, R * C * sizeof *x);
    rc = dropmax_forward_in_place(0.7f, &d, &mask, NULL, bias, C, 8, C, xy, R * C, st2, R);
    CHECK(rc == DROPMAX_OK, "in-place forward: status %d", rc);
    CHECK(memcmp(xy, y, R * C * sizeof *y) == 0 && memcmp(st2, st, sizeof st) == 0,
          "in place != out of place");
    memcpy(xy, x, R * C * sizeof *x);
    rc = dropmax_forward(0.7f, &d, &mask, NULL, bias, C, 8, C, xy, R * C, xy, R * C, NULL, 0);
    CHECK(rc == DROPMAX_OK && memcmp(xy, y, R * C * sizeof *y) == 0, "forward with x == y: %d", rc);

    rc = dropmax_backward_recompute(0.7f, &d, &mask, NULL, bias, C, 8, C, x, R * C, st, R, dy, R * C, dx,
                                    R * C, NULL);
    CHECK(rc == DROPMAX_OK, "split backward_recompute: status %d", rc);
    for (i = 0; i < R && rc2 == DROPMAX_OK; i++) {
        DropmaxMask mi = mask;
        mi.query_pos += i;
        rc2 = dropmax_backward_recompute(0.7f, &d, &mi, NULL, bias, C, 8 + i, C, x + i * C, C, st + i, 1,
                                         dy + i * C, C, dx1 + i * C, C, NULL);
    }
    CHECK(rc2 == DROPMAX_OK, "row-by-row backward_recompute: status %d", rc2);
    CHECK(memcmp(dx, dx1, R * C * sizeof *dx) == 0, "backward: one call != row-by-row");
    free(x), free(y), free(y1), free(dy), free(dx), free(dx1), free(xy);
}

/* Dropout alone: kept values are multiplied by the float rescale, once; dropped are 0. */
static void test_dropout_apply(void) {
    enum { N = 300 };
    float v[N], w[N];
    DropmaxDropout d;
    float rescale;
    size_t j, bad = 0;
    int rc;
    d.p = 0.5, d.seed = 5, d.offset = 9;
    rescale = (float)(1.0 / keep_prob(d.p));
    fill_uniform(v, N, -1.0f, 1.0f);
    memcpy(w, v, sizeof v);
    rc = dropmax_dropout_apply(&d, 2, w, N);
    CHECK(rc == DROPMAX_OK, "dropout_apply: status %d", rc);
    for (j = 0; j < N; j++) {
        float want = keep_ref(&d, 2, (uint32_t)j) ? v[j] * rescale : 0.0f;
        bad += memcmp(&w[j], &want, sizeof want) != 0;
    }
    CHECK(bad == 0, "dropout_apply: %lu values differ", (unsigned long)bad);
    memcpy(w, v, sizeof v);
    rc = dropmax_dropout_apply(NULL, 2, w, N);
    CHECK(rc == DROPMAX_OK && memcmp(w, v, sizeof v) == 0, "dropout_apply(NULL) changed values");
}

/* Bad arguments: the right status, and outputs untouched. */
static void test_errors(void) {
    enum { N = ROWS * COLS };
    const float S = 12345.0f; /* sentinel */
    float x[N + 1], y[N + 1], P[N], dy[N], bias[COLS];
    uint8_t bits[4] = {0xAA, 0xAA, 0xAA, 0xAA}, k = 7;
    DropmaxRowStats st[ROWS + 1];
    DropmaxDropout d, bad_p;
    DropmaxMask bad_kind = dropmax_mask_none();
    float *misaligned = (float *)(uintptr_t)((uintptr_t)y + 1);
    int rc, s;
    d.p = 0.5, d.seed = 1, d.offset = 0;
    bad_p = d, bad_p.p = 1.5;
    bad_kind.kind = 42;
    fill_uniform(x, N + 1, -1.0f, 1.0f);
    fill_uniform(P, N, 0.0f, 0.3f);
    fill_uniform(dy, N, -1.0f, 1.0f);
    fill_uniform(bias, COLS, -1.0f, 1.0f);

#define FORWARD_FAILS(want, what, ...)                                          \
    do {                                                                        \
        fill(y, N + 1, S);                                                      \
        memset(st, 0x5A, sizeof st);                                            \
        rc = dropmax_forward(__VA_ARGS__);                                      \
        CHECK(rc == (want), "forward %s: status %d, want %d", what, rc, want); \
        CHECK(all_equal(y, N + 1, S), "forward %s: output written", what);     \
        for (s = 0; s < (int)sizeof st; s++)                                    \
            if (((unsigned char *)st)[s] != 0x5A) break;                        \
        CHECK(s == (int)sizeof st, "forward %s: statistics written", what);     \
    } while (0)

    FORWARD_FAILS(DROPMAX_ERR_NULL, "x NULL", SCALE, NULL, NULL, NULL, NULL, 0, 0, COLS, NULL, N, y, N,
                  st, ROWS);
    FORWARD_FAILS(DROPMAX_ERR_NULL, "stats NULL", SCALE, NULL, NULL, NULL, NULL, 0, 0, COLS, x, N, y, N,
                  NULL, ROWS);
    FORWARD_FAILS(DROPMAX_ERR_NULL, "bias NULL", SCALE, NULL, NULL, NULL, NULL, COLS, 0, COLS, x, N, y,
                  N, st, ROWS);
    FORWARD_FAILS(DROPMAX_ERR_LENGTH, "x_len != y_len", SCALE, NULL, NULL, NULL, NULL, 0, 0, COLS, x, N,
                  y, N + 1, st, ROWS);
    FORWARD_FAILS(DROPMAX_ERR_LENGTH, "len % cols != 0", SCALE, NULL, NULL, NULL, NULL, 0, 0, COLS, x,
                  N + 1, y, N + 1, st, ROWS);
    FORWARD_FAILS(DROPMAX_ERR_LENGTH, "cols == 0", SCALE, NULL, NULL, NULL, NULL, 0, 0, 0, x, N, y, N,
                  st, 0);
    FORWARD_FAILS(DROPMAX_ERR_LENGTH, "stats_len", SCALE, NULL, NULL, NULL, NULL, 0, 0, COLS, x, N, y, N,
                  st, ROWS + 1);
    FORWARD_FAILS(DROPMAX_ERR_LENGTH, "bias_len", SCALE, NULL, NULL, NULL, bias, COLS - 1, 0, COLS, x, N,
                  y, N, st, ROWS);
    FORWARD_FAILS(DROPMAX_ERR_LENGTH, "size overflow", SCALE, NULL, NULL, NULL, NULL, 0, 0, COLS, x,
                  SIZE_MAX / 2, y, SIZE_MAX / 2, st, ROWS);
    FORWARD_FAILS(DROPMAX_ERR_SCALE, "scale NaN", (float)NAN, NULL, NULL, NULL, NULL, 0, 0, COLS, x, N,
                  y, N, st, ROWS);
    FORWARD_FAILS(DROPMAX_ERR_SCALE, "scale inf", (float)INFINITY, NULL, NULL, NULL, NULL, 0, 0, COLS, x,
                  N, y, N, st, ROWS);
    FORWARD_FAILS(DROPMAX_ERR_PROBABILITY, "p = 1.5", SCALE, &bad_p, NULL, NULL, NULL, 0, 0, COLS, x, N,
                  y, N, st, ROWS);
    bad_p.p = NAN;
    FORWARD_FAILS(DROPMAX_ERR_PROBABILITY, "p = NaN", SCALE, &bad_p, NULL, NULL, NULL, 0, 0, COLS, x, N,
                  y, N, st, ROWS);
    FORWARD_FAILS(DROPMAX_ERR_MASK_KIND, "mask kind", SCALE, &d, &bad_kind, NULL, NULL, 0, 0, COLS, x, N,
                  y, N, st, ROWS);
    FORWARD_FAILS(DROPMAX_ERR_OVERLAP, "y overlaps x", SCALE, NULL, NULL, NULL, NULL, 0, 0, COLS, y + 1,
                  N, y, N, st, ROWS);
    FORWARD_FAILS(DROPMAX_ERR_OVERLAP, "stats overlap y", SCALE, NULL, NULL, NULL, NULL, 0, 0, COLS, x, N,
                  y, N, (DropmaxRowStats *)(void *)y, ROWS);
    FORWARD_FAILS(DROPMAX_ERR_OVERLAP, "y overlaps bias", SCALE, NULL, NULL, NULL, y + 2, COLS, 0, COLS,
                  x, N, y, N, st, ROWS);
    /* An integer-to-pointer conversion: implementation-defined in C, not undefined. */
    fill(y, N + 1, S);
    rc = dropmax_forward(SCALE, NULL, NULL, NULL, NULL, 0, 0, COLS, x, N, misaligned, N, NULL, 0);
    CHECK(rc == DROPMAX_ERR_ALIGNMENT, "forward misaligned y: status %d", rc);
    CHECK(all_equal(y, N + 1, S), "forward misaligned y: output written");

    /* Empty buffers: NULL with count 0 is an empty slice. */
    rc = dropmax_forward(SCALE, &d, NULL, NULL, NULL, 0, 0, 0, NULL, 0, NULL, 0, NULL, 0);
    CHECK(rc == DROPMAX_OK, "empty forward (cols 0): status %d", rc);
    rc = dropmax_forward(SCALE, &d, NULL, NULL, NULL, 0, 0, COLS, NULL, 0, NULL, 0, NULL, 0);
    CHECK(rc == DROPMAX_OK, "empty forward (0 rows): status %d", rc);
    rc = dropmax_forward(SCALE, &d, NULL, NULL, NULL, 0, 0, 0, NULL, 0, NULL, 0, st, 0);
    CHECK(rc == DROPMAX_OK, "empty forward (cols 0, statistics): status %d", rc);
    rc = dropmax_backward(SCALE, &d, NULL, NULL, NULL, 0, 0, COLS, NULL, 0, NULL, 0, NULL, 0);
    CHECK(rc == DROPMAX_OK, "empty backward: status %d", rc);
    rc = dropmax_backward_recompute(SCALE, &d, NULL, NULL, NULL, 0, 0, 0, NULL, 0, st, 0, NULL, 0, NULL,
                                    0, NULL);
    CHECK(rc == DROPMAX_OK, "empty backward_recompute (cols 0): status %d", rc);
    rc = dropmax_mask_bits(&d, 0, NULL, 0);
    CHECK(rc == DROPMAX_OK, "empty mask_bits: status %d", rc);

#define BACKWARD_FAILS(want, what, fn, ...)                                      \
    do {                                                                         \
        fill(y, N + 1, S);                                                       \
        rc = fn(__VA_ARGS__);                                                    \
        CHECK(rc == (want), "backward %s: status %d, want %d", what, rc, want); \
        CHECK(all_equal(y, N + 1, S), "backward %s: output written", what);     \
    } while (0)

    st[0].max = 1.0f, st[0].sum = 2.0f, st[1] = st[0], st[2] = st[0];
    BACKWARD_FAILS(DROPMAX_ERR_NULL, "P NULL", dropmax_backward, SCALE, &d, NULL, NULL, NULL, 0, 0, COLS,
                   NULL, N, dy, N, y, N);
    BACKWARD_FAILS(DROPMAX_ERR_NULL, "dy NULL", dropmax_backward, SCALE, &d, NULL, NULL, NULL, 0, 0,
                   COLS, P, N, NULL, N, y, N);
    BACKWARD_FAILS(DROPMAX_ERR_LENGTH, "dy_len", dropmax_backward, SCALE, &d, NULL, NULL, NULL, 0, 0,
                   COLS, P, N, dy, N - 1, y, N);
    BACKWARD_FAILS(DROPMAX_ERR_LENGTH, "P_len", dropmax_backward, SCALE, &d, NULL, NULL, NULL, 0, 0, COLS,
                   P, N - COLS, dy, N, y, N);
    BACKWARD_FAILS(DROPMAX_ERR_OVERLAP, "dx == dy", dropmax_backward, SCALE, &d, NULL, NULL, NULL, 0, 0,
                   COLS, P, N, y, N, y, N);
    BACKWARD_FAILS(DROPMAX_ERR_PROBABILITY, "p", dropmax_backward, SCALE, &bad_p, NULL, NULL, NULL, 0, 0,
                   COLS, P, N, dy, N, y, N);
    BACKWARD_FAILS(DROPMAX_ERR_NULL, "stats NULL", dropmax_backward_recompute, SCALE, &d, NULL, NULL,
                   NULL, 0, 0, COLS, x, N, NULL, ROWS, dy, N, y, N, NULL);
    BACKWARD_FAILS(DROPMAX_ERR_LENGTH, "stats_len", dropmax_backward_recompute, SCALE, &d, NULL, NULL,
                   NULL, 0, 0, COLS, x, N, st, ROWS - 1, dy, N, y, N, NULL);
    BACKWARD_FAILS(DROPMAX_ERR_SCALE, "scale", dropmax_backward_recompute, (float)INFINITY, &d,
                   NULL, NULL, NULL, 0, 0, COLS, x, N, st, ROWS, dy, N, y, N, NULL);

    rc = dropmax_mask_bits(&d, 0, NULL, 4);
    CHECK(rc == DROPMAX_ERR_NULL, "mask_bits NULL: status %d", rc);
    rc = dropmax_mask_bits(&bad_p, 0, bits, 4);
    CHECK(rc == DROPMAX_ERR_PROBABILITY && bits[0] == 0xAA && bits[3] == 0xAA,
          "mask_bits bad p: status %d", rc);
    rc = dropmax_mask_bits(NULL, 0, bits, 4);
    CHECK(rc == DROPMAX_OK && bits[0] == 0xFF && bits[3] == 0xFF, "mask_bits(NULL): all kept");
    rc = dropmax_keep(&d, 0, 0, NULL);
    CHECK(rc == DROPMAX_ERR_NULL, "keep NULL: status %d", rc);
    rc = dropmax_keep(&bad_p, 0, 0, &k);
    CHECK(rc == DROPMAX_ERR_PROBABILITY && k == 7, "keep bad p: status %d", rc);
    rc = dropmax_dropout_apply(&d, 0, NULL, 3);
    CHECK(rc == DROPMAX_ERR_NULL, "dropout_apply NULL: status %d", rc);
    {
        /* More than 2^32 mask columns: refused before anything is written. calloc of 512 MiB
         * only reserves address space; skipped where even that is refused. */
        size_t n = ((size_t)1 << 29) + 1;
        uint8_t *big = sizeof(size_t) > 4 ? calloc(n, 1) : NULL;
        if (big != NULL) {
            rc = dropmax_mask_bits(&d, 0, big, n);
            CHECK(rc == DROPMAX_ERR_ROW_TOO_LONG && big[0] == 0 && big[n - 1] == 0,
                  "mask_bits of 2^32 + 8 columns: status %d", rc);
            free(big);
        } else {
            printf("skipped: mask_bits of 2^32 + 8 columns (no 512 MiB of address space)\n");
        }
    }

    for (s = DROPMAX_OK; s <= DROPMAX_ERR_LOGITS_REQUIRED + 1; s++) {
        const char *m = dropmax_status_message(s);
        CHECK(m != NULL && m[0] != '\0', "status message %d", s);
    }
    CHECK(DROPMAX_UNBOUNDED == SIZE_MAX, "DROPMAX_UNBOUNDED is SIZE_MAX");
#undef FORWARD_FAILS
#undef BACKWARD_FAILS
}

/* An attention sink (DropmaxOptions.sink): every row is the softmax of its scores with the sink
 * appended, computed here in double, and the sink's column is not written; the statistics include
 * it. The sink's gradient from dropmax_backward_recompute against
 * dL/dsink = -sum_i P_sink,i sum_j P_ij dy_ij (evaluation), in double. dropmax_options_none()
 * (sink -INFINITY) is the same as NULL, bit for bit. */
static void test_sink(void) {
    enum { R = 70, C = 37 }; /* more than 64 rows: the recomputing backward goes in two groups */
    static float x[R * C], y[R * C], y0[R * C], dy[R * C], dx[R * C];
    DropmaxRowStats st[R];
    DropmaxOptions opt = dropmax_options_none(), none = dropmax_options_none();
    double want = 0.0, scale_sum = 0.0;
    float dsink = NAN;
    size_t i, j, bad = 0;
    int rc;
    fill_uniform(x, R * C, -6.0f, 6.0f);
    fill_uniform(dy, R * C, -1.0f, 1.0f);
    rc = dropmax_forward(SCALE, NULL, NULL, &none, NULL, 0, 3, C, x, R * C, y0, R * C, NULL, 0);
    rc |= dropmax_forward(SCALE, NULL, NULL, NULL, NULL, 0, 3, C, x, R * C, y, R * C, NULL, 0);
    CHECK(rc == DROPMAX_OK && memcmp(y, y0, sizeof y) == 0, "sink -inf != no options: %d", rc);
    opt.sink = 1.25f;
    rc = dropmax_forward(SCALE, NULL, NULL, &opt, NULL, 0, 3, C, x, R * C, y, R * C, st, R);
    CHECK(rc == DROPMAX_OK, "sink forward: status %d", rc);
    for (i = 0; i < R; i++) {
        double z[C], m = opt.sink, s, dot = 0.0, mag = 0.0, p_sink;
        for (j = 0; j < C; j++) {
            z[j] = (double)(SCALE * x[i * C + j]);
            m = z[j] > m ? z[j] : m;
        }
        s = exp((double)opt.sink - m);
        for (j = 0; j < C; j++) s += exp(z[j] - m);
        p_sink = exp((double)opt.sink - m) / s;
        if (st[i].max != (float)m || fabs(st[i].sum - s) > 1e-5 * s) bad++;
        for (j = 0; j < C; j++) {
            double p = exp(z[j] - m) / s;
            if (!within_bound(y[i * C + j], p, m - z[j])) bad++;
            dot += p * dy[i * C + j];
            mag += p * fabs(dy[i * C + j]);
        }
        want -= p_sink * dot;
        scale_sum += p_sink * mag;
    }
    CHECK(bad == 0, "sink forward: %zu values or statistics off", bad);
    rc = dropmax_backward_recompute(SCALE, NULL, NULL, &opt, NULL, 0, 3, C, x, R * C, st, R, dy,
                                    R * C, dx, R * C, &dsink);
    CHECK(rc == DROPMAX_OK, "sink backward: status %d", rc);
    CHECK(fabs(dsink - want) <= 1e-5 * scale_sum, "dsink %g, want %g", dsink, want);
    rc = dropmax_backward_recompute(SCALE, NULL, NULL, &opt, NULL, 0, 3, C, x, R * C, st, R, dy,
                                    R * C, dx, R * C, (float *)dx);
    CHECK(rc == DROPMAX_ERR_OVERLAP, "dsink inside dx: status %d", rc);
}

/* Logit soft-capping (DropmaxOptions.softcap): every row against the softmax of
 * c tanh(scale x / c) computed here in double, within the documented bound widened by the cap's
 * 2 (u_T + 3u) c; the recomputing backward against s (1 - t^2) P (dy - sum P dy); the saved-P
 * backward and invalid caps refused without writing. */
static void test_softcap(void) {
    enum { R = 3, C = 50 };
    static float x[R * C], y[R * C], dy[R * C], dx[R * C];
    DropmaxRowStats st[R];
    DropmaxOptions opt = dropmax_options_none();
    const double c = 6.0, u = ldexp(1.0, -24), cap_rel = 2.0 * (1e-7 + 3.0 * u) * c;
    size_t i, j, bad = 0, bad_dx = 0;
    int rc;
    fill_uniform(x, R * C, -30.0f, 30.0f);
    fill_uniform(dy, R * C, -1.0f, 1.0f);
    x[5] = (float)INFINITY;
    opt.softcap = (float)c;
    rc = dropmax_forward(SCALE, NULL, NULL, &opt, NULL, 0, 0, C, x, R * C, y, R * C, st, R);
    CHECK(rc == DROPMAX_OK, "softcap forward: status %d", rc);
    rc = dropmax_backward_recompute(SCALE, NULL, NULL, &opt, NULL, 0, 0, C, x, R * C, st, R, dy,
                                    R * C, dx, R * C, NULL);
    CHECK(rc == DROPMAX_OK, "softcap backward: status %d", rc);
    for (i = 0; i < R; i++) {
        double z[C], p[C], m = -INFINITY, s = 0.0, dot = 0.0, gmax = 0.0;
        for (j = 0; j < C; j++) {
            z[j] = c * tanh((double)SCALE * x[i * C + j] / c);
            m = z[j] > m ? z[j] : m;
        }
        for (j = 0; j < C; j++) s += exp(z[j] - m);
        for (j = 0; j < C; j++) {
            p[j] = exp(z[j] - m) / s;
            dot += p[j] * dy[i * C + j];
            gmax = fabs(dy[i * C + j]) > gmax ? fabs(dy[i * C + j]) : gmax;
        }
        for (j = 0; j < C; j++) {
            double tol = (1e-6 + ldexp(m - z[j], -24) + cap_rel) * p[j] + 1e-30;
            double t = z[j] / c, want = SCALE * (1.0 - t * t) * p[j] * (dy[i * C + j] - dot);
            double tol_dx = (1e-5 + 2.0 * cap_rel) * SCALE * p[j] * 2.0 * gmax + 1e-30;
            if (fabs(y[i * C + j] - p[j]) > tol) bad++;
            if (fabs(dx[i * C + j] - want) > tol_dx) bad_dx++;
        }
    }
    CHECK(bad == 0, "softcap forward: %zu values off", bad);
    CHECK(bad_dx == 0, "softcap backward: %zu gradients off", bad_dx);
    fill(dx, R * C, 7.0f);
    rc = dropmax_backward(SCALE, NULL, NULL, &opt, NULL, 0, 0, C, y, R * C, dy, R * C, dx, R * C);
    CHECK(rc == DROPMAX_ERR_LOGITS_REQUIRED && all_equal(dx, R * C, 7.0f),
          "softcap saved backward: status %d", rc);
    opt.softcap = -1.0f;
    fill(y, R * C, 7.0f);
    rc = dropmax_forward(SCALE, NULL, NULL, &opt, NULL, 0, 0, C, x, R * C, y, R * C, NULL, 0);
    CHECK(rc == DROPMAX_ERR_SOFTCAP && all_equal(y, R * C, 7.0f), "softcap -1: status %d", rc);
}

int main(void) {
    test_philox_kat();
    test_forward_eval();
    test_forward_train();
    test_long_rows();
    test_backward();
    test_row_splits();
    test_dropout_apply();
    test_errors();
    test_sink();
    test_softcap();
    printf("C test: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
