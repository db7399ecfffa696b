package dype

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// Method is the RoPE extrapolation method.
type Method string

// The methods. MethodBase is ComfyUI-DyPE's "base": static NTK (no time dependence) in both
// modes; LD has no such method.
const (
	MethodVisionYarn Method = "vision_yarn"
	MethodYarn       Method = "yarn"
	MethodNTK        Method = "ntk"
	MethodBase       Method = "base"
)

// Methods lists the accepted methods in display order.
func Methods() []Method { return []Method{MethodVisionYarn, MethodYarn, MethodNTK, MethodBase} }

// ParseMethod validates a method name.
func ParseMethod(s string) (Method, error) {
	for _, m := range Methods() {
		if string(m) == s {
			return m, nil
		}
	}
	return "", fmt.Errorf("unknown method %q (want vision_yarn, yarn, ntk or base)", s)
}

// Mode selects how Z-Image positions and frequencies are built.
type Mode string

// The position modes.
const (
	// ModeLLMDiT: integer token grid, LD's generic DyPE math on the image call.
	ModeLLMDiT Mode = "llm_dit"
	// ModeComfy: ComfyUI-DyPE v2.3.0's Z-Image path (stretched, blended grid).
	ModeComfy Mode = "comfy"
)

// Modes lists the accepted modes.
func Modes() []Mode { return []Mode{ModeLLMDiT, ModeComfy} }

// ParseMode validates a mode name.
func ParseMode(s string) (Mode, error) {
	for _, m := range Modes() {
		if string(m) == s {
			return m, nil
		}
	}
	return "", fmt.Errorf("unknown mode %q (want llm_dit or comfy)", s)
}

// Config is the DyPE configuration (LD's DyPEConfig plus the position mode). The JSON and TOML
// keys are the upstream field names.
type Config struct {
	// Enabled turns the time-dependent schedule on. Disabled is not vanilla RoPE: as upstream,
	// llm_dit runs static NTK when the image exceeds the base grid; comfy follows the node
	// (vision_yarn stays dynamic, yarn/ntk become static, no schedule shift).
	Enabled bool `json:"enabled" toml:"enabled"`
	// Method is vision_yarn (default), yarn, ntk or base.
	Method Method `json:"method" toml:"method"`
	// DypeScale is λs in k_t = λs·σ^λt; must be positive.
	DypeScale float64 `json:"dype_scale" toml:"dype_scale"`
	// DypeExponent is λt; must be ≥ 0 (0 makes the schedule static).
	DypeExponent float64 `json:"dype_exponent" toml:"dype_exponent"`
	// DypeStartSigma is the σ below which mscale (and the comfy grid blend) starts to decay;
	// clamped to [0.001, 1]. It never changes k_t.
	DypeStartSigma float64 `json:"dype_start_sigma" toml:"dype_start_sigma"`
	// BaseShift and MaxShift are the noise-schedule μ at the base and at the maximum sequence
	// length.
	BaseShift float64 `json:"base_shift" toml:"base_shift"`
	MaxShift  float64 `json:"max_shift" toml:"max_shift"`
	// BaseResolution is the training resolution in pixels (Z-Image 1024); base grid = (R/8)/2.
	BaseResolution int `json:"base_resolution" toml:"base_resolution"`
	// Anisotropic selects per-axis YaRN (yarn only, llm_dit only; CD's yarn_alt_scaling, which
	// its Z-Image path ignores).
	Anisotropic bool `json:"anisotropic" toml:"anisotropic"`
	// Mode is llm_dit (default) or comfy.
	Mode Mode `json:"mode" toml:"mode"`
}

// Start-sigma clamp bounds (LD __post_init__, CD constructor).
const (
	MinStartSigma = 0.001
	MaxStartSigma = 1.0
)

