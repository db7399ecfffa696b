package build

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// Profile is one [NAME] profile of a TOML config file, in the original tool's layout:
//
//	[NAME]             model_path
//	[NAME.generation]  width, height, steps (or num_inference_steps), seed, cfg (or
//	                   guidance_scale), shift, negative_prompt, sampler, scheduler, strength,
//	                   multipass, pass2_strength
//	[NAME.scheduler]   shift
//	[NAME.dype]        enabled, method, dype_scale, dype_exponent, dype_start_sigma,
//	                   base_shift, max_shift, base_resolution, anisotropic, mode
//	[NAME.pytorch]     tiled_vae, tile_size, tile_overlap
//	[NAME.encoder]     device (the text encoder's)
//	[NAME.pipeline]    device (the diffusion model's and the VAE's)
//
// Every key is optional; a key or table not listed here is an error (a misspelt key must not be
// silently ignored). Only the keys present are recorded: Apply sets exactly those, so command
// line flags applied afterwards override the file.
type Profile struct {
	Name string
	// ModelPath is [NAME] model_path ("" when absent).
	ModelPath string
	// TextEncoderDevice and PipelineDevice are the devices of [NAME.encoder] and
	// [NAME.pipeline] ("" when absent).
	TextEncoderDevice, PipelineDevice string
	// set records the keys found, as "table.key", with the function that applies each.
	set   []string
	apply []func(*Params)
}

// Keys returns the keys the profile sets, as "table.key", sorted within each table and tables in
// the order above.
func (pr *Profile) Keys() []string { return slices.Clone(pr.set) }

// Apply writes every value the profile sets into p.
func (pr *Profile) Apply(p *Params) {
	for _, f := range pr.apply {
		f(p)
	}
}

// profileKey is one accepted key: its kind and how it lands in Params.
type profileKey struct {
	kind  string // "int", "float", "string", "bool"
	apply func(p *Params, v any)
}

func intKey(f func(*Params, int)) profileKey {
	return profileKey{"int", func(p *Params, v any) { f(p, v.(int)) }}
}
func floatKey(f func(*Params, float64)) profileKey {
	return profileKey{"float", func(p *Params, v any) { f(p, v.(float64)) }}
}
func stringKey(f func(*Params, string)) profileKey {
	return profileKey{"string", func(p *Params, v any) { f(p, v.(string)) }}
}
func boolKey(f func(*Params, bool)) profileKey {
	return profileKey{"bool", func(p *Params, v any) { f(p, v.(bool)) }}
}

