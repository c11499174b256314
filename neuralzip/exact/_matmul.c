/*
 * Accelerators for the local codec's exact network: a layer's matrix product with its
 * requantisation fused, on the AMX-BF16 tiles (Intel Sapphire Rapids and later), with
 * AVX-512 VNNI (VPDPWSSD: Intel Cascade Lake / Ice Lake and later, AMD Zen 4 and later) or
 * with AVX2 (VPMADDWD: nearly every x86-64 CPU since 2013).
 *
 * The definition is ExactLayer in neuralzip/exact/local.py: acc = x . W (+ table[rows]),
 * out = clip(floor(float32(float32(acc) * M) + B), low, high). Why both backends give the
 * same integers as numpy's float32 path on every machine:
 *  - every input of the exact network is an integer of at most 8 significant bits (8-bit
 *    activations 0..255, pixel features 2v - 255), and every weight an integer with
 *    fan_in * 255 * max|w| < 2**24 (the bound the Python side checks for the float32 path),
 *    so the exact acc is an integer below 2**24 however it is summed;
 *  - AMX: bfloat16 holds such an input exactly (its significand has 8 bits): a float32
 *    integer of that size becomes bfloat16 by dropping its low 16 bits, which are zero.
 *    A weight with |w| <= 256 is exact in bfloat16, a larger one is split as w = lo + 256 hi
 *    with |lo| <= 128 (two exact bfloat16 weights, two products). TDPBF16PS multiplies
 *    bfloat16 pairs exactly (16-bit significands fit float32) and adds into float32: every
 *    partial sum is an integer below 2**24, so no addition rounds, in any order;
 *  - VNNI and AVX2: inputs and weights are int16 (exact: |x| <= 255, |w| < 2**15); VPDPWSSD
 *    (VNNI) adds pairs of their products into int32 lanes without saturation, VPMADDWD
 *    (AVX2) makes the same pair sums and VPADDD adds them: integer arithmetic, exact by
 *    construction; the int32 sum converts to float32 exactly (below 2**24);
 *  - then float32(acc) * M and + B are two IEEE-754 float32 operations in separate
 *    instructions (compiled with -ffp-contract=off), clip and floor, as numpy does
 *    (requantize16 for the AVX-512 backends, requantize8 for AVX2).
 * tests/test_kernels.py checks identical outputs against the float32 path for each backend
 * this CPU has.
 *
 * Weights are packed by neuralzip/exact/kernels.py (pack_weights): for AMX, per block of 16
 * outputs and step of 32 inputs a 1 KB tile of 16 rows (input pairs) x 16 outputs x 2 (the
 * pair), as TDPBF16PS reads its second operand; for VNNI (AVX2), per group of 64 (32)
 * outputs and pair of inputs 64 x 2 (32 x 2) int16: four registers of 16 (8) outputs. Linux must grant the process
 * the AMX tile state (arch_prctl ARCH_REQ_XCOMP_PERM, done by nz_amx_init). Called through
 * ctypes (the GIL is released); PyInit__matmul only lets setuptools build the shared library.
 */
#include <stdint.h>
#include <string.h>

int nz_matmul_abi_version(void) { return 1; }

#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && (__GNUC__ >= 11)
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_K 1024 /* inputs per row the staging buffers hold (the Python side checks) */
#define NZ_AVX512 __attribute__((target("avx512f,avx512bw")))
#define NZ_AMX __attribute__((target("avx512f,avx512bw,amx-tile,amx-bf16")))
#define NZ_VNNI __attribute__((target("avx512f,avx512bw,avx512vnni")))
#define NZ_AVX2 __attribute__((target("avx2")))

static void cpuid(unsigned leaf, unsigned *a, unsigned *b, unsigned *c, unsigned *d) {
    __asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(0));
}

