/*
 * vendor/hip.h - the HIP side of the vendor switch: maps the rfg_* names
 * the GPU backend's host code (the .c files of src/gpu, plain C17 against the runtime
 * API, compiled with __HIP_PLATFORM_AMD__) and kernels use to the HIP
 * runtime. With vendor/cuda.h, the only place that knows which vendor is
 * compiled; gpu-impl.h picks one from RF_GPU_HIP.
 */
#ifndef RF_GPU_VENDOR_HIP_H
#define RF_GPU_VENDOR_HIP_H

#ifndef __HIP_PLATFORM_AMD__
#define __HIP_PLATFORM_AMD__ 1
#endif
#if defined(__HIPCC__) || defined(__cplusplus)
#include <hip/hip_runtime.h>
#else
#include <hip/hip_runtime_api.h>
#endif
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define RFG_VENDOR "hip"
/* The runtime library the plugin links; when it is missing the plugin's own
 * dlopen fails naming it, so no separate probe is needed. */
#define RFG_DRIVER_LIB NULL

typedef hipError_t rfg_error;
typedef hipStream_t rfg_stream;
typedef hipEvent_t rfg_event;
typedef hipGraph_t rfg_graph;
typedef hipGraphExec_t rfg_graph_exec;
typedef hipDeviceAttribute_t rfg_attr;

#define rfg_success hipSuccess
#define rfg_error_no_device hipErrorNoDevice
#define rfg_error_no_image hipErrorNoBinaryForGpu
#define rfg_error_invalid_function hipErrorInvalidDeviceFunction

#define RFG_ATTR_BLOCK_X hipDeviceAttributeMaxBlockDimX
#define RFG_ATTR_BLOCK_Y hipDeviceAttributeMaxBlockDimY
#define RFG_ATTR_BLOCK_Z hipDeviceAttributeMaxBlockDimZ
#define RFG_ATTR_THREADS_PER_BLOCK hipDeviceAttributeMaxThreadsPerBlock
#define RFG_ATTR_GRID_X hipDeviceAttributeMaxGridDimX
#define RFG_ATTR_GRID_Y hipDeviceAttributeMaxGridDimY
#define RFG_ATTR_GRID_Z hipDeviceAttributeMaxGridDimZ
#define RFG_ATTR_SMEM_PER_BLOCK hipDeviceAttributeMaxSharedMemoryPerBlock
#define RFG_ATTR_REGS_PER_BLOCK hipDeviceAttributeMaxRegistersPerBlock
#define RFG_ATTR_WARP_SIZE hipDeviceAttributeWarpSize
#define RFG_ATTR_UNITS hipDeviceAttributeMultiprocessorCount
#define RFG_ATTR_CLOCK_KHZ hipDeviceAttributeClockRate

#define rfg_get_error_string hipGetErrorString
#define rfg_get_error_name hipGetErrorName
#define rfg_get_last_error hipGetLastError
#define rfg_get_device_count hipGetDeviceCount
#define rfg_set_device hipSetDevice
#define rfg_device_get_attribute hipDeviceGetAttribute
#define rfg_device_synchronize hipDeviceSynchronize
#define rfg_runtime_get_version hipRuntimeGetVersion
#define rfg_driver_get_version hipDriverGetVersion
#define rfg_mem_get_info hipMemGetInfo
#define rfg_malloc hipMalloc
#define rfg_free hipFree
#define rfg_malloc_host(p, n) hipHostMalloc((p), (n), 0)
#define rfg_free_host hipHostFree
#define rfg_memset_async hipMemsetAsync
#define rfg_memcpy_h2d_async(d, s, n, st) hipMemcpyAsync((d), (s), (n), hipMemcpyHostToDevice, (st))
#define rfg_memcpy_d2h_async(d, s, n, st) hipMemcpyAsync((d), (s), (n), hipMemcpyDeviceToHost, (st))
#define rfg_memcpy_d2d_async(d, s, n, st) hipMemcpyAsync((d), (s), (n), hipMemcpyDeviceToDevice, (st))
#define rfg_memcpy_h2d(d, s, n) hipMemcpy((d), (s), (n), hipMemcpyHostToDevice)
#define rfg_memcpy_d2h(d, s, n) hipMemcpy((d), (s), (n), hipMemcpyDeviceToHost)
#define rfg_memcpy2d_d2d_async(d, dp, s, sp, w, h, st) \
    hipMemcpy2DAsync((d), (dp), (s), (sp), (w), (h), hipMemcpyDeviceToDevice, (st))
#define rfg_memcpy2d_d2h_async(d, dp, s, sp, w, h, st) \
    hipMemcpy2DAsync((d), (dp), (s), (sp), (w), (h), hipMemcpyDeviceToHost, (st))
