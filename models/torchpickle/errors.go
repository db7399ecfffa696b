package torchpickle

import (
	"errors"
	"strconv"
	"strings"
)

// Kinds of failure. Every *Error wraps exactly one of them, so callers can tell them apart with
// errors.Is.
var (
	// ErrLegacyFormat: the file is a checkpoint in the tar format of torch before about 0.4,
	// which is not supported. (The later pre-zip format of torch < 1.6 is read.)
	ErrLegacyFormat = errors.New("unsupported legacy checkpoint format")
	// ErrArchive: the file is not a readable torch checkpoint: a bad zip, a missing data.pkl or
	// storage record, a storage record shorter than the tensor data it must hold; or, in the
	// legacy pickle-stream format, a wrong magic number or protocol version, a storage list that
	// does not match the pickle, or storage data cut short.
	ErrArchive = errors.New("invalid checkpoint archive")
	// ErrByteOrder: the checkpoint was written on a big-endian machine.
	ErrByteOrder = errors.New("big-endian checkpoint")
	// ErrPickle: data.pkl (or a pickle of a legacy file) is not a well-formed pickle, or
	// exceeds the reader's limits.
	ErrPickle = errors.New("malformed pickle")
	// ErrUnsupported: the pickle uses a global, opcode or construct outside the state-dict
	// allow-list. The file may be fine for Python, but reading it would mean running its code.
	ErrUnsupported = errors.New("unsupported pickle content")
	// ErrTensor: a tensor's dtype, shape, strides or offset do not fit its storage.
	ErrTensor = errors.New("invalid tensor")
	// ErrNoStateDict: the pickle holds no dict of tensors.
	ErrNoStateDict = errors.New("no state dict")
)

// Error describes what is wrong with which file (and which tensor, when one is at fault).
type Error struct {
	File   string // path given to Load, "" for Parse
	Tensor string // state-dict key, "" when the problem is not about one tensor
	Kind   error  // one of the Err* values above
	Detail string // what exactly is wrong and, where there is one, what to do
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("torchpickle")
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

func newErr(kind error, detail string) *Error { return &Error{Kind: kind, Detail: detail} }

// unsupported is the error for any construct outside the allow-list.
func unsupported(what string) *Error {
	return newErr(ErrUnsupported, what+"; convert the file to .safetensors")
}
