package tensor

import (
	"fmt"
	"sort"
	"sync"
)

// Backend runs tensor operations on one device. The CPU backend (tensor/cpu) is the reference;
// other backends (CUDA) implement the same contract and are tested against it.
//
// Conventions shared by every op:
//
//   - dst may be nil: the backend then allocates the result, contiguous, of the dtype of the
//     op's main (activation) input when that is F32, F16 or BF16, else F32. A non-nil dst must
//     have exactly the result's shape, a compute dtype (F32, F16, BF16), live on the backend's
//     device, and may be a strided view (it is written through its strides). Every op returns
//     the tensor it wrote.
//   - Inputs may have any dtype (FP8 included) and any strides, broadcast views (stride 0)
//     included where an op says so. Arithmetic is float32; weights are read in their stored
//     dtype and converted tile by tile, never expanded whole.
//   - Element-wise ops (Unary, Binary, Affine, Clamp, RoPE, the norms, Softmax, Copy) may
//     write in place: dst may be the very tensor (same storage and layout) of an input.
//     For the others dst must not overlap an input.
//   - Shape and dtype problems are reported as errors, never panics.
//   - Ops are synchronous from the caller's point of view: a later Read sees the result.
//     Ops are safe to call from several goroutines at once on distinct output tensors.
type Backend interface {
	// Name is the registry name ("cpu", "cuda").
	Name() string
	// Device is where this backend's tensors live.
	Device() Device
	// Close releases the backend's pooled memory and workers. Tensors it allocated must not
	// be used afterwards.
	Close() error

	// Alloc returns a contiguous tensor with unspecified contents, reusing pooled memory.
	Alloc(dt DType, shape ...int) (*Tensor, error)
	// Zeros returns a contiguous tensor filled with zeros.
	Zeros(dt DType, shape ...int) (*Tensor, error)
	// Free hands the memory of tensors from Alloc, Zeros or an op's nil dst back to the pool,
	// so the next allocation of a similar size reuses it; each tensor is Dropped. Pass the
	// tensor (or any one view of it) exactly once, after its last use by any view. Tensors
	// the backend did not allocate (host weights, uploads on CPU) are only Dropped.
	Free(ts ...*Tensor)
	// ToDevice makes t available to the backend: host tensors are uploaded (device backends)
	// or used in place (CPU, where a memory-mapped weight stays mapped). Layout and dtype are
	// kept.
	ToDevice(t *Tensor) (*Tensor, error)
	// ToHost returns a host tensor with t's values (t itself on the CPU backend).
	ToHost(t *Tensor) (*Tensor, error)
	// Read copies t's elements in row-major order, widened to float32, into dst
	// (len(dst) == t.NumElements()).
	Read(dst []float32, t *Tensor) error
	// Write sets t's elements (row-major order) from src, rounded to t's dtype.
	Write(t *Tensor, src []float32) error

	// Copy writes src into dst (same shape; src may broadcast to dst's shape), converting the
	// dtype. A nil dst makes a contiguous copy of src (materialising a view).
	Copy(dst, src *Tensor) (*Tensor, error)
	// Convert returns a contiguous copy of src with dtype dt (any dtype, FP8 included, rounded
	// to nearest even).
	Convert(src *Tensor, dt DType) (*Tensor, error)
	// Concat joins xs along dim; all other dimensions must match.
	Concat(dst *Tensor, dim int, xs ...*Tensor) (*Tensor, error)
	// GatherRows copies rows ids of table [V, D] into dst [len(ids), D] (embedding lookup).
	GatherRows(dst, table *Tensor, ids []int) (*Tensor, error)

	// MatMul computes a·b (b transposed when transB) with float32 accumulation.
	// a is [..., M, K]; b is [K, N] ([N, K] when transB) shared by every batch, or
	// [..., K, N] with batch dimensions that broadcast against a's. dst is [batch..., M, N].
	MatMul(dst, a, b *Tensor, transB bool) (*Tensor, error)
	// Linear computes x·wᵀ + bias for x [..., K], w [N, K] (a torch Linear weight), bias [N]
	// or nil; dst is [..., N].
	Linear(dst, x, w, bias *Tensor) (*Tensor, error)
	// Attention computes softmax(q·kᵀ·scale + mask)·v per head for q [B, Sq, Hq, D],
	// k [B, Skv, Hkv, D], v [B, Skv, Hkv, Dv]; Hq must be a multiple of Hkv and query head h
	// uses key/value head h/(Hq/Hkv) (grouped-query attention). dst is [B, Sq, Hq, Dv].
	// The score matrix is never materialised beyond one block (online softmax). A row whose
	// every score is masked to -Inf yields zeros.
	Attention(dst, q, k, v *Tensor, opt AttentionOptions) (*Tensor, error)
	// Conv2D computes a 2-D cross-correlation of x [N, Cin, H, W] with w [Cout, Cin, KH, KW]
	// plus bias [Cout] (or nil); dst is [N, Cout, OH, OW] with
	// OH = (H + PadTop + PadBottom - KH)/StrideH + 1 (likewise OW). Padding is zeros.
	Conv2D(dst, x, w, bias *Tensor, p Conv2DParams) (*Tensor, error)

	// RMSNorm computes x / sqrt(mean(x²) + eps) · w over the last dimension; w [D] or nil.
	RMSNorm(dst, x, w *Tensor, eps float32) (*Tensor, error)
	// LayerNorm computes (x - mean) / sqrt(var + eps) · w + b over the last dimension
	// (biased variance); w and b [D] or nil.
	LayerNorm(dst, x, w, b *Tensor, eps float32) (*Tensor, error)
	// GroupNorm normalises x [N, C, ...] over groups of C/groups channels and all trailing
	// dimensions, then applies per-channel w and b ([C] or nil).
	GroupNorm(dst, x, w, b *Tensor, groups int, eps float32) (*Tensor, error)
	// Softmax computes softmax over the last dimension.
	Softmax(dst, x *Tensor) (*Tensor, error)

	// Unary applies op element-wise.
	Unary(dst, x *Tensor, op UnaryOp) (*Tensor, error)
	// Binary applies op element-wise to a and b broadcast together (numpy rules); dst has
	// the broadcast shape.
	Binary(dst, a, b *Tensor, op BinaryOp) (*Tensor, error)
	// Affine computes x·mul + add element-wise.
	Affine(dst, x *Tensor, mul, add float32) (*Tensor, error)
	// Clamp limits x element-wise to [lo, hi] (NaN stays NaN).
	Clamp(dst, x *Tensor, lo, hi float32) (*Tensor, error)

	// RoPE rotates pairs of the last dimension of x [B, S, H, D] by the angles whose cosines
	// and sines are given in cos and sin, each [S, D/2] or [B, S, D/2] (pair i uses column i).
	// RoPEInterleaved pairs dims (2i, 2i+1) (Z-Image, Flux); RoPEHalf pairs (i, i+D/2)
	// (Qwen3's rotate-half, with its duplicated table given once).
	RoPE(dst, x, cos, sin *Tensor, mode RoPEMode) (*Tensor, error)
	// Resize interpolates the two last dimensions of x [..., H, W] to [..., outH, outW] with
	// torch.nn.functional.interpolate semantics (align_corners=False, no antialias), or
	// ComfyUI's Pillow Lanczos.
	Resize(dst, x *Tensor, outH, outW int, method ResizeMethod) (*Tensor, error)
}

