package build

import (
	"strings"
	"testing"
)

func TestParseLoRA(t *testing.T) {
	cases := []struct {
		in       string
		name     string
		strength float64
		err      bool
	}{
		{"style.safetensors", "style.safetensors", 1, false},
		{"style.safetensors:0.7", "style.safetensors", 0.7, false},
		{"sub/a:b.safetensors:-1.5", "sub/a:b.safetensors", -1.5, false},
		{"style.safetensors:strong", "", 0, true},
		{":0.5", "", 0, true},
	}
	for _, c := range cases {
		got, err := ParseLoRA(c.in)
		if (err != nil) != c.err {
			t.Errorf("ParseLoRA(%q) error %v, want error %v", c.in, err, c.err)
			continue
		}
		if !c.err && (got.Name != c.name || got.Strength != c.strength) {
			t.Errorf("ParseLoRA(%q) = %+v", c.in, got)
		}
	}
}

// TestBuildChainsLoRAs checks that LoRAs sit between the loader and every consumer of the model,
// in flag order.
func TestBuildChainsLoRAs(t *testing.T) {
	p := Defaults()
	p.Prompt = "a fox"
	p.LoRAs = []LoRA{{"a.safetensors", 0.5}, {"b.safetensors", 1}}
	wf, err := Build(p)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := wf.MarshalJSON()
	s := string(js)
	ia := strings.Index(s, `"lora_name":"a.safetensors"`)
	ib := strings.Index(s, `"lora_name":"b.safetensors"`)
	if ia < 0 || ib < 0 || ia > ib || strings.Count(s, `"LoraLoaderModelOnly"`) != 2 {
		t.Fatalf("LoRA nodes missing or out of order: %s", s)
	}
	p.LoRAs = []LoRA{{"x.safetensors", 500}}
	if _, err := Build(p); err == nil {
		t.Fatal("strength 500 accepted")
	}
}