/* 1 when the CPU has AVX-512 F and BW and the operating system saves the zmm state. */
static int avx512_usable(void) {
    unsigned a, b, c, d;
    cpuid(1, &a, &b, &c, &d);
    if (!((c >> 27) & 1)) /* OSXSAVE: xgetbv is available */
        return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 0xE6) != 0xE6) /* SSE, AVX, opmask, zmm 0-15 upper halves, zmm 16-31 */
        return 0;
    cpuid(7, &a, &b, &c, &d);
    return ((b >> 16) & 1) && ((b >> 30) & 1);
}

/* Requantise 16 sums (float32 integers below 2**24) of columns column.. of one row and store
 * the valid ones: + table row, * M, + B, clip to [low, high], floor (the ExactLayer rule). */
static inline __attribute__((always_inline)) NZ_AVX512 void requantize16(__m512 acc, const float *add, int64_t column,
                                                                          int64_t width, const float *multiplier,
                                                                          const float *offset, __m512 lower,
                                                                          __m512 upper, float *out_row) {
    int64_t valid = width - column < 16 ? width - column : 16;
    __mmask16 mask = (__mmask16)((1u << valid) - 1);
    if (add)
        acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(mask, add + column));
    __m512 v = _mm512_mul_ps(acc, _mm512_maskz_loadu_ps(mask, multiplier + column));
    v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, offset + column));
    v = _mm512_min_ps(_mm512_max_ps(v, lower), upper);
    v = _mm512_roundscale_ps(v, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    _mm512_mask_storeu_ps(out_row + column, mask, v);
}

/* ---- AMX-BF16 tiles ------------------------------------------------------------------ */

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18
#define AMX_ROWS 32 /* rows per tile pair (two 16-row tiles) */

/* 1 when this CPU has AMX-BF16 and AVX-512 and the kernel lets this process use the tiles. */
int nz_amx_init(void) {
    unsigned a, b, c, d;
    cpuid(7, &a, &b, &c, &d);
    int amx_bf16 = (d >> 22) & 1, amx_tile = (d >> 24) & 1;
    if (!(amx_bf16 && amx_tile && avx512_usable()))
        return 0;
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
}

typedef struct {
    uint8_t palette, start;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} TileConfig;

/* Tiles 0-3: sums (rows 0-15 / 16-31 x outputs 0-15 / 16-31 of a 32-output group);
 * 4, 5: the two row halves of 32 inputs; 6, 7: the weights of the two output blocks. */
static NZ_AMX void configure(void) {
    TileConfig config;
    memset(&config, 0, sizeof config);
    config.palette = 1;
    for (int t = 0; t < 8; t++) {
        config.rows[t] = 16;
        config.colsb[t] = 64;
    }
    _tile_loadconfig(&config);
}

/* Sums of one row band (32 rows of bf16 inputs, stride k_pad) and one 32-output group
 * (blocks g, g + 1 of 16) into sums[32][32], from the packed weights of one part. */
