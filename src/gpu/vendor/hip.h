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
#define rfg_stream_create(s) hipStreamCreateWithFlags((s), hipStreamNonBlocking)
#define rfg_stream_destroy hipStreamDestroy
#define rfg_stream_synchronize hipStreamSynchronize
#define rfg_event_create(e) hipEventCreate(e)
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

#endif
