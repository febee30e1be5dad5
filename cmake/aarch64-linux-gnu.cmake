# aarch64-linux-gnu.cmake - cross-compiles for 64-bit Arm Linux with Debian's
# gcc-aarch64-linux-gnu, so the NEON kernel sets are built and tested on an
# x86-64 machine (make test-neon). Tests run through qemu-aarch64; binaries
# are linked statically so qemu needs no Arm shared libraries at run time.
# Arm libraries (jansson for the kernel test) come from Debian's multiarch
# packages (libjansson-dev:arm64) under /usr/lib/aarch64-linux-gnu.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static")
# Static archives only (libm.a, libjansson.a). The platform files reset the
# suffix list after a toolchain file runs, so this file is also included at
# the end of project() (CMAKE_PROJECT_INCLUDE), where the setting sticks.
set(CMAKE_FIND_LIBRARY_SUFFIXES .a)
set(CMAKE_PROJECT_INCLUDE ${CMAKE_CURRENT_LIST_FILE})

# Look for libraries and headers of the target only; programs on the host.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

# pkg-config: only the target's .pc files (multiarch), never the host's.
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")

# ctest runs every test through qemu; QEMU_CPU in the environment picks the
# CPU model (max: dotprod and i8mm; cortex-a53: plain Armv8.0).
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64;-L;/usr/aarch64-linux-gnu)
