package safetensors

import (
	"errors"
	"strconv"
	"strings"
)

// Kinds of failure. Every *Error wraps exactly one of them, so errors.Is(err, ErrOffsets) and the
// like tell corruption classes apart.
var (
	// ErrTruncated: the file is shorter than its header says (or than the 8-byte length prefix).
	ErrTruncated = errors.New("truncated file")
	// ErrHeaderSize: the header length prefix is zero, too small or above MaxHeaderSize.
	ErrHeaderSize = errors.New("bad header length")
	// ErrHeaderJSON: the header is not a valid UTF-8 JSON object of tensor entries.
	ErrHeaderJSON = errors.New("invalid header")
	// ErrDType: a tensor has a dtype this package does not know.
	ErrDType = errors.New("unknown dtype")
	// ErrShape: a shape is not a list of non-negative integers, or its size overflows.
	ErrShape = errors.New("invalid shape")
	// ErrByteSize: data_offsets span a different number of bytes than dtype × shape needs.
	ErrByteSize = errors.New("byte size mismatch")
	// ErrOffsets: data_offsets are malformed, overlap, leave gaps, or leave bytes unaccounted.
	ErrOffsets = errors.New("invalid data offsets")
	// ErrMetadata: "__metadata__" is not an object of string values.
	ErrMetadata = errors.New("invalid metadata")
	// ErrIndex: a sharded set is inconsistent (index file, missing shard, duplicate tensor).
	ErrIndex = errors.New("invalid shard set")
	// ErrNotFound: a requested tensor is not in the file or set.
	ErrNotFound = errors.New("tensor not found")
	// ErrClosed: the file was closed, its mapping is gone.
	ErrClosed = errors.New("file closed")
	// ErrInvalid: the writer was given an entry it cannot write.
	ErrInvalid = errors.New("invalid tensor entry")
)

// Error describes what is wrong with which file (and which tensor, when one is at fault).
type Error struct {
	File   string // path (or name given to Parse) of the file at fault
	Tensor string // tensor name, "" when the problem is not about one tensor
	Kind   error  // one of the Err* values above
	Detail string // what exactly is wrong
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("safetensors")
	if e.File != "" {
		b.WriteString(": ")
		b.WriteString(e.File)
	}
	if e.Tensor != "" {
		b.WriteString(": tensor ")
		b.WriteString(strconv.Quote(e.Tensor))
	}
	b.WriteString(": ")
	b.WriteString(e.Kind.Error())
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	return b.String()
}

// Unwrap returns the kind, so errors.Is works against the Err* values.
func (e *Error) Unwrap() error { return e.Kind }

func newErr(file string, kind error, tensor, detail string) *Error {
	return &Error{File: file, Tensor: tensor, Kind: kind, Detail: detail}
}
