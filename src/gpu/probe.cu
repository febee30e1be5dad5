/*
 * probe.cu - one trivial kernel, launched once when a device is opened: if
 * the plugin carries no kernel image for the device's arch (a gfx target or
 * SM the build did not include), this launch fails with the runtime's "no
 * kernel image" error and the plugin reports the device's name and arch
 * instead of failing later inside the first real op. Built with the same
 * target list as src/gpu/kernels.
 */
#include "gpu/vendor.h"

__global__ void rfg_probe(int *out) {
    if (out) *out = 1;
}

extern "C" int rfg_probe_kernel_image(void *stream) {
    rfg_probe<<<1, 1, 0, (rfg_stream)stream>>>(nullptr);
    int st = (int)rfg_get_last_error();
    if (st) return st;
    return (int)rfg_stream_synchronize((rfg_stream)stream);
}