// DefaultConfig is LD's DyPEConfig(): disabled, vision_yarn, λs = λt = 2, start σ 1,
// shifts 0.5/1.15, base resolution 1024, isotropic, llm_dit mode.
func DefaultConfig() Config {
	return Config{
		Enabled:        false,
		Method:         MethodVisionYarn,
		DypeScale:      2.0,
		DypeExponent:   2.0,
		DypeStartSigma: 1.0,
		BaseShift:      0.5,
		MaxShift:       1.15,
		BaseResolution: 1024,
		Anisotropic:    false,
		Mode:           ModeLLMDiT,
	}
}

// ComfyNodeDefaults are the defaults of ComfyUI-DyPE's node (enable_dype on, comfy mode); the
// other values equal DefaultConfig.
func ComfyNodeDefaults() Config {
	c := DefaultConfig()
	c.Enabled = true
	c.Mode = ModeComfy
	return c
}

// ClampStartSigma clamps dype_start_sigma to [0.001, 1] as upstream does (NaN stays NaN, which
// Validate rejects).
func ClampStartSigma(v float64) float64 {
	if v < MinStartSigma {
		return MinStartSigma
	}
	if v > MaxStartSigma {
		return MaxStartSigma
	}
	return v
}

// Normalized returns c with dype_start_sigma clamped.
func (c Config) Normalized() Config {
	c.DypeStartSigma = ClampStartSigma(c.DypeStartSigma)
	return c
}

// Validate checks every field; the error names the first bad field. It does not clamp: call
// Normalized first (FromMap, ParseJSON and ParseTOML do).
func (c Config) Validate() error {
	if _, err := ParseMethod(string(c.Method)); err != nil {
		return fmt.Errorf("dype config: method: %w", err)
	}
	if _, err := ParseMode(string(c.Mode)); err != nil {
		return fmt.Errorf("dype config: mode: %w", err)
	}
	if !(c.DypeScale > 0) || math.IsInf(c.DypeScale, 0) {
		return fmt.Errorf("dype config: dype_scale: must be a positive finite number, got %v", c.DypeScale)
	}
	if !(c.DypeExponent >= 0) || math.IsInf(c.DypeExponent, 0) {
		return fmt.Errorf("dype config: dype_exponent: must be a finite number ≥ 0, got %v", c.DypeExponent)
	}
	if !(c.DypeStartSigma >= MinStartSigma && c.DypeStartSigma <= MaxStartSigma) {
		return fmt.Errorf("dype config: dype_start_sigma: must lie in [%v, %v] after clamping, got %v", MinStartSigma, MaxStartSigma, c.DypeStartSigma)
	}
	if math.IsNaN(c.BaseShift) || math.IsInf(c.BaseShift, 0) {
		return fmt.Errorf("dype config: base_shift: must be finite, got %v", c.BaseShift)
	}
	if math.IsNaN(c.MaxShift) || math.IsInf(c.MaxShift, 0) {
		return fmt.Errorf("dype config: max_shift: must be finite, got %v", c.MaxShift)
	}
	if c.BaseResolution < MinBaseResolution || c.BaseResolution > MaxBaseResolution {
		return fmt.Errorf("dype config: base_resolution: must lie in [%d, %d] pixels, got %d", MinBaseResolution, MaxBaseResolution, c.BaseResolution)
	}
	return nil
}

// Bounds on base_resolution: at least one token ((16/8)/2 = 1), at most a 65536-token grid.
const (
	MinBaseResolution = 16
	MaxBaseResolution = 1 << 20
)

// KT is k_t = dype_scale·σ^dype_exponent for this config.
func (c Config) KT(sigma float64) float64 { return KT(sigma, c.DypeScale, c.DypeExponent) }

// BasePatchGrid is (R/8)/2 tokens per axis (integer floors).
func (c Config) BasePatchGrid() int { return BasePatchGrid(c.BaseResolution) }

// BasePatchGrid returns the base token grid (R/8)/2 of a base resolution in pixels.
func BasePatchGrid(baseResolution int) int { return (baseResolution / 8) / 2 }

