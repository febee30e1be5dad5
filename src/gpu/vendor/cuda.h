/*
 * vendor/cuda.h - the CUDA side of the vendor switch: maps the rfg_* names
 * the GPU backend's host code (the .c files of src/gpu, plain C17 against the runtime
 * API) and kernels use to the CUDA runtime. With vendor/hip.h, the only
 * place that knows which vendor is compiled; gpu-impl.h picks one from
 * RF_GPU_HIP. Names follow the runtime's, without the prefix.
 */
#ifndef RF_GPU_VENDOR_CUDA_H
#define RF_GPU_VENDOR_CUDA_H

#ifdef __CUDACC__
#include <cuda_runtime.h>
#else
#include <cuda_runtime_api.h>
#endif
#include <stdio.h>

#define RFG_VENDOR "cuda"
/* The driver library the runtime needs; looked for first so a missing
 * driver is reported by name rather than as "insufficient driver". */
#define RFG_DRIVER_LIB "libcuda.so.1"

typedef cudaError_t rfg_error;
typedef cudaStream_t rfg_stream;
typedef cudaEvent_t rfg_event;
typedef cudaGraph_t rfg_graph;
typedef cudaGraphExec_t rfg_graph_exec;
typedef enum cudaDeviceAttr rfg_attr;

#define rfg_success cudaSuccess
#define rfg_error_no_device cudaErrorNoDevice
#define rfg_error_no_image cudaErrorNoKernelImageForDevice
#define rfg_error_invalid_function cudaErrorInvalidDeviceFunction

#define RFG_ATTR_BLOCK_X cudaDevAttrMaxBlockDimX
#define RFG_ATTR_BLOCK_Y cudaDevAttrMaxBlockDimY
#define RFG_ATTR_BLOCK_Z cudaDevAttrMaxBlockDimZ
#define RFG_ATTR_THREADS_PER_BLOCK cudaDevAttrMaxThreadsPerBlock
#define RFG_ATTR_GRID_X cudaDevAttrMaxGridDimX
#define RFG_ATTR_GRID_Y cudaDevAttrMaxGridDimY
#define RFG_ATTR_GRID_Z cudaDevAttrMaxGridDimZ
#define RFG_ATTR_SMEM_PER_BLOCK cudaDevAttrMaxSharedMemoryPerBlock
#define RFG_ATTR_REGS_PER_BLOCK cudaDevAttrMaxRegistersPerBlock
#define RFG_ATTR_WARP_SIZE cudaDevAttrWarpSize
#define RFG_ATTR_UNITS cudaDevAttrMultiProcessorCount
#define RFG_ATTR_CLOCK_KHZ cudaDevAttrClockRate

#define rfg_get_error_string cudaGetErrorString
#define rfg_get_error_name cudaGetErrorName
#define rfg_get_last_error cudaGetLastError
#define rfg_get_device_count cudaGetDeviceCount
#define rfg_set_device cudaSetDevice
#define rfg_device_get_attribute cudaDeviceGetAttribute
#define rfg_device_synchronize cudaDeviceSynchronize
#define rfg_runtime_get_version cudaRuntimeGetVersion
#define rfg_driver_get_version cudaDriverGetVersion
#define rfg_mem_get_info cudaMemGetInfo
#define rfg_malloc cudaMalloc
#define rfg_free cudaFree
#define rfg_malloc_host(p, n) cudaMallocHost((p), (n))
#define rfg_free_host cudaFreeHost
#define rfg_memset_async cudaMemsetAsync
#define rfg_memcpy_h2d_async(d, s, n, st) cudaMemcpyAsync((d), (s), (n), cudaMemcpyHostToDevice, (st))
#define rfg_memcpy_d2h_async(d, s, n, st) cudaMemcpyAsync((d), (s), (n), cudaMemcpyDeviceToHost, (st))
#define rfg_memcpy_d2d_async(d, s, n, st) cudaMemcpyAsync((d), (s), (n), cudaMemcpyDeviceToDevice, (st))
#define rfg_memcpy_h2d(d, s, n) cudaMemcpy((d), (s), (n), cudaMemcpyHostToDevice)
#define rfg_memcpy_d2h(d, s, n) cudaMemcpy((d), (s), (n), cudaMemcpyDeviceToHost)
#define rfg_memcpy2d_d2d_async(d, dp, s, sp, w, h, st) \
    cudaMemcpy2DAsync((d), (dp), (s), (sp), (w), (h), cudaMemcpyDeviceToDevice, (st))
