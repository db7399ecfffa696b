package detect

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"slices"
	"strings"

	"github.com/dypegraph/dypegraph/models/safetensors"
)

// SidecarSuffix ends a sidecar's name: weights "x.safetensors" → sidecar "x.config.json".
const SidecarSuffix = ".config.json"

// SidecarPath returns where the sidecar of a weights file would be: the path without its
// ".safetensors" (or ".safetensors.index.json") extension, plus ".config.json".
func SidecarPath(weights string) string {
	for _, ext := range []string{safetensors.IndexSuffix, ".safetensors"} {
		if stem, ok := strings.CutSuffix(weights, ext); ok {
			return stem + SidecarSuffix
		}
	}
	return weights + SidecarSuffix
}

// ReadSidecar reads a sidecar: a JSON object of config keys (numbers kept as json.Number).
func ReadSidecar(path string) (map[string]any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("detect: sidecar: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var cfg map[string]any
	if err := dec.Decode(&cfg); err != nil {
		return nil, fmt.Errorf("detect: sidecar %s: not a JSON object: %w", path, err)
	}
	if cfg == nil {
		return nil, fmt.Errorf("detect: sidecar %s: not a JSON object (null)", path)
	}
	if dec.More() {
		return nil, fmt.Errorf("detect: sidecar %s: data after the JSON object", path)
	}
	return cfg, nil
}

// Merge lays the sidecar's values over r.Config. A "model" entry must name the detected model (or
// name a known model when detection gave Unknown). Values that contradict shape-derived ones win
// but are recorded in Conflicts; Missing is recomputed.
func Merge(r Result, sidecar map[string]any, path string) (Result, error) {
	out := r
	out.Config = make(map[string]any, len(r.Config)+len(sidecar))
	for k, v := range r.Config {
		out.Config[k] = v
	}
	out.Defaults = slices.Clone(r.Defaults)
	out.Conflicts = slices.Clone(r.Conflicts)
	if m, ok := sidecar["model"]; ok {
		name, isString := m.(string)
		switch {
		case !isString:
			return r, fmt.Errorf("detect: sidecar %s: \"model\" must be a string", path)
		case name != ZImageDiT && name != Qwen3 && name != FluxVAE:
			return r, fmt.Errorf("detect: sidecar %s: unknown model %q (want %s, %s or %s)", path, name, ZImageDiT, Qwen3, FluxVAE)
		case r.Model == Unknown:
			out.Model = name
			out.Reason = ""
		case name != r.Model:
			return r, fmt.Errorf("detect: sidecar %s says %q but the tensors are a %s", path, name, r.Model)
		}
	}
	for k, v := range sidecar {
		if k == "model" {
			continue
		}
		if prev, ok := r.Config[k]; ok && !slices.Contains(r.Defaults, k) && !sameJSON(prev, v) {
			out.Conflicts = append(out.Conflicts, fmt.Sprintf("%s: sidecar %s, shapes %s", k, compact(v), compact(prev)))
		}
		out.Config[k] = v
		out.Defaults = slices.DeleteFunc(out.Defaults, func(d string) bool { return d == k })
	}
	slices.Sort(out.Conflicts)
	out.Missing = slices.DeleteFunc(slices.Clone(r.Missing), func(k string) bool {
		_, ok := out.Config[k]
		return ok
	})
	if len(out.Missing) == 0 {
		out.Missing = nil
	}
	out.Sidecar = path
	return out, nil
}

// DetectPath detects the model of src, opened from path, and merges the sidecar beside path
// when there is one.
func DetectPath(path string, src safetensors.Source) (Result, error) {
	r := Detect(ShapesOf(src))
	sc := SidecarPath(path)
	cfg, err := ReadSidecar(sc)
	if errors.Is(err, fs.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return r, err
	}
	return Merge(r, cfg, sc)
}

func compact(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// sameJSON compares two values by their JSON meaning (3 == 3.0 == json.Number("3")).
func sameJSON(a, b any) bool {
	var x, y any
	if json.Unmarshal([]byte(compact(a)), &x) != nil || json.Unmarshal([]byte(compact(b)), &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}
