//go:build !linux

package experiments

import "errors"

var errNoRSS = errors.New("peak RSS is only measured on Linux")

func resetPeakRSS() error { return errNoRSS }

func peakRSS() (int64, error) { return 0, errNoRSS }