#define rfg_memcpy2d_d2h_async(d, dp, s, sp, w, h, st) \
    cudaMemcpy2DAsync((d), (dp), (s), (sp), (w), (h), cudaMemcpyDeviceToHost, (st))
#define rfg_stream_create(s) cudaStreamCreateWithFlags((s), cudaStreamNonBlocking)
#define rfg_stream_destroy cudaStreamDestroy
#define rfg_stream_synchronize cudaStreamSynchronize
#define rfg_event_create(e) cudaEventCreate(e)
#define rfg_event_create_sync_only(e) cudaEventCreateWithFlags((e), cudaEventDisableTiming)
#define rfg_stream_wait_event(st, e) cudaStreamWaitEvent((st), (e), 0)
#define rfg_event_destroy cudaEventDestroy
#define rfg_event_record cudaEventRecord
#define rfg_event_synchronize cudaEventSynchronize
#define rfg_event_elapsed_ms cudaEventElapsedTime
#define rfg_stream_begin_capture(s) cudaStreamBeginCapture((s), cudaStreamCaptureModeThreadLocal)
#define rfg_stream_end_capture cudaStreamEndCapture
#define rfg_graph_instantiate(e, g) cudaGraphInstantiate((e), (g), 0)
#define rfg_graph_launch cudaGraphLaunch
#define rfg_graph_destroy cudaGraphDestroy
#define rfg_graph_exec_destroy cudaGraphExecDestroy

/* Name and arch ("sm_90") of a device. Strings only: no limit is read
 * here (those come from rfg_device_get_attribute, one attribute each). */
static inline rfg_error rfg_device_name_arch(int dev, char *name, size_t nn, char *arch, size_t na) {
    int major = 0, minor = 0;
    rfg_error e = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
    if (e == cudaSuccess) e = cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
    if (e != cudaSuccess) return e;
    snprintf(arch, na, "sm_%d%d", major, minor);
    struct cudaDeviceProp p;
    e = cudaGetDeviceProperties(&p, dev);
    if (e != cudaSuccess) return e;
    snprintf(name, nn, "%.*s", (int)(nn ? nn - 1 : 0), p.name);
    return cudaSuccess;
}

/* Whether kernels may be launched early on this device (programmatic
 * dependent launch, compute capability 9.0 and later; see the kernel side's
 * rfk_launch_early). */
