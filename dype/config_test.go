package dype

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

func sampleConfigs() []Config {
	a := DefaultConfig()
	b := ComfyNodeDefaults()
	b.Method, b.DypeScale, b.DypeExponent, b.DypeStartSigma = MethodYarn, 3.25, 0.5, 0.3
	c := DefaultConfig()
	c.Enabled, c.Method, c.Anisotropic, c.BaseResolution, c.BaseShift, c.MaxShift = true, MethodNTK, true, 1328, 0.1, 1.0/3.0
	d := ComfyNodeDefaults()
	d.Method, d.DypeExponent, d.DypeStartSigma = MethodBase, 0, 0.001
	return []Config{a, b, c, d}
}

func TestConfigJSONRoundTrip(t *testing.T) {
	for _, c := range sampleConfigs() {
		t.Run(string(c.Method)+"_"+string(c.Mode), func(t *testing.T) {
			data, err := json.Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseJSON(data)
			if err != nil {
				t.Fatalf("ParseJSON(%s): %v", data, err)
			}
			if got != c {
				t.Fatalf("round trip %s: got %+v, want %+v", data, got, c)
			}
			var viaUnmarshal Config
			if err := json.Unmarshal(data, &viaUnmarshal); err != nil || viaUnmarshal != c {
				t.Fatalf("json.Unmarshal: %+v, %v", viaUnmarshal, err)
			}
			for _, k := range configKeys {
				if !strings.Contains(string(data), `"`+k+`"`) {
					t.Errorf("JSON lacks key %q: %s", k, data)
				}
			}
		})
	}
}

func TestConfigTOMLRoundTrip(t *testing.T) {
	for _, c := range sampleConfigs() {
		t.Run(string(c.Method)+"_"+string(c.Mode), func(t *testing.T) {
			data, err := c.EncodeTOML()
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseTOML(data)
			if err != nil {
				t.Fatalf("ParseTOML(%s): %v", data, err)
			}
			if got != c {
				t.Fatalf("round trip:\n%s\ngot %+v, want %+v", data, got, c)
			}
			// Embedded in a profile document, decoded through toml.Unmarshaler.
			doc := "[default.dype]\n" + string(data)
			var outer struct {
				Default struct {
					DyPE Config `toml:"dype"`
				} `toml:"default"`
			}
			if _, err := toml.Decode(doc, &outer); err != nil || outer.Default.DyPE != c {
				t.Fatalf("embedded decode: %+v, %v", outer.Default.DyPE, err)
			}
			prof, err := ParseTOMLProfile([]byte(doc), "default")
			if err != nil || prof != c {
				t.Fatalf("ParseTOMLProfile: %+v, %v", prof, err)
			}
		})
	}
}

