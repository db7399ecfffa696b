package tensor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"unsafe"
)

// MaxRank is the largest number of dimensions a tensor may have.
const MaxRank = 8

// maxElements bounds the element count of one tensor (2^40), so index arithmetic cannot overflow.
const maxElements = 1 << 40

// ErrFreed is returned when an op is given a tensor whose memory was handed back to its backend.
var ErrFreed = errors.New("tensor: use of a freed tensor")

// Tensor is a typed, strided view of a Storage. The zero value is not usable; tensors come from
// the constructors below or from a Backend. Views share storage with their source. A Tensor is
// not safe for concurrent mutation of its metadata (Drop), but any number of goroutines may read
// it and pass it to backend ops.
type Tensor struct {
	st      Storage
	dtype   DType
	rank    int
	shape   [MaxRank]int
	strides [MaxRank]int // in elements; 0 for broadcast dimensions
	offset  int          // in elements
}

// New makes a tensor over st with the given layout (strides and offset in elements). It
// checks that every addressable element lies inside st. A nil strides means contiguous.
func New(st Storage, dt DType, shape, strides []int, offset int) (*Tensor, error) {
	if st == nil {
		return nil, errors.New("tensor: new: nil storage")
	}
	if !dt.Valid() {
		return nil, fmt.Errorf("tensor: new: invalid dtype %v", dt)
	}
	t := &Tensor{st: st, dtype: dt, offset: offset}
	if err := t.setShape(shape); err != nil {
		return nil, fmt.Errorf("tensor: new: %w", err)
	}
	if strides == nil {
		t.setContiguous()
	} else {
		if len(strides) != len(shape) {
			return nil, fmt.Errorf("tensor: new: %d strides for %d dims", len(strides), len(shape))
		}
		for i, s := range strides {
			if s < 0 {
				return nil, fmt.Errorf("tensor: new: negative stride %d in dim %d", s, i)
			}
			t.strides[i] = s
		}
	}
	if offset < 0 {
		return nil, fmt.Errorf("tensor: new: negative offset %d", offset)
	}
	if t.NumElements() > 0 {
		// The last addressable element must lie inside the storage; computed with overflow
		// checks so that absurd strides are rejected rather than wrapped around.
		avail := st.Size()/dt.Size() - offset
		last := 0
		for i := range t.rank {
			if t.shape[i] <= 1 || t.strides[i] == 0 {
				continue
			}
			if t.strides[i] > avail || t.shape[i]-1 > (avail-last)/t.strides[i] {
				return nil, fmt.Errorf("tensor: new: %v %v (offset %d, strides %v) does not fit in a storage of %d bytes",
					dt, t.Shape(), offset, t.Strides(), st.Size())
			}
			last += (t.shape[i] - 1) * t.strides[i]
		}
		if last >= avail {
			return nil, fmt.Errorf("tensor: new: %v %v (offset %d, strides %v) does not fit in a storage of %d bytes",
				dt, t.Shape(), offset, t.Strides(), st.Size())
		}
	}
	return t, nil
}

func (t *Tensor) setShape(shape []int) error {
	if len(shape) > MaxRank {
		return fmt.Errorf("rank %d exceeds %d", len(shape), MaxRank)
	}
	n := 1
	for i, d := range shape {
		if d < 0 {
			return fmt.Errorf("negative dimension %d in shape %v", d, shape)
		}
		if d > 0 && n > maxElements/d {
			return fmt.Errorf("shape %v is too large", shape)
		}
		n *= d
		t.shape[i] = d
	}
	t.rank = len(shape)
	return nil
}

func (t *Tensor) setContiguous() {
	s := 1
	for i := t.rank - 1; i >= 0; i-- {
		t.strides[i] = s
		s *= t.shape[i]
	}
}

// alignedBytes allocates n zeroed bytes aligned to 8.
func alignedBytes(n int) []byte {
	if n == 0 {
		return []byte{}
	}
	w := make([]uint64, (n+7)/8)
	return unsafe.Slice((*byte)(unsafe.Pointer(&w[0])), n)
}

func numel(shape []int) (int, error) {
	if len(shape) > MaxRank {
		return 0, fmt.Errorf("rank %d exceeds %d", len(shape), MaxRank)
	}
	n := 1
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension in shape %v", shape)
		}
		if d > 0 && n > maxElements/d {
			return 0, fmt.Errorf("shape %v is too large", shape)
		}
		n *= d
	}
	return n, nil
}

