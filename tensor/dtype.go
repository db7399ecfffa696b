package tensor

import "fmt"

// DType is the element type of a tensor.
type DType uint8

// The element types. F8E4M3 is the "fn" variant (no infinities, one NaN pattern per sign, max
// 448) and F8E5M2 the IEEE-like one, both as stored by PyTorch fp8 checkpoints.
const (
	InvalidDType DType = iota
	F32
	F16
	BF16
	F8E4M3
	F8E5M2
)

var dtypeNames = [...]string{
	InvalidDType: "invalid",
	F32:          "F32",
	F16:          "F16",
	BF16:         "BF16",
	F8E4M3:       "F8_E4M3",
	F8E5M2:       "F8_E5M2",
}

// String returns the safetensors name of the type ("F32", "BF16", "F8_E4M3", ...).
func (d DType) String() string {
	if int(d) < len(dtypeNames) {
		return dtypeNames[d]
	}
	return fmt.Sprintf("DType(%d)", uint8(d))
}

// Size returns the size of one element in bytes, or 0 for an invalid type.
func (d DType) Size() int {
	switch d {
	case F32:
		return 4
	case F16, BF16:
		return 2
	case F8E4M3, F8E5M2:
		return 1
	}
	return 0
}

// Valid reports whether d is one of the defined element types.
func (d DType) Valid() bool { return d >= F32 && d <= F8E5M2 }

// IsComputeType reports whether backends may write results in this type (F32, F16, BF16).
// FP8 types are storage-only: they can be read by every op and produced only by Convert.
func (d DType) IsComputeType() bool { return d == F32 || d == F16 || d == BF16 }

// ParseDType returns the DType for a safetensors dtype name (F32, F16, BF16, F8_E4M3, F8_E5M2).
func ParseDType(name string) (DType, error) {
	for i, n := range dtypeNames {
		if i != int(InvalidDType) && n == name {
			return DType(i), nil
		}
	}
	return InvalidDType, fmt.Errorf("tensor: unsupported dtype %q (want F32, F16, BF16, F8_E4M3 or F8_E5M2)", name)
}
