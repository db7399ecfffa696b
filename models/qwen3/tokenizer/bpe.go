package tokenizer

import (
	"strings"
	"sync"
)

// Word cache bounds: pieces longer than maxCachedPiece bytes are never cached, and once the
// cache holds maxCacheEntries words it stops growing (as the Hugging Face BPE cache does).
const (
	maxCachedPiece  = 256
	maxCacheEntries = 1 << 16
	// maxPooledSymbols keeps the buffers of one huge piece from staying alive in the pool.
	maxPooledSymbols = 1 << 14
)

// mergeKey packs an adjacent pair of token ids.
func mergeKey(left, right int32) uint64 { return uint64(uint32(left))<<32 | uint64(uint32(right)) }

// mergeVal packs a merge's rank and the id of the token it produces.
func mergeVal(rank uint32, id int32) uint64 { return uint64(rank)<<32 | uint64(uint32(id)) }

func unpackMerge(v uint64) (rank uint32, id int32) { return uint32(v >> 32), int32(uint32(v)) }

// symbol is one node of the doubly linked list a word is merged in.
type symbol struct {
	id         int32
	prev, next int32 // -1 at the ends
	dead       bool  // absorbed into its left neighbour
}

// candidate is a queued merge of the pair that starts at symbol pos.
type candidate struct {
	rank uint32
	pos  int32
	id   int32 // the token the merge produces; used to detect stale entries
}

func (a candidate) less(b candidate) bool {
	return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos)
}

// scratch holds the reusable buffers of one BPE run.
type scratch struct {
	syms []symbol
	heap []candidate
	out  []int32
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

func (s *scratch) push(c candidate) {
	h := append(s.heap, c)
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !h[i].less(h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
	s.heap = h
}

func (s *scratch) pop() candidate {
	h := s.heap
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h = h[:last]
	i := 0
	for {
		l := 2*i + 1
		if l >= len(h) {
			break
		}
		m := l
		if r := l + 1; r < len(h) && h[r].less(h[l]) {
			m = r
		}
		if !h[m].less(h[i]) {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	s.heap = h
	return top
}

// wordCache memoises the BPE of pieces; safe for concurrent use.
type wordCache struct {
	mu sync.RWMutex
	m  map[string][]int32
}

func (c *wordCache) get(piece string) ([]int32, bool) {
	c.mu.RLock()
	ids, ok := c.m[piece]
	c.mu.RUnlock()
	return ids, ok
}

func (c *wordCache) put(piece string, ids []int32) {
	c.mu.Lock()
	if c.m == nil {
		c.m = make(map[string][]int32)
	}
	if len(c.m) < maxCacheEntries {
		c.m[strings.Clone(piece)] = ids
	}
	c.mu.Unlock()
}

func (c *wordCache) reset() {
	c.mu.Lock()
	c.m = nil
	c.mu.Unlock()
}

// appendPiece appends the ids of one pre-tokenized piece (non-empty, valid UTF-8) to dst.
func (t *Tokenizer) appendPiece(dst []int, piece string) []int {
	if len(piece) == 1 {
		return append(dst, int(t.byteID[piece[0]]))
	}
	cacheable := len(piece) <= maxCachedPiece
	if cacheable {
		if ids, ok := t.cache.get(piece); ok {
			for _, id := range ids {
				dst = append(dst, int(id))
			}
			return dst
		}
	}
	sc := scratchPool.Get().(*scratch)
	ids := t.bpe(piece, sc)
	for _, id := range ids {
		dst = append(dst, int(id))
	}
	if cacheable {
		t.cache.put(piece, append([]int32(nil), ids...))
	}
	if cap(sc.syms) <= maxPooledSymbols {
		scratchPool.Put(sc)
	}
	return dst
}

// bpe merges the bytes of piece the way the Hugging Face BPE model does: all adjacent pairs that
// have a merge rule are queued by (rank, position); the lowest is applied, entries whose pair no
// longer produces the queued token are skipped, and the pairs the merge creates are queued. The
// result lives in sc.out until sc is reused.
func (t *Tokenizer) bpe(piece string, sc *scratch) []int32 {
	sc.out = sc.out[:0]
	if t.wholeWords != nil {
		if id, ok := t.wholeWords[byteLevel(piece)]; ok {
			sc.out = append(sc.out, int32(id))
			return sc.out
		}
	}
	n := len(piece)
	syms := sc.syms[:0]
	for i := 0; i < n; i++ {
		syms = append(syms, symbol{id: t.byteID[piece[i]], prev: int32(i - 1), next: int32(i + 1)})
	}
	syms[n-1].next = -1
	sc.heap = sc.heap[:0]
	for i := 0; i+1 < n; i++ {
		if v, ok := t.merges[mergeKey(syms[i].id, syms[i+1].id)]; ok {
			rank, id := unpackMerge(v)
			sc.push(candidate{rank: rank, pos: int32(i), id: id})
		}
	}
	for len(sc.heap) > 0 {
		top := sc.pop()
		s := &syms[top.pos]
		if s.dead || s.next < 0 {
			continue
		}
		right := syms[s.next]
		v, ok := t.merges[mergeKey(s.id, right.id)]
		if !ok {
			continue
		}
		if _, id := unpackMerge(v); id != top.id {
			continue
		}
		syms[s.next].dead = true
		s.id = top.id
		s.next = right.next
		if right.next >= 0 {
			syms[right.next].prev = top.pos
		}
		if s.prev >= 0 {
			if v, ok := t.merges[mergeKey(syms[s.prev].id, s.id)]; ok {
				rank, id := unpackMerge(v)
				sc.push(candidate{rank: rank, pos: s.prev, id: id})
			}
		}
		if s.next >= 0 {
			if v, ok := t.merges[mergeKey(s.id, syms[s.next].id)]; ok {
				rank, id := unpackMerge(v)
				sc.push(candidate{rank: rank, pos: top.pos, id: id})
			}
		}
	}
	for i := int32(0); i >= 0; i = syms[i].next {
		sc.out = append(sc.out, syms[i].id)
	}
	sc.syms = syms
	return sc.out
}
