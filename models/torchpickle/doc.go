// Package torchpickle reads PyTorch checkpoints (.pth/.pt files written by torch.save) that hold
// a state dict, without Python and without ever executing anything the file contains.
//
// It owns: the torch ≥ 1.6 zip container (<name>/data.pkl, <name>/data/<key> storage records,
// <name>/byteorder); the legacy container of torch < 1.6 (and of torch.save with
// _use_new_zipfile_serialization=False): one stream of pickles — magic number, protocol version
// 1001, a sys_info dict with the byte order, the object, the list of storage keys — followed by
// each storage as an 8-byte little-endian element count and its raw bytes; a restricted unpickler for pickle protocols 2–5 that knows only the opcodes a
// state dict uses and only an allow-list of globals (collections.OrderedDict, the torch._utils
// tensor and parameter rebuild functions and the legacy typed-storage classes such as
// torch.FloatStorage), materialising every tensor as contiguous little-endian bytes (strides,
// offsets and shared storages resolved), and the container conventions of upscale-model files:
// a top-level dict holding the state dict under "params_ema", "params", "state_dict" or "model"
// (or as its only value) is unwrapped, and a "module." prefix on every key is removed.
//
// It must never execute pickled code: globals are names looked up in a fixed table, never
// imported or called, and REDUCE or BUILD on anything outside that table is an error telling the
// user to convert the file to .safetensors. Anything else in a file — a global outside the
// allow-list, an opcode a state dict does not use, a tensor that reaches outside its storage, a
// storage larger than its zip record or than the bytes left in a legacy file, a legacy storage
// list that does not match the storages the pickle uses, absurd nesting or value counts — is refused with an *Error;
// no input, however malformed, makes it panic, and memory stays bounded by the bytes the file's
// records actually hold plus fixed limits.
//
// It hands out safetensors.Entry values so loaders treat .pth and .safetensors files alike. It
// must not convert dtypes, build tensors or know which model a file holds. Big-endian checkpoints,
// the tar container of torch before about 0.4 and the storage views (view_metadata) only torch
// < 1.0 pickled are refused with an error saying so.
package torchpickle
