package lora

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/dypegraph/dypegraph/models/safetensors"
	"github.com/dypegraph/dypegraph/tensor"
)

// File is an open LoRA file. Resolve copies the tensors it uses, so the file can be closed
// right after.
type File struct {
	name  string
	src   safetensors.Source
	close func() error
}

// Open opens a LoRA safetensors file (memory-mapped until Close).
func Open(path string) (*File, error) {
	f, err := safetensors.Open(path)
	if err != nil {
		return nil, fmt.Errorf("lora: %w", err)
	}
	return &File{name: path, src: f, close: f.Close}, nil
}

// Read wraps tensors that are already open (a safetensors File, Set or View) as a LoRA file
// named name; the caller keeps src open while the File is used and closes it.
func Read(name string, src safetensors.Source) *File {
	return &File{name: name, src: src}
}

// Name returns the file's path (or the name given to Read).
func (f *File) Name() string { return f.name }

// Names returns the tensor names, sorted.
func (f *File) Names() []string { return f.src.Names() }

// Metadata returns the file's "__metadata__" (kohya's ss_network_dim ...), nil when none.
func (f *File) Metadata() map[string]string { return f.src.Metadata() }

// Close releases the file. Patches already resolved stay valid.
func (f *File) Close() error {
	if f.close == nil {
		return nil
	}
	c := f.close
	f.close = nil
	return c()
}

func (f *File) has(name string) bool {
	_, ok := f.src.Info(name)
	return ok
}

// matrix returns a copy of a float tensor (F32, BF16, F16 kept; F64 rounded to F32, as the
// float32 LoRA arithmetic would).
func (f *File) matrix(name string) (*tensor.Tensor, error) {
	info, ok := f.src.Info(name)
	if !ok {
		return nil, fmt.Errorf("lora: %s: tensor %q missing", f.name, name)
	}
	data, err := f.src.Data(name)
	if err != nil {
		return nil, fmt.Errorf("lora: %s: tensor %q: %w", f.name, name, err)
	}
	shape := info.Shape
	if len(shape) == 0 {
		shape = []int{1}
	}
	if info.DType == safetensors.F64 {
		n := len(data) / 8
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(data[8*i:])))
		}
		t, err := tensor.FromFloat32(v, shape...)
		if err != nil {
			return nil, fmt.Errorf("lora: %s: tensor %q: %w", f.name, name, err)
		}
		return t, nil
	}
	dt, err := tensor.ParseDType(string(info.DType))
	if err != nil || !dt.IsComputeType() {
		return nil, fmt.Errorf("lora: %s: tensor %q has dtype %s; LoRA matrices must be F32, BF16, F16 or F64", f.name, name, info.DType)
	}
	t, err := tensor.FromBytes(append([]byte(nil), data...), dt, shape...)
	if err != nil {
		return nil, fmt.Errorf("lora: %s: tensor %q: %w", f.name, name, err)
	}
	return t, nil
}

// scalar returns the value of a one-element tensor (torch's .item()), any float or integer
// dtype.
func (f *File) scalar(name string) (float64, error) {
	info, ok := f.src.Info(name)
	if !ok {
		return 0, fmt.Errorf("lora: %s: tensor %q missing", f.name, name)
	}
	if info.NumElements() != 1 {
		return 0, fmt.Errorf("lora: %s: tensor %q has shape %v; an alpha must be a single value", f.name, name, info.Shape)
	}
	b, err := f.src.Data(name)
	if err != nil {
		return 0, fmt.Errorf("lora: %s: tensor %q: %w", f.name, name, err)
	}
	le := binary.LittleEndian
	var v float64
	switch info.DType {
	case safetensors.F64:
		v = math.Float64frombits(le.Uint64(b))
	case safetensors.F32:
		v = float64(math.Float32frombits(le.Uint32(b)))
	case safetensors.F16:
		v = float64(tensor.F16ToF32(le.Uint16(b)))
	case safetensors.BF16:
		v = float64(tensor.BF16ToF32(le.Uint16(b)))
	case safetensors.F8E4M3:
		v = float64(tensor.F8E4M3ToF32(b[0]))
	case safetensors.F8E5M2:
		v = float64(tensor.F8E5M2ToF32(b[0]))
	case safetensors.I64:
		v = float64(int64(le.Uint64(b)))
	case safetensors.I32:
		v = float64(int32(le.Uint32(b)))
	case safetensors.I16:
		v = float64(int16(le.Uint16(b)))
	case safetensors.I8:
		v = float64(int8(b[0]))
	case safetensors.U8, safetensors.Bool:
		v = float64(b[0])
	default:
		return 0, fmt.Errorf("lora: %s: tensor %q has dtype %s", f.name, name, info.DType)
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("lora: %s: tensor %q is %v", f.name, name, v)
	}
	return v, nil
}

// errUnsupported marks adapters this package does not implement.
var errUnsupported = errors.New("not supported")
