package tensor

import "fmt"

// View operations. They never copy: the result shares storage with t. When a layout cannot be
// expressed as a view (Reshape of some non-contiguous tensors) they return an error, and the
// caller materialises the tensor with Backend.Copy first.

func (t *Tensor) clone() *Tensor {
	c := *t
	return &c
}

// Reshape returns a view with a new shape holding the same elements in row-major order. One
// dimension may be -1 and is inferred. Non-contiguous tensors can be reshaped as long as only
// dimensions that are contiguous among themselves are split or merged (as in torch.view).
func (t *Tensor) Reshape(shape ...int) (*Tensor, error) {
	if t.st == nil {
		return nil, ErrFreed
	}
	if len(shape) > MaxRank {
		return nil, fmt.Errorf("tensor: reshape %v to %v: rank exceeds %d", t.Shape(), shape, MaxRank)
	}
	var ns [MaxRank]int
	copy(ns[:], shape)
	infer, prod := -1, 1
	for i, d := range shape {
		switch {
		case d == -1 && infer < 0:
			infer = i
		case d < 0:
			return nil, fmt.Errorf("tensor: reshape %v to %v: bad dimension %d", t.Shape(), shape, d)
		default:
			prod *= d
		}
	}
	n := t.NumElements()
	if infer >= 0 {
		if prod == 0 || n%prod != 0 {
			return nil, fmt.Errorf("tensor: reshape %v to %v: cannot infer the -1 dimension", t.Shape(), shape)
		}
		ns[infer] = n / prod
		prod = n
	}
	if prod != n {
		return nil, fmt.Errorf("tensor: reshape %v (%d elements) to %v (%d elements)", t.Shape(), n, shape, prod)
	}
	strides, ok := viewStrides(t.shape[:t.rank], t.strides[:t.rank], ns[:len(shape)])
	if !ok {
		return nil, fmt.Errorf("tensor: reshape %v with strides %v to %v is not a view (Copy it first)", t.Shape(), t.Strides(), shape)
	}
	c := t.clone()
	c.rank = len(shape)
	c.shape = ns
	c.strides = strides
	return c, nil
}

// viewStrides computes strides that make newShape address the same elements as
// (oldShape, oldStrides) in row-major order, or reports that none exist.
func viewStrides(oldShape, oldStrides, newShape []int) ([MaxRank]int, bool) {
	var out [MaxRank]int
	n := 1
	for _, d := range oldShape {
		n *= d
	}
	if n == 0 {
		s := 1
		for i := len(newShape) - 1; i >= 0; i-- {
			out[i] = s
			s *= max(newShape[i], 1)
		}
		return out, true
	}
	// Old dimensions form chunks of mutually contiguous dimensions (size-1 dimensions ignored);
	// each chunk behaves like one dimension of its total size and base stride.
	type chunk struct{ size, stride int }
	var chunks [MaxRank]chunk
	nc := 0
	inner := 0 // stride×size of the innermost dimension seen in the current chunk
	for i := len(oldShape) - 1; i >= 0; i-- {
		d, s := oldShape[i], oldStrides[i]
		if d == 1 {
			continue
		}
		if nc > 0 && s == inner {
			chunks[nc-1].size *= d
		} else {
			chunks[nc] = chunk{size: d, stride: s}
			nc++
		}
		inner = s * d
	}
	j := len(newShape) - 1
	for c := 0; c < nc; c++ {
		p := 1
		for p < chunks[c].size {
			if j < 0 {
				return out, false
			}
			out[j] = chunks[c].stride * p
			p *= newShape[j]
			j--
		}
		if p != chunks[c].size {
			return out, false
		}
	}
	for ; j >= 0; j-- {
		if newShape[j] != 1 {
			return out, false
		}
		out[j] = 1
	}
	return out, true
}

// Slice returns the view of elements start..end-1 along dim (negative dim counts from the end).
func (t *Tensor) Slice(dim, start, end int) (*Tensor, error) {
	if t.st == nil {
		return nil, ErrFreed
	}
	d := dim
	if d < 0 {
		d += t.rank
	}
	if d < 0 || d >= t.rank {
		return nil, fmt.Errorf("tensor: slice dim %d of shape %v", dim, t.Shape())
	}
	if start < 0 || end < start || end > t.shape[d] {
		return nil, fmt.Errorf("tensor: slice [%d:%d] of dim %d (size %d)", start, end, dim, t.shape[d])
	}
	c := t.clone()
	if end > start {
		c.offset += start * t.strides[d]
	}
	c.shape[d] = end - start
	return c, nil
}

