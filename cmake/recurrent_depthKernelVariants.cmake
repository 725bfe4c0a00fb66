# recurrent_depth_add_kernel_variants(<target> [VARIANTS <variant>...])
#
# Links into <target> the CPU kernels compiled for other x86-64 levels than <target>'s own flags;
# the program then picks, once at run time, the best set its CPU can execute
# (recurrent_depth/backends/cpu/kernel_dispatch.hpp). One static library per variant, compiled
# from a one-line source that includes kernel_variant.hpp:
#   x86_64_v3       -march=x86-64-v3                (AVX2, FMA)
#   x86_64_v4_vnni  -march=x86-64-v4 -mavx512vnni   (AVX-512 F/BW/CD/DQ/VL, VNNI)
#   x86_64_v4_amx   the same and -mavx512bf16 -mamx-tile -mamx-int8 -mamx-bf16 (AMX tiles for
#                   prefill; every CPU with them has AVX-512 BF16)
#   x86_64_v4_bf16  x86_64_v4_vnni's and -mavx512bf16 -DRECURRENT_DEPTH_BF16_DOT_PROMPTS (bf16
#                   prompts on vdpbf16ps, activations rounded to bf16; selected only by name)
# Default: all four, in that order. Outside Debug builds the variants are compiled with -O3
# whatever the build type's level. (At GCC 12's -O2, RelWithDebInfo's, the small fixed loops over a
# register tile's rows and positions used to stay loops, with the accumulators in memory: huginn-
# mini ran its prompts 2.4-3.9x slower on an AMD Zen 5. The kernels now unroll those loops with
# pragmas at every level; -O3 still serves the rest.)
# Inline functions that a variant shares with the program (those of the C++ library, say) are
# emitted in each object and the linker keeps the first copy it meets: linked as libraries, the
# variants come after the program's own objects, and in ascending order among themselves, so that
# the copy kept is always the most portable one. Not with link-time optimisation, which would
# merge them across flags. Does nothing on other processors or with a compiler that rejects the
# flags.
include_guard(GLOBAL)
include(CheckCXXCompilerFlag)

function(recurrent_depth_add_kernel_variants target)
  cmake_parse_arguments(PARSE_ARGV 1 ARG "" "" "VARIANTS")
  if(NOT ARG_VARIANTS)
    set(ARG_VARIANTS x86_64_v3 x86_64_v4_vnni x86_64_v4_amx x86_64_v4_bf16)
  endif()
  if(NOT CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
    return()
  endif()
  foreach(variant IN LISTS ARG_VARIANTS)
    if(variant STREQUAL "x86_64_v3")
      set(flags -march=x86-64-v3)
    elseif(variant STREQUAL "x86_64_v4_vnni")
      set(flags -march=x86-64-v4 -mavx512vnni)
    elseif(variant STREQUAL "x86_64_v4_amx")
      set(flags -march=x86-64-v4 -mavx512vnni -mavx512bf16 -mamx-tile -mamx-int8 -mamx-bf16)
    elseif(variant STREQUAL "x86_64_v4_bf16")
      set(flags -march=x86-64-v4 -mavx512vnni -mavx512bf16 -DRECURRENT_DEPTH_BF16_DOT_PROMPTS)
    else()
      message(FATAL_ERROR "recurrent_depth_add_kernel_variants: unknown variant '${variant}' "
        "(known: x86_64_v3, x86_64_v4_vnni, x86_64_v4_amx, x86_64_v4_bf16)")
    endif()
    string(REPLACE ";" " " flag_string "${flags}")
    check_cxx_compiler_flag("${flag_string}" RECURRENT_DEPTH_COMPILER_TAKES_${variant})
    if(NOT RECURRENT_DEPTH_COMPILER_TAKES_${variant})
      message(STATUS "recurrent_depth: the compiler rejects ${flag_string}; no ${variant} kernels")
      continue()
    endif()
    set(source "${CMAKE_CURRENT_BINARY_DIR}/${target}_kernels_${variant}.cpp")
    file(CONFIGURE OUTPUT "${source}"
      CONTENT "#include <recurrent_depth/backends/cpu/kernel_variant.hpp>\n")
    add_library(${target}_kernels_${variant} STATIC "${source}")
    target_link_libraries(${target}_kernels_${variant} PRIVATE recurrent_depth::recurrent_depth)
    target_compile_options(${target}_kernels_${variant} PRIVATE ${flags}
      $<$<AND:$<NOT:$<CONFIG:Debug>>,$<CXX_COMPILER_ID:GNU,Clang,AppleClang>>:-O3>)
    target_compile_definitions(${target}_kernels_${variant} PRIVATE
      RECURRENT_DEPTH_KERNEL_NAMESPACE=${variant})
    target_link_libraries(${target} PRIVATE ${target}_kernels_${variant})
    string(TOUPPER "${variant}" upper)
    target_compile_definitions(${target} PRIVATE RECURRENT_DEPTH_WITH_KERNELS_${upper})
  endforeach()
endfunction()
