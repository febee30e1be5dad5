/*
 * vendor.h - picks the vendor header from the build's RF_GPU_HIP /
 * RF_GPU_CUDA (exactly one is defined). Included by the plugin's host files
 * and by the .cu files of src/gpu; usable from C and C++.
 */
#ifndef RF_GPU_VENDOR_H
#define RF_GPU_VENDOR_H

#if defined(RF_GPU_HIP) == defined(RF_GPU_CUDA)
#error "define exactly one of RF_GPU_HIP, RF_GPU_CUDA"
#endif
#if defined(RF_GPU_HIP)
#include "vendor/hip.h"
#else
#include "vendor/cuda.h"
#endif

#endif
