# Settings for the project's own executables (tests, tools, benchmarks, examples). None of this
# reaches the installed recurrent_depth target: consumers choose their own flags.
include_guard(GLOBAL)
include(CheckCXXCompilerFlag)

# -march=native, when RECURRENT_DEPTH_NATIVE is on and the compiler accepts it (off by default: the
# executables are built for any x86-64 and dispatch to their CPU's kernels at run time).
if(NOT TARGET recurrent_depth_native_flags)
  add_library(recurrent_depth_native_flags INTERFACE)
  if(RECURRENT_DEPTH_NATIVE)
    check_cxx_compiler_flag(-march=native RECURRENT_DEPTH_HAVE_MARCH_NATIVE)
    if(RECURRENT_DEPTH_HAVE_MARCH_NATIVE)
      target_compile_options(recurrent_depth_native_flags INTERFACE -march=native)
    else()
      message(STATUS "recurrent_depth: compiler does not accept -march=native; building generic")
    endif()
  endif()
endif()

# Warnings (never -Werror: the code is compiled by toolchains we do not test).
# GCC 12 (Debian 12) reports '__Y may be used uninitialized' inside its own avx512fintrin.h
# whenever an AVX-512 intrinsic is inlined at -O2/-O3 (GCC bug 105593, fixed in GCC 13): dozens of
# false positives per kernel with -march=native on AVX-512 machines, so that check is off there.
if(NOT TARGET recurrent_depth_warnings)
  add_library(recurrent_depth_warnings INTERFACE)
  target_compile_options(recurrent_depth_warnings INTERFACE
    $<$<OR:$<CXX_COMPILER_ID:GNU>,$<CXX_COMPILER_ID:Clang>,$<CXX_COMPILER_ID:AppleClang>>:-Wall -Wextra>
    $<$<AND:$<CXX_COMPILER_ID:GNU>,$<VERSION_LESS:$<CXX_COMPILER_VERSION>,13>>:-Wno-maybe-uninitialized>
    $<$<CXX_COMPILER_ID:MSVC>:/W4>)
endif()

# Sanitizers, when RECURRENT_DEPTH_SANITIZE holds a -fsanitize= list (address,undefined or thread):
# every executable of the project and its kernel variants are instrumented, and any report stops
# the program (-fno-sanitize-recover), so ctest sees it as a failure. scripts/test.sh runs the
# address,undefined suite and the thread build of the threading tests.
set(RECURRENT_DEPTH_SANITIZE "" CACHE STRING
  "Sanitizers for the project's executables, as for -fsanitize= (e.g. address,undefined or thread)")
if(NOT TARGET recurrent_depth_sanitize_flags)
  add_library(recurrent_depth_sanitize_flags INTERFACE)
  if(RECURRENT_DEPTH_SANITIZE)
    target_compile_options(recurrent_depth_sanitize_flags INTERFACE
      -fsanitize=${RECURRENT_DEPTH_SANITIZE} -fno-sanitize-recover=all -fno-omit-frame-pointer -g)
    target_link_options(recurrent_depth_sanitize_flags INTERFACE
      -fsanitize=${RECURRENT_DEPTH_SANITIZE})
  endif()
endif()

# recurrent_depth_setup_executable(<target>): link the library plus the flags above, and the kernel
# variants (cmake/recurrent_depthKernelVariants.cmake): the executables run on any x86-64 and pick
# the best kernels of their CPU at run time.
function(recurrent_depth_setup_executable target)
  target_link_libraries(${target} PRIVATE
    recurrent_depth::recurrent_depth
    recurrent_depth_native_flags
    recurrent_depth_warnings
    recurrent_depth_sanitize_flags)
  recurrent_depth_add_kernel_variants(${target})
  foreach(variant IN ITEMS x86_64_v3 x86_64_v4_vnni x86_64_v4_amx x86_64_v4_bf16)
    if(TARGET ${target}_kernels_${variant})
      target_link_libraries(${target}_kernels_${variant} PRIVATE recurrent_depth_warnings
        recurrent_depth_sanitize_flags)
    endif()
  endforeach()
endfunction()
