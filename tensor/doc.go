// Package tensor owns the tensor type, the element types (F32, BF16, F16 and the FP8 storage
// formats E4M3FN and E5M2) with exact round-to-nearest-even conversions, and the Backend
// interface through which model code runs every numeric operation.
//
// A Tensor is a typed, strided view of a Storage: host memory (HostStorage, which may be a
// memory-mapped weight file) or a backend's device memory. Views (Reshape, Slice, Permute,
// Transpose, Expand) only change shape, strides and offset and never copy; Backend.Copy
// materialises them. Backends live in their own packages: tensor/cpu (the reference
// implementation every other backend is tested against) and, later, cuda/, which registers
// itself through Register when it loads.
//
// The package must not import cuda/ or any model code, must not know about nodes or HTTP, and
// holds no global mutable state beyond the backend registry.
package tensor
