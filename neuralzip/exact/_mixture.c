/*
 * Accelerator for the exact discretized-logistic-mixture symbol coding of the local codec.
 *
 * The definition is the numpy code of neuralzip/exact/mixture.py (ExactMixture.
 * channel_parameters, ChannelParameters.coupled_means / bin_probabilities, SymbolTable,
 * posterior_weights) and coding.py (BatchAnsDecoder.advance_streams, BatchAnsEncoder.
 * push_sequences). This file runs the
 * same integer arithmetic per row instead of per numpy pass, which removes the per-call
 * overhead that dominates decoding. tests/test_kernels.py checks that both give identical
 * integers on random and extreme inputs; without a C compiler the numpy code runs instead.
 *
 * Arithmetic notes (why results equal numpy's on every machine):
 *  - int64 products and sums stay within range (the bounds of mixture.py); built with
 *    -fwrapv so signed arithmetic is defined exactly as numpy's wrapping int64 anyway;
 *  - right shifts of negative int64 are arithmetic (floor), as numpy's >> (gcc, clang, MSVC);
 *  - the one float step, floor(g / total * (2**24 - L)), is two IEEE-754 double operations
 *    on exactly representable integers, compiled without FMA contraction (-ffp-contract=off);
 *  - uint64 ANS state arithmetic wraps identically.
 *
 * Not a Python extension module in the usual sense: the functions are called through
 * ctypes (which releases the GIL, so threads decode in parallel); PyInit__mixture only lets
 * setuptools build and install the shared library like any extension.
 */
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define MAX_K 64
#define MAX_C 4

/* Constants, passed from Python in this order (one source of truth: mixture.py). */
typedef struct {
    int64_t k, c, levels, total;            /* mixtures, channels, levels (256), 2**24 */
    int64_t z_span, guard, cdf_frac, floor_; /* sigmoid table half-width, inverse-scale guard bits, ... */
    int64_t mean_one, act_one, weight_span, weight_frac, tanh_span;
    int64_t log_scale_low, log_scale_high, mean_low, mean_high;
} Constants;

typedef struct {
    /* the logistic CDF table of mixture.py is symmetric, sigmoid[z_span - d] = 2**cdf_frac -
     * sigmoid[z_span + d] (kernels.py checks it): only its upper half, as int32 (values up to
     * 2**30), is kept, 384 KB instead of 1.5 MB: the tables' random lookups are what this
     * code waits for, and the smaller they are the more of them a core's L2 cache holds */
    const int32_t *sigmoid_half;
    const int32_t *weight, *tanh_;      /* 0..2**16 and +-2**12: int32, half the cache footprint */
    /* the inverse scales (decreasing, below 2**33) as uint32: entry i is inverse_low[i],
     * plus 2**32 for the first inverse_wide entries */
    const uint32_t *inverse_low;
    int64_t inverse_wide;
} Tables;

static inline int64_t clip64(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : (v > hi ? hi : v); }

/* mixture.py's sigmoid[index] for 0 <= index <= 2 * z_span, from the upper half. */
static inline int64_t sigmoid_at(const Constants *q, const Tables *t, int64_t index) {
    int64_t d = index - q->z_span;
    int64_t v = t->sigmoid_half[d < 0 ? -d : d];
    return d < 0 ? ((int64_t)1 << q->cdf_frac) - v : v;
}

typedef struct {
    int64_t w[MAX_K];                 /* component weights */
    int64_t mean[MAX_C][MAX_K];       /* means before coupling */
    int64_t inv[MAX_C][MAX_K];        /* inverse scales */
    int64_t coupling[MAX_C][MAX_C][MAX_K];
} Row;

