// Package cuda is the CUDA tensor backend: every op of tensor.Backend on NVIDIA GPUs, bound to
// the driver at run time without cgo or CUDA headers.
//
// What it owns:
//
//   - Bindings, through github.com/ebitengine/purego, to libcuda.so.1 (devices, primary
//     context, one stream per backend, events, stream-ordered memory pools, pinned host
//     memory, module loading, launches, CUDA graphs) and libcublasLt (matrix products with
//     f32 accumulation, bias epilogues). The libraries are found at run time; a missing one
//     yields one error that names it and how to install it. Only linux/amd64 and linux/arm64
//     can load them; elsewhere the package builds and reports the platform as unsupported.
//   - The kernels: CUDA C in kernels/ (element-wise ops, conversions, norms, softmax, RoPE,
//     flash attention, GEMM fallback, im2col, resize), compiled to PTX by Debian's clang-19
//     (no CUDA SDK) and embedded from ptx/; the driver JIT-compiles the PTX for the GPU in use
//     and caches the result in its compute cache. `go run ./cuda/internal/genptx` regenerates
//     the PTX, `-check` verifies it; TestPTXUpToDate fails when it is stale.
//   - Device memory: a caching pool over cuMemAllocAsync with size classes, peak accounting
//     and a trim-and-retry on out-of-memory.
//
// Precision. Element-wise ops, norms and softmax compute like the CPU reference (float32 data,
// float64 sums and transcendental functions). Matrix products accumulate in float32: bf16 and
// f16 operands run on tensor cores as they are; with float32 activations and bf16 weights the
// default ("exact") precision splits the activations into three bf16 terms whose sum is exact,
// so the result matches an f32 product at tensor-core speed, and "fast" rounds them to bf16
// once (as torch autocast does). Attention with bf16 inputs and head dim 64 or 128 runs the
// tensor-core flash kernel (mma.sync, P rounded to bf16 as in FlashAttention); float32 inputs
// run the fp32 flash kernel, or in fast precision the tensor-core one on bf16-rounded inputs.
// Set Options.Precision or DYPEGRAPH_CUDA_PRECISION=fast|exact.
//
// Fallbacks. Lanczos resizing, and attention with head dims too large for shared memory, run
// on the CPU backend (download, compute, upload), documented at each op.
//
// Tests. Nothing here needs a GPU to build or test. Without one, the tests check the embedded
// PTX (every kernel the Go code launches exists with the parameter layout the Go side packs),
// the staleness of the PTX, the library-missing errors, the memory pool with a fake allocator,
// and run every kernel and the whole Backend through a host emulator of CUDA's execution model
// (kernels/emu, built with clang-19 and cached) against the CPU backend: blocks of fibers with
// real barriers, warp shuffles and mma fragments, guard pages after every allocation; the
// cuBLASLt path runs against a fake that executes cuBLASLt's documented semantics. GPU tests
// (TestGPU*) skip with the reason when there is no driver or device.
//
// GPU session. The GPU machine has no Go; build the test binary and the command here:
//
//	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go test -c -o bin/cuda.test ./cuda
//	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -o bin/dypegraph ./cmd/dypegraph
//
// and run `bash cuda/testdata/gpu_check.sh` there (carrying bin/): it finds the driver and a
// cuBLASLt, runs the parity suite (both GEMM engines, Z-Image-sized pieces, fast precision,
// graphs), `dypegraph bench dit --backend cuda` at full Z-Image size in exact and fast
// precision with the peak VRAM sampled, and testdata/torch_dit_bench.py (PyTorch, bf16,
// flash SDPA) on the same shapes, writing everything to $OUT.
//
// Linking. Loading libcuda needs the C runtime, so a binary that imports this package is
// dynamically linked against glibc (libc, libdl, libpthread) even with CGO_ENABLED=0; a fully
// static build must leave the package out.
//
// The package registers itself as the "cuda" tensor backend when libcuda loads; it must not be
// required to build or test anything else and must not import model code.
package cuda
