package brownian

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
)

// The interval tree of torchsde's BrownianInterval as BrownianTree configures it: tol 1e-6
// (every time is rounded to 6 decimals, Python's round(t, 6)), pool_size 24, halfway_tree
// (every node splits at the rounded middle of its interval, so the tree, and the noise, depend
// on the seed alone and not on the order of the queries), an LRU cache of 45 node increments,
// no Lévy area. Each split node draws its noise from a fresh torch CPU generator seeded with the
// first word of SeedSequence(entropy=seed, spawn_key=(key, depth), pool_size=24), where the
// root has key 0 and depth 0 and a child has key 2·parent+(0 left, 1 right).

const (
	poolSize  = 24
	cacheSize = 45
	// maxSplitDepth bounds the halving of one split; a split that needs more levels can only
	// be one that never ends (Python runs out of recursion there).
	maxSplitDepth = 1100
	// maxLocSteps bounds the walk of one query through the tree.
	maxLocSteps = 1 << 16
)

// errTooFine is returned for the queries torchsde cannot resolve at its 1e-6 time resolution.
var errTooFine = errors.New("the interval is finer than the Brownian tree's time resolution of 1e-6 " +
	"(its ends round to the same 6-decimal time); use sigmas that differ by at least 1e-6")

// round6 is Python's round(x, 6): x correctly rounded (ties to even) to 6 decimals, then read
// back as the nearest double.
func round6(x float64) float64 {
	if math.IsInf(x, 0) || math.IsNaN(x) {
		return x
	}
	v, err := strconv.ParseFloat(strconv.FormatFloat(x, 'f', 6, 64), 64)
	if err != nil {
		return x // only overflow, which FormatFloat of a finite x cannot produce
	}
	return v
}

// node is an _Interval: [start, end], split at midway into left and right once needed.
type node struct {
	start, end float64
	parent     *node
	isLeft     bool
	// Set when split.
	split       bool
	midway      float64
	spawnKey    []uint32 // the key as numpy's uint32 words, least significant first
	depth       uint32
	wSeed       uint32
	left, right *node
}

// childKey is 2·key + bit on numpy's word representation.
func childKey(key []uint32, bit uint32) []uint32 {
	out := make([]uint32, len(key), len(key)+1)
	carry := bit
	for i, w := range key {
		out[i] = w<<1 | carry
		carry = w >> 31
	}
	if carry != 0 {
		out = append(out, carry)
	}
	return out
}

// tree is a BrownianInterval with halfway_tree=True for tensors of n float32 values.
type tree struct {
	seed  uint64
	n     int
	randn RandnFunc
	root  *node
	rootW []float32
	last  *node // the most recently returned interval, where the next search starts

	cache     map[*node][]float32
	cacheKeys []*node // insertion order of the LRU dict (reads do not refresh it)
}

// newTree is BrownianInterval(t0, t1, size, entropy=seed, tol=1e-6, pool_size=24,
// halfway_tree=True) with t0 <= t1: W over [t0, t1] is randn(initial W seed)·sqrt(t1 − t0),
// with the unrounded ends.
func newTree(seed uint64, n int, t0, t1 float64, randn RandnFunc) *tree {
	t := &tree{seed: seed, n: n, randn: randn, cache: make(map[*node][]float32, cacheSize)}
	t.root = &node{start: round6(t0), end: round6(t1)}
	t.last = t.root
	initial := newSeedSequence(uint64Words(seed), nil, poolSize).generateState(1)
	w := make([]float32, n)
	randn(initial[0], w)
	scale := float32(math.Sqrt(t1 - t0))
	for i := range w {
		w[i] *= scale
	}
	t.rootW = w
	return t
}

// splitExact is _split_exact: split n at the rounded midway and seed its noise.
func (t *tree) splitExact(n *node, midway float64) {
	n.midway = round6(midway)
	if n.parent == nil {
		n.spawnKey, n.depth = []uint32{0}, 0
	} else {
		bit := uint32(1)
		if n.isLeft {
			bit = 0
		}
		n.spawnKey, n.depth = childKey(n.parent.spawnKey, bit), n.parent.depth+1
	}
	spawn := slices.Concat(n.spawnKey, []uint32{n.depth})
	n.wSeed = newSeedSequence(uint64Words(t.seed), spawn, poolSize).generateState(1)[0]
	n.left = &node{start: n.start, end: round6(midway), parent: n, isLeft: true}
	n.right = &node{start: round6(midway), end: n.end, parent: n}
	n.split = true
}

// splitAt is _split with halfway_tree: split at the middle, then keep splitting the child
// that contains midway until midway is a split point.
func (t *tree) splitAt(n *node, midway float64) error {
	for range maxSplitDepth {
		t.splitExact(n, 0.5*(n.end+n.start))
		var next *node
		switch {
		case midway > n.midway:
			next = n.right
		case midway < n.midway:
			next = n.left
		default:
			return nil
		}
		if next.start == n.start && next.end == n.end {
			return errTooFine // the child is its parent again: torchsde recurses forever
		}
		n = next
	}
	return errTooFine
}