/* ExactMixture.channel_parameters for one head row. */
static void row_parameters(const Constants *q, const Tables *t, const int64_t *head, Row *r) {
    int64_t k = q->k, c = q->c, best = head[0];
    for (int64_t i = 1; i < k; i++) if (head[i] > best) best = head[i];
    for (int64_t i = 0; i < k; i++) {
        int64_t d = best - head[i];
        r->w[i] = t->weight[d < q->weight_span ? d : q->weight_span];
    }
    int64_t couplings_at = k + 2 * c * k;
    for (int64_t ch = 0; ch < c; ch++) {
        for (int64_t i = 0; i < k; i++) {
            r->mean[ch][i] = (head[k + ch * k + i] + q->act_one) * 255;
            int64_t ls = clip64(head[k + c * k + ch * k + i], q->log_scale_low, q->log_scale_high);
            int64_t at = ls - q->log_scale_low;
            r->inv[ch][i] = (int64_t)t->inverse_low[at] + ((int64_t)(at < t->inverse_wide) << 32);
            for (int64_t j = 0; j < ch; j++) {
                int64_t p = couplings_at + (ch * (ch - 1) / 2 + j) * k;
                r->coupling[ch][j][i] = t->tanh_[clip64(head[p + i], -q->tanh_span, q->tanh_span) + q->tanh_span];
            }
        }
    }
}

/* ChannelParameters.coupled_means. */
static void coupled_means(const Constants *q, const Row *r, int64_t ch, const int64_t *known, int64_t *means) {
    for (int64_t i = 0; i < q->k; i++) {
        int64_t m = r->mean[ch][i];
        for (int64_t j = 0; j < ch; j++) m += r->coupling[ch][j][i] * (2 * known[j] - 255);
        means[i] = clip64(m, q->mean_low, q->mean_high);
    }
}

typedef struct {
    int64_t slope[MAX_K], intercept[MAX_K];
    double total;
} Table;

/* SymbolTable.build. */
static void build_table(const Constants *q, const Row *r, int64_t ch, const int64_t *means, const int64_t *w, Table *tb) {
    int64_t sum = 0;
    for (int64_t i = 0; i < q->k; i++) {
        tb->slope[i] = r->inv[ch][i] * q->mean_one;
        tb->intercept[i] = ((int64_t)1 << (q->guard - 1)) + (q->z_span << q->guard) - (q->mean_one / 2 + means[i]) * r->inv[ch][i];
        sum += w[i];
    }
    tb->total = (double)((sum << q->cdf_frac) + q->levels * q->floor_);
}

/* SymbolTable.cumulative at one interior edge. Also stores each component's CDF at the edge
 * in parts[i]: the table index (edge * slope + intercept) >> guard equals component_cdf's
 * ((2 * edge - 1) * MEAN_ONE/2 - mean) * inv + half >> guard plus z_span exactly (MEAN_ONE is
 * even and z_span << guard is a multiple of 2**guard), and both clip to the same table
 * range, so posterior gets the very integers component_cdf would compute. */
static inline int64_t cumulative(const Constants *q, const Tables *t, const Table *tb, const int64_t *w, int64_t edge,
                                 int64_t *parts) {
    int64_t g = 0, top = 2 * q->z_span;
    for (int64_t i = 0; i < q->k; i++) {
        int64_t index = (edge * tb->slope[i] + tb->intercept[i]) >> q->guard;
        index = index < 0 ? 0 : (index > top ? top : index);
        parts[i] = sigmoid_at(q, t, index);
        g += parts[i] * w[i];
    }
    g += edge * q->floor_;
    double share = (double)g / tb->total;
    share = share * (double)(q->total - q->levels);
    return edge + (int64_t)share;
}

/* Component CDFs at the edges 0 and `levels` (component_cdf's ends). */
static void edge_parts(const Constants *q, int64_t *zero, int64_t *one) {
    for (int64_t i = 0; i < q->k; i++) {
        zero[i] = 0;
        one[i] = (int64_t)1 << q->cdf_frac;
    }
}

