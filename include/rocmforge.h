/*
 * rocmforge.h - the public C API of ROCmForge.
 *
 * This header holds what every module and every embedder shares: the status
 * codes and the version. Modules keep their own headers under src/; this one
 * grows as the engine's public handles (rf_model, rf_context, ...) land.
 */
#ifndef ROCMFORGE_H
#define ROCMFORGE_H

#ifdef __cplusplus
extern "C" {
#endif

#define RF_VERSION_MAJOR 0
#define RF_VERSION_MINOR 1
#define RF_VERSION_PATCH 0
#define RF_VERSION_STRING "0.1.0"

/* Every fallible function returns one of these. RF_OK is zero, errors are
 * negative so `if (st < 0)` and `if (st != RF_OK)` both work. */
typedef enum rf_status {
    RF_OK            = 0,
    RF_E_INVAL       = -1, /* bad argument from the caller */
    RF_E_NOMEM       = -2, /* allocation failed (or was injected to fail) */
    RF_E_IO          = -3, /* open/read/write/mmap failed */
    RF_E_FORMAT      = -4, /* untrusted input is malformed */
    RF_E_UNSUPPORTED = -5, /* valid input we do not handle */
    RF_E_RANGE       = -6, /* a size or index out of range */
    RF_E_NOTFOUND    = -7, /* a looked-up key or name does not exist */
} rf_status;

/* Short English name of a status ("invalid argument", ...). Never NULL. */
const char *rf_status_str(rf_status st);

const char *rf_version(void);

#ifdef __cplusplus
}
#endif
#endif /* ROCMFORGE_H */