static inline int rfg_early_launch_ok(int dev) {
    int v = 0;
    return cudaDeviceGetAttribute(&v, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess && v >= 9;
}

/* ---- vendor BLAS, loaded at run time (blas.c) ------------------------------
 * cuBLAS is not linked: blas.c dlopens the first of RFG_BLAS_LIBS and
 * resolves four entry points by name. The enum values passed are the
 * library's documented constants (cublas_api.h / library_types.h). */
#define RFG_BLAS_NAME "cuBLAS"
#define RFG_BLAS_LIBS "libcublas.so.13", "libcublas.so.12", "libcublas.so.11", "libcublas.so"
#define RFG_BLAS_SYM_CREATE "cublasCreate_v2"
#define RFG_BLAS_SYM_DESTROY "cublasDestroy_v2"
#define RFG_BLAS_SYM_STREAM "cublasSetStream_v2"
#define RFG_BLAS_SYM_GEMM "cublasGemmEx"
typedef int (*rfg_blas_create_fn)(void **handle);
typedef int (*rfg_blas_destroy_fn)(void *handle);
typedef int (*rfg_blas_stream_fn)(void *handle, rfg_stream stream);
typedef int (*rfg_blas_gemm_fn)(void *handle, int transa, int transb, int m, int n, int k, const void *alpha,
                                const void *a, int a_type, int lda, const void *b, int b_type, int ldb, const void *beta,
                                void *c, int c_type, int ldc, int compute_type, int algo);

/* Column-major C[m][n] (ldc m) = A^T B with A float16 k x m (lda k), B
 * float16 k x n (ldb k), C float32; float32 accumulation, tensor cores. */
static inline int rfg_blas_gemm_f16(rfg_blas_gemm_fn gemm, void *h, int m, int n, int k, const void *a, const void *b,
                                    float *c) {
    const float one = 1.0f, zero = 0.0f;
    enum { OP_N = 0, OP_T = 1, R_16F = 2, R_32F = 0, COMPUTE_32F = 68, GEMM_DEFAULT = -1 };
    return gemm(h, OP_T, OP_N, m, n, k, &one, a, R_16F, k, b, R_16F, k, &zero, c, R_32F, m, COMPUTE_32F, GEMM_DEFAULT);
}

/* ---- kernel side (nvcc only): what src/gpu/kernels/compat.h documents ----- */
#ifdef __CUDACC__
#include <cuda_fp16.h>
typedef cudaStream_t rfk_stream_t;
#define RFK_BUILD_HAS_WARP64 0 /* NVIDIA warps are 32 wide */
static inline int rfk_last_error(void) { return (int)cudaGetLastError(); }
/* Blocks of `block` threads of kern (no dynamic shared memory) one
 * multiprocessor of the current device holds at once, by the runtime's
 * occupancy calculator; 0 where it cannot tell (no device), the error
 * cleared so that no later launch reports it. */
template <typename K> static inline int rfk_occupancy(K kern, int block) {
    int n = 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kern, block, 0) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return n;
}
#define RFK_SHFL_XOR(v, lane_mask, width) __shfl_xor_sync(0xffffffffu, (v), (lane_mask), (width))
#define RFK_SHFL(v, src_lane, width) __shfl_sync(0xffffffffu, (v), (src_lane), (width))
#if defined(__CUDA_ARCH__)
#define RFK_TARGET_WARP 32
#endif
#define rfk_trap() __trap()
static __device__ __forceinline__ int rfk_dp4a(int a, int b, int c) { return __dp4a(a, b, c); }
static __device__ __forceinline__ unsigned rfk_fshr_clamp(unsigned lo, unsigned hi, unsigned s) {
    return __funnelshift_rc(lo, hi, s);
}
static __device__ __forceinline__ void rfk_syncwarp(void) { __syncwarp(); }
/* int8 tensor-core products on one 32-lane group, in the fragment layout
 * kcommon.cuh documents for rfk_mma_i8_k32 / _k16 (PTX mma.m16n8k32 and
 * m16n8k16, s8 inputs, s32 accumulators): sm_80 and later; other targets
 * (and the host pass) use kcommon.cuh's shuffle emulation. */
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
#define RFK_HAS_MMA_I8 1
static __device__ __forceinline__ void rfk_mma_hw_i8_k32(int c[4], const int a[4], const int b[2]) {
    asm("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};"
        : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
static __device__ __forceinline__ void rfk_mma_hw_i8_k16(int c[4], const int a[2], int b) {
    asm("mma.sync.aligned.m16n8k16.row.col.s32.s8.s8.s32 {%0, %1, %2, %3}, {%4, %5}, {%6}, {%0, %1, %2, %3};"
        : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(b));
}
#else
#define RFK_HAS_MMA_I8 0
#endif
/* float16 tensor-core products (PTX mma.m16n8k16, f16 inputs, f32
 * accumulators) and the 8x8 fragment loads from shared memory that feed
 * them (ldmatrix), sm_80 and later, in the layouts kcommon.cuh documents
 * for rfk_mma_f16_k16 and rfk_ldsm_x4. */
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
#define RFK_HAS_MMA_F16 1
static __device__ __forceinline__ void rfk_mma_hw_f16_k16(float c[4], const int a[4], const int b[2]) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
static __device__ __forceinline__ void rfk_ldsm_x4_hw(int r[4], const void *row) {
    const unsigned p = (unsigned)__cvta_generic_to_shared(row);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(p));
}
#else
#define RFK_HAS_MMA_F16 0
#endif
/* Asynchronous copies of 4, 8 or 16 bytes from global to shared memory
 * (PTX cp.async, sm_80 and later), committed in groups and waited for
 * (wait<N>: all but the N most recent groups have landed); kcommon.cuh's
 * rfk_cp_async* wrap them, with a plain copy where there are none. */
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
#define RFK_HAS_CP_ASYNC 1
template <int B> static __device__ __forceinline__ void rfk_cp_async_hw(void *dst, const void *src) {
    const unsigned d = (unsigned)__cvta_generic_to_shared(dst);
    if constexpr (B == 16)
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(d), "l"(src) : "memory");
    else
        asm volatile("cp.async.ca.shared.global [%0], [%1], %2;" ::"r"(d), "l"(src), "n"(B) : "memory");
}
static __device__ __forceinline__ void rfk_cp_async_commit_hw(void) { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N> static __device__ __forceinline__ void rfk_cp_async_wait_hw(void) {
    asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}
#else
#define RFK_HAS_CP_ASYNC 0
#endif
/* Asks L2 to fetch [p, p + bytes) (p 16-byte aligned, bytes a multiple of
 * 16) ahead of its use, without waiting: one bulk prefetch on sm_90 and
 * later (PTX cp.async.bulk.prefetch.L2), nothing before. */
static __device__ __forceinline__ void rfk_prefetch_l2(const void *p, unsigned bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(p), "r"(bytes) : "memory");
#else
    (void)p, (void)bytes;
#endif
}
/* A load that another block's stores, made visible by __threadfence()
 * and an atomic, cannot miss: through L2 only (PTX ld.global.cg), since
 * the multiprocessor's L1 is not kept coherent. */
