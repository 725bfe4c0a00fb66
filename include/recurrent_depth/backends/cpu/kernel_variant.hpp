// The translation unit of one kernel variant: compiled on its own with the variant's target flags
// and -DRECURRENT_DEPTH_KERNEL_NAMESPACE=<variant> (cmake/recurrent_depthKernelVariants.cmake does
// both), it defines recurrent_depth::cpu::<variant>::kernel_table, the table kernel_dispatch.hpp
// declares. The table is constant data: reading it runs none of the variant's instructions.
// Compile it with -O3, as the CMake function does outside Debug builds (why: that file's top).
// Include it in that translation unit only.
#pragma once

#include "kernel_table.hpp"

#if !defined(RECURRENT_DEPTH_KERNEL_NAMESPACE)
#error "kernel_variant.hpp: define RECURRENT_DEPTH_KERNEL_NAMESPACE as the variant's name"
#endif

namespace recurrent_depth::cpu::RECURRENT_DEPTH_KERNEL_NAMESPACE {

extern constinit const CpuKernels kernel_table;
constinit const CpuKernels kernel_table = compiled_kernel_table();

}  // namespace recurrent_depth::cpu::RECURRENT_DEPTH_KERNEL_NAMESPACE