// Permute returns the view whose dimension i is t's dimension perm[i].
func (t *Tensor) Permute(perm ...int) (*Tensor, error) {
	if t.st == nil {
		return nil, ErrFreed
	}
	if len(perm) != t.rank {
		return nil, fmt.Errorf("tensor: permute %v of shape %v: wrong number of axes", perm, t.Shape())
	}
	var seen [MaxRank]bool
	c := t.clone()
	for i, p := range perm {
		if p < 0 {
			p += t.rank
		}
		if p < 0 || p >= t.rank || seen[p] {
			return nil, fmt.Errorf("tensor: permute %v of shape %v: not a permutation", perm, t.Shape())
		}
		seen[p] = true
		c.shape[i] = t.shape[p]
		c.strides[i] = t.strides[p]
	}
	return c, nil
}

// Transpose returns the view with dimensions a and b swapped.
func (t *Tensor) Transpose(a, b int) (*Tensor, error) {
	var perm [MaxRank]int
	for i := range t.rank {
		perm[i] = i
	}
	if a < 0 {
		a += t.rank
	}
	if b < 0 {
		b += t.rank
	}
	if a < 0 || a >= t.rank || b < 0 || b >= t.rank {
		return nil, fmt.Errorf("tensor: transpose %d,%d of shape %v", a, b, t.Shape())
	}
	perm[a], perm[b] = perm[b], perm[a]
	return t.Permute(perm[:t.rank]...)
}

// Unsqueeze returns the view with a new size-1 dimension inserted at dim (0..Rank).
func (t *Tensor) Unsqueeze(dim int) (*Tensor, error) {
	if t.st == nil {
		return nil, ErrFreed
	}
	if dim < 0 {
		dim += t.rank + 1
	}
	if dim < 0 || dim > t.rank || t.rank == MaxRank {
		return nil, fmt.Errorf("tensor: unsqueeze %d of shape %v", dim, t.Shape())
	}
	c := t.clone()
	copy(c.shape[dim+1:], t.shape[dim:t.rank])
	copy(c.strides[dim+1:], t.strides[dim:t.rank])
	c.shape[dim] = 1
	if dim < t.rank {
		c.strides[dim] = t.strides[dim] * t.shape[dim]
	} else {
		c.strides[dim] = 1
	}
	c.rank++
	return c, nil
}

// Expand returns a broadcast view with the given shape: size-1 dimensions are repeated (stride
// 0) and new leading dimensions are added, as in torch.expand. The result must not be written.
func (t *Tensor) Expand(shape ...int) (*Tensor, error) {
	if t.st == nil {
		return nil, ErrFreed
	}
	if len(shape) < t.rank || len(shape) > MaxRank {
		return nil, fmt.Errorf("tensor: expand %v to %v", t.Shape(), shape)
	}
	c := t.clone()
	c.rank = len(shape)
	lead := len(shape) - t.rank
	for i := range shape {
		if i < lead {
			if shape[i] < 0 {
				return nil, fmt.Errorf("tensor: expand %v to %v", t.Shape(), shape)
			}
			c.shape[i], c.strides[i] = shape[i], 0
			continue
		}
		d, s := t.shape[i-lead], t.strides[i-lead]
		switch {
		case shape[i] == d:
			c.shape[i], c.strides[i] = d, s
		case d == 1 && shape[i] >= 0:
			c.shape[i], c.strides[i] = shape[i], 0
		default:
			return nil, fmt.Errorf("tensor: expand %v to %v: dim %d cannot broadcast", t.Shape(), shape, i)
		}
	}
	return c, nil
}

// BroadcastShapes returns the shape two operands broadcast to (numpy rules), or an error.
func BroadcastShapes(a, b []int) ([]int, error) {
	n := max(len(a), len(b))
	if n > MaxRank {
		return nil, fmt.Errorf("tensor: broadcast %v and %v: rank exceeds %d", a, b, MaxRank)
	}
	out := make([]int, n)
	for i := range n {
		da, db := 1, 1
		if j := i - (n - len(a)); j >= 0 {
			da = a[j]
		}
		if j := i - (n - len(b)); j >= 0 {
			db = b[j]
		}
		switch {
		case da == db, db == 1:
			out[i] = da
		case da == 1:
			out[i] = db
		default:
			return nil, fmt.Errorf("tensor: shapes %v and %v do not broadcast (dim %d: %d vs %d)", a, b, i, da, db)
		}
	}
	return out, nil
}