// AttentionOptions configures Backend.Attention.
type AttentionOptions struct {
	// Scale multiplies q·kᵀ; 0 means 1/sqrt(D).
	Scale float32
	// Causal restricts query i to keys j ≤ i (top-left aligned, as torch's is_causal).
	Causal bool
	// Mask, when not nil, is added to the scaled scores; it must broadcast to
	// [B, Hq, Sq, Skv] (e.g. [Sq, Skv] or [B, 1, Sq, Skv]); -Inf removes a key.
	Mask *Tensor
}

// Conv2DParams configures Backend.Conv2D.
type Conv2DParams struct {
	StrideH, StrideW                     int // 0 means 1
	PadTop, PadBottom, PadLeft, PadRight int // zero padding; may be asymmetric
}

// Pad returns parameters with the same padding p on every side and stride s.
func Pad(p, s int) Conv2DParams {
	return Conv2DParams{StrideH: s, StrideW: s, PadTop: p, PadBottom: p, PadLeft: p, PadRight: p}
}

// UnaryOp selects an element-wise function.
type UnaryOp uint8

// The unary ops. GELU comes in torch's two forms: exact (erf) and the tanh approximation.
const (
	Neg UnaryOp = iota + 1
	Abs
	Square
	Sqrt
	Rsqrt
	Exp
	Tanh
	Sigmoid
	SiLU
	ReLU
	GELUErf
	GELUTanh
)

