package tensor

import "fmt"

// DeviceKind says which kind of memory a storage lives in.
type DeviceKind uint8

// The device kinds.
const (
	DeviceCPU DeviceKind = iota
	DeviceCUDA
)

// Device identifies where a tensor's memory lives.
type Device struct {
	Kind  DeviceKind
	Index int // which accelerator of that kind; 0 for the host
}

// CPU is the host device.
var CPU = Device{Kind: DeviceCPU}

// String returns "cpu" or "cuda:N".
func (d Device) String() string {
	switch d.Kind {
	case DeviceCPU:
		return "cpu"
	case DeviceCUDA:
		return fmt.Sprintf("cuda:%d", d.Index)
	}
	return fmt.Sprintf("device(%d):%d", d.Kind, d.Index)
}

// Storage is a block of memory holding tensor elements, on the host or on a device.
// Backends define their own device storages; host memory is any HostMemory.
type Storage interface {
	Device() Device
	// Size is the length of the storage in bytes.
	Size() int
}

// HostMemory is a storage whose bytes the host can address directly. Bytes must be aligned to
// 4 bytes (tensor constructors guarantee it) so that typed views are valid.
type HostMemory interface {
	Storage
	Bytes() []byte
}

// HostStorage is host memory wrapping a byte slice it does not own (a Go allocation or a memory
// mapping: the owner keeps it alive for as long as tensors use it).
type HostStorage struct {
	data []byte
}

// NewHostStorage wraps b. b should be aligned to 4 bytes; FromBytes takes care of that.
func NewHostStorage(b []byte) *HostStorage { return &HostStorage{data: b} }

// Device returns CPU.
func (h *HostStorage) Device() Device { return CPU }

// Size returns the length in bytes.
func (h *HostStorage) Size() int { return len(h.data) }

// Bytes returns the wrapped bytes.
func (h *HostStorage) Bytes() []byte { return h.data }