// profileTables lists the accepted tables and keys. Table "" is [NAME] itself.
var profileTables = map[string]map[string]profileKey{
	"generation": {
		"width":               intKey(func(p *Params, v int) { p.Width = v }),
		"height":              intKey(func(p *Params, v int) { p.Height = v }),
		"steps":               intKey(func(p *Params, v int) { p.Steps = v }),
		"num_inference_steps": intKey(func(p *Params, v int) { p.Steps = v }),
		"seed":                {"seed", func(p *Params, v any) { p.Seed = v.(uint64) }},
		"cfg":                 floatKey(func(p *Params, v float64) { p.CFG = v }),
		"guidance_scale":      floatKey(func(p *Params, v float64) { p.CFG = v }),
		"shift":               floatKey(func(p *Params, v float64) { p.Shift = v }),
		"negative_prompt":     stringKey(func(p *Params, v string) { p.NegativePrompt = v }),
		"sampler":             stringKey(func(p *Params, v string) { p.Sampler = v }),
		"scheduler":           stringKey(func(p *Params, v string) { p.Scheduler = v }),
		"strength":            floatKey(func(p *Params, v float64) { p.Strength = v }),
		"multipass":           stringKey(func(p *Params, v string) { p.Multipass = v }),
		"pass2_strength":      floatKey(func(p *Params, v float64) { p.Pass2Strength = v }),
		"upscale_model":       stringKey(func(p *Params, v string) { p.UpscaleModel = v }),
	},
	"scheduler": {
		"shift": floatKey(func(p *Params, v float64) { p.Shift = v }),
	},
	"dype": {
		"enabled":          boolKey(func(p *Params, v bool) { p.DyPE.Enabled = v }),
		"method":           stringKey(func(p *Params, v string) { p.DyPE.Method = v }),
		"dype_scale":       floatKey(func(p *Params, v float64) { p.DyPE.Scale = v }),
		"dype_exponent":    floatKey(func(p *Params, v float64) { p.DyPE.Exponent = v }),
		"dype_start_sigma": floatKey(func(p *Params, v float64) { p.DyPE.StartSigma = v }),
		"base_shift":       floatKey(func(p *Params, v float64) { p.DyPE.BaseShift = v }),
		"max_shift":        floatKey(func(p *Params, v float64) { p.DyPE.MaxShift = v }),
		"base_resolution":  intKey(func(p *Params, v int) { p.DyPE.BaseResolution = v }),
		"anisotropic":      boolKey(func(p *Params, v bool) { p.DyPE.Anisotropic = v }),
		"mode":             stringKey(func(p *Params, v string) { p.DyPE.Mode = v }),
	},
	"pytorch": {
		"tiled_vae":    boolKey(func(p *Params, v bool) { p.TiledVAE = v }),
		"tile_size":    intKey(func(p *Params, v int) { p.TileSize = v }),
		"tile_overlap": intKey(func(p *Params, v int) { p.TileOverlap = v }),
	},
}

// sameSetting names keys that set the same value; a profile may use only one of each group.
var sameSetting = map[string]string{
	"generation.num_inference_steps": "generation.steps",
	"generation.guidance_scale":      "generation.cfg",
	"scheduler.shift":                "generation.shift",
}

// tableOrder is the order in which tables are applied and listed.
var tableOrder = []string{"", "generation", "scheduler", "dype", "pytorch", "encoder", "pipeline"}