static inline __attribute__((always_inline)) NZ_AMX void group_sums(const uint16_t *band, int64_t k_pad,
                                                                     const uint16_t *packed, int64_t g, int two,
                                                                     float *sums) {
    int64_t steps = k_pad / 32;
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    const uint16_t *w0 = packed + g * steps * 512, *w1 = w0 + steps * 512;
    for (int64_t s = 0; s < steps; s++) {
        _tile_loadd(4, band + s * 32, k_pad * 2);
        _tile_loadd(5, band + 16 * k_pad + s * 32, k_pad * 2);
        _tile_loadd(6, w0 + s * 512, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(2, 5, 6);
        if (two) {
            _tile_loadd(7, w1 + s * 512, 64);
            _tile_dpbf16ps(1, 4, 7);
            _tile_dpbf16ps(3, 5, 7);
        }
    }
    _tile_stored(0, sums, 128);
    _tile_stored(2, sums + 16 * 32, 128);
    if (two) {
        _tile_stored(1, sums + 16, 128);
        _tile_stored(3, sums + 16 * 32 + 16, 128);
    }
}

/* out[n, width] = requantised x[n, k_in] . W (+ table[rows[i]] on row i, when table):
 * x float32 integers as above, W packed (lo; hi, the 256s, or NULL), width outputs of the
 * packed blocks' 16 * blocks. */
NZ_AMX void nz_amx_layer(int64_t n, int64_t k_in, const float *x, int64_t k_pad, int64_t blocks,
                         const uint16_t *lo_packed, const uint16_t *hi_packed, const float *table, const int64_t *rows,
                         const float *multiplier, const float *offset, float low, float high, int64_t width,
                         float *out) {
    static __thread uint16_t band[AMX_ROWS * MAX_K] __attribute__((aligned(64)));
    float sums[AMX_ROWS * 32] __attribute__((aligned(64))), high_sums[AMX_ROWS * 32] __attribute__((aligned(64)));
    configure();
    const __m512 lower = _mm512_set1_ps(low), upper = _mm512_set1_ps(high), scale = _mm512_set1_ps(256.0f);
    for (int64_t r0 = 0; r0 < n; r0 += AMX_ROWS) {
        int64_t count = n - r0 < AMX_ROWS ? n - r0 : AMX_ROWS;
        /* stage the band as bfloat16 (the high halves of the float32 integers), zero padded */
        for (int64_t i = 0; i < AMX_ROWS; i++) {
            uint16_t *dst = band + i * k_pad;
            if (i >= count) {
                memset(dst, 0, k_pad * 2);
                continue;
            }
            const uint32_t *src = (const uint32_t *)(x + (r0 + i) * k_in);
            int64_t j = 0;
            for (; j + 16 <= k_in; j += 16) {
                __m512i v = _mm512_srli_epi32(_mm512_loadu_si512((const void *)(src + j)), 16);
                _mm256_storeu_si256((__m256i *)(dst + j), _mm512_cvtepi32_epi16(v));
            }
            for (; j < k_in; j++) dst[j] = (uint16_t)(src[j] >> 16);
            for (; j < k_pad; j++) dst[j] = 0;
        }
        for (int64_t g = 0; g < blocks; g += 2) {
            int two = g + 1 < blocks;
            group_sums(band, k_pad, lo_packed, g, two, sums);
            if (hi_packed)
                group_sums(band, k_pad, hi_packed, g, two, high_sums);
            for (int64_t i = 0; i < count; i++) {
                const float *add = table ? table + rows[r0 + i] * width : NULL;
                for (int h = 0; h < 1 + two; h++) {
                    int64_t column = (g + h) * 16;
                    if (column >= width)
                        break;
                    __m512 acc = _mm512_load_ps(sums + i * 32 + h * 16);
                    if (hi_packed) /* exact: both are integers, and so is their sum, below 2**24 */
                        acc = _mm512_add_ps(acc, _mm512_mul_ps(_mm512_load_ps(high_sums + i * 32 + h * 16), scale));
                    requantize16(acc, add, column, width, multiplier, offset, lower, upper, out + (r0 + i) * width);
                }
            }
        }
    }
    _tile_release();
}

/* ---- AVX-512 VNNI -------------------------------------------------------------------- */

#define VNNI_ROWS 6   /* rows per band: 6 rows x 4 registers of sums stay in the 32 zmm */
#define VNNI_GROUP 64 /* outputs per group (four registers of 16 int32 sums) */

/* 1 when this CPU has AVX-512 F, BW and VNNI and the operating system saves the zmm state. */
int nz_vnni_init(void) {
    unsigned a, b, c, d;
    cpuid(7, &a, &b, &c, &d);
    return ((c >> 11) & 1) && avx512_usable();
}

/* out[n, width] = requantised x[n, k_in] . W (+ table[rows[i]] on row i, when table):
 * x float32 integers |x| <= 255, W packed as [groups][pairs][64][2] int16 (pairs = k_in
 * rounded up to even / 2; inputs and outputs zero padded). */
NZ_VNNI void nz_vnni_layer(int64_t n, int64_t k_in, const float *x, int64_t pairs, int64_t groups,
                           const int16_t *packed, const float *table, const int64_t *rows, const float *multiplier,
                           const float *offset, float low, float high, int64_t width, float *out) {
    static __thread int16_t band[VNNI_ROWS * MAX_K] __attribute__((aligned(64)));
    const __m512 lower = _mm512_set1_ps(low), upper = _mm512_set1_ps(high);
    const int64_t k_pad = 2 * pairs;
    for (int64_t r0 = 0; r0 < n; r0 += VNNI_ROWS) {
        int64_t count = n - r0 < VNNI_ROWS ? n - r0 : VNNI_ROWS;
        /* stage the band as int16 (exact: small integers), zero padded */
        for (int64_t i = 0; i < VNNI_ROWS; i++) {
            int16_t *dst = band + i * k_pad;
            if (i >= count) {
                memset(dst, 0, k_pad * 2);
                continue;
            }
            const float *src = x + (r0 + i) * k_in;
            int64_t j = 0;
            for (; j + 16 <= k_in; j += 16)
                _mm256_storeu_si256((__m256i *)(dst + j), _mm512_cvtepi32_epi16(_mm512_cvtps_epi32(_mm512_loadu_ps(src + j))));
            for (; j < k_in; j++) dst[j] = (int16_t)src[j];
            for (; j < k_pad; j++) dst[j] = 0;
        }
        for (int64_t g = 0; g < groups; g++) {
            const int16_t *w = packed + g * pairs * VNNI_GROUP * 2;
            /* 24 named sums (an array indexed in the loop would live in memory) */
            __m512i s00, s01, s02, s03, s10, s11, s12, s13, s20, s21, s22, s23;
            __m512i s30, s31, s32, s33, s40, s41, s42, s43, s50, s51, s52, s53;
            s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = s20 = s21 = s22 = s23 = _mm512_setzero_si512();
            s30 = s31 = s32 = s33 = s40 = s41 = s42 = s43 = s50 = s51 = s52 = s53 = _mm512_setzero_si512();
            for (int64_t p = 0; p < pairs; p++) {
                const int16_t *wp = w + p * VNNI_GROUP * 2;
                __m512i w0 = _mm512_loadu_si512((const void *)wp), w1 = _mm512_loadu_si512((const void *)(wp + 32));
                __m512i w2 = _mm512_loadu_si512((const void *)(wp + 64)), w3 = _mm512_loadu_si512((const void *)(wp + 96));
/* row i's input pair p (memcpy: no aliasing of the int16 band) times the four weight registers */
#define NZ_VNNI_ROW(i)                                                   \
    {                                                                    \
        int32_t word;                                                    \
        memcpy(&word, band + (i) * k_pad + 2 * p, sizeof word);          \
        __m512i a = _mm512_set1_epi32(word);                             \
        s##i##0 = _mm512_dpwssd_epi32(s##i##0, a, w0);                   \
        s##i##1 = _mm512_dpwssd_epi32(s##i##1, a, w1);                   \
        s##i##2 = _mm512_dpwssd_epi32(s##i##2, a, w2);                   \
        s##i##3 = _mm512_dpwssd_epi32(s##i##3, a, w3);                   \
    }
                NZ_VNNI_ROW(0) NZ_VNNI_ROW(1) NZ_VNNI_ROW(2) NZ_VNNI_ROW(3) NZ_VNNI_ROW(4) NZ_VNNI_ROW(5)
#undef NZ_VNNI_ROW
            }
            const __m512i acc[VNNI_ROWS][4] = {{s00, s01, s02, s03}, {s10, s11, s12, s13}, {s20, s21, s22, s23},
                                               {s30, s31, s32, s33}, {s40, s41, s42, s43}, {s50, s51, s52, s53}};
            for (int64_t i = 0; i < count; i++) {
                const float *add = table ? table + rows[r0 + i] * width : NULL;
                for (int c = 0; c < 4; c++) {
                    int64_t column = g * VNNI_GROUP + c * 16;
                    if (column >= width)
                        break;
                    requantize16(_mm512_cvtepi32_ps(acc[i][c]), add, column, width, multiplier, offset, lower, upper,
                                 out + (r0 + i) * width);
                }
            }
        }
    }
}

/* ---- AVX2 (int16 pairs, VPMADDWD) ---------------------------------------------------- */

#define AVX2_ROWS 3    /* rows per band: 3 rows x 4 registers of sums in the 16 ymm (weights read from L1) */
#define AVX2_GROUP 32  /* outputs per group (four registers of 8 int32 sums) */
#define AVX2_CHUNK 255 /* rows staged at once: each group's weights stay in L1 while they pass */

/* 1 when the CPU has AVX2 and the operating system saves the ymm state. */
int nz_avx2_init(void) {
    unsigned a, b, c, d;
    cpuid(1, &a, &b, &c, &d);
    if (!((c >> 27) & 1) || !((c >> 28) & 1)) /* OSXSAVE, AVX */
        return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 0x6) != 0x6)
        return 0;
    cpuid(7, &a, &b, &c, &d);
    return (b >> 5) & 1;
}