// configKeys are the map keys in to_dict order.
var configKeys = []string{"enabled", "method", "dype_scale", "dype_exponent", "dype_start_sigma",
	"base_shift", "max_shift", "base_resolution", "anisotropic", "mode"}

// ToMap is LD's to_dict plus "mode".
func (c Config) ToMap() map[string]any {
	return map[string]any{
		"enabled":          c.Enabled,
		"method":           string(c.Method),
		"dype_scale":       c.DypeScale,
		"dype_exponent":    c.DypeExponent,
		"dype_start_sigma": c.DypeStartSigma,
		"base_shift":       c.BaseShift,
		"max_shift":        c.MaxShift,
		"base_resolution":  c.BaseResolution,
		"anisotropic":      c.Anisotropic,
		"mode":             string(c.Mode),
	}
}

// FromMap is LD's from_dict: keys missing from m take DefaultConfig values, unknown keys are
// ignored (upstream behaviour; see UnknownKeys), dype_start_sigma is clamped, and the result is
// validated. Numbers may be float64, float32, any integer type or json.Number; base_resolution
// must be integral.
func FromMap(m map[string]any) (Config, error) {
	c := DefaultConfig()
	for key, v := range m {
		var err error
		switch key {
		case "enabled":
			c.Enabled, err = asBool(v)
		case "anisotropic":
			c.Anisotropic, err = asBool(v)
		case "method":
			var s string
			if s, err = asString(v); err == nil {
				c.Method = Method(s)
			}
		case "mode":
			var s string
			if s, err = asString(v); err == nil {
				c.Mode = Mode(s)
			}
		case "dype_scale":
			c.DypeScale, err = asFloat(v)
		case "dype_exponent":
			c.DypeExponent, err = asFloat(v)
		case "dype_start_sigma":
			c.DypeStartSigma, err = asFloat(v)
		case "base_shift":
			c.BaseShift, err = asFloat(v)
		case "max_shift":
			c.MaxShift, err = asFloat(v)
		case "base_resolution":
			c.BaseResolution, err = asInt(v)
		default:
			continue
		}
		if err != nil {
			return Config{}, fmt.Errorf("dype config: %s: %w", key, err)
		}
	}
	c = c.Normalized()
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// UnknownKeys returns the keys of m that FromMap ignores, sorted (for callers that want to warn
// about typos; upstream silently ignores them).
func UnknownKeys(m map[string]any) []string {
	var out []string
	for k := range m {
		known := false
		for _, kk := range configKeys {
			if k == kk {
				known = true
				break
			}
		}
		if !known {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func asBool(v any) (bool, error) {
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("want a boolean, got %s", describe(v))
	}
	return b, nil
}

func asString(v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("want a string, got %s", describe(v))
	}
	return s, nil
}

func asFloat(v any) (float64, error) {
	switch x := v.(type) {
	case float64:
		return x, nil
	case float32:
		return float64(x), nil
	case int:
		return float64(x), nil
	case int8:
		return float64(x), nil
	case int16:
		return float64(x), nil
	case int32:
		return float64(x), nil
	case int64:
		return float64(x), nil
	case uint:
		return float64(x), nil
	case uint8:
		return float64(x), nil
	case uint16:
		return float64(x), nil
	case uint32:
		return float64(x), nil
	case uint64:
		return float64(x), nil
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return 0, fmt.Errorf("want a number, got %q", x.String())
		}
		return f, nil
	}
	return 0, fmt.Errorf("want a number, got %s", describe(v))
}

func asInt(v any) (int, error) {
	switch x := v.(type) {
	case int:
		return x, nil
	case int64:
		if x > math.MaxInt32 || x < math.MinInt32 {
			return 0, fmt.Errorf("integer %d out of range", x)
		}
		return int(x), nil
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return asInt(i)
		}
	}
	f, err := asFloat(v)
	if err != nil {
		return 0, fmt.Errorf("want an integer, got %s", describe(v))
	}
	if f != math.Trunc(f) || math.IsInf(f, 0) || math.Abs(f) > math.MaxInt32 {
		return 0, fmt.Errorf("want an integer, got %v", f)
	}
	return int(f), nil
}