/* posterior_weights after a channel took value v, from the components' CDFs at the edges v
 * and v + 1 (parts of cumulative, or edge_parts): w_i * p_i, renormalised exactly. */
static void posterior(const Constants *q, const int64_t *below, const int64_t *above, int64_t *w) {
    int64_t product[MAX_K], top = 0;
    for (int64_t i = 0; i < q->k; i++) {
        product[i] = w[i] * (above[i] - below[i]);
        if (product[i] > top) top = product[i];
    }
    if (top <= 0) return;
    int64_t bits = 64 - __builtin_clzll((uint64_t)top);  /* frexp's exponent of an integer */
    int64_t shift = bits - q->weight_frac;
    if (shift < 0) shift = 0;
    for (int64_t i = 0; i < q->k; i++) w[i] = product[i] >> shift;
}

/* The layout of Constants and Tables that kernels.py must pass: a stale build (an editable
 * install whose library predates this file) is refused rather than fed the wrong layout. */
int nz_abi_version(void) { return 4; }

static int valid(const Constants *q) {
    return q->k >= 1 && q->k <= MAX_K && q->c >= 1 && q->c <= MAX_C;
}

/* Encoder: (left, frequency) of values [n, c_coded] under heads [n, stride]. */
int nz_intervals(const Constants *q, const Tables *t, int64_t n, int64_t c_coded, const int64_t *head, int64_t stride,
                 const int64_t *values, int64_t *left, int64_t *frequency) {
    if (!valid(q) || c_coded > q->c) return -1;
    Row r;
    Table tb;
    int64_t means[MAX_K], w[MAX_K], below[MAX_K], above[MAX_K];
    for (int64_t row = 0; row < n; row++) {
        row_parameters(q, t, head + row * stride, &r);
        memcpy(w, r.w, sizeof(int64_t) * q->k);
        const int64_t *v = values + row * c_coded;
        for (int64_t ch = 0; ch < c_coded; ch++) {
            coupled_means(q, &r, ch, v, means);
            build_table(q, &r, ch, means, w, &tb);
            int64_t x = v[ch], lo, hi;
            edge_parts(q, below, above);
            lo = x == 0 ? 0 : cumulative(q, t, &tb, w, x, below);
            hi = x == q->levels - 1 ? q->total : cumulative(q, t, &tb, w, x + 1, above);
            left[row * c_coded + ch] = lo;
            frequency[row * c_coded + ch] = hi - lo;
            if (ch + 1 < c_coded) posterior(q, below, above, w);
        }
    }
    return 0;
}

/* Decoder: for each row, pop c_coded values from ANS stream streams[row] (state, next,
 * begin, words as BatchAnsDecoder holds them; streams distinct), writing values [n, c_coded]. */