// FromFloat32 makes a host F32 tensor that shares data (no copy). len(data) must equal the
// product of shape.
func FromFloat32(data []float32, shape ...int) (*Tensor, error) {
	n, err := numel(shape)
	if err != nil {
		return nil, fmt.Errorf("tensor: from float32: %w", err)
	}
	if len(data) != n {
		return nil, fmt.Errorf("tensor: from float32: %d values for shape %v (want %d)", len(data), shape, n)
	}
	var b []byte
	if n > 0 {
		b = unsafe.Slice((*byte)(unsafe.Pointer(&data[0])), 4*n)
	}
	return New(NewHostStorage(b), F32, shape, nil, 0)
}

// FromFloat32As makes a contiguous host tensor of type dt holding data rounded to dt (a copy).
func FromFloat32As(dt DType, data []float32, shape ...int) (*Tensor, error) {
	n, err := numel(shape)
	if err != nil {
		return nil, fmt.Errorf("tensor: from float32 as %v: %w", dt, err)
	}
	if len(data) != n {
		return nil, fmt.Errorf("tensor: from float32 as %v: %d values for shape %v (want %d)", dt, len(data), shape, n)
	}
	if !dt.Valid() {
		return nil, fmt.Errorf("tensor: from float32: invalid dtype %v", dt)
	}
	b := alignedBytes(n * dt.Size())
	if err := EncodeF32(b, data, dt); err != nil {
		return nil, err
	}
	return New(NewHostStorage(b), dt, shape, nil, 0)
}

// FromBytes makes a contiguous host tensor of type dt over raw little-endian bytes, as they
// come from a (memory-mapped) safetensors file. The bytes are used in place, without copying,
// when they are aligned to the element size (always the case for files written by torch);
// otherwise they are copied once into aligned memory. The caller keeps data alive and unchanged
// for as long as the tensor is used.
func FromBytes(data []byte, dt DType, shape ...int) (*Tensor, error) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		return nil, errors.New("tensor: from bytes: big-endian hosts are not supported")
	}
	if !dt.Valid() {
		return nil, fmt.Errorf("tensor: from bytes: invalid dtype %v", dt)
	}
	n, err := numel(shape)
	if err != nil {
		return nil, fmt.Errorf("tensor: from bytes: %w", err)
	}
	if len(data) != n*dt.Size() {
		return nil, fmt.Errorf("tensor: from bytes: %d bytes for %v %v (want %d)", len(data), dt, shape, n*dt.Size())
	}
	if n > 0 && uintptr(unsafe.Pointer(&data[0]))%uintptr(dt.Size()) != 0 {
		c := alignedBytes(len(data))
		copy(c, data)
		data = c
	}
	return New(NewHostStorage(data), dt, shape, nil, 0)
}

// Zeros makes a contiguous host tensor of type dt filled with zeros.
func Zeros(dt DType, shape ...int) (*Tensor, error) {
	if !dt.Valid() {
		return nil, fmt.Errorf("tensor: zeros: invalid dtype %v", dt)
	}
	n, err := numel(shape)
	if err != nil {
		return nil, fmt.Errorf("tensor: zeros: %w", err)
	}
	return New(NewHostStorage(alignedBytes(n*dt.Size())), dt, shape, nil, 0)
}

// DType returns the element type.
func (t *Tensor) DType() DType { return t.dtype }

// Rank returns the number of dimensions.
func (t *Tensor) Rank() int { return t.rank }

// Shape returns a copy of the dimensions.
func (t *Tensor) Shape() []int { return append([]int(nil), t.shape[:t.rank]...) }

// Dim returns dimension i; negative i counts from the end. It panics on an index out of range,
// like a slice would.
func (t *Tensor) Dim(i int) int {
	if i < 0 {
		i += t.rank
	}
	if i < 0 || i >= t.rank {
		panic(fmt.Sprintf("tensor: dim %d of a rank-%d tensor", i, t.rank))
	}
	return t.shape[i]
}

// Strides returns a copy of the strides, in elements.
func (t *Tensor) Strides() []int { return append([]int(nil), t.strides[:t.rank]...) }

// Stride returns the stride of dimension i in elements; negative i counts from the end.
func (t *Tensor) Stride(i int) int {
	if i < 0 {
		i += t.rank
	}
	if i < 0 || i >= t.rank {
		panic(fmt.Sprintf("tensor: stride %d of a rank-%d tensor", i, t.rank))
	}
	return t.strides[i]
}

// Offset returns the index of the first element in the storage, in elements.
func (t *Tensor) Offset() int { return t.offset }

// Storage returns the underlying memory, or nil once the tensor was freed.
func (t *Tensor) Storage() Storage { return t.st }

// Device returns where the tensor's memory lives.
func (t *Tensor) Device() Device {
	if t.st == nil {
		return CPU
	}
	return t.st.Device()
}