func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return fmt.Sprintf("string %q", x)
	case bool:
		return fmt.Sprintf("boolean %v", x)
	case json.Number:
		return "number " + x.String()
	case map[string]any:
		return "a table/object"
	case []any:
		return "an array"
	}
	return fmt.Sprintf("%T", v)
}

// MarshalJSON writes the config as one JSON object with the upstream keys.
func (c Config) MarshalJSON() ([]byte, error) {
	type plain Config
	return json.Marshal(plain(c))
}

// UnmarshalJSON has FromMap semantics: missing keys take defaults, the result is clamped and
// validated.
func (c *Config) UnmarshalJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return fmt.Errorf("dype config: %w", err)
	}
	if m == nil {
		return fmt.Errorf("dype config: want a JSON object, got null")
	}
	cfg, err := FromMap(m)
	if err != nil {
		return err
	}
	*c = cfg
	return nil
}

// UnmarshalTOML implements toml.Unmarshaler with FromMap semantics (a [profile.dype] table).
func (c *Config) UnmarshalTOML(v any) error {
	m, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("dype config: want a TOML table, got %s", describe(v))
	}
	cfg, err := FromMap(m)
	if err != nil {
		return err
	}
	*c = cfg
	return nil
}

// ParseJSON decodes one JSON object (FromMap semantics). Trailing data is an error.
func ParseJSON(data []byte) (Config, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return Config{}, fmt.Errorf("dype config: %w", err)
	}
	if dec.More() {
		return Config{}, fmt.Errorf("dype config: trailing data after the JSON object")
	}
	if m == nil {
		return Config{}, fmt.Errorf("dype config: want a JSON object, got null")
	}
	return FromMap(m)
}

// ParseTOML decodes a TOML document whose top-level keys are the config keys (the body of a
// [<profile>.dype] table), with FromMap semantics.
func ParseTOML(data []byte) (Config, error) {
	var m map[string]any
	if _, err := toml.Decode(string(data), &m); err != nil {
		return Config{}, fmt.Errorf("dype config: %w", err)
	}
	return FromMap(m)
}

// ParseTOMLProfile decodes the [<profile>.dype] table of a TOML document (LD's config.toml
// layout). A missing table gives DefaultConfig.
func ParseTOMLProfile(data []byte, profile string) (Config, error) {
	var doc map[string]any
	if _, err := toml.Decode(string(data), &doc); err != nil {
		return Config{}, fmt.Errorf("dype config: %w", err)
	}
	p, ok := doc[profile]
	if !ok {
		return DefaultConfig(), nil
	}
	pm, ok := p.(map[string]any)
	if !ok {
		return Config{}, fmt.Errorf("dype config: %s: want a table, got %s", profile, describe(p))
	}
	d, ok := pm["dype"]
	if !ok {
		return DefaultConfig(), nil
	}
	dm, ok := d.(map[string]any)
	if !ok {
		return Config{}, fmt.Errorf("dype config: %s.dype: want a table, got %s", profile, describe(d))
	}
	cfg, err := FromMap(dm)
	if err != nil {
		return Config{}, fmt.Errorf("%s.dype: %w", profile, err)
	}
	return cfg, nil
}

// EncodeTOML writes the config as TOML key = value lines (the body of a [<profile>.dype] table).
func (c Config) EncodeTOML() ([]byte, error) {
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(c); err != nil {
		return nil, fmt.Errorf("dype config: encode toml: %w", err)
	}
	return buf.Bytes(), nil
}

// String is a one-line summary for logs.
func (c Config) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "dype{enabled=%v method=%s mode=%s scale=%v exponent=%v start_sigma=%v shift=%v..%v base=%d aniso=%v}",
		c.Enabled, c.Method, c.Mode, c.DypeScale, c.DypeExponent, c.DypeStartSigma, c.BaseShift, c.MaxShift, c.BaseResolution, c.Anisotropic)
	return b.String()
}
