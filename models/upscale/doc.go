// Package upscale runs ESRGAN-family image upscale models (RRDBNet: ESRGAN, BSRGAN/RealSR,
// Real-ESRGAN x4plus, x2plus and x1 with their pixel-unshuffled input) on a tensor.Backend, and
// implements ComfyUI's tiled upscaling (comfy/utils.py tiled_scale) that ImageUpscaleWithModel
// applies to them.
//
// It owns:
//
//   - detection from a state dict's names and shapes (Detect): the original ESRGAN naming
//     (model.0, model.1.sub.N.RDBr.convc.0, model.3, ...), BasicSR's (conv_first,
//     body.N.rdbr.convc, conv_body, conv_up1, conv_hr, conv_last) and BSRGAN's (RRDB_trunk,
//     trunk_conv, upconv1, HRconv); the number of blocks, feature and growth widths, the image
//     channels, the number of ×2 upsampling stages and the pixel-unshuffle factor, as spandrel
//     reads them (which ComfyUI uses), so that the scale a model reports is spandrel's;
//   - loading from an in-memory state dict (map of safetensors.Entry, the form both the
//     safetensors reader and models/torchpickle produce) or a file (.safetensors/.sft, or a torch
//     pickle .pth/.pt/.ckpt/.bin through models/torchpickle), with every shape checked so that a
//     mismatched file is an error naming the tensor, never a panic; weights are converted to
//     float32 (F32, F16, BF16 and F64 are accepted);
//   - the forward pass in float32 (Model.Forward) and spandrel's ImageModelDescriptor call
//     around it (Model.Call: pad to the size requirements, clamp to [0, 1], crop);
//   - TiledScale, ComfyUI's tiled_scale/tiled_scale_multidim for 2-D images with its feathered
//     blending, and Model.Upscale, which is what ImageUpscaleWithModel computes (tiles of 512
//     with overlap 32, halving the tile on out-of-memory down to 128, final clamp).
//
// ESRGAN+ (the conv1x1 variant) and scale-3 models are refused with a message: spandrel reads
// neither through this path. The growth width is read from the weights (spandrel fixes it at
// 32; every published model uses 32).
//
// The package must not know about nodes or the executor: UpscaleModelLoader and
// ImageUpscaleWithModel live in package nodes on top of it. A *Model is immutable after Load and
// safe for concurrent use.
package upscale