int nz_decode(const Constants *q, const Tables *t, int64_t n, int64_t c_coded, const int64_t *head, int64_t stride,
              const int64_t *streams, uint64_t *state, int64_t *next, const int64_t *begin, const uint64_t *words,
              int64_t *values) {
    if (!valid(q) || c_coded > q->c) return -1;
    Row r;
    Table tb;
    int64_t means[MAX_K], w[MAX_K], parts[3][MAX_K];
    int64_t bits = 0;
    while (((int64_t)1 << bits) < q->levels) bits++;
    const uint64_t mask = (uint64_t)(q->total - 1);
    int64_t precision = 0;
    while (((int64_t)1 << precision) < q->total) precision++;
    for (int64_t row = 0; row < n; row++) {
        int64_t s = streams[row];
        row_parameters(q, t, head + row * stride, &r);
        memcpy(w, r.w, sizeof(int64_t) * q->k);
        int64_t *v = values + row * c_coded;
        for (int64_t ch = 0; ch < c_coded; ch++) {
            coupled_means(q, &r, ch, v, means);
            build_table(q, &r, ch, means, w, &tb);
            int64_t quantile = (int64_t)(state[s] & mask);
            int64_t low = 0, c_low = 0, c_high = q->total;
            /* the final value's edges are the last accepted mid (or 0) and the last rejected
             * mid (or levels): keep their component CDFs for the posterior */
            int64_t *below = parts[0], *above = parts[1], *trial = parts[2], *swap;
            edge_parts(q, below, above);
            for (int64_t d = 0; d < bits; d++) {  /* SymbolTable.search (any arity finds the same v) */
                int64_t mid = low + (q->levels >> (d + 1));
                int64_t c_mid = cumulative(q, t, &tb, w, mid, trial);
                if (c_mid <= quantile) {
                    low = mid; c_low = c_mid;
                    swap = below; below = trial; trial = swap;
                } else {
                    c_high = c_mid;
                    swap = above; above = trial; trial = swap;
                }
            }
            /* BatchAnsDecoder.advance_streams */
            uint64_t st = state[s];
            uint64_t ns = (st >> precision) * (uint64_t)(c_high - c_low) + ((st & mask) - (uint64_t)c_low);
            if (ns < ((uint64_t)1 << 32) && next[s] >= begin[s]) {
                ns = (ns << 32) | words[next[s]];
                next[s] -= 1;
            }
            state[s] = ns;
            v[ch] = low;
            if (ch + 1 < c_coded) posterior(q, below, above, w);
        }
    }
    return 0;
}

/* BatchAnsEncoder.push_sequences (coding.py): stream i pushes the first lengths[i] symbols
 * of row i of left / frequency [n, width] (int32 intervals out of 2**precision), last symbol
 * first, onto state[i]; the words it emits go to words[i * width + j] in emission order
 * (one push emits at most one word), their number to emitted[i]. The same uint64
 * arithmetic as the numpy definition, one stream at a time instead of one numpy pass per
 * symbol position. Returns -1 (state then meaningless) on a length beyond width or an
 * interval outside [0, 2**precision). */
int nz_ans_push(int64_t n, int64_t width, const int32_t *left, const int32_t *frequency, const int64_t *lengths,
                int64_t precision, uint64_t *state, uint32_t *words, int64_t *emitted) {
    const int64_t total = (int64_t)1 << precision;
    for (int64_t i = 0; i < n; i++) {
        const int64_t length = lengths[i];
        if (length < 0 || length > width) return -1;
        const int32_t *l = left + i * width, *f = frequency + i * width;
        uint32_t *out = words + i * width;
        uint64_t s = state[i];
        int64_t e = 0;
        for (int64_t k = length - 1; k >= 0; k--) {
            const int64_t lo = l[k], p = f[k];
            if (p < 1 || lo < 0 || lo + p > total) return -1;
            if ((s >> (64 - precision)) >= (uint64_t)p) {
                out[e++] = (uint32_t)(s & 0xFFFFFFFFu);
                s >>= 32;
            }
            s = ((s / (uint64_t)p) << precision) | (s % (uint64_t)p + (uint64_t)lo);
        }
        state[i] = s;
        emitted[i] = e;
    }
    return 0;
}

/* ExactLayer requantisation (exact/local.py), in place on acc [n, width] float32:
 * acc = clip(floor((acc + table[rows[i]]) * multiplier + offset), low, high), multiplier
 * and offset per column; table [T, width] and rows [n] may be NULL (nothing added). The
 * added table values are integers and the sum stays below 2**24, so it is exact; the
 * product and the sum after it are float32 IEEE-754 basic operations (no FMA contraction:
 * built with -ffp-contract=off), as numpy's; clipping before the floor gives the same
 * result (low and high are integers and floor is monotone) and bounds the value, so the
 * floor is a truncating conversion corrected for negative non-integers (exact for
 * |v| < 2**31). One pass over memory instead of numpy's four. */