func TestConfigLDTOMLExample(t *testing.T) {
	// The [<profile>.dype] table of LD's config.toml.example, partial: missing keys take
	// defaults, integers are accepted for floats.
	doc := `
[default]
model = "x"

[default.dype]
enabled = true
method = "yarn"
dype_scale = 2
dype_start_sigma = 1.5
anisotropic = true
`
	c, err := ParseTOMLProfile([]byte(doc), "default")
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultConfig()
	want.Enabled, want.Method, want.Anisotropic = true, MethodYarn, true
	if c != want {
		t.Fatalf("got %+v, want %+v", c, want)
	}
	if c, err := ParseTOMLProfile([]byte(doc), "other"); err != nil || c != DefaultConfig() {
		t.Fatalf("missing profile: %+v %v", c, err)
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	cases := []struct {
		name, json, field string
	}{
		{"unknown method", `{"method":"bogus"}`, "method"},
		{"unknown mode", `{"mode":"diffusers"}`, "mode"},
		{"zero scale", `{"dype_scale":0}`, "dype_scale"},
		{"negative scale", `{"dype_scale":-1}`, "dype_scale"},
		{"negative exponent", `{"dype_exponent":-0.5}`, "dype_exponent"},
		{"string enabled", `{"enabled":"yes"}`, "enabled"},
		{"string scale", `{"dype_scale":"2"}`, "dype_scale"},
		{"fractional base", `{"base_resolution":1024.5}`, "base_resolution"},
		{"tiny base", `{"base_resolution":8}`, "base_resolution"},
		{"huge base", `{"base_resolution":1e12}`, "base_resolution"},
		{"method number", `{"method":3}`, "method"},
		{"shift null", `{"max_shift":null}`, "max_shift"},
		{"huge number", `{"base_shift":1e400}`, "base_shift"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseJSON([]byte(c.json))
			if err == nil {
				t.Fatalf("ParseJSON(%s) accepted", c.json)
			}
			if !strings.Contains(err.Error(), c.field) {
				t.Fatalf("error %q does not name %q", err, c.field)
			}
		})
	}
	for _, bad := range []string{``, `null`, `[]`, `{"a":1} {}`, `{`} {
		if _, err := ParseJSON([]byte(bad)); err == nil {
			t.Errorf("ParseJSON(%q) accepted", bad)
		}
	}
	if _, err := ParseTOML([]byte("dype_scale = -2")); err == nil || !strings.Contains(err.Error(), "dype_scale") {
		t.Errorf("TOML negative scale: %v", err)
	}
	if _, err := ParseTOMLProfile([]byte("default = 3"), "default"); err == nil {
		t.Error("non-table profile accepted")
	}
}

func TestConfigUnknownKeysIgnored(t *testing.T) {
	m := map[string]any{"enabled": true, "unknown_key": 1, "scale": 2}
	c, err := FromMap(m)
	if err != nil || !c.Enabled {
		t.Fatalf("%+v %v", c, err)
	}
	if got := UnknownKeys(m); len(got) != 2 || got[0] != "scale" || got[1] != "unknown_key" {
		t.Fatalf("UnknownKeys = %v", got)
	}
}

func TestParseMethodAndMode(t *testing.T) {
	for _, m := range Methods() {
		if got, err := ParseMethod(string(m)); err != nil || got != m {
			t.Errorf("ParseMethod(%q) = %q, %v", m, got, err)
		}
	}
	for _, m := range Modes() {
		if got, err := ParseMode(string(m)); err != nil || got != m {
			t.Errorf("ParseMode(%q) = %q, %v", m, got, err)
		}
	}
	if _, err := ParseMethod("VISION_YARN"); err == nil {
		t.Error("method names are case sensitive upstream")
	}
	if _, err := ParseMode(""); err == nil {
		t.Error("empty mode accepted")
	}
}

// FuzzParseJSON: the parser never panics; whatever it accepts is valid and round-trips.
func FuzzParseJSON(f *testing.F) {
	for _, c := range sampleConfigs() {
		b, _ := json.Marshal(c)
		f.Add(b)
	}
	f.Add([]byte(`{"enabled":true,"unknown":[1,2]}`))
	f.Add([]byte(`{"base_resolution":1e300}`))
	f.Add([]byte(`{"dype_start_sigma":"NaN"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseJSON(data)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted an invalid config %+v: %v", c, err)
		}
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		c2, err := ParseJSON(b)
		if err != nil || c2 != c {
			t.Fatalf("round trip %s: %+v, %v", b, c2, err)
		}
	})
}

// FuzzParseTOML: the TOML parser never panics; accepted configs are valid and round-trip.
func FuzzParseTOML(f *testing.F) {
	for _, c := range sampleConfigs() {
		b, _ := c.EncodeTOML()
		f.Add(b)
	}
	f.Add([]byte("enabled = true\nmethod = \"ntk\"\nbase_resolution = 2048\n"))
	f.Add([]byte("dype_scale = inf\n"))
	f.Add([]byte("[x]\ny = 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseTOML(data)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted an invalid config %+v: %v", c, err)
		}
		b, err := c.EncodeTOML()
		if err != nil {
			t.Fatal(err)
		}
		c2, err := ParseTOML(b)
		if err != nil || c2 != c {
			t.Fatalf("round trip %s: %+v, %v", b, c2, err)
		}
	})
}