#define rfg_stream_create(s) hipStreamCreateWithFlags((s), hipStreamNonBlocking)
#define rfg_stream_destroy hipStreamDestroy
#define rfg_stream_synchronize hipStreamSynchronize
#define rfg_event_create(e) hipEventCreate(e)
#define rfg_event_create_sync_only(e) hipEventCreateWithFlags((e), hipEventDisableTiming)
#define rfg_stream_wait_event(st, e) hipStreamWaitEvent((st), (e), 0)
#define rfg_event_destroy hipEventDestroy
#define rfg_event_record hipEventRecord
#define rfg_event_synchronize hipEventSynchronize
#define rfg_event_elapsed_ms hipEventElapsedTime
#define rfg_stream_begin_capture(s) hipStreamBeginCapture((s), hipStreamCaptureModeThreadLocal)
#define rfg_stream_end_capture hipStreamEndCapture
#define rfg_graph_instantiate(e, g) hipGraphInstantiate((e), (g), NULL, NULL, 0)
#define rfg_graph_launch hipGraphLaunch
#define rfg_graph_destroy hipGraphDestroy
#define rfg_graph_exec_destroy hipGraphExecDestroy

/* Name and arch ("gfx90a", without the feature suffix ":sramecc+:xnack-")
 * of a device. Strings only: every limit comes from
 * rfg_device_get_attribute, one attribute each. */
static inline rfg_error rfg_device_name_arch(int dev, char *name, size_t nn, char *arch, size_t na) {
    hipDeviceProp_t p;
    rfg_error e = hipGetDeviceProperties(&p, dev);
    if (e != hipSuccess) return e;
    snprintf(name, nn, "%.*s", (int)(nn ? nn - 1 : 0), p.name);
    snprintf(arch, na, "%.*s", (int)(na ? na - 1 : 0), p.gcnArchName);
    char *colon = strchr(arch, ':');
    if (colon) *colon = '\0';
    return hipSuccess;
}

/* No early launch on AMD (vendor/cuda.h's programmatic dependent launch). */
static inline int rfg_early_launch_ok(int dev) {
    (void)dev;
    return 0;
}

/* ---- vendor BLAS, loaded at run time (blas.c) ------------------------------
 * rocBLAS (what hipBLAS calls on AMD; its gemm_ex ABI has been stable since
 * ROCm 3) is not linked: blas.c dlopens the first of RFG_BLAS_LIBS and
 * resolves four entry points by name. The enum values are rocBLAS's
 * documented constants (rocblas-types.h). */
#define RFG_BLAS_NAME "rocBLAS"
#define RFG_BLAS_LIBS "librocblas.so.4", "librocblas.so.3", "librocblas.so.0", "librocblas.so"
#define RFG_BLAS_SYM_CREATE "rocblas_create_handle"
#define RFG_BLAS_SYM_DESTROY "rocblas_destroy_handle"
#define RFG_BLAS_SYM_STREAM "rocblas_set_stream"
#define RFG_BLAS_SYM_GEMM "rocblas_gemm_ex"
typedef int (*rfg_blas_create_fn)(void **handle);
typedef int (*rfg_blas_destroy_fn)(void *handle);
typedef int (*rfg_blas_stream_fn)(void *handle, rfg_stream stream);
typedef int (*rfg_blas_gemm_fn)(void *handle, int transa, int transb, int m, int n, int k, const void *alpha,
                                const void *a, int a_type, int lda, const void *b, int b_type, int ldb, const void *beta,
                                const void *c, int c_type, int ldc, void *d, int d_type, int ldd, int compute_type,
                                int algo, int32_t solution_index, uint32_t flags);

/* Column-major C[m][n] (ldc m) = A^T B with A float16 k x m (lda k), B
 * float16 k x n (ldb k), C float32; float32 accumulation (rocBLAS "HSS"). */
static inline int rfg_blas_gemm_f16(rfg_blas_gemm_fn gemm, void *h, int m, int n, int k, const void *a, const void *b,
                                    float *c) {
    const float one = 1.0f, zero = 0.0f;
    enum { OP_N = 111, OP_T = 112, R_16F = 150, R_32F = 151, ALGO_STANDARD = 0 };
    return gemm(h, OP_T, OP_N, m, n, k, &one, a, R_16F, k, b, R_16F, k, &zero, c, R_32F, m, c, R_32F, m, R_32F,
                ALGO_STANDARD, 0, 0);
}

