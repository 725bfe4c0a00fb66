# The HIP backend's build (RECURRENT_DEPTH_HIP=ON): Debian 12's hipcc (HIP 5.2 on clang 15) compiles
# the sources that contain HIP kernels into objects that the project's own C++ compiler links with
# libamdhip64.
#
# Why not CMake's HIP language: CMake 3.25's enable_language(HIP) accepts only a ROCm clang that
# finds <ROCm root>/lib/cmake/hip-lang, and Debian installs that package under
# /usr/lib/x86_64-linux-gnu/cmake/hip-lang (configure fails: "The ROCm root directory /usr does not
# contain the HIP runtime CMake package"); hipcc itself is refused as CMAKE_HIP_COMPILER. Nor
# find_package(hip)'s hip::device: it adds clang-only flags to every C++ compile, which would make
# the whole build clang (and OpenMP then needs libomp-15-dev). A custom command per source keeps
# the rest of the build on the usual compiler and the CPU build unchanged.
include_guard(GLOBAL)

# Offload architectures: CDNA2 (MI200: gfx90a), CDNA1 (MI100: gfx908), CDNA3 (MI300 early:
# gfx940), RDNA2 (gfx1030). Debian's rocm-device-libs 5.2 has no gfx942 (MI300X as shipped: clang
# 15 rejects the name) nor gfx1100 (RDNA3: "cannot find ROCm device library").
set(RECURRENT_DEPTH_HIP_ARCHITECTURES "gfx90a;gfx908;gfx940;gfx1030" CACHE STRING
  "GPU architectures the HIP kernels are compiled for (hipcc --offload-arch)")

# RECURRENT_DEPTH_HIP_CPU: the include directory of ROCm's HIP-CPU runtime (header-only, HIP on
# the CPU's threads; github.com/ROCm/HIP-CPU, not in Debian). When set, the project's C++ compiler
# compiles the same HIP sources as plain C++ against it (TBB from libtbb-dev runs its grids), so the
# HIP kernels' tests run on a machine without a GPU. Slow, and blind to what only a GPU's memory
# model shows, but the kernels' arithmetic, indexing, shared memory and barriers are all exercised.
set(RECURRENT_DEPTH_HIP_CPU "" CACHE PATH
  "Include directory of ROCm's HIP-CPU runtime: run the HIP tests on the CPU instead of with hipcc")

# RECURRENT_DEPTH_HIP_PLATFORM=nvidia: HIP's NVIDIA platform instead, for NVIDIA GPUs: the same
# sources compiled by nvcc (CUDA 12 or 13; find_package(CUDAToolkit)) against the HIP headers of
# Debian's libamdhip64-dev (hip/nvidia_detail: the HIP API as inline functions over CUDA's), for
# RECURRENT_DEPTH_CUDA_ARCHITECTURES; CUDA's runtime linked statically, so the programs need only
# the NVIDIA driver. backends/hip/hip_nvidia_compat.hpp, force-included, lets HIP 5.2's headers
# compile against CUDA 12 and 13.
set(RECURRENT_DEPTH_HIP_PLATFORM "amd" CACHE STRING
  "HIP platform of RECURRENT_DEPTH_HIP: amd (hipcc) or nvidia (nvcc through HIP's NVIDIA headers)")
set_property(CACHE RECURRENT_DEPTH_HIP_PLATFORM PROPERTY STRINGS amd nvidia)
set(RECURRENT_DEPTH_CUDA_ARCHITECTURES "90" CACHE STRING
  "NVIDIA architectures of RECURRENT_DEPTH_HIP_PLATFORM=nvidia (90: H100, H200), with PTX for newer")

if(RECURRENT_DEPTH_HIP_CPU)
  if(NOT EXISTS "${RECURRENT_DEPTH_HIP_CPU}/hip/hip_runtime.h")
    message(FATAL_ERROR "recurrent_depth: RECURRENT_DEPTH_HIP_CPU=${RECURRENT_DEPTH_HIP_CPU} has no "
      "hip/hip_runtime.h (expected the include directory of a HIP-CPU checkout)")
  endif()
  find_package(TBB REQUIRED)  # Debian 12: libtbb-dev
  find_package(Threads REQUIRED)
  set(RECURRENT_DEPTH_HIP_RUNTIME TBB::tbb Threads::Threads)
elseif(RECURRENT_DEPTH_HIP_PLATFORM STREQUAL "nvidia")
  find_package(CUDAToolkit REQUIRED)
  if(NOT EXISTS "${CUDAToolkit_NVCC_EXECUTABLE}")
    message(FATAL_ERROR "recurrent_depth: RECURRENT_DEPTH_HIP_PLATFORM=nvidia needs nvcc")
  endif()
  set(RECURRENT_DEPTH_HIP_RUNTIME CUDA::cudart_static)
  set(_rd_cuda_compat
    "${PROJECT_SOURCE_DIR}/include/recurrent_depth/backends/hip/hip_nvidia_compat.hpp")
elseif(RECURRENT_DEPTH_HIP_PLATFORM STREQUAL "amd")
  find_program(RECURRENT_DEPTH_HIPCC hipcc)
  find_library(RECURRENT_DEPTH_AMDHIP64 amdhip64)
  if(NOT RECURRENT_DEPTH_HIPCC OR NOT RECURRENT_DEPTH_AMDHIP64)
    message(FATAL_ERROR "recurrent_depth: RECURRENT_DEPTH_HIP needs hipcc and libamdhip64 "
      "(Debian 12: apt-get install hipcc libamdhip64-dev; scripts/setup_debian.sh)")
  endif()
  set(RECURRENT_DEPTH_HIP_RUNTIME "${RECURRENT_DEPTH_AMDHIP64}")