static __device__ __forceinline__ float4 rfk_ld_l2(const float4 *p) { return __ldcg(p); }
/* Early launch (programmatic dependent launch, sm_90 and later). A kernel
 * launched by rfk_launch_early may start while the kernel ahead of it in
 * the stream still runs, once every block of that one has called
 * rfk_grid_release() (or ended); its rfk_grid_wait() (PTX griddepcontrol)
 * holds it until that kernel has ended and its writes are visible. Both
 * are no-ops on older targets and in kernels launched the plain way. */
#define RFK_HAS_EARLY_LAUNCH 1
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
static __device__ __forceinline__ void rfk_grid_wait(void) { asm volatile("griddepcontrol.wait;" ::: "memory"); }
static __device__ __forceinline__ void rfk_grid_release(void) {
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
}
#else
static __device__ __forceinline__ void rfk_grid_wait(void) {}
static __device__ __forceinline__ void rfk_grid_release(void) {}
#endif
template <typename... P, typename... A>
static inline int rfk_launch_early(void (*kern)(P...), dim3 grid, dim3 block, size_t smem, rfk_stream_t stream,
                                   A... args) {
    cudaLaunchAttribute at;
    at.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at.val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid, cfg.blockDim = block, cfg.dynamicSmemBytes = smem, cfg.stream = stream;
    cfg.attrs = &at, cfg.numAttrs = 1;
    return (int)cudaLaunchKernelEx(&cfg, kern, args...);
}
/* the runtime's names, for the op suite's shim (devrt.cu) */
#define RFK_RT(x) cuda##x
typedef cudaDeviceProp rfk_rt_prop;
typedef cudaEvent_t rfk_rt_event;
#endif

#endif
