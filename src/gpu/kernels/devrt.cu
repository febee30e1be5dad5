/*
 * devrt.cu - the runtime shim of devrt.h (test and benchmark support),
 * written once over the vendor headers' runtime names (RFK_RT).
 */
#include <string.h>

#include "compat.h"
#include "devrt.h"

#define RT(x) RFK_RT(x)

static rfk_rt_event ev_start, ev_stop;
static int ev_made;

extern "C" int rfk_rt_init(int *warp_size, int *n_units, char *name, size_t name_len) {
    int st = (int)RT(SetDevice)(0);
    if (st) return st;
    rfk_rt_prop prop;
    if ((st = (int)RT(GetDeviceProperties)(&prop, 0))) return st;
    if (warp_size) *warp_size = prop.warpSize;
    if (n_units) *n_units = prop.multiProcessorCount;
    if (name && name_len) {
        strncpy(name, prop.name, name_len - 1);
        name[name_len - 1] = 0;
    }
    return 0;
}

extern "C" int rfk_rt_early_launch(void) {
    rfk_rt_prop prop;
    return RFK_HAS_EARLY_LAUNCH && RT(GetDeviceProperties)(&prop, 0) == RT(Success) && prop.major >= 9;
}

extern "C" void *rfk_rt_alloc(size_t bytes) {
    void *p = NULL;
    return RT(Malloc)(&p, bytes ? bytes : 1) == RT(Success) ? p : NULL;
}
extern "C" void rfk_rt_free(void *p) {
    if (p) (void)RT(Free)(p);
}
extern "C" int rfk_rt_upload(void *d, const void *s, size_t n) { return (int)RT(Memcpy)(d, s, n, RT(MemcpyHostToDevice)); }
extern "C" int rfk_rt_download(void *d, const void *s, size_t n) {
    return (int)RT(Memcpy)(d, s, n, RT(MemcpyDeviceToHost));
}
extern "C" int rfk_rt_memset(void *d, int byte, size_t n) { return (int)RT(Memset)(d, byte, n); }
extern "C" int rfk_rt_copy(void *d, const void *s, size_t n) {
    return (int)RT(MemcpyAsync)(d, s, n, RT(MemcpyDeviceToDevice), 0);
}
extern "C" int rfk_rt_sync(void) {
    int st = (int)RT(DeviceSynchronize)();
    int le = (int)RT(GetLastError)();
    return st ? st : le;
}
extern "C" int rfk_rt_timer_start(void) {
    int st;
    if (!ev_made) {
        if ((st = (int)RT(EventCreate)(&ev_start)) || (st = (int)RT(EventCreate)(&ev_stop))) return st;
        ev_made = 1;
    }
    return (int)RT(EventRecord)(ev_start, 0);
}
extern "C" int rfk_rt_timer_stop_ms(float *ms) {
    int st;
    if ((st = (int)RT(EventRecord)(ev_stop, 0)) || (st = (int)RT(EventSynchronize)(ev_stop))) return st;
    return (int)RT(EventElapsedTime)(ms, ev_start, ev_stop);
}
extern "C" const char *rfk_rt_error_str(int code) { return RT(GetErrorString)((RT(Error_t))code); }
