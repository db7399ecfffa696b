//go:build linux && (amd64 || arm64)

package cuda

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// The error a user sees when the driver library is missing names it and says how to get it.
func TestMissingDriverLibrary(t *testing.T) {
	_, err := loadDriver([]string{"/nonexistent/libcuda.so.1"})
	if err == nil {
		t.Fatal("loading a nonexistent libcuda succeeded")
	}
	if !errors.Is(err, errNoDriver) {
		t.Errorf("error does not match errNoDriver: %v", err)
	}
	msg := err.Error()
	for _, want := range []string{"no CUDA driver found", "/nonexistent/libcuda.so.1", "NVIDIA", "libcuda1", EnvLibCUDA} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q: %s", want, msg)
		}
	}
	_, err = Open(Options{LibCUDA: "/nonexistent/libcuda.so.1"})
	if err == nil || !errors.Is(err, errNoDriver) {
		t.Errorf("Open with a missing driver: %v", err)
	}
}

// A library that loads but is not the driver is reported with the missing function.
func TestWrongDriverLibrary(t *testing.T) {
	_, err := loadDriver([]string{"libc.so.6"})
	if err == nil {
		t.Fatal("libc.so.6 did not load: the test needs a glibc system")
	}
	if !errors.Is(err, errNoDriver) || !strings.Contains(err.Error(), "lacks cuInit") {
		t.Errorf("libc as libcuda: %v", err)
	}
}

func TestMissingCublasLt(t *testing.T) {
	_, _, err := loadCublasLib([]string{"/nonexistent/libcublasLt.so.12"})
	if err == nil {
		t.Fatal("loading a nonexistent libcublasLt succeeded")
	}
	if !errors.Is(err, errNoCublas) {
		t.Errorf("error does not match errNoCublas: %v", err)
	}
	for _, want := range []string{"cuBLASLt not found", "/nonexistent/libcublasLt.so.12", "libcublas", EnvLibCublasLt, EnvGEMM + "=builtin"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %s", want, err)
		}
	}
	if _, _, err := loadCublasLib([]string{"libc.so.6"}); err == nil || !strings.Contains(err.Error(), "lacks cublasLtCreate") {
		t.Errorf("libc as cuBLASLt: %v", err)
	}
}

// Without a driver the backend is not registered, and Available says why.
func TestRegistrationFollowsDriver(t *testing.T) {
	err := Available()
	registered := false
	for _, n := range backendNames() {
		registered = registered || n == "cuda"
	}
	if (err == nil) != registered {
		t.Errorf("Available() = %v but registered = %v", err, registered)
	}
	if err != nil && !errors.Is(err, errNoDriver) {
		t.Errorf("Available() = %v, want an errNoDriver", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []Options{{Precision: "double"}, {GEMM: "cublas"}, {Device: -1}} {
		if err := o.validate(); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	o := Options{}
	if err := o.validate(); err != nil || o.Precision != PrecisionExact || o.GEMM != GEMMCublasLt {
		t.Errorf("defaults: %+v %v", o, err)
	}
	t.Setenv(EnvPrecision, "FAST")
	t.Setenv(EnvGEMM, "builtin")
	t.Setenv(EnvDevice, "2")
	if o := OptionsFromEnv(); o.Precision != PrecisionFast || o.GEMM != GEMMBuiltin || o.Device != 2 {
		t.Errorf("from env: %+v", o)
	}
}

func TestDevicesWithoutDriver(t *testing.T) {
	// Point the loader at a library that does not exist, so the test also means something on a
	// machine that has a driver.
	t.Setenv(EnvLibCUDA, filepath.Join(t.TempDir(), "libcuda.so.1"))
	if _, err := Devices(); !errors.Is(err, errNoDriver) {
		t.Errorf("Devices() without a driver: %v", err)
	}
}
