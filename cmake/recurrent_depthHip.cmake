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

find_program(RECURRENT_DEPTH_HIPCC hipcc)
find_library(RECURRENT_DEPTH_AMDHIP64 amdhip64)
if(NOT RECURRENT_DEPTH_HIPCC OR NOT RECURRENT_DEPTH_AMDHIP64)
  message(FATAL_ERROR "recurrent_depth: RECURRENT_DEPTH_HIP needs hipcc and libamdhip64 "
    "(Debian 12: apt-get install hipcc libamdhip64-dev; scripts/setup_debian.sh)")
endif()

# recurrent_depth_hip_object(<output variable> <source> [include directories...]): compiles <source>
# with hipcc for RECURRENT_DEPTH_HIP_ARCHITECTURES into an object in the current binary directory
# (rebuilt when any header it includes changes) and sets the variable to its path, for
# add_executable / target_sources.
function(recurrent_depth_hip_object variable source)
  get_filename_component(name "${source}" NAME_WE)
  set(object "${CMAKE_CURRENT_BINARY_DIR}/${name}.hip.o")
  set(flags -std=c++20 -O2 -Wall -Wextra)
  foreach(architecture IN LISTS RECURRENT_DEPTH_HIP_ARCHITECTURES)
    list(APPEND flags "--offload-arch=${architecture}")
  endforeach()
  set(includes "-I${PROJECT_SOURCE_DIR}/include")
  foreach(directory IN LISTS ARGN)
    list(APPEND includes "-I${directory}")
  endforeach()
  add_custom_command(
    OUTPUT "${object}"
    COMMAND "${RECURRENT_DEPTH_HIPCC}" ${flags} ${includes} -x hip -MD -MF "${object}.d"
            -MT "${object}" -c "${source}" -o "${object}"
    MAIN_DEPENDENCY "${source}"
    DEPFILE "${object}.d"
    COMMENT "hipcc (${RECURRENT_DEPTH_HIP_ARCHITECTURES}): ${name}"
    VERBATIM)
  set(${variable} "${object}" PARENT_SCOPE)
endfunction()
