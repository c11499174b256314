/*
 * Accelerator for the local codec's exact network on CPUs with AMX (Intel Sapphire Rapids
 * and later): a layer's matrix product on the AMX-BF16 tiles, its requantisation fused.
 *
 * The definition is ExactLayer in neuralzip/exact/local.py: acc = x . W (+ table[rows]),
 * out = clip(floor(float32(float32(acc) * M) + B), low, high). Why the results are the same
 * integers as numpy's float32 path on every machine:
 *  - every input of the exact network is an integer of at most 8 significant bits (8-bit
 *    activations 0..255, pixel features 2v - 255), so bfloat16 holds it exactly (its
 *    significand has 8 bits); a float32 integer of that size becomes bfloat16 by dropping
 *    its low 16 bits, which are zero;
 *  - weights are integers; one with |w| <= 256 is exact in bfloat16, a larger one is split
 *    as w = lo + 256 hi with |lo| <= 128 (two exact bfloat16 weights, two products);
 *  - TDPBF16PS multiplies bfloat16 pairs exactly (16-bit significands fit float32) and adds
 *    into float32: every partial sum is an integer below 2**24 (the bound the Python side
 *    checks for the float32 path too), so no addition rounds, in any order; lo + 256 hi
 *    sums to the same exact acc;
 *  - then float32(acc) * M and + B are two IEEE-754 float32 operations in separate
 *    instructions (compiled with -ffp-contract=off), floor and clip, as numpy does.
 * tests/test_kernels.py checks identical outputs against the float32 path.
 *
 * Weights are packed by kernels.pack_bf16_weights: for each block of 16 outputs and each
 * step of 32 inputs, a 1 KB tile of 16 rows (input pairs) x 16 outputs x 2 (the pair), as
 * TDPBF16PS reads its second operand. Linux must grant the process the AMX tile state
 * (arch_prctl ARCH_REQ_XCOMP_PERM, done by nz_amx_init). Called through ctypes (the GIL is
 * released); PyInit__amx only lets setuptools build the shared library.
 */
#include <stdint.h>
#include <string.h>

int nz_amx_abi_version(void) { return 1; }

#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && (__GNUC__ >= 11)
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18
#define ROWS 32        /* rows per tile pair (two 16-row tiles) */
#define MAX_K 1024     /* inputs per row the staging buffer holds (the Python side checks) */
#define NZ_TARGET __attribute__((target("avx512f,avx512bw,amx-tile,amx-bf16")))

/* 1 when this CPU has AMX-BF16 and AVX-512 and the kernel lets this process use the tiles. */
int nz_amx_init(void) {
    unsigned int a, b, c, d;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7), "c"(0));
    int amx_bf16 = (d >> 22) & 1, amx_tile = (d >> 24) & 1, avx512bw = (b >> 30) & 1, avx512f = (b >> 16) & 1;
    if (!(amx_bf16 && amx_tile && avx512bw && avx512f))
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
static NZ_TARGET void configure(void) {
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
static inline __attribute__((always_inline)) NZ_TARGET void group_sums(const uint16_t *band, int64_t k_pad,
                                                                       const uint16_t *packed, int64_t g,
                                                                       int two, float *sums) {
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
NZ_TARGET void nz_amx_layer(int64_t n, int64_t k_in, const float *x, int64_t k_pad, int64_t blocks,
                            const uint16_t *lo_packed, const uint16_t *hi_packed, const float *table,
                            const int64_t *rows, const float *multiplier, const float *offset, float low, float high,
                            int64_t width, float *out) {
    static __thread uint16_t band[ROWS * MAX_K] __attribute__((aligned(64)));
    float sums[ROWS * 32] __attribute__((aligned(64))), high_sums[ROWS * 32] __attribute__((aligned(64)));
    configure();
    const __m512 lower = _mm512_set1_ps(low), upper = _mm512_set1_ps(high), scale = _mm512_set1_ps(256.0f);
    for (int64_t r0 = 0; r0 < n; r0 += ROWS) {
        int64_t count = n - r0 < ROWS ? n - r0 : ROWS;
        /* stage the band as bfloat16 (the high halves of the float32 integers), zero padded */
        for (int64_t i = 0; i < ROWS; i++) {
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
                    int64_t valid = width - column < 16 ? width - column : 16;
                    __mmask16 mask = (__mmask16)((1u << valid) - 1);
                    __m512 acc = _mm512_load_ps(sums + i * 32 + h * 16);
                    if (hi_packed)  /* exact: both are integers, and so is their sum, below 2**24 */
                        acc = _mm512_add_ps(acc, _mm512_mul_ps(_mm512_load_ps(high_sums + i * 32 + h * 16), scale));
                    if (add)
                        acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(mask, add + column));
                    __m512 v = _mm512_mul_ps(acc, _mm512_maskz_loadu_ps(mask, multiplier + column));
                    v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, offset + column));
                    v = _mm512_min_ps(_mm512_max_ps(v, lower), upper);
                    v = _mm512_roundscale_ps(v, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
                    _mm512_mask_storeu_ps(out + (r0 + i) * width + column, mask, v);
                }
            }
        }
    }
    _tile_release();
}
#else
int nz_amx_init(void) { return 0; }
void nz_amx_layer(int64_t n, int64_t k_in, const float *x, int64_t k_pad, int64_t blocks,
                  const uint16_t *lo_packed, const uint16_t *hi_packed, const float *table, const int64_t *rows,
                  const float *multiplier, const float *offset, float low, float high, int64_t width, float *out) {
    (void)n; (void)k_in; (void)x; (void)k_pad; (void)blocks; (void)lo_packed; (void)hi_packed; (void)table;
    (void)rows; (void)multiplier; (void)offset; (void)low; (void)high; (void)width; (void)out;
}
#endif

/* Lets setuptools build this file as an extension; the module itself has no Python API. */
#include <Python.h>
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_amx", NULL, -1, NULL};
PyMODINIT_FUNC PyInit__amx(void) { return PyModule_Create(&module); }
