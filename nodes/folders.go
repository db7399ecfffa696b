package nodes

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// ModelFolders maps ComfyUI's model folder names to their sub-folders of the models directory,
// in search order (ComfyUI's folder_paths: text_encoders also reads clip/, diffusion_models also
// reads unet/).
var ModelFolders = map[string][]string{
	"checkpoints":      {"checkpoints"},
	"configs":          {"configs"},
	"loras":            {"loras"},
	"vae":              {"vae"},
	"text_encoders":    {"text_encoders", "clip"},
	"diffusion_models": {"unet", "diffusion_models"},
	"clip_vision":      {"clip_vision"},
	"style_models":     {"style_models"},
	"embeddings":       {"embeddings"},
	"diffusers":        {"diffusers"},
	"vae_approx":       {"vae_approx"},
	"controlnet":       {"controlnet", "t2i_adapter"},
	"gligen":           {"gligen"},
	"upscale_models":   {"upscale_models"},
	"hypernetworks":    {"hypernetworks"},
	"photomaker":       {"photomaker"},
	"classifiers":      {"classifiers"},
	"model_patches":    {"model_patches"},
	"audio_encoders":   {"audio_encoders"},
}

// ModelExtensions are the file types ComfyUI lists in model folders (supported_pt_extensions).
// dypegraph loads .safetensors and .sft; the others are listed so that shared workflows naming
// them validate and fail at load time with a clear message.
var ModelExtensions = []string{".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}

// FolderNames returns the model folder names, sorted.
func FolderNames() []string {
	names := make([]string, 0, len(ModelFolders))
	for k := range ModelFolders {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

func hasModelExtension(name string) bool {
	ext := strings.ToLower(filepath.Ext(name))
	for _, e := range ModelExtensions {
		if ext == e {
			return true
		}
	}
	return false
}

// ListModels returns the model files of a folder (e.g. "diffusion_models"): paths relative to
// their base folder with '/' separators, searched recursively (symlinks followed, hidden
// folders skipped), de-duplicated and sorted, like ComfyUI's get_filename_list.
func ListModels(env Env, folder string) []string {
	seen := map[string]bool{}
	files := []string{}
	for _, sub := range ModelFolders[folder] {
		base := filepath.Join(env.ModelsDir, sub)
		walkFollow(base, "", 0, func(rel string) {
			if hasModelExtension(rel) && !seen[rel] {
				seen[rel] = true
				files = append(files, rel)
			}
		})
	}
	sort.Strings(files)
	return files
}

// walkFollow lists files below dir, following symlinked folders up to a depth limit (which
// also stops symlink loops).
func walkFollow(dir, rel string, depth int, visit func(rel string)) {
	if depth > 16 {
		return
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		full := filepath.Join(dir, name)
		relName := name
		if rel != "" {
			relName = rel + "/" + name
		}
		info, err := os.Stat(full) // follows symlinks
		if err != nil {
			continue
		}
		if info.IsDir() {
			walkFollow(full, relName, depth+1, visit)
		} else if info.Mode().IsRegular() {
			visit(relName)
		}
	}
}

// ModelPath resolves a name from ListModels to a file path, refusing names that leave the
// folder. The error says where the file was expected.
func ModelPath(env Env, folder, name string) (string, error) {
	subs, ok := ModelFolders[folder]
	if !ok {
		return "", fmt.Errorf("unknown model folder %q", folder)
	}
	clean := filepath.FromSlash(name)
	if name == "" || filepath.IsAbs(clean) || strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("invalid model name %q", name)
	}
	var looked []string
	for _, sub := range subs {
		base := filepath.Join(env.ModelsDir, sub)
		full := filepath.Join(base, clean)
		if !within(base, full) {
			return "", fmt.Errorf("invalid model name %q: it leaves the %s folder", name, folder)
		}
		if info, err := os.Stat(full); err == nil && !info.IsDir() {
			return full, nil
		}
		looked = append(looked, base)
	}
	return "", fmt.Errorf("model file %q not found: put it in %s", name, strings.Join(looked, " or "))
}

// fileIdentity fingerprints a file by path, size and modification time (cheap for multi-GB
// checkpoints; content hashing is left to LoadImage-sized files).
func fileIdentity(path string) (string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s|%d|%d", path, info.Size(), info.ModTime().UnixNano()), nil
}