// NumElements returns the product of the dimensions.
func (t *Tensor) NumElements() int {
	n := 1
	for i := range t.rank {
		n *= t.shape[i]
	}
	return n
}

// IsContiguous reports whether the elements are laid out densely in row-major order.
func (t *Tensor) IsContiguous() bool {
	s := 1
	for i := t.rank - 1; i >= 0; i-- {
		if t.shape[i] != 1 && t.strides[i] != s {
			return false
		}
		s *= t.shape[i]
	}
	return true
}

// SameShape reports whether t and u have identical dimensions.
func (t *Tensor) SameShape(u *Tensor) bool {
	if t.rank != u.rank {
		return false
	}
	for i := range t.rank {
		if t.shape[i] != u.shape[i] {
			return false
		}
	}
	return true
}

// ShapeIs reports whether t has exactly the given dimensions.
func (t *Tensor) ShapeIs(shape ...int) bool {
	if t.rank != len(shape) {
		return false
	}
	for i, d := range shape {
		if t.shape[i] != d {
			return false
		}
	}
	return true
}

// String describes the tensor, e.g. "F32[2 3]@cpu".
func (t *Tensor) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v%v@%v", t.dtype, t.shape[:t.rank], t.Device())
	if !t.IsContiguous() {
		fmt.Fprintf(&b, "(strides %v)", t.strides[:t.rank])
	}
	return b.String()
}

// Drop detaches the tensor from its storage so that later use reports ErrFreed. Backends call
// it when they take the memory back; other views of the same storage are not affected.
func (t *Tensor) Drop() { t.st = nil }

// HostBytes returns the bytes of the whole host storage under the tensor (index them with
// Offset and Strides), or an error for device tensors.
func (t *Tensor) HostBytes() ([]byte, error) {
	if t.st == nil {
		return nil, ErrFreed
	}
	h, ok := t.st.(HostMemory)
	if !ok {
		return nil, fmt.Errorf("tensor: %v is not in host memory", t)
	}
	return h.Bytes(), nil
}

// Float32s returns the elements of a contiguous host F32 tensor without copying.
func (t *Tensor) Float32s() ([]float32, error) {
	if t.dtype != F32 {
		return nil, fmt.Errorf("tensor: float32s of a %v tensor (convert it first)", t.dtype)
	}
	if !t.IsContiguous() {
		return nil, fmt.Errorf("tensor: float32s of a non-contiguous view %v (copy it first)", t)
	}
	b, err := t.HostBytes()
	if err != nil {
		return nil, err
	}
	n := t.NumElements()
	if n == 0 {
		return []float32{}, nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&b[4*t.offset])), n), nil
}

// ToFloat32 returns a new slice with the elements in row-major order, widened to float32.
// Works for every layout and dtype of host tensors.
func (t *Tensor) ToFloat32() ([]float32, error) {
	b, err := t.HostBytes()
	if err != nil {
		return nil, err
	}
	out := make([]float32, t.NumElements())
	if len(out) == 0 {
		return out, nil
	}
	var idx [MaxRank]int
	sz := t.dtype.Size()
	for i := range out {
		off := t.offset
		for d := range t.rank {
			off += idx[d] * t.strides[d]
		}
		out[i] = readElem(b[off*sz:], t.dtype)
		for d := t.rank - 1; d >= 0; d-- {
			idx[d]++
			if idx[d] < t.shape[d] {
				break
			}
			idx[d] = 0
		}
	}
	return out, nil
}

// At returns the element at idx widened to float32 (host tensors; for tests and debugging).
func (t *Tensor) At(idx ...int) (float32, error) {
	b, err := t.HostBytes()
	if err != nil {
		return 0, err
	}
	if len(idx) != t.rank {
		return 0, fmt.Errorf("tensor: at %v of a rank-%d tensor", idx, t.rank)
	}
	off := t.offset
	for d, i := range idx {
		if i < 0 || i >= t.shape[d] {
			return 0, fmt.Errorf("tensor: index %v out of range for shape %v", idx, t.Shape())
		}
		off += i * t.strides[d]
	}
	return readElem(b[off*t.dtype.Size():], t.dtype), nil
}

func readElem(b []byte, dt DType) float32 {
	switch dt {
	case F32:
		return math.Float32frombits(binary.LittleEndian.Uint32(b))
	case BF16:
		return BF16ToF32(binary.LittleEndian.Uint16(b))
	case F16:
		return F16ToF32(binary.LittleEndian.Uint16(b))
	case F8E4M3:
		return F8E4M3ToF32(b[0])
	case F8E5M2:
		return F8E5M2ToF32(b[0])
	}
	return float32(math.NaN())
}
