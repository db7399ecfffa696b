package tensor

import (
	"errors"
	"slices"
	"testing"
	"unsafe"
)

func seq(n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(i)
	}
	return s
}

func mustF32(t *testing.T, x *Tensor) []float32 {
	t.Helper()
	v, err := x.ToFloat32()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestConstructors(t *testing.T) {
	data := seq(6)
	x, err := FromFloat32(data, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	data[4] = 40 // shares memory
	if v, _ := x.At(1, 1); v != 40 {
		t.Fatalf("FromFloat32 copied: At(1,1) = %v", v)
	}
	if _, err := FromFloat32(data, 4, 2); err == nil {
		t.Error("FromFloat32 accepted a wrong length")
	}
	if _, err := FromFloat32(data, -1, -6); err == nil {
		t.Error("FromFloat32 accepted negative dims")
	}

	// FromBytes: aligned data is used in place; misaligned data is copied.
	backing := make([]uint64, 2) // 8-byte aligned
	raw := unsafe.Slice((*byte)(unsafe.Pointer(&backing[0])), 2*4+1)
	bf := []uint16{F32ToBF16(1.5), F32ToBF16(-2), F32ToBF16(3), F32ToBF16(0.25)}
	for i, h := range bf {
		raw[2*i], raw[2*i+1] = byte(h), byte(h>>8)
	}
	y, err := FromBytes(raw[:8], BF16, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got := mustF32(t, y); !slices.Equal(got, []float32{1.5, -2, 3, 0.25}) {
		t.Fatalf("FromBytes BF16 = %v", got)
	}
	hb, _ := y.HostBytes()
	if unsafe.SliceData(hb) != unsafe.SliceData(raw) {
		t.Error("FromBytes copied aligned data")
	}
	copy(raw[1:], raw[:8])
	z, err := FromBytes(raw[1:9], BF16, 4)
	if err != nil {
		t.Fatal(err)
	}
	if got := mustF32(t, z); !slices.Equal(got, []float32{1.5, -2, 3, 0.25}) {
		t.Fatalf("FromBytes misaligned = %v", got)
	}
	if _, err := FromBytes(raw[:7], BF16, 4); err == nil {
		t.Error("FromBytes accepted a short buffer")
	}
	if _, err := FromBytes(raw[:8], InvalidDType, 4); err == nil {
		t.Error("FromBytes accepted an invalid dtype")
	}

	w, err := FromFloat32As(F16, []float32{1, 2.0009765625, 3}, 3)
	if err != nil {
		t.Fatal(err)
	}
	if got := mustF32(t, w); !slices.Equal(got, []float32{1, 2, 3}) {
		t.Fatalf("FromFloat32As F16 = %v", got)
	}
	zz, err := Zeros(F8E4M3, 2, 0, 3)
	if err != nil || zz.NumElements() != 0 {
		t.Fatalf("Zeros with a zero dim: %v %v", zz, err)
	}
	if _, err := Zeros(F32, 1<<30, 1<<30); err == nil {
		t.Error("Zeros accepted an absurd shape")
	}
	if _, err := New(NewHostStorage(make([]byte, 8)), F32, []int{3}, nil, 0); err == nil {
		t.Error("New accepted a view past the end of its storage")
	}
	if _, err := New(NewHostStorage(make([]byte, 64)), F32, []int{2, 2}, []int{1}, 0); err == nil {
		t.Error("New accepted mismatched strides")
	}
	if _, err := New(NewHostStorage(make([]byte, 64)), F32, []int{3, 1 << 30}, []int{1 << 62, 1}, 0); err == nil {
		t.Error("New accepted strides that overflow")
	}
	if _, err := New(NewHostStorage(make([]byte, 64)), F32, []int{4, 4}, []int{4, 1}, 1); err == nil {
		t.Error("New accepted an offset that pushes the view past the end")
	}
	if v, err := New(NewHostStorage(make([]byte, 64)), F32, []int{4, 4}, []int{0, 1}, 12); err != nil || v.NumElements() != 16 {
		t.Errorf("New rejected a broadcast view that fits: %v", err)
	}
}

func TestViews(t *testing.T) {
	x, _ := FromFloat32(seq(24), 2, 3, 4)
	tests := []struct {
		name  string
		view  func() (*Tensor, error)
		shape []int
		want  []float32
	}{
		{"reshape", func() (*Tensor, error) { return x.Reshape(4, 6) }, []int{4, 6}, seq(24)},
		{"reshape infer", func() (*Tensor, error) { return x.Reshape(-1, 8) }, []int{3, 8}, seq(24)},
		{"slice", func() (*Tensor, error) { return x.Slice(2, 1, 3) }, []int{2, 3, 2},
			[]float32{1, 2, 5, 6, 9, 10, 13, 14, 17, 18, 21, 22}},
		{"slice negative dim", func() (*Tensor, error) { return x.Slice(-3, 1, 2) }, []int{1, 3, 4}, seq(24)[12:]},
		{"transpose", func() (*Tensor, error) { return x.Transpose(0, 2) }, []int{4, 3, 2},
			[]float32{0, 12, 4, 16, 8, 20, 1, 13, 5, 17, 9, 21, 2, 14, 6, 18, 10, 22, 3, 15, 7, 19, 11, 23}},
		{"permute", func() (*Tensor, error) { return x.Permute(1, 0, 2) }, []int{3, 2, 4},
			[]float32{0, 1, 2, 3, 12, 13, 14, 15, 4, 5, 6, 7, 16, 17, 18, 19, 8, 9, 10, 11, 20, 21, 22, 23}},
		{"unsqueeze", func() (*Tensor, error) { return x.Unsqueeze(1) }, []int{2, 1, 3, 4}, seq(24)},
		{"unsqueeze last", func() (*Tensor, error) { return x.Unsqueeze(-1) }, []int{2, 3, 4, 1}, seq(24)},
		{"reshape of a last-dim slice splits it", func() (*Tensor, error) {
			s, err := x.Slice(2, 0, 4)
			if err != nil {
				return nil, err
			}
			s, _ = s.Slice(1, 1, 3) // [2,2,4], rows of 4 contiguous, stride 4 between rows
			return s.Reshape(2, 2, 2, 2)
		}, []int{2, 2, 2, 2}, []float32{4, 5, 6, 7, 8, 9, 10, 11, 16, 17, 18, 19, 20, 21, 22, 23}},
		{"reshape merges strided outer dims", func() (*Tensor, error) {
			s, _ := x.Slice(2, 0, 2) // [2,3,2] strides (12,4,1)
			return s.Reshape(6, 2)
		}, []int{6, 2}, []float32{0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := tc.view()
			if err != nil {
				t.Fatal(err)
			}
			if !v.ShapeIs(tc.shape...) {
				t.Fatalf("shape %v, want %v", v.Shape(), tc.shape)
			}
			if got := mustF32(t, v); !slices.Equal(got, tc.want) {
				t.Fatalf("values %v, want %v", got, tc.want)
			}
		})
	}
}

func TestViewErrors(t *testing.T) {
	x, _ := FromFloat32(seq(24), 2, 3, 4)
	xt, _ := x.Transpose(1, 2) // [2,4,3] non-contiguous
	tests := []struct {
		name string
		err  func() error
	}{
		{"reshape count", func() error { _, err := x.Reshape(5, 5); return err }},
		{"reshape two -1", func() error { _, err := x.Reshape(-1, -1); return err }},
		{"reshape bad infer", func() error { _, err := x.Reshape(-1, 5); return err }},
		{"reshape not a view", func() error { _, err := xt.Reshape(24); return err }},
		{"slice dim", func() error { _, err := x.Slice(3, 0, 1); return err }},
		{"slice range", func() error { _, err := x.Slice(1, 2, 4); return err }},
		{"slice reversed", func() error { _, err := x.Slice(1, 2, 1); return err }},
		{"permute dup", func() error { _, err := x.Permute(0, 0, 1); return err }},
		{"permute len", func() error { _, err := x.Permute(0, 1); return err }},
		{"transpose range", func() error { _, err := x.Transpose(0, 5); return err }},
		{"expand mismatch", func() error { _, err := x.Expand(2, 5, 4); return err }},
		{"expand rank", func() error { _, err := x.Expand(3, 4); return err }},
		{"unsqueeze range", func() error { _, err := x.Unsqueeze(5); return err }},
	}
	for _, tc := range tests {
		if tc.err() == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	if v, err := xt.Reshape(2, 12); err == nil {
		t.Errorf("reshape of a transposed view gave %v", v)
	}
	y, _ := FromFloat32(seq(4), 4)
	y.Drop()
	if _, err := y.Reshape(2, 2); !errors.Is(err, ErrFreed) {
		t.Errorf("reshape of a dropped tensor: %v", err)
	}
	if _, err := y.Float32s(); !errors.Is(err, ErrFreed) {
		t.Errorf("Float32s of a dropped tensor: %v", err)
	}
}

func TestExpandAndBroadcast(t *testing.T) {
	x, _ := FromFloat32([]float32{1, 2, 3}, 3, 1)
	e, err := x.Expand(2, 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got := mustF32(t, e); !slices.Equal(got, []float32{1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3}) {
		t.Fatalf("expand = %v", got)
	}
	if e.IsContiguous() {
		t.Error("an expanded view reports contiguous")
	}
	tests := []struct {
		a, b, want []int
		ok         bool
	}{
		{[]int{2, 3, 4}, []int{4}, []int{2, 3, 4}, true},
		{[]int{2, 1, 4}, []int{3, 1}, []int{2, 3, 4}, true},
		{[]int{}, []int{5}, []int{5}, true},
		{[]int{2, 3}, []int{3, 3}, nil, false},
	}
	for _, tc := range tests {
		got, err := BroadcastShapes(tc.a, tc.b)
		if (err == nil) != tc.ok || tc.ok && !slices.Equal(got, tc.want) {
			t.Errorf("BroadcastShapes(%v, %v) = %v, %v", tc.a, tc.b, got, err)
		}
	}
}

func TestAccessors(t *testing.T) {
	x, _ := FromFloat32(seq(6), 2, 3)
	if x.Rank() != 2 || x.Dim(-1) != 3 || x.Stride(0) != 3 || x.NumElements() != 6 || !x.IsContiguous() {
		t.Fatalf("accessors wrong: %v", x)
	}
	if x.Device() != CPU || x.Device().String() != "cpu" || (Device{Kind: DeviceCUDA, Index: 1}).String() != "cuda:1" {
		t.Error("device names wrong")
	}
	xt, _ := x.Transpose(0, 1)
	if _, err := xt.Float32s(); err == nil {
		t.Error("Float32s of a non-contiguous view succeeded")
	}
	if v, err := xt.At(2, 1); err != nil || v != 5 {
		t.Errorf("At(2,1) of the transpose = %v, %v", v, err)
	}
	if _, err := xt.At(3, 0); err == nil {
		t.Error("At out of range succeeded")
	}
	b, _ := FromFloat32As(BF16, []float32{1, 2}, 2)
	if _, err := b.Float32s(); err == nil {
		t.Error("Float32s of a BF16 tensor succeeded")
	}
	if s := xt.String(); s != "F32[3 2]@cpu(strides [1 3])" {
		t.Errorf("String() = %q", s)
	}
}

func TestRegistry(t *testing.T) {
	if _, err := Open("no-such-backend"); err == nil {
		t.Error("Open of an unknown backend succeeded")
	}
	Register("test-fake", func() (Backend, error) { return nil, errors.New("boom") })
	if _, err := Open("test-fake"); err == nil {
		t.Error("Open ignored the constructor's error")
	}
	if !slices.Contains(Backends(), "test-fake") {
		t.Error("Backends does not list a registered backend")
	}
	defer func() {
		if recover() == nil {
			t.Error("registering a name twice did not panic")
		}
	}()
	Register("test-fake", func() (Backend, error) { return nil, nil })
}