// loc is _loc: the tree nodes whose intervals make up [ta, tb], in order, searched from the
// last interval returned (the result does not depend on where the search starts).
func (t *tree) loc(ta, tb float64) ([]*node, error) {
	var out []*node
	steps := 0
	if err := t.locInner(t.last, round6(ta), round6(tb), &out, &steps); err != nil {
		return nil, err
	}
	return out, nil
}

func (t *tree) locInner(n *node, ta, tb float64, out *[]*node, steps *int) error {
	for {
		if *steps++; *steps > maxLocSteps {
			return errTooFine
		}
		if ta < n.start || tb > n.end {
			if n.parent == nil {
				return fmt.Errorf("internal error: [%v, %v] is outside the tree [%v, %v]", ta, tb, n.start, n.end)
			}
			n = n.parent
			continue
		}
		if ta == n.start && tb == n.end {
			*out = append(*out, n)
			return nil
		}
		if !n.split {
			if ta == n.start {
				if err := t.splitAt(n, tb); err != nil {
					return err
				}
				n = n.left
				continue
			}
			if err := t.splitAt(n, ta); err != nil {
				return err
			}
			n = n.right
			continue
		}
		if tb <= n.midway {
			n = n.left
			continue
		}
		if ta >= n.midway {
			n = n.right
			continue
		}
		if err := t.locInner(n.left, ta, n.midway, out, steps); err != nil {
			return err
		}
		ta, n = n.midway, n.right
	}
}

// cachePut is _LRUDict.__setitem__.
func (t *tree) cachePut(n *node, w []float32) {
	if _, ok := t.cache[n]; ok {
		t.cacheKeys = slices.DeleteFunc(t.cacheKeys, func(k *node) bool { return k == n })
	} else if len(t.cache) >= cacheSize {
		delete(t.cache, t.cacheKeys[0])
		t.cacheKeys = slices.Delete(t.cacheKeys, 0, 1)
	}
	t.cache[n] = w
	t.cacheKeys = append(t.cacheKeys, n)
}

// increment is W over node n (_increment_and_space_time_levy_area without H): from the cache,
// else from its parent's W by the Brownian bridge at the parent's midway, caching every node
// computed on the way down. One noise draw gives both children of a parent, so the sibling is
// cached too (torchsde draws the parent's noise again for it; the values are the same, and the
// cache keeps its 45-tensor bound). The returned slice must not be modified.
func (t *tree) increment(n *node) []float32 {
	var path []*node
	var w []float32
	for m := n; ; m = m.parent {
		if m.parent == nil {
			w = t.rootW
			break
		}
		if cw, ok := t.cache[m]; ok {
			w = cw
			break
		}
		path = append(path, m)
	}
	noise := make([]float32, t.n)
	for i := len(path) - 1; i >= 0; i-- {
		m := path[i]
		p := m.parent
		left, right := t.bridge(p, w, noise)
		if m.isLeft {
			t.cachePut(p.right, right)
			t.cachePut(m, left)
			w = left
		} else {
			t.cachePut(p.left, left)
			t.cachePut(m, right)
			w = right
		}
	}
	return w
}

// bridge is the increments of the children of parent p (whose increment is w) in torch's
// float32 arithmetic: the Python scalars become float32 before each tensor operation. noise is
// scratch space of the tensor's size.
//
//	mean  = left_diff·W·(1/h)
//	left  = mean + sqrt(left_diff·right_diff/h)·randn(W seed)
//	right = W − left
func (t *tree) bridge(p *node, w []float32, noise []float32) (left, right []float32) {
	hRecip := 1 / (p.end - p.start)
	leftDiff := p.midway - p.start
	rightDiff := p.end - p.midway
	a := float32(leftDiff)
	b := float32(hRecip)
	s := float32(math.Sqrt(leftDiff * rightDiff * hRecip))
	t.randn(p.wSeed, noise)
	left = make([]float32, len(w))
	right = make([]float32, len(w))
	for i, wi := range w {
		mean := float32(float32(a*wi) * b)
		lw := float32(mean + float32(s*noise[i]))
		left[i] = lw
		right[i] = float32(wi - lw)
	}
	return left, right
}

// query is BrownianInterval.__call__(ta, tb) for ta <= tb: the increment over [ta, tb] in a
// new slice (ends outside the tree are clamped to it, as torchsde does with a warning).
func (t *tree) query(ta, tb float64) ([]float32, error) {
	ta = min(max(ta, t.root.start), t.root.end)
	tb = min(max(tb, t.root.start), t.root.end)
	out := make([]float32, t.n)
	if ta == tb {
		return out, nil
	}
	nodes, err := t.loc(ta, tb)
	if err != nil {
		return nil, err
	}
	t.last = nodes[len(nodes)-1]
	copy(out, t.increment(nodes[0]))
	for _, n := range nodes[1:] {
		wi := t.increment(n)
		for i := range out {
			out[i] += wi[i]
		}
	}
	return out, nil
}
