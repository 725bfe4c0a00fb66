// Lets Debian 12's HIP 5.2 NVIDIA headers (hip/nvidia_detail/nvidia_hip_runtime_api.h, the HIP API
// as inline functions over CUDA's) compile against CUDA 12 and 13, which removed or changed what
// some of those functions call: texture references (gone in 12), multi-device cooperative
// launches, five cudaDeviceProp fields, and the signatures of cudaMemAdvise, cudaMemPrefetchAsync,
// cuCtxCreate and the graph-edge functions (13). None of these is used by the HIP backend; they
// only have to compile. With CUDA 11 this header does nothing.
//
// Force-included (-include) ahead of every file of the HIP backend's NVIDIA build
// (cmake/recurrent_depthHip.cmake, RECURRENT_DEPTH_HIP_PLATFORM=nvidia): it must come before HIP's
// headers. Not part of the library's API.
//   removed functions       templates that return cudaErrorNotSupported
//   changed signatures      overloads with the old parameters, calling the new functions
//   removed device fields   cudaDeviceProp is, in the files that include this, a struct derived
//                           from CUDA's with the five fields added (0): HIP's header copies them
#pragma once

#if defined(__HIP_PLATFORM_NVIDIA__)
#include <cuda.h>
#include <cuda_runtime_api.h>

#if CUDART_VERSION >= 12000
namespace recurrent_depth::hip_nvidia_compat {
template <class... Args>
cudaError_t not_supported(Args&&...) {
  return cudaErrorNotSupported;
}
}  // namespace recurrent_depth::hip_nvidia_compat

// Texture references (removed in CUDA 12).
template <class T, int dim = 1, enum cudaTextureReadMode mode = cudaReadModeElementType>
struct texture {};
#define cudaBindTexture recurrent_depth::hip_nvidia_compat::not_supported
#define cudaBindTexture2D recurrent_depth::hip_nvidia_compat::not_supported
#define cudaBindTextureToArray recurrent_depth::hip_nvidia_compat::not_supported
#define cudaUnbindTexture recurrent_depth::hip_nvidia_compat::not_supported
#define cudaGetTextureAlignmentOffset recurrent_depth::hip_nvidia_compat::not_supported
#endif  // CUDART_VERSION >= 12000

#if CUDART_VERSION >= 13000

namespace recurrent_depth::hip_nvidia_compat {
struct DeviceProperties : ::cudaDeviceProp {
  int clockRate = 0, memoryClockRate = 0, computeMode = 0, cooperativeMultiDeviceLaunch = 0,
      kernelExecTimeoutEnabled = 0;
};

}  // namespace recurrent_depth::hip_nvidia_compat

// Multi-device cooperative launches.
#define cudaLaunchCooperativeKernelMultiDevice recurrent_depth::hip_nvidia_compat::not_supported
// An attribute CUDA 13 no longer has: cudaDeviceGetAttribute refuses the value.
#define cudaDevAttrCooperativeMultiDeviceLaunch static_cast<cudaDeviceAttr>(-1)

// The old signatures (a device number for a memory location, no edge data).
inline cudaError_t cudaMemAdvise(const void* pointer, size_t count, cudaMemoryAdvise advice,
                                 int device) {
  return cudaMemAdvise(pointer, count, advice, cudaMemLocation{cudaMemLocationTypeDevice, device});
}
inline cudaError_t cudaMemPrefetchAsync(const void* pointer, size_t count, int device,
                                        cudaStream_t stream = 0) {
  return cudaMemPrefetchAsync(pointer, count, cudaMemLocation{cudaMemLocationTypeDevice, device}, 0,
                              stream);
}
inline CUresult cuCtxCreate(CUcontext* context, unsigned int flags, CUdevice device) {
  return cuCtxCreate(context, nullptr, flags, device);
}
inline cudaError_t cudaGraphAddDependencies(cudaGraph_t graph, const cudaGraphNode_t* from,
                                            const cudaGraphNode_t* to, size_t count) {
  return cudaGraphAddDependencies(graph, from, to, nullptr, count);
}
inline cudaError_t cudaGraphRemoveDependencies(cudaGraph_t graph, const cudaGraphNode_t* from,
                                               const cudaGraphNode_t* to, size_t count) {
  return cudaGraphRemoveDependencies(graph, from, to, nullptr, count);
}
inline cudaError_t cudaGraphGetEdges(cudaGraph_t graph, cudaGraphNode_t* from, cudaGraphNode_t* to,
                                     size_t* count) {
  return cudaGraphGetEdges(graph, from, to, nullptr, count);
}
inline cudaError_t cudaGraphNodeGetDependencies(cudaGraphNode_t node, cudaGraphNode_t* nodes,
                                                size_t* count) {
  return cudaGraphNodeGetDependencies(node, nodes, nullptr, count);
}
inline cudaError_t cudaGraphNodeGetDependentNodes(cudaGraphNode_t node, cudaGraphNode_t* nodes,
                                                  size_t* count) {
  return cudaGraphNodeGetDependentNodes(node, nodes, nullptr, count);
}
inline cudaError_t cudaStreamGetCaptureInfo_v2(cudaStream_t stream, cudaStreamCaptureStatus* status,
                                               unsigned long long* id, cudaGraph_t* graph,
                                               const cudaGraphNode_t** dependencies,
                                               size_t* count) {
  return cudaStreamGetCaptureInfo(stream, status, id, graph, dependencies, nullptr, count);
}
inline cudaError_t cudaStreamUpdateCaptureDependencies(cudaStream_t stream,
                                                       cudaGraphNode_t* dependencies, size_t count,
                                                       unsigned int flags) {
  return cudaStreamUpdateCaptureDependencies(stream, dependencies, nullptr, count, flags);
}

#define cudaDeviceProp recurrent_depth::hip_nvidia_compat::DeviceProperties

#endif  // CUDART_VERSION >= 13000
#endif  // __HIP_PLATFORM_NVIDIA__