void nz_requantize(int64_t n, int64_t width, float *acc, const float *multiplier, const float *offset,
                   float low, float high, const float *table, const int64_t *rows) {
    static const float zeros[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int64_t i = 0; i < n; i++) {
        float *row = acc + i * width;
        const float *add = table ? table + rows[i] * width : NULL;
        int64_t j = 0;
#if defined(__SSE2__)
        /* four at a time, branch-free (random signs made the scalar loop's branches cost ~10x) */
        const __m128 lo = _mm_set1_ps(low), hi = _mm_set1_ps(high), one = _mm_set1_ps(1.0f);
        for (; j + 4 <= width; j += 4) {
            __m128 a = _mm_add_ps(_mm_loadu_ps(row + j), _mm_loadu_ps(add ? add + j : zeros));
            __m128 v = _mm_add_ps(_mm_mul_ps(a, _mm_loadu_ps(multiplier + j)), _mm_loadu_ps(offset + j));
            v = _mm_min_ps(_mm_max_ps(v, lo), hi);
            __m128 t = _mm_cvtepi32_ps(_mm_cvttps_epi32(v));
            _mm_storeu_ps(row + j, _mm_sub_ps(t, _mm_and_ps(_mm_cmpgt_ps(t, v), one)));
        }
#endif
        for (; j < width; j++) {
            float a = add ? row[j] + add[j] : row[j];
            float v = a * multiplier[j];
            v = v + offset[j];
            v = v < low ? low : (v > high ? high : v);
            float t = (float)(int32_t)v;
            row[j] = t > v ? t - 1.0f : t;
        }
    }
}

/* The residual stream step of local models with blocks (exact/local.py, residual_step), on
 * stream [n, width] float32 in place: with a branch (NULL: none), stream = clip(stream +
 * branch, -limit, limit) (integers below 2**21: exact); then the 8-bit activation read from
 * it, activation = clip(floor(stream * rescale + 0.5), 0, top) with rescale per column, the
 * product and the sum float32 IEEE-754 basic operations (no FMA contraction), as numpy's.
 * Clipping to [0, top] first makes the floor a truncation. One pass instead of numpy's six. */
void nz_residual(int64_t n, int64_t width, float *stream, const float *branch, const float *rescale, float limit,
                 float top, float *activation) {
    for (int64_t i = 0; i < n; i++) {
        float *row = stream + i * width;
        const float *add = branch ? branch + i * width : NULL;
        float *out = activation + i * width;
        int64_t j = 0;
#if defined(__SSE2__)
        const __m128 lim = _mm_set1_ps(limit), neg = _mm_set1_ps(-limit), zero = _mm_setzero_ps(),
                     hi = _mm_set1_ps(top), half = _mm_set1_ps(0.5f);
        for (; j + 4 <= width; j += 4) {
            __m128 s = _mm_loadu_ps(row + j);
            if (add) {
                s = _mm_min_ps(_mm_max_ps(_mm_add_ps(s, _mm_loadu_ps(add + j)), neg), lim);
                _mm_storeu_ps(row + j, s);
            }
            __m128 v = _mm_add_ps(_mm_mul_ps(s, _mm_loadu_ps(rescale + j)), half);
            v = _mm_min_ps(_mm_max_ps(v, zero), hi);
            _mm_storeu_ps(out + j, _mm_cvtepi32_ps(_mm_cvttps_epi32(v)));
        }
#endif
        for (; j < width; j++) {
            float s = row[j];
            if (add) {
                s = s + add[j];
                s = s < -limit ? -limit : (s > limit ? limit : s);
                row[j] = s;
            }
            float v = s * rescale[j];
            v = v + 0.5f;
            v = v < 0.0f ? 0.0f : (v > top ? top : v);
            out[j] = (float)(int32_t)v;
        }
    }
}

/* Lets setuptools build this file as an extension; the module itself has no Python API. */
#include <Python.h>
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_mixture", "ctypes-called C accelerator", -1, NULL};
PyMODINIT_FUNC PyInit__mixture(void) { return PyModule_Create(&module); }
