package experiments

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/dypegraph/dypegraph/models/detect"
	"github.com/dypegraph/dypegraph/nodes"
	"github.com/dypegraph/dypegraph/workflows/build"
)

// Models is a resolved model location: a ComfyUI-layout folder to use as nodes.Env.ModelsDir
// and the file names of the three models inside their folders.
type Models struct {
	// Dir is the models folder the nodes read (for a diffusers folder: a temporary folder of
	// links into it).
	Dir                   string
	DiT, TextEncoder, VAE string
	// Diffusers is true when Dir was made from a diffusers folder.
	Diffusers bool
	cleanup   string
}

// Close removes the temporary folder made for a diffusers folder.
func (m *Models) Close() error {
	if m.cleanup == "" {
		return nil
	}
	err := os.RemoveAll(m.cleanup)
	m.cleanup = ""
	return err
}

// ModelNames are optional explicit file names (relative to their folders).
type ModelNames struct {
	DiT, TextEncoder, VAE string
}

// ResolveModels finds the three models under path: a ComfyUI models folder (diffusion_models/
// or unet/, text_encoders/ or clip/, vae/) or a diffusers folder (model_index.json with
// transformer/, text_encoder/, tokenizer/, vae/). In a ComfyUI folder the official names
// (z_image_turbo_bf16.safetensors, qwen_3_4b.safetensors, ae.safetensors) win, else a folder's
// only model file; names, when given, are used as they are. Errors say what is missing where.
func ResolveModels(path string, names ModelNames) (*Models, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("model path %s: %w", path, err)
	}
	info, err := os.Stat(abs)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("model path %s does not exist: give a ComfyUI models folder (with diffusion_models/, text_encoders/, vae/) or a diffusers folder", path)
		}
		return nil, fmt.Errorf("model path %s: %w", path, err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("model path %s is a file: give a ComfyUI models folder (with diffusion_models/, text_encoders/, vae/) or a diffusers folder", path)
	}
	if isFile(filepath.Join(abs, "model_index.json")) || isDir(filepath.Join(abs, "transformer")) {
		return diffusersModels(abs)
	}
	env := nodes.Env{ModelsDir: abs}
	m := &Models{Dir: abs}
	var errs []error
	for _, f := range []struct {
		folder, what, def, given string
		dst                      *string
	}{
		{"diffusion_models", "diffusion model", build.DefaultDiT, names.DiT, &m.DiT},
		{"text_encoders", "text encoder", build.DefaultTextEncoder, names.TextEncoder, &m.TextEncoder},
		{"vae", "VAE", build.DefaultVAE, names.VAE, &m.VAE},
	} {
		list := nodes.ListModels(env, f.folder)
		where := strings.Join(folderPaths(abs, f.folder), " or ")
		switch {
		case f.given != "":
			if !slices.Contains(list, f.given) {
				errs = append(errs, fmt.Errorf("%s %q not found in %s (found: %s)", f.what, f.given, where, listOrNone(list)))
				continue
			}
			*f.dst = f.given
		case slices.Contains(list, f.def):
			*f.dst = f.def
		default:
			var usable []string
			for _, n := range list {
				if ext := strings.ToLower(filepath.Ext(n)); ext == ".safetensors" || ext == ".sft" {
					usable = append(usable, n)
				}
			}
			switch len(usable) {
			case 1:
				*f.dst = usable[0]
			case 0:
				errs = append(errs, fmt.Errorf("no %s in %s: put %s there (or run 'dypegraph models fixture DIR' for a test fixture)", f.what, where, f.def))
			default:
				errs = append(errs, fmt.Errorf("several %s files in %s (%s) and none is %s: name one", f.what, where, strings.Join(usable, ", "), f.def))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return m, nil
}

// diffusersModels maps a diffusers folder onto a temporary ComfyUI layout of symbolic links.
// A dypegraph sidecar (<weights>.config.json) beside a component's weights is linked too. Only
// components stored as one .safetensors file can be mapped: the model loaders take one file
// per model, so sharded components (an index.json and several shards, as in the published
// Z-Image-Turbo repository) are refused with a message saying so.
func diffusersModels(dir string) (*Models, error) {
	type part struct {
		sub, what, folder, name string
	}
	parts := []part{
		{"transformer", "transformer", "diffusion_models", "transformer.safetensors"},
		{"text_encoder", "text encoder", "text_encoders", "text_encoder.safetensors"},
		{"vae", "VAE", "vae", "vae.safetensors"},
	}
	sources := make([]string, len(parts))
	var errs []error
	for i, p := range parts {
		src, err := singleSafetensors(filepath.Join(dir, p.sub))
		if err != nil {
			errs = append(errs, fmt.Errorf("diffusers folder %s: %s: %w", dir, p.what, err))
			continue
		}
		sources[i] = src
	}
	tok := filepath.Join(dir, "tokenizer", "tokenizer.json")
	if !isFile(tok) {
		errs = append(errs, fmt.Errorf("diffusers folder %s: no tokenizer/tokenizer.json", dir))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "dypegraph-diffusers-*")
	if err != nil {
		return nil, fmt.Errorf("diffusers folder %s: %w", dir, err)
	}
	m := &Models{Dir: tmp, Diffusers: true, cleanup: tmp,
		DiT: parts[0].name, TextEncoder: parts[1].name, VAE: parts[2].name}
	link := func(src, dst string) error {
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.Symlink(src, dst)
	}
	for i, p := range parts {
		dst := filepath.Join(tmp, p.folder, p.name)
		if err := link(sources[i], dst); err != nil {
			m.Close()
			return nil, fmt.Errorf("diffusers folder %s: %w", dir, err)
		}
		// A dypegraph sidecar beside the weights (<weights>.config.json) travels with them.
		if sc := detect.SidecarPath(sources[i]); isFile(sc) {
			if err := link(sc, detect.SidecarPath(dst)); err != nil {
				m.Close()
				return nil, fmt.Errorf("diffusers folder %s: %w", dir, err)
			}
		}
	}
	if err := link(tok, filepath.Join(tmp, "text_encoders", strings.TrimSuffix(parts[1].name, ".safetensors")+".tokenizer.json")); err != nil {
		m.Close()
		return nil, fmt.Errorf("diffusers folder %s: %w", dir, err)
	}
	return m, nil
}

// singleSafetensors returns the one .safetensors file of a diffusers component folder.
func singleSafetensors(dir string) (string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("cannot read %s: %w", dir, err)
	}
	var files, indexes []string
	for _, e := range entries {
		switch n := e.Name(); {
		case strings.HasSuffix(n, ".safetensors.index.json"):
			indexes = append(indexes, n)
		case strings.HasSuffix(n, ".safetensors"):
			files = append(files, n)
		}
	}
	switch {
	case len(indexes) > 0:
		return "", fmt.Errorf("%s is sharded (%s): sharded diffusers components are not supported yet; use the ComfyUI single files (z_image_turbo_bf16.safetensors, qwen_3_4b.safetensors, ae.safetensors) in a models folder", dir, indexes[0])
	case len(files) == 1:
		return filepath.Join(dir, files[0]), nil
	case len(files) == 0:
		return "", fmt.Errorf("no .safetensors file in %s", dir)
	}
	return "", fmt.Errorf("several .safetensors files in %s (%s)", dir, strings.Join(files, ", "))
}

func folderPaths(base, folder string) []string {
	var out []string
	for _, sub := range nodes.ModelFolders[folder] {
		out = append(out, filepath.Join(base, sub))
	}
	return out
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}
