package safetensors

// DType is a safetensors dtype name exactly as it appears in a header ("BF16", "F32", ...).
type DType string

// The dtypes this package accepts. Any other name in a header is rejected with ErrDType.
const (
	F64     DType = "F64"
	F32     DType = "F32"
	F16     DType = "F16"
	BF16    DType = "BF16"
	F8E4M3  DType = "F8_E4M3"
	F8E5M2  DType = "F8_E5M2"
	I64     DType = "I64"
	I32     DType = "I32"
	I16     DType = "I16"
	I8      DType = "I8"
	U8      DType = "U8"
	Bool    DType = "BOOL"
	Unknown DType = ""
)

// dtypeSizes maps every known dtype to the bytes one element takes.
var dtypeSizes = map[DType]int{
	F64: 8, F32: 4, F16: 2, BF16: 2, F8E4M3: 1, F8E5M2: 1,
	I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, Bool: 1,
}

// DTypes returns the known dtypes, widest first (the order is fixed, for messages and tests).
func DTypes() []DType {
	return []DType{F64, I64, F32, I32, F16, BF16, I16, F8E4M3, F8E5M2, I8, U8, Bool}
}

// Size returns the bytes per element of d, or 0 when d is not a known dtype.
func (d DType) Size() int { return dtypeSizes[d] }

// Known reports whether d is one of the dtypes this package accepts.
func (d DType) Known() bool { return dtypeSizes[d] != 0 }

// String returns the dtype name as written in headers.
func (d DType) String() string { return string(d) }