var unaryNames = [...]string{Neg: "neg", Abs: "abs", Square: "square", Sqrt: "sqrt", Rsqrt: "rsqrt",
	Exp: "exp", Tanh: "tanh", Sigmoid: "sigmoid", SiLU: "silu", ReLU: "relu", GELUErf: "gelu",
	GELUTanh: "gelu_tanh"}

func (o UnaryOp) String() string {
	if int(o) < len(unaryNames) && unaryNames[o] != "" {
		return unaryNames[o]
	}
	return fmt.Sprintf("UnaryOp(%d)", uint8(o))
}

// Valid reports whether o is a defined op.
func (o UnaryOp) Valid() bool { return o >= Neg && o <= GELUTanh }

// BinaryOp selects an element-wise function of two operands.
type BinaryOp uint8

// The binary ops.
const (
	Add BinaryOp = iota + 1
	Sub
	Mul
	Div
	Maximum
	Minimum
)

var binaryNames = [...]string{Add: "add", Sub: "sub", Mul: "mul", Div: "div", Maximum: "maximum", Minimum: "minimum"}

func (o BinaryOp) String() string {
	if int(o) < len(binaryNames) && binaryNames[o] != "" {
		return binaryNames[o]
	}
	return fmt.Sprintf("BinaryOp(%d)", uint8(o))
}

// Valid reports whether o is a defined op.
func (o BinaryOp) Valid() bool { return o >= Add && o <= Minimum }

// RoPEMode selects which dimensions form the rotated pairs.
type RoPEMode uint8

// The RoPE pairings.
const (
	// RoPEInterleaved rotates (x[2i], x[2i+1]): y[2i] = c·x[2i] - s·x[2i+1],
	// y[2i+1] = s·x[2i] + c·x[2i+1] (Z-Image / Flux complex pairs).
	RoPEInterleaved RoPEMode = iota + 1
	// RoPEHalf rotates (x[i], x[i+D/2]): y = x·cos + rotate_half(x)·sin with
	// rotate_half(x) = [-x[D/2:], x[:D/2]] (Qwen3, Llama).
	RoPEHalf
)

func (m RoPEMode) String() string {
	switch m {
	case RoPEInterleaved:
		return "interleaved"
	case RoPEHalf:
		return "half"
	}
	return fmt.Sprintf("RoPEMode(%d)", uint8(m))
}

// ResizeMethod names an interpolation mode by its ComfyUI name.
type ResizeMethod string

// The resize methods.
const (
	ResizeNearestExact ResizeMethod = "nearest-exact"
	ResizeBilinear     ResizeMethod = "bilinear"
	ResizeBicubic      ResizeMethod = "bicubic"
	ResizeArea         ResizeMethod = "area"
	ResizeLanczos      ResizeMethod = "lanczos"
)

// The backend registry: filled at init by backend packages, read afterwards.
var (
	registryMu sync.RWMutex
	registry   = map[string]func() (Backend, error){}
)

// Register makes a backend constructor available under name. Backend packages call it from
// init; registering a name twice is a programming error and panics.
func Register(name string, open func() (Backend, error)) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[name]; dup || open == nil {
		panic("tensor: Register called twice or with nil for backend " + name)
	}
	registry[name] = open
}

// Open constructs the backend registered under name.
func Open(name string) (Backend, error) {
	registryMu.RLock()
	open, ok := registry[name]
	registryMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("tensor: no backend %q (registered: %v)", name, Backends())
	}
	b, err := open()
	if err != nil {
		return nil, fmt.Errorf("tensor: open backend %q: %w", name, err)
	}
	return b, nil
}

// Backends lists the registered backend names, sorted.
func Backends() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