// ProfileNames lists the profiles (top-level tables) of a TOML document, sorted.
func ProfileNames(data []byte) ([]string, error) {
	var doc map[string]any
	if _, err := toml.Decode(string(data), &doc); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var names []string
	for k, v := range doc {
		if _, ok := v.(map[string]any); ok {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	return names, nil
}

// LoadProfile reads profile name from a TOML document. Errors name the key ("dype.dype_scale")
// and say what is accepted.
func LoadProfile(data []byte, name string) (*Profile, error) {
	if name == "" {
		return nil, errors.New("config: no profile name given")
	}
	var doc map[string]any
	if _, err := toml.Decode(string(data), &doc); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	raw, ok := doc[name]
	if !ok {
		var names []string
		for k, v := range doc {
			if _, ok := v.(map[string]any); ok {
				names = append(names, k)
			}
		}
		sort.Strings(names)
		if len(names) == 0 {
			return nil, fmt.Errorf("config: profile %q not found: the file has no [profile] tables", name)
		}
		return nil, fmt.Errorf("config: profile %q not found; the file has %s", name, strings.Join(names, ", "))
	}
	top, ok := raw.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("config: %s must be a table ([%s]), not a %s", name, name, tomlKind(raw))
	}
	pr := &Profile{Name: name}
	var errs []error
	setBy := map[string]string{} // setting → the key that set it
	for _, table := range tableOrder {
		var body map[string]any
		where := name
		if table == "" {
			body = top
		} else {
			where = name + "." + table
			v, ok := top[table]
			if !ok {
				continue
			}
			if body, ok = v.(map[string]any); !ok {
				errs = append(errs, fmt.Errorf("config: %s must be a table ([%s]), not a %s", where, where, tomlKind(v)))
				continue
			}
		}
		keys := make([]string, 0, len(body))
		for k := range body {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := body[k]
			switch {
			case table == "" && slices.Contains(tableOrder, k) && k != "":
				continue // a sub-table, handled in its turn
			case table == "" && k == "model_path":
				s, ok := v.(string)
				if !ok {
					errs = append(errs, fmt.Errorf("config: %s.model_path must be a string, not a %s", name, tomlKind(v)))
					continue
				}
				pr.ModelPath = s
				pr.set = append(pr.set, "model_path")
				continue
			case (table == "encoder" || table == "pipeline") && k == "device":
				s, ok := v.(string)
				if !ok {
					errs = append(errs, fmt.Errorf("config: %s.device must be a string, not a %s", where, tomlKind(v)))
					continue
				}
				if table == "encoder" {
					pr.TextEncoderDevice = s
				} else {
					pr.PipelineDevice = s
				}
				pr.set = append(pr.set, table+".device")
				continue
			}
			spec, ok := profileTables[table][k]
			if !ok {
				errs = append(errs, fmt.Errorf("config: unknown key %s.%s (%s)", where, k, allowedKeys(table)))
				continue
			}
			val, err := convertTOML(v, spec.kind)
			if err != nil {
				errs = append(errs, fmt.Errorf("config: %s.%s: %w", where, k, err))
				continue
			}
			key := k
			if table != "" {
				key = table + "." + k
			}
			setting := key
			if s, ok := sameSetting[key]; ok {
				setting = s
			}
			if prev, ok := setBy[setting]; ok {
				errs = append(errs, fmt.Errorf("config: %s.%s and %s.%s set the same value; keep one", name, prev, name, key))
				continue
			}
			setBy[setting] = key
			pr.set = append(pr.set, key)
			apply := spec.apply
			pr.apply = append(pr.apply, func(p *Params) { apply(p, val) })
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return pr, nil
}

// allowedKeys describes what a table accepts, for error messages.
func allowedKeys(table string) string {
	var keys []string
	switch table {
	case "":
		keys = []string{"model_path"}
		for _, t := range tableOrder[1:] {
			keys = append(keys, "["+t+"]")
		}
	case "encoder", "pipeline":
		keys = []string{"device"}
	default:
		for k := range profileTables[table] {
			keys = append(keys, k)
		}
		sort.Strings(keys)
	}
	return "accepted: " + strings.Join(keys, ", ")
}

// convertTOML checks a decoded TOML value against a key's kind (integers are accepted for
// floats) and returns it as int, uint64, float64, string or bool.
func convertTOML(v any, kind string) (any, error) {
	switch kind {
	case "int":
		i, ok := v.(int64)
		if !ok {
			return nil, fmt.Errorf("must be an integer, not a %s", tomlKind(v))
		}
		if i < math.MinInt32 || i > math.MaxInt32 {
			return nil, fmt.Errorf("%d is out of range", i)
		}
		return int(i), nil
	case "seed":
		i, ok := v.(int64)
		if !ok {
			return nil, fmt.Errorf("must be an integer, not a %s", tomlKind(v))
		}
		if i < 0 {
			return nil, fmt.Errorf("%d must not be negative", i)
		}
		return uint64(i), nil
	case "float":
		switch f := v.(type) {
		case float64:
			if math.IsNaN(f) || math.IsInf(f, 0) {
				return nil, fmt.Errorf("%v is not a finite number", f)
			}
			return f, nil
		case int64:
			return float64(f), nil
		}
		return nil, fmt.Errorf("must be a number, not a %s", tomlKind(v))
	case "string":
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("must be a string, not a %s", tomlKind(v))
		}
		return s, nil
	case "bool":
		b, ok := v.(bool)
		if !ok {
			return nil, fmt.Errorf("must be true or false, not a %s", tomlKind(v))
		}
		return b, nil
	}
	return nil, fmt.Errorf("internal error: unknown kind %q", kind)
}

func tomlKind(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case int64:
		return "integer"
	case float64:
		return "float"
	case bool:
		return "boolean"
	case map[string]any:
		return "table"
	case []any, []map[string]any:
		return "array"
	}
	return fmt.Sprintf("%T", v)
}
