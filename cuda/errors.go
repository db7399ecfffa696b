package cuda

import (
	"errors"
	"fmt"
)

// cuError is a failed driver (CUresult) or cuBLAS (cublasStatus_t) call.
type cuError struct {
	op   string // the function
	code int
	name string // e.g. CUDA_ERROR_OUT_OF_MEMORY
	desc string
	blas bool
}

func (e *cuError) Error() string {
	if e.desc != "" && e.desc != e.name {
		return fmt.Sprintf("%s: %s (%d): %s", e.op, e.name, e.code, e.desc)
	}
	return fmt.Sprintf("%s: %s (%d)", e.op, e.name, e.code)
}

// Is makes errors.Is(err, errOutOfMemory) true for CUDA_ERROR_OUT_OF_MEMORY and
// CUBLAS_STATUS_ALLOC_FAILED.
func (e *cuError) Is(target error) bool {
	if target != errOutOfMemory {
		return false
	}
	if e.blas {
		return e.code == 3
	}
	return e.code == 2
}

// cublasStatusName names a cublasStatus_t.
func cublasStatusName(code int) string {
	switch code {
	case 0:
		return "CUBLAS_STATUS_SUCCESS"
	case 1:
		return "CUBLAS_STATUS_NOT_INITIALIZED"
	case 3:
		return "CUBLAS_STATUS_ALLOC_FAILED"
	case 7:
		return "CUBLAS_STATUS_INVALID_VALUE"
	case 8:
		return "CUBLAS_STATUS_ARCH_MISMATCH"
	case 11:
		return "CUBLAS_STATUS_MAPPING_ERROR"
	case 13:
		return "CUBLAS_STATUS_EXECUTION_FAILED"
	case 14:
		return "CUBLAS_STATUS_INTERNAL_ERROR"
	case 15:
		return "CUBLAS_STATUS_NOT_SUPPORTED"
	case 16:
		return "CUBLAS_STATUS_LICENSE_ERROR"
	}
	return fmt.Sprintf("CUBLAS_STATUS_%d", code)
}

// Library-missing errors. Their text names the library and how to get it.
var (
	errNoDriver = errors.New("no CUDA driver found")
	errNoCublas = errors.New("cuBLASLt not found")
)

const driverHelp = "The CUDA backend needs libcuda.so.1 from NVIDIA's driver: install the driver " +
	"(Debian: apt install nvidia-driver libcuda1; Ubuntu: apt install nvidia-driver-<version> or " +
	"libnvidia-compute-<version>; containers: run with the NVIDIA container toolkit, e.g. docker --gpus all), " +
	"or set " + EnvLibCUDA + " to the library's path."

const cublasHelp = "Matrix products use libcublasLt from the CUDA toolkit: install it (NVIDIA's CUDA " +
	"repository: apt install libcublas-12-<minor> or cuda-libraries-12-<minor>; Debian/Ubuntu: apt install " +
	"libcublaslt12; pip: pip install nvidia-cublas-cu12), set " + EnvLibCublasLt + " to the library's path, " +
	"or set " + EnvGEMM + "=builtin (or auto) to use the backend's own, slower GEMM kernel."

// libError is a library that could not be loaded.
type libError struct {
	kind  error  // errNoDriver or errNoCublas
	tried string // what was tried and why it failed
	help  string
}

func (e *libError) Error() string { return fmt.Sprintf("cuda: %v: %s. %s", e.kind, e.tried, e.help) }
func (e *libError) Unwrap() error { return e.kind }
