//go:build linux

package safetensors

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// vmRSS returns the process's resident set size in bytes, from /proc/self/status.
func vmRSS(t *testing.T) int64 {
	t.Helper()
	fh, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatalf("/proc/self/status: %v", err)
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("/proc/self/status has no VmRSS line")
	return 0
}

// TestOpenLargeFileIsLazy opens a 12 GiB (sparse) checkpoint: Open must be fast and must not pull
// the tensor data into memory; touching one tensor pages in only what is read.
func TestOpenLargeFileIsLazy(t *testing.T) {
	if testing.Short() {
		t.Skip("large sparse file")
	}
	const gib = int64(1) << 30
	sizes := []int64{6 * gib, 6*gib - 8, 8}
	hdr := "{"
	var off int64
	for i, n := range sizes {
		if i > 0 {
			hdr += ","
		}
		hdr += fmt.Sprintf(`"t%d":{"dtype":"U8","shape":[%d],"data_offsets":[%d,%d]}`, i, n, off, off+n)
		off += n
	}
	hdr += "}"
	for len(hdr)%8 != 0 {
		hdr += " "
	}
	path := filepath.Join(t.TempDir(), "big.safetensors")
	fh, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	var prefix [8]byte
	binary.LittleEndian.PutUint64(prefix[:], uint64(len(hdr)))
	_, err = fh.Write(append(prefix[:], hdr...))
	if err == nil {
		err = fh.Truncate(8 + int64(len(hdr)) + off) // sparse: no disk blocks, reads as zeros
	}
	if err == nil {
		// Mark the last tensor so reading it proves the right bytes come back.
		_, err = fh.WriteAt([]byte("lastbyte"), 8+int64(len(hdr))+off-8)
	}
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("make a sparse file: %v", err)
	}

	before := vmRSS(t)
	start := time.Now()
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	took := time.Since(start)
	after := vmRSS(t)
	if took > 2*time.Second {
		t.Errorf("Open of a 12 GiB file took %v", took)
	}
	if grew := after - before; grew > 64<<20 {
		t.Errorf("RSS grew by %d MiB on Open", grew>>20)
	}
	big, err := f.Data("t0")
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(big)) != sizes[0] {
		t.Fatalf("t0 has %d bytes", len(big))
	}
	last, err := f.Data("t2")
	if err != nil || string(last) != "lastbyte" {
		t.Fatalf("t2 = %q, %v", last, err)
	}
	// Read 16 bytes spread over the first tensor: only the pages around them (the kernel maps a
	// folio and some read-ahead per fault, a few MiB at most) may become resident.
	var sum byte
	for i := int64(0); i < 16; i++ {
		sum += big[i*int64(len(big))/16]
	}
	touched := vmRSS(t) - before
	if touched > 256<<20 {
		t.Errorf("RSS grew by %d MiB after reading 16 bytes of a 6 GiB tensor (sum %d)", touched>>20, sum)
	}
	t.Logf("12 GiB file: Open %v, RSS +%d KiB after Open, +%d KiB after 16 reads", took, (after-before)>>10, touched>>10)
}
