//go:build linux

package experiments

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// resetPeakRSS resets the kernel's peak resident set size (VmHWM) of this process by writing
// 5 to /proc/self/clear_refs (Linux 4.0+), so the next peakRSS is the peak of what ran since.
func resetPeakRSS() error {
	f, err := os.OpenFile("/proc/self/clear_refs", os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, werr := f.Write([]byte("5"))
	cerr := f.Close()
	if werr != nil {
		return werr
	}
	return cerr
}

// peakRSS returns VmHWM (peak resident set size) in bytes.
func peakRSS() (int64, error) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			fields := strings.Fields(rest)
			if len(fields) >= 1 {
				kb, err := strconv.ParseInt(fields[0], 10, 64)
				if err != nil {
					return 0, fmt.Errorf("VmHWM %q: %w", rest, err)
				}
				return kb * 1024, nil
			}
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/self/status")
}