/* ---- kernel side (hipcc only): what src/gpu/kernels/compat.h documents ---- */
#ifdef __HIPCC__
#include <hip/hip_fp16.h>
typedef hipStream_t rfk_stream_t;
/* AMD builds run wave64 (CDNA) and wave32 (RDNA) devices from one binary. */
#define RFK_BUILD_HAS_WARP64 1
static inline int rfk_last_error(void) { return (int)hipGetLastError(); }
/* vendor/cuda.h's rfk_occupancy, by HIP's calculator */
template <typename K> static inline int rfk_occupancy(K kern, int block) {
    int n = 0;
    if (hipOccupancyMaxActiveBlocksPerMultiprocessor(&n, kern, block, 0) != hipSuccess) {
        (void)hipGetLastError();
        return 0;
    }
    return n;
}
#define RFK_SHFL_XOR(v, lane_mask, width) __shfl_xor((v), (lane_mask), (width))
#define RFK_SHFL(v, src_lane, width) __shfl((v), (src_lane), (width))
#if defined(__HIP_DEVICE_COMPILE__)
/* Wavefront width of the target being compiled (32 on gfx10+, 64 on gfx9). */
#define RFK_TARGET_WARP __AMDGCN_WAVEFRONT_SIZE
#endif
#define rfk_trap() __builtin_trap()
static __device__ __forceinline__ int rfk_dp4a(int a, int b, int c) {
#if defined(__gfx906__) || defined(__gfx908__) || defined(__gfx90a__) || defined(__gfx940__) || \
    defined(__gfx941__) || defined(__gfx942__) || defined(__gfx1011__) || defined(__gfx1012__) ||     \
    defined(__gfx1030__) || defined(__gfx1031__) || defined(__gfx1032__) || defined(__gfx1034__) ||   \
    defined(__gfx1035__) || defined(__gfx1036__)
    return __builtin_amdgcn_sdot4(a, b, c, false);
#else /* targets without the dot4 instruction (and the host pass) */
    for (int i = 0; i < 32; i += 8) c += (int)(signed char)(a >> i) * (int)(signed char)(b >> i);
    return c;
#endif
}
static __device__ __forceinline__ unsigned rfk_fshr_clamp(unsigned lo, unsigned hi, unsigned s) {
    return s >= 32 ? hi : (unsigned)((((unsigned long long)hi << 32) | lo) >> s);
}
/* a wavefront runs in lockstep: only the compiler must not reorder */
static __device__ __forceinline__ void rfk_syncwarp(void) {
    __builtin_amdgcn_fence(__ATOMIC_RELEASE, "wavefront");
    __builtin_amdgcn_wave_barrier();
    __builtin_amdgcn_fence(__ATOMIC_ACQUIRE, "wavefront");
}
/* No int8 matrix instruction is wired up yet (gfx90a's MFMA has other
 * fragment layouts; gfx1030 has none): kcommon.cuh's emulation runs. */
#define RFK_HAS_MMA_I8 0
/* Nor a float16 one, nor ldmatrix: kcommon.cuh's rfk_mma_f16_k16 and
 * rfk_ldsm_x4 emulate them (and the batched products default to int8). */
#define RFK_HAS_MMA_F16 0
/* No asynchronous global -> shared copy is wired up: kcommon.cuh's
 * rfk_cp_async* copy through registers. */
#define RFK_HAS_CP_ASYNC 0
/* vendor/cuda.h's rfk_prefetch_l2: nothing here (no bulk prefetch is
 * wired up) */
static __device__ __forceinline__ void rfk_prefetch_l2(const void *p, unsigned bytes) { (void)p, (void)bytes; }
/* vendor/cuda.h's rfk_ld_l2: a plain load; the __threadfence() before it
 * is an agent-scope acquire, which invalidates the vector L1 on AMD
 * targets, so another block's fenced stores are seen. */
static __device__ __forceinline__ float4 rfk_ld_l2(const float4 *p) { return *p; }
/* No early launch (vendor/cuda.h's programmatic dependent launch): kernels
 * start when the one ahead has ended, as with a plain launch. */
#define RFK_HAS_EARLY_LAUNCH 0
static __device__ __forceinline__ void rfk_grid_wait(void) {}
static __device__ __forceinline__ void rfk_grid_release(void) {}
template <typename... P, typename... A>
static inline int rfk_launch_early(void (*kern)(P...), dim3 grid, dim3 block, size_t smem, rfk_stream_t stream,
                                   A... args) {
    kern<<<grid, block, smem, stream>>>(args...);
    return rfk_last_error();
}
/* the runtime's names, for the op suite's shim (devrt.cu) */
#define RFK_RT(x) hip##x
typedef hipDeviceProp_t rfk_rt_prop;
typedef hipEvent_t rfk_rt_event;
#endif

#endif
