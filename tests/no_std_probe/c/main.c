/* Links the dropmax no_std probe (a staticlib) into a program and runs every entry point once
 * per configuration. The link itself is the no-panic check: the probe's panic handler calls
 * dropmax_probe_panic_reached, defined nowhere, so any surviving panic path is an undefined
 * reference here. Running it is a smoke test (exit 0, and a softmax row that sums to 1). */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

uint64_t dropmax_probe_softmax(uint32_t kernel, uint32_t mode, float scale, double p, uint64_t seed,
                               uint64_t offset, uint64_t row, uint32_t mask_kind, size_t query_pos,
                               size_t mask_a, size_t mask_b, const bool *bools, size_t bools_len,
                               const uint8_t *bits, size_t bits_len, const float *bias, size_t bias_len, size_t cols,
                               const float *x, float *y, size_t len, float *stats, size_t stats_len);
uint64_t dropmax_probe_dropout(uint32_t kernel, double p, uint64_t seed, uint64_t offset,
                               uint64_t row, uint32_t col, float *values, size_t len);
float dropmax_probe_lse(float max, float sum, bool empty);
void dropmax_probe_philox(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]);
void dropmax_probe_philox_x4(const uint32_t counter[16], const uint32_t key[2], uint32_t out[16]);
void dropmax_probe_philox_x8(const uint32_t counter[32], const uint32_t key[2], uint32_t out[32]);
void dropmax_probe_philox_x16(const uint32_t counter[64], const uint32_t key[2], uint32_t out[64]);
size_t dropmax_probe_error_display(uint32_t which, double p, float scale, size_t expected,
                                   uint8_t *dst, size_t len);
uint64_t dropmax_probe_rng(uint32_t how, const uint32_t key[2], const uint32_t counter[4],
                           const uint8_t seed_bytes[24], uint64_t seed, uint8_t *dst, size_t len);

uint64_t dropmax_probe_batch(uint32_t kernel, uint32_t mode, const size_t dims[5], uint32_t band,
                             size_t past_len, size_t window, const size_t *key_lengths,
                             size_t key_lengths_len, const float *bias, size_t bias_len,
                             const float *x, float *y, size_t len, float *stats, size_t stats_len);

/* Order-sensitive, so that equal results of different calls do not cancel out. */
#define MIX(v) (digest = (digest ^ (uint64_t)(v)) * 0x100000001b3ull)

#define COLS 37
#define ROWS 3
#define LEN (COLS * ROWS)

int main(void) {
    float x[LEN], y[LEN], bias[COLS], stats[2 * ROWS], vals[LEN];
    bool bools[COLS];
    uint8_t bits[(COLS + 7) / 8] = {0}, bytes[29], seed_bytes[24];
    uint32_t key[2] = {0x01234567u, 0x89abcdefu}, ctr[64], out[64], ctr4[4] = {1, 2, 3, 4};
    uint64_t digest = 0;
    for (int i = 0; i < LEN; i++) x[i] = (float)((i * 7919) % 101) / 17.0f - 3.0f;
    for (int j = 0; j < COLS; j++) {
        bias[j] = (float)(j % 5) * 0.25f;
        bools[j] = j % 3 != 0;
        if (j % 4 != 1) bits[j / 8] |= (uint8_t)(1u << (j % 8));
    }
    for (int i = 0; i < 64; i++) ctr[i] = (uint32_t)i * 0x9e3779b9u;
    for (int i = 0; i < 24; i++) seed_bytes[i] = (uint8_t)(i * 37);

    /* Every kernel, mode and mask kind, with and without bias and stats, on one row (where
     * forward succeeds) and on a matrix of ROWS rows (where forward_rows succeeds). */
    for (uint32_t kernel = 0; kernel <= 5; kernel++)
        for (uint32_t mode = 0; mode <= 3; mode++)
            for (uint32_t mask = 0; mask <= 9; mask++)
                for (int with_bias = 0; with_bias <= 1; with_bias++)
                    for (size_t rows = 1; rows <= ROWS; rows += ROWS - 1)
                        MIX(dropmax_probe_softmax(
                            kernel, mode, 0.5f, 0.1, 42, 7, 1000, mask, 5, 9, 3, bools, COLS,
                            bits, sizeof bits, with_bias ? bias : NULL, COLS, COLS, x, y,
                            rows * COLS, with_bias ? stats : NULL, rows));

    /* An eval row, no mask, no bias, Scalar: must sum to 1. */
    dropmax_probe_softmax(1, 0, 1.0f, 0.0, 0, 0, 0, 0, 0, 0, 0, NULL, 0, NULL, 0, NULL, 0, COLS, x,
                          y, COLS, NULL, 0);
    double sum = 0;
    for (int j = 0; j < COLS; j++) sum += y[j];
    if (fabs(sum - 1.0) > 1e-5) {
        fprintf(stderr, "probe: eval row sums to %.9g, not 1\n", sum);
        return 1;
    }

    for (uint32_t kernel = 0; kernel <= 5; kernel++) {
        for (int i = 0; i < LEN; i++) vals[i] = 1.0f;
        MIX(dropmax_probe_dropout(kernel, 0.3, 1, 2, 3, 4, vals, LEN));
    }
    MIX(dropmax_probe_dropout(0, 2.0, 1, 2, 3, 4, vals, LEN)); /* error path */
    {
        size_t dims[5] = {1, 1, ROWS, 30, COLS}, kl[1] = {20};
        for (uint32_t k = 0; k <= 1; k++)
            for (uint32_t m = 0; m <= 1; m++)
                for (uint32_t band = 0; band <= 2; band++)
                    MIX(dropmax_probe_batch(k, m, dims, band, 27, 5, kl, 1, band ? bias : NULL, 30,
                                            x, y, LEN, stats, ROWS));
    }
    MIX(dropmax_probe_lse(1.0f, 2.0f, false) * 1000.0f);
    MIX(isinf(dropmax_probe_lse(0.0f, 0.0f, true)) ? 1 : 0);
    dropmax_probe_philox(ctr4, key, out);
    MIX(out[0]);
    dropmax_probe_philox_x4(ctr, key, out);
    MIX(out[15]);
    dropmax_probe_philox_x8(ctr, key, out);
    MIX(out[31]);
    dropmax_probe_philox_x16(ctr, key, out);
    MIX(out[63]);
    for (uint32_t how = 0; how <= 3; how++)
        MIX(dropmax_probe_rng(how, key, ctr4, seed_bytes, 42, bytes, sizeof bytes));

    char msg[80];
    for (uint32_t which = 0; which <= 3; which++)
        MIX(dropmax_probe_error_display(which, 2.0, INFINITY, 5, (uint8_t *)msg, sizeof msg));
    size_t n = dropmax_probe_error_display(2, 0.5, 1.0f, 5, (uint8_t *)msg, sizeof msg - 1);
    msg[n] = 0;
    if (strcmp(msg, "slice length mismatch: expected 5, found 79") != 0) {
        fprintf(stderr, "probe: unexpected error message \"%s\"\n", msg);
        return 1;
    }

    printf("probe ran every entry point (checksum %016llx; build-dependent)\n",
           (unsigned long long)digest);
    return 0;
}
