# gpu.cmake - the GPU backend plugins, librocmforge-cuda.so (nvcc) and
# librocmforge-hip.so (hipcc), built beside the rocmforge binary, which
# dlopens them at start-up (src/backend/gpu_loader.c).
#
# RF_CUDA / RF_HIP default to ON when nvcc / hipcc is found. Each plugin is
# the host side (src/gpu/*.c, plain C17 against the vendor's runtime API,
# compiled by the C compiler) plus the kernels (src/gpu/kernels/*.cu and
# src/gpu/*.cu, compiled by the vendor compiler through custom commands: no
# CMake CUDA/HIP language, so Debian's hipcc 5.2 works and the C flags of
# the rest of the build, sanitizers included, never reach nvcc/hipcc). Both
# compile with -Werror. The CUDA runtime is linked statically, so the plugin
# needs only the driver (libcuda.so.1), which it looks for at open.
#
#   RF_CUDA_ARCHS  default "80;90": SASS for each, plus PTX of the last (RF_CUDA_PTX)
#   RF_HIP_ARCHS   default "gfx90a;gfx1030"

if(NOT RF_GPU_SOURCE_DIR)
  set(RF_GPU_SOURCE_DIR ${CMAKE_SOURCE_DIR})
endif()
find_program(RF_NVCC_EXE nvcc HINTS /usr/local/cuda/bin)
find_program(RF_HIPCC_EXE hipcc)
if(RF_NVCC_EXE)
  set(RF_CUDA_DEFAULT ON)
else()
  set(RF_CUDA_DEFAULT OFF)
endif()
if(RF_HIPCC_EXE)
  set(RF_HIP_DEFAULT ON)
else()
  set(RF_HIP_DEFAULT OFF)
endif()
set(RF_CUDA ${RF_CUDA_DEFAULT} CACHE BOOL "Build the CUDA GPU backend plugin (default: ON when nvcc is found)")
set(RF_HIP ${RF_HIP_DEFAULT} CACHE BOOL "Build the HIP GPU backend plugin (default: ON when hipcc is found)")
set(RF_CUDA_ARCHS "80;90" CACHE STRING "CUDA SM targets of the plugin")
option(RF_CUDA_PTX "Embed PTX of the last CUDA target (newer GPUs JIT it); OFF: SASS only" ON)
set(RF_HIP_ARCHS "gfx90a;gfx1030" CACHE STRING "AMD GPU targets of the plugin")

set(RF_GPU_HOST_SRC ${RF_GPU_SOURCE_DIR}/src/gpu/blas.c ${RF_GPU_SOURCE_DIR}/src/gpu/device.c ${RF_GPU_SOURCE_DIR}/src/gpu/layers.c
                    ${RF_GPU_SOURCE_DIR}/src/gpu/limits.c)
