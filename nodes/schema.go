package nodes

import (
	"github.com/dypegraph/dypegraph/internal/ojson"
)

// Type names of the values that flow between nodes.
const (
	TypeInt          = "INT"
	TypeFloat        = "FLOAT"
	TypeString       = "STRING"
	TypeBoolean      = "BOOLEAN"
	TypeCombo        = "COMBO"
	TypeImage        = "IMAGE"
	TypeMask         = "MASK"
	TypeLatent       = "LATENT"
	TypeModel        = "MODEL"
	TypeClip         = "CLIP"
	TypeVAE          = "VAE"
	TypeConditioning = "CONDITIONING"
	TypeAny          = "*"
)

// Hidden input kinds.
const (
	HiddenPrompt       = "PROMPT"
	HiddenExtraPNGInfo = "EXTRA_PNGINFO"
	HiddenUniqueID     = "UNIQUE_ID"
)

// KV is one extra option of an input (tooltip, multiline, image_upload ...), kept in order.
type KV struct {
	Key   string
	Value any
}

// InputSpec declares one input of a node.
type InputSpec struct {
	Name     string
	Type     string // TypeInt ... or TypeCombo for a list of options
	Optional bool
	// Options are a combo's static choices; OptionsFrom computes them at request time from the
	// installation (file-backed combos such as model or image names) and wins when set.
	Options     []string
	OptionsFrom func(env Env) []string
	Default     any // int64, uint64, float64, string or bool; nil when none
	Min, Max    any // int64, uint64 or float64; nil when unbounded
	Step, Round any
	// ControlAfterGenerate marks seed-like widgets: the frontend adds a control widget after it
	// whose value appears in UI-format widgets_values but never in API inputs. Its value is
	// what V3 nodes print ("fixed"); true for V1 nodes.
	ControlAfterGenerate any
	Extra                []KV
}

// IsWidget reports whether the input is a widget (a literal value the UI edits) by default.
func (s *InputSpec) IsWidget() bool {
	switch s.Type {
	case TypeInt, TypeFloat, TypeString, TypeBoolean, TypeCombo:
		for _, kv := range s.Extra {
			if kv.Key == "forceInput" && kv.Value == true {
				return false
			}
		}
		return true
	}
	return false
}

// HasUpload reports whether the frontend adds an upload button widget after this combo.
func (s *InputSpec) HasUpload() bool {
	for _, kv := range s.Extra {
		if (kv.Key == "image_upload" || kv.Key == "video_upload" || kv.Key == "audio_upload") && kv.Value == true {
			return true
		}
	}
	return false
}

// ComboOptions returns the combo's choices for env.
func (s *InputSpec) ComboOptions(env Env) []string {
	if s.OptionsFrom != nil {
		return s.OptionsFrom(env)
	}
	return s.Options
}

// HiddenInput declares a hidden input filled by the executor.
type HiddenInput struct {
	Name string
	Kind string
}

// OutputSpec declares one output slot.
type OutputSpec struct {
	Type    string
	Name    string // display name; defaults to Type
	IsList  bool
	Tooltip string
}

// Schema describes a node class, in the shape /object_info prints.
type Schema struct {
	Name               string
	DisplayName        string
	Description        string
	Category           string
	PythonModule       string // "nodes", "comfy_extras.nodes_primitive" ...
	Inputs             []InputSpec
	Hidden             []HiddenInput
	Outputs            []OutputSpec
	OutputNode         bool
	NotIdempotent      bool // the node id joins the cache key
	SearchAliases      []string
	EssentialsCategory string
	OutputTooltips     []string
	Deprecated         bool
	Experimental       bool
	// V3 selects ComfyUI's V3 serialisation (combos as ["COMBO", {"options": ...}], hidden
	// entries as 1-tuples, every NodeInfoV1 field present).
	V3 bool
}

// Input returns the spec of the named input (required or optional).
func (s *Schema) Input(name string) (*InputSpec, bool) {
	for i := range s.Inputs {
		if s.Inputs[i].Name == name {
			return &s.Inputs[i], true
		}
	}
	return nil, false
}

// HiddenKind returns the kind of a hidden input, or "".
func (s *Schema) HiddenKind(name string) string {
	for _, h := range s.Hidden {
		if h.Name == name {
			return h.Kind
		}
	}
	return ""
}

