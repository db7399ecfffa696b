package server

import (
	"io/fs"
	"syscall"
	"time"
)

// changeTime is the file's status change time (Python's os.path.getctime on Linux).
func changeTime(fi fs.FileInfo) time.Time {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return time.Unix(st.Ctim.Sec, st.Ctim.Nsec)
	}
	return fi.ModTime()
}
