package sampling

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
)

type libmfRef struct {
	Start, Stride, Count uint64
	SHA256               string      `json:"sha256"`
	Off                  [][2]uint32 `json:"not_correctly_rounded"`
}

// TestGlibcLogfExpf compares glibcLogf and glibcExpf with glibc's logf and expf
// (testdata/libmf.json, testdata/gen_libmf.py): bit for bit on about ten million float32
// inputs each (SHA-256 of the results), and on recorded inputs where glibc is not correctly
// rounded, which a correctly rounded log or exp would get wrong.
func TestGlibcLogfExpf(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "libmf.json"))
	if err != nil {
		t.Fatalf("libm reference (regenerate with testdata/gen_libmf.py): %v", err)
	}
	var ref map[string]json.RawMessage
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		fn   func(float32) float32
		cr   func(float64) float64
	}{{"logf", glibcLogf, math.Log}, {"expf", glibcExpf, math.Exp}} {
		t.Run(c.name, func(t *testing.T) {
			var r libmfRef
			if err := json.Unmarshal(ref[c.name], &r); err != nil || r.Count == 0 || len(r.Off) == 0 {
				t.Fatalf("libmf.json %s: %v (%d inputs, %d cases)", c.name, err, r.Count, len(r.Off))
			}
			for _, o := range r.Off {
				x := math.Float32frombits(o[0])
				if got := c.fn(x); math.Float32bits(got) != o[1] {
					t.Errorf("%s(%v) = %v, glibc %v", c.name, x, got, math.Float32frombits(o[1]))
				}
				if float32(c.cr(float64(x))) == math.Float32frombits(o[1]) {
					t.Errorf("%s(%v): recorded as not correctly rounded, but is", c.name, x)
				}
			}
			h := sha256.New()
			buf := make([]byte, 0, 4<<10)
			for i := uint64(0); i < r.Count; i++ {
				x := math.Float32frombits(uint32(r.Start + i*r.Stride))
				buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(c.fn(x)))
				if len(buf) == cap(buf) {
					h.Write(buf)
					buf = buf[:0]
				}
			}
			h.Write(buf)
			if got := hex.EncodeToString(h.Sum(nil)); got != r.SHA256 {
				t.Errorf("%s over %d inputs: SHA-256 %s, glibc %s", c.name, r.Count, got, r.SHA256)
			}
		})
	}
}
