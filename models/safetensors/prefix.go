package safetensors

import (
	"maps"
	"strings"
)

// DetectPrefix returns the first of prefixes (in the order given) that begins at least one of
// names, or "" when none does. Callers list longer prefixes first
// ("model.diffusion_model." before "model.").
func DetectPrefix(names []string, prefixes ...string) string {
	for _, p := range prefixes {
		if p == "" {
			continue
		}
		for _, n := range names {
			if len(n) > len(p) && strings.HasPrefix(n, p) {
				return p
			}
		}
	}
	return ""
}

// View is a Source seen through a removed key prefix: it holds the tensors of the underlying
// source whose names start with the prefix, under their names without it.
type View struct {
	src    Source
	prefix string
	names  []string
}

var _ Source = (*View)(nil)

// StripPrefix returns a view of src with the prefix DetectPrefix picks from prefixes removed.
// Tensors without that prefix belong to other components of a combined checkpoint (a VAE or text
// encoder beside the diffusion model) and are left out of the view. When no prefix matches, the
// view holds every tensor under its stored name. Loaders call it with the prefixes their model
// can carry, e.g. StripPrefix(src, "model.diffusion_model.", "diffusion_model.").
func StripPrefix(src Source, prefixes ...string) *View {
	all := src.Names()
	p := DetectPrefix(all, prefixes...)
	v := &View{src: src, prefix: p}
	for _, n := range all {
		if p == "" || (len(n) > len(p) && strings.HasPrefix(n, p)) {
			v.names = append(v.names, n[len(p):])
		}
	}
	return v
}

// Prefix returns the prefix removed ("" when none).
func (v *View) Prefix() string { return v.prefix }

// Stored returns the name a tensor of the view has in the underlying source.
func (v *View) Stored(name string) string { return v.prefix + name }

// Names returns the names without the prefix, sorted.
func (v *View) Names() []string { return append([]string(nil), v.names...) }

// Len returns the number of tensors in the view.
func (v *View) Len() int { return len(v.names) }

// Info returns the entry of a tensor by its name without the prefix; Info.Name is that name.
func (v *View) Info(name string) (Info, bool) {
	if name == "" && v.prefix != "" {
		return Info{}, false
	}
	info, ok := v.src.Info(v.prefix + name)
	if ok {
		info.Name = name
	}
	return info, ok
}

// Data returns a tensor's bytes by its name without the prefix.
func (v *View) Data(name string) ([]byte, error) {
	if name == "" && v.prefix != "" {
		return nil, newErr("", ErrNotFound, name, "")
	}
	return v.src.Data(v.prefix + name)
}

// Metadata returns the underlying source's metadata.
func (v *View) Metadata() map[string]string { return maps.Clone(v.src.Metadata()) }
