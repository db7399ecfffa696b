//go:build !(linux && (amd64 || arm64))

package cuda

import (
	"fmt"
	"runtime"
)

// The driver is loaded at run time with purego, which this package uses on linux/amd64 and
// linux/arm64 only; elsewhere the backend builds and reports the platform.
func unsupported() error {
	return fmt.Errorf("cuda: %v: the CUDA backend runs on linux/amd64 and linux/arm64 (this is %s/%s)",
		errNoDriver, runtime.GOOS, runtime.GOARCH)
}

func probeDriver(string) error { return unsupported() }

func openGPU(Options) (device, error) { return nil, unsupported() }

// Devices reports the platform as unsupported.
func Devices() ([]DeviceInfo, error) { return nil, unsupported() }
