// Package safetensors reads and writes the safetensors weight format: an 8-byte little-endian
// header length, a JSON header (tensor name → dtype, shape, data_offsets, plus an optional
// "__metadata__" string map) and the raw little-endian tensor bytes.
//
// It owns: memory-mapping files (Open maps the file read-only, so a 12 GB checkpoint opens
// without reading it and its pages enter memory only when a tensor is touched), strict
// validation of the header (length limits, JSON shape, known dtypes, dtype × shape = byte
// size, offsets inside the file, tensors contiguous and non-overlapping and covering the data
// region exactly), sharded sets (a *.safetensors.index.json weight map or a folder of shards)
// presented as one logical set of tensors, key-prefix stripping for loaders (StripPrefix), and
// a deterministic writer for test fixtures.
//
// It must not convert dtypes or build tensors: it hands out dtype names, shapes and slices of
// the raw bytes, and the tensor package does the conversions. It must not know which model a
// file holds (that is models/detect) nor about nodes, devices or HTTP.
//
// Every error it returns on bad input is an *Error naming the file (and the tensor, when one
// is at fault) and wrapping one of the Err* kinds, so callers can test with errors.Is. No input,
// however malformed, makes it panic.
package safetensors