// InputConfig returns the [type, options] pair ComfyUI reports as input_config in validation
// errors and prints in /object_info.
func (s *InputSpec) InputConfig(env Env, v3 bool) []any {
	opts := ojson.NewObject()
	if v3 {
		for _, kv := range s.Extra {
			opts.Set(kv.Key, kv.Value)
		}
	}
	if s.Default != nil {
		opts.Set("default", s.Default)
	}
	if s.Min != nil {
		opts.Set("min", s.Min)
	}
	if s.Max != nil {
		opts.Set("max", s.Max)
	}
	if s.Step != nil {
		opts.Set("step", s.Step)
	}
	if s.Round != nil {
		opts.Set("round", s.Round)
	}
	if s.ControlAfterGenerate != nil {
		opts.Set("control_after_generate", s.ControlAfterGenerate)
	}
	if !v3 {
		for _, kv := range s.Extra {
			opts.Set(kv.Key, kv.Value)
		}
	}
	if s.Type == TypeCombo {
		options := s.ComboOptions(env)
		list := make([]any, len(options))
		for i, o := range options {
			list[i] = o
		}
		if v3 {
			opts.Set("multiselect", false)
			opts.Set("options", list)
			return []any{TypeCombo, opts}
		}
		return []any{list, opts}
	}
	return []any{s.Type, opts}
}

// Info returns the node's /object_info entry.
func (s *Schema) Info(env Env) *ojson.Object {
	input := ojson.NewObject()
	order := ojson.NewObject()
	for _, section := range []string{"required", "optional"} {
		sec := ojson.NewObject()
		var names []any
		for i := range s.Inputs {
			in := &s.Inputs[i]
			if in.Optional != (section == "optional") {
				continue
			}
			sec.Set(in.Name, in.InputConfig(env, s.V3))
			names = append(names, in.Name)
		}
		if sec.Len() > 0 || (section == "required" && !s.V3) {
			input.Set(section, sec)
			if names == nil {
				names = []any{}
			}
			order.Set(section, names)
		}
	}
	if len(s.Hidden) > 0 {
		sec := ojson.NewObject()
		var names []any
		for _, h := range s.Hidden {
			if s.V3 {
				sec.Set(h.Name, []any{h.Kind})
			} else {
				sec.Set(h.Name, h.Kind)
			}
			names = append(names, h.Name)
		}
		input.Set("hidden", sec)
		order.Set("hidden", names)
	}
	outputs := make([]any, len(s.Outputs))
	isList := make([]any, len(s.Outputs))
	names := make([]any, len(s.Outputs))
	tooltips := make([]any, len(s.Outputs))
	for i, o := range s.Outputs {
		outputs[i] = o.Type
		isList[i] = o.IsList
		names[i] = o.Name
		if o.Name == "" {
			names[i] = o.Type
		}
		if o.Tooltip != "" {
			tooltips[i] = o.Tooltip
		}
	}
	info := ojson.NewObject()
	info.Set("input", input).Set("input_order", order).Set("is_input_list", false)
	info.Set("output", outputs).Set("output_is_list", isList).Set("output_name", names)
	aliases := make([]any, len(s.SearchAliases))
	for i, a := range s.SearchAliases {
		aliases[i] = a
	}
	if s.V3 {
		info.Set("output_tooltips", tooltips).Set("output_matchtypes", nil)
		info.Set("name", s.Name)
		if s.DisplayName != "" {
			info.Set("display_name", s.DisplayName)
		} else {
			info.Set("display_name", nil)
		}
		info.Set("description", s.Description).Set("python_module", s.PythonModule)
		info.Set("category", s.Category).Set("output_node", s.OutputNode)
		info.Set("deprecated", s.Deprecated).Set("experimental", s.Experimental)
		info.Set("dev_only", false).Set("api_node", false).Set("price_badge", nil)
		if len(aliases) > 0 {
			info.Set("search_aliases", aliases)
		} else {
			info.Set("search_aliases", nil)
		}
		if s.EssentialsCategory != "" {
			info.Set("essentials_category", s.EssentialsCategory)
		} else {
			info.Set("essentials_category", nil)
		}
		info.Set("has_intermediate_output", false)
		return info
	}
	display := s.DisplayName
	if display == "" {
		display = s.Name
	}
	info.Set("name", s.Name).Set("display_name", display).Set("description", s.Description)
	module := s.PythonModule
	if module == "" {
		module = "nodes"
	}
	category := s.Category
	if category == "" {
		category = "sd"
	}
	info.Set("python_module", module).Set("category", category)
	info.Set("output_node", s.OutputNode).Set("has_intermediate_output", false)
	if len(s.OutputTooltips) > 0 {
		tt := make([]any, len(s.OutputTooltips))
		for i, t := range s.OutputTooltips {
			tt[i] = t
		}
		info.Set("output_tooltips", tt)
	}
	if s.Deprecated {
		info.Set("deprecated", true)
	}
	if s.Experimental {
		info.Set("experimental", true)
	}
	info.Set("search_aliases", aliases)
	if s.EssentialsCategory != "" {
		info.Set("essentials_category", s.EssentialsCategory)
	}
	return info
}

// Info returns the /object_info document: every registered node, by class name.
func (r *Registry) Info(env Env) *ojson.Object {
	out := ojson.NewObject()
	for _, name := range r.Names() {
		n, _ := r.Get(name)
		out.Set(name, n.Schema().Info(env))
	}
	return out
}