/* requantize16's rule on 8 sums. */
static inline __attribute__((always_inline)) NZ_AVX2 void requantize8(__m256 acc, const float *add, int64_t column,
                                                                       int64_t width, const float *multiplier,
                                                                       const float *offset, __m256 lower,
                                                                       __m256 upper, float *out_row) {
    int valid = width - column < 8 ? (int)(width - column) : 8;
    __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(valid), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    if (add)
        acc = _mm256_add_ps(acc, _mm256_maskload_ps(add + column, mask));
    __m256 v = _mm256_mul_ps(acc, _mm256_maskload_ps(multiplier + column, mask));
    v = _mm256_add_ps(v, _mm256_maskload_ps(offset + column, mask));
    v = _mm256_min_ps(_mm256_max_ps(v, lower), upper);
    _mm256_maskstore_ps(out_row + column, mask, _mm256_floor_ps(v));
}

/* nz_vnni_layer's product with AVX2: VPMADDWD multiplies int16 pairs and adds each pair into
 * an int32 lane (exact: |x w| + |x w| < 2**31), VPADDD sums them; W packed as
 * [groups][pairs][32][2] int16. */
NZ_AVX2 void nz_avx2_layer(int64_t n, int64_t k_in, const float *x, int64_t pairs, int64_t groups,
                           const int16_t *packed, const float *table, const int64_t *rows, const float *multiplier,
                           const float *offset, float low, float high, int64_t width, float *out) {
    static __thread int16_t staged[AVX2_CHUNK * MAX_K] __attribute__((aligned(64)));
    const __m256 lower = _mm256_set1_ps(low), upper = _mm256_set1_ps(high);
    const int64_t k_pad = 2 * pairs;
    for (int64_t c0 = 0; c0 < n; c0 += AVX2_CHUNK) {
        int64_t count = n - c0 < AVX2_CHUNK ? n - c0 : AVX2_CHUNK;
        int64_t padded = (count + AVX2_ROWS - 1) / AVX2_ROWS * AVX2_ROWS;
        for (int64_t i = 0; i < padded; i++) { /* int16 (exact: small integers), zero padded */
            int16_t *dst = staged + i * k_pad;
            if (i >= count) {
                memset(dst, 0, k_pad * 2);
                continue;
            }
            const float *src = x + (c0 + i) * k_in;
            int64_t j = 0;
            for (; j + 8 <= k_in; j += 8) {
                __m256i v = _mm256_cvtps_epi32(_mm256_loadu_ps(src + j));
                _mm_storeu_si128((__m128i *)(dst + j),
                                 _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1)));
            }
            for (; j < k_in; j++) dst[j] = (int16_t)src[j];
            for (; j < k_pad; j++) dst[j] = 0;
        }
        for (int64_t g = 0; g < groups; g++) {
            const int16_t *w = packed + g * pairs * AVX2_GROUP * 2;
            for (int64_t r = 0; r < padded; r += AVX2_ROWS) {
                __m256i s00, s01, s02, s03, s10, s11, s12, s13, s20, s21, s22, s23;
                s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = s20 = s21 = s22 = s23 = _mm256_setzero_si256();
                const int16_t *band = staged + r * k_pad;
                for (int64_t p = 0; p < pairs; p++) {
                    const int16_t *wp = w + p * AVX2_GROUP * 2;
                    __m256i w0 = _mm256_loadu_si256((const __m256i *)wp), w1 = _mm256_loadu_si256((const __m256i *)(wp + 16));
                    __m256i w2 = _mm256_loadu_si256((const __m256i *)(wp + 32)), w3 = _mm256_loadu_si256((const __m256i *)(wp + 48));
#define NZ_AVX2_ROW(i)                                                      \
    {                                                                       \
        int32_t word;                                                       \
        memcpy(&word, band + (i) * k_pad + 2 * p, sizeof word);             \
        __m256i a = _mm256_set1_epi32(word);                                \
        s##i##0 = _mm256_add_epi32(s##i##0, _mm256_madd_epi16(a, w0));      \
        s##i##1 = _mm256_add_epi32(s##i##1, _mm256_madd_epi16(a, w1));      \
        s##i##2 = _mm256_add_epi32(s##i##2, _mm256_madd_epi16(a, w2));      \
        s##i##3 = _mm256_add_epi32(s##i##3, _mm256_madd_epi16(a, w3));      \
    }
                    NZ_AVX2_ROW(0) NZ_AVX2_ROW(1) NZ_AVX2_ROW(2)
#undef NZ_AVX2_ROW
                }
                const __m256i acc[AVX2_ROWS][4] = {{s00, s01, s02, s03}, {s10, s11, s12, s13}, {s20, s21, s22, s23}};
                for (int64_t i = 0; i < AVX2_ROWS && r + i < count; i++) {
                    int64_t row = c0 + r + i;
                    const float *add = table ? table + rows[row] * width : NULL;
                    for (int c = 0; c < 4; c++) {
                        int64_t column = g * AVX2_GROUP + c * 8;
                        if (column >= width)
                            break;
                        requantize8(_mm256_cvtepi32_ps(acc[i][c]), add, column, width, multiplier, offset, lower,
                                    upper, out + row * width);
                    }
                }
            }
        }
    }
}
#else
int nz_amx_init(void) { return 0; }
int nz_vnni_init(void) { return 0; }
int nz_avx2_init(void) { return 0; }
void nz_amx_layer(int64_t n, int64_t k_in, const float *x, int64_t k_pad, int64_t blocks, const uint16_t *lo_packed,
                  const uint16_t *hi_packed, const float *table, const int64_t *rows, const float *multiplier,
                  const float *offset, float low, float high, int64_t width, float *out) {
    (void)n; (void)k_in; (void)x; (void)k_pad; (void)blocks; (void)lo_packed; (void)hi_packed; (void)table;
    (void)rows; (void)multiplier; (void)offset; (void)low; (void)high; (void)width; (void)out;
}
void nz_vnni_layer(int64_t n, int64_t k_in, const float *x, int64_t pairs, int64_t groups, const int16_t *packed,
                   const float *table, const int64_t *rows, const float *multiplier, const float *offset, float low,
                   float high, int64_t width, float *out) {
    (void)n; (void)k_in; (void)x; (void)pairs; (void)groups; (void)packed; (void)table; (void)rows;
    (void)multiplier; (void)offset; (void)low; (void)high; (void)width; (void)out;
}
void nz_avx2_layer(int64_t n, int64_t k_in, const float *x, int64_t pairs, int64_t groups, const int16_t *packed,
                   const float *table, const int64_t *rows, const float *multiplier, const float *offset, float low,
                   float high, int64_t width, float *out) {
    (void)n; (void)k_in; (void)x; (void)pairs; (void)groups; (void)packed; (void)table; (void)rows;
    (void)multiplier; (void)offset; (void)low; (void)high; (void)width; (void)out;
}
#endif

/* Lets setuptools build this file as an extension; the module itself has no Python API. */
#include <Python.h>
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_matmul", NULL, -1, NULL};
PyMODINIT_FUNC PyInit__matmul(void) { return PyModule_Create(&module); }
