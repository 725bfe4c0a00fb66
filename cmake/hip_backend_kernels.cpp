// The recurrent_depth_hip library (cmake/recurrent_depthHip.cmake): HipBackend's operations and
// their kernels, compiled once by the HIP compiler.
#include "recurrent_depth/backends/hip/hip_backend_kernels.hpp"