file(GLOB RF_GPU_CU_SRC CONFIGURE_DEPENDS ${RF_GPU_SOURCE_DIR}/src/gpu/*.cu ${RF_GPU_SOURCE_DIR}/src/gpu/kernels/*.cu)
# devrt.cu is the op suite's runtime shim (tests/gpu), not part of the backend
list(FILTER RF_GPU_CU_SRC EXCLUDE REGEX "/devrt\\.cu$")

# rf_gpu_objects(<out-var> <vendor> <compiler> <flags...>): one object per .cu
function(rf_gpu_objects out vendor compiler)
  set(objs)
  foreach(src ${RF_GPU_CU_SRC})
    file(RELATIVE_PATH rel ${RF_GPU_SOURCE_DIR} ${src})
    string(REPLACE "/" "_" name ${rel})
    set(obj ${CMAKE_BINARY_DIR}/gpu-${vendor}/${name}.o)
    add_custom_command(
      OUTPUT ${obj}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/gpu-${vendor}
      COMMAND ${compiler} ${ARGN} -MD -MF ${obj}.d -c ${src} -o ${obj}
      DEPENDS ${src}
      DEPFILE ${obj}.d
      COMMENT "${vendor}: ${rel}"
      VERBATIM)
    list(APPEND objs ${obj})
  endforeach()
  set(${out} ${objs} PARENT_SCOPE)
endfunction()

set(RF_GPU_CXX_COMMON -std=c++17 -O3 -I${RF_GPU_SOURCE_DIR}/include -I${RF_GPU_SOURCE_DIR}/src
                      -I${RF_GPU_SOURCE_DIR}/src/gpu/kernels)

# rf_gpu_plugin(<vendor> <objs> <defines> <includes> <libs>)
function(rf_gpu_plugin vendor objs define incs libs built_for)
  set(t rocmforge-${vendor})
  add_library(${t} SHARED ${RF_GPU_HOST_SRC} ${objs})
  set_source_files_properties(${objs} PROPERTIES EXTERNAL_OBJECT TRUE GENERATED TRUE)
  target_include_directories(${t} PRIVATE ${RF_GPU_SOURCE_DIR}/include ${RF_GPU_SOURCE_DIR}/src ${incs})
  target_compile_definitions(${t} PRIVATE ${define} "RFG_BUILT_FOR=\"${built_for}\"")
  # only rf_gpu_plugin_v1 is exported; a missing kernel is a link error, not a dlopen surprise
  target_compile_options(${t} PRIVATE -fvisibility=hidden)
  target_link_options(${t} PRIVATE -Wl,--no-undefined)
  # the kernel objects are C++ (templates, static locals): libstdc++ for its runtime
  target_link_libraries(${t} PRIVATE ${libs} stdc++ ${CMAKE_DL_LIBS} Threads::Threads ${RF_LIBM})
  set_target_properties(${t} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR} LINKER_LANGUAGE C)
  if(TARGET rocmforge)
    add_dependencies(rocmforge ${t})
  endif()
endfunction()

if(RF_CUDA)
  if(NOT RF_NVCC_EXE)
    message(FATAL_ERROR "-DRF_CUDA=ON needs nvcc (CUDA toolkit on PATH)")
  endif()
  get_filename_component(RF_CUDA_ROOT ${RF_NVCC_EXE} DIRECTORY)
  get_filename_component(RF_CUDA_ROOT ${RF_CUDA_ROOT} DIRECTORY)
  find_path(RF_CUDA_INCLUDE cuda_runtime_api.h HINTS ${RF_CUDA_ROOT}/include ${RF_CUDA_ROOT}/targets/x86_64-linux/include
            NO_DEFAULT_PATH)
  find_library(RF_CUDART_STATIC cudart_static HINTS ${RF_CUDA_ROOT}/lib64 ${RF_CUDA_ROOT}/lib
               ${RF_CUDA_ROOT}/targets/x86_64-linux/lib NO_DEFAULT_PATH)
  if(NOT RF_CUDA_INCLUDE OR NOT RF_CUDART_STATIC)
    message(FATAL_ERROR "CUDA toolkit at ${RF_CUDA_ROOT}: cuda_runtime_api.h or libcudart_static.a not found")
  endif()
  set(gencode)
  set(built_for)
  list(LENGTH RF_CUDA_ARCHS n)
  math(EXPR last "${n} - 1")
  set(i 0)
  foreach(a ${RF_CUDA_ARCHS})
    if(i EQUAL last AND RF_CUDA_PTX)
      list(APPEND gencode -gencode arch=compute_${a},code=[sm_${a},compute_${a}])
    else()
      list(APPEND gencode -gencode arch=compute_${a},code=sm_${a})
    endif()
    string(APPEND built_for "sm_${a} ")
    math(EXPR i "${i} + 1")
  endforeach()
  string(STRIP "${built_for}" built_for)
  rf_gpu_objects(cuda_objs cuda ${RF_NVCC_EXE} ${RF_GPU_CXX_COMMON} -DRF_GPU_CUDA ${gencode}
                 -Werror all-warnings -Xcompiler=-fPIC,-fvisibility=hidden,-Wall,-Werror
                 -Xcompiler=-Wno-unused-parameter)
  rf_gpu_plugin(cuda "${cuda_objs}" RF_GPU_CUDA ${RF_CUDA_INCLUDE} "${RF_CUDART_STATIC};rt" "${built_for}")
  message(STATUS "GPU: CUDA plugin (${built_for}) with ${RF_NVCC_EXE}")
endif()

if(RF_HIP)
  if(NOT RF_HIPCC_EXE)
    message(FATAL_ERROR "-DRF_HIP=ON needs hipcc (apt install hipcc)")
  endif()
  find_library(RF_AMDHIP amdhip64 HINTS /opt/rocm/lib)
  find_path(RF_HIP_INCLUDE hip/hip_runtime_api.h HINTS /opt/rocm/include)
  if(NOT RF_AMDHIP OR NOT RF_HIP_INCLUDE)
    message(FATAL_ERROR "HIP: libamdhip64 or hip/hip_runtime_api.h not found (apt install hipcc)")
  endif()
  set(offload)
  set(built_for)
  foreach(a ${RF_HIP_ARCHS})
    list(APPEND offload --offload-arch=${a})
    string(APPEND built_for "${a} ")
  endforeach()
  string(STRIP "${built_for}" built_for)
  rf_gpu_objects(hip_objs hip ${RF_HIPCC_EXE} ${RF_GPU_CXX_COMMON} -DRF_GPU_HIP ${offload}
                 -fPIC -fvisibility=hidden -Wall -Werror -Wno-unused-parameter)
  rf_gpu_plugin(hip "${hip_objs}" RF_GPU_HIP ${RF_HIP_INCLUDE} "${RF_AMDHIP}" "${built_for}")
  message(STATUS "GPU: HIP plugin (${built_for}) with ${RF_HIPCC_EXE}")
endif()

# Failing stand-ins for the plugin (tests/fakegpu), for the CPU-fallback tests:
# build-dir/fake-gpu/{fail,abi,nosym,upload}/librocmforge-cuda.so. Plain C, always built
# (outside the plugin-only project).
if(TARGET rocmforge)
  foreach(mode fail abi nosym upload)
    if(mode STREQUAL "fail")
      set(n 1)
    elseif(mode STREQUAL "abi")
      set(n 2)
    elseif(mode STREQUAL "nosym")
      set(n 3)
    else()
      set(n 4)
    endif()
    add_library(rf_fake_gpu_${mode} SHARED ${RF_GPU_SOURCE_DIR}/tests/fakegpu/fake_plugin.c)
    target_include_directories(rf_fake_gpu_${mode} PRIVATE ${RF_GPU_SOURCE_DIR}/include ${RF_GPU_SOURCE_DIR}/src)
    target_compile_definitions(rf_fake_gpu_${mode} PRIVATE FAKE_MODE=${n})
    set_target_properties(rf_fake_gpu_${mode} PROPERTIES OUTPUT_NAME rocmforge-cuda
                          LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/fake-gpu/${mode})
    add_dependencies(rocmforge rf_fake_gpu_${mode})
  endforeach()
endif()