else()
  message(FATAL_ERROR "recurrent_depth: RECURRENT_DEPTH_HIP_PLATFORM=${RECURRENT_DEPTH_HIP_PLATFORM}, "
    "expected amd or nvidia")
endif()

# recurrent_depth_hip_object(<output variable> <source> [include directories...]): compiles <source>
# with hipcc for RECURRENT_DEPTH_HIP_ARCHITECTURES (or nvcc, or the C++ compiler against HIP-CPU)
# into an object in the current binary directory (rebuilt when any header it includes changes) and
# sets the variable to its path, for add_executable / target_sources.
function(recurrent_depth_hip_object variable source)
  get_filename_component(name "${source}" NAME_WE)
  set(object "${CMAKE_CURRENT_BINARY_DIR}/${name}.hip.o")
  set(flags -std=c++20 -O2 -Wall -Wextra)
  set(includes "-I${PROJECT_SOURCE_DIR}/include")
  if(RECURRENT_DEPTH_HIP_CPU)
    set(compiler "${CMAKE_CXX_COMPILER}")
    set(target_name "HIP-CPU")
    # -Wno-unknown-pragmas: g++ ignores the GPU compilers' #pragma unroll (and OpenMP here).
    list(APPEND flags -DRECURRENT_DEPTH_HIP_CPU -Wno-unknown-pragmas -x c++)
    list(APPEND includes -isystem "${RECURRENT_DEPTH_HIP_CPU}")
  elseif(RECURRENT_DEPTH_HIP_PLATFORM STREQUAL "nvidia")
    set(compiler "${CUDAToolkit_NVCC_EXECUTABLE}")
    set(target_name "NVIDIA ${RECURRENT_DEPTH_CUDA_ARCHITECTURES}")
    set(flags -std=c++20 -O2 -Xcompiler=-Wall,-Wextra,-Wno-unknown-pragmas -x cu -D__HIP_PLATFORM_NVIDIA__
      -include "${_rd_cuda_compat}")
    foreach(architecture IN LISTS RECURRENT_DEPTH_CUDA_ARCHITECTURES)
      list(APPEND flags
        "--generate-code=arch=compute_${architecture},code=[sm_${architecture},compute_${architecture}]")
    endforeach()
  else()
    set(compiler "${RECURRENT_DEPTH_HIPCC}")
    set(target_name "${RECURRENT_DEPTH_HIP_ARCHITECTURES}")
    list(APPEND flags -x hip)
    foreach(architecture IN LISTS RECURRENT_DEPTH_HIP_ARCHITECTURES)
      list(APPEND flags "--offload-arch=${architecture}")
    endforeach()
  endif()
  foreach(directory IN LISTS ARGN)
    list(APPEND includes "-I${directory}")
  endforeach()
  add_custom_command(
    OUTPUT "${object}"
    COMMAND "${compiler}" ${flags} ${includes} -MD -MF "${object}.d"
            -MT "${object}" -c "${source}" -o "${object}"
    MAIN_DEPENDENCY "${source}"
    DEPFILE "${object}.d"
    COMMENT "HIP (${target_name}): ${name}"
    VERBATIM)
  set(${variable} "${object}" PARENT_SCOPE)
endfunction()

# recurrent_depth_hip (alias recurrent_depth::hip): HipBackend's operations and kernels
# (backends/hip/hip_backend_kernels.hpp) compiled once, with the definitions that HIP's host
# headers need. Link it and any C++ file can build and run models on HipBackend.
recurrent_depth_hip_object(_rd_hip_backend_kernels "${CMAKE_CURRENT_LIST_DIR}/hip_backend_kernels.cpp")
add_library(recurrent_depth_hip STATIC "${_rd_hip_backend_kernels}")
add_library(recurrent_depth::hip ALIAS recurrent_depth_hip)
set_target_properties(recurrent_depth_hip PROPERTIES LINKER_LANGUAGE CXX EXPORT_NAME hip)
target_link_libraries(recurrent_depth_hip PUBLIC recurrent_depth::recurrent_depth
  ${RECURRENT_DEPTH_HIP_RUNTIME})
if(RECURRENT_DEPTH_HIP_CPU)
  target_compile_definitions(recurrent_depth_hip PUBLIC RECURRENT_DEPTH_HIP_CPU)
  target_include_directories(recurrent_depth_hip SYSTEM PUBLIC "${RECURRENT_DEPTH_HIP_CPU}")
elseif(RECURRENT_DEPTH_HIP_PLATFORM STREQUAL "nvidia")
  # Plain C++ files that include HipBackend's headers see HIP's NVIDIA API, after the compat header.
  target_compile_definitions(recurrent_depth_hip PUBLIC __HIP_PLATFORM_NVIDIA__)
  target_compile_options(recurrent_depth_hip PUBLIC "SHELL:-include ${_rd_cuda_compat}")
else()
  target_compile_definitions(recurrent_depth_hip PUBLIC __HIP_PLATFORM_AMD__)
endif()
