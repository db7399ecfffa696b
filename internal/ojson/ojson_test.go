package ojson

import (
	"encoding/json"
	"testing"
)

func TestDecodeKeepsOrderAndExactNumbers(t *testing.T) {
	in := `{"z": 1, "a": {"seed": 18446744073709551615, "f": 1.50}, "m": [1, "x", null, true]}`
	v, err := Decode([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	obj := v.(*Object)
	if got := obj.Keys(); len(got) != 3 || got[0] != "z" || got[1] != "a" || got[2] != "m" {
		t.Fatalf("keys = %v", got)
	}
	a, _ := obj.Get("a")
	seed, _ := a.(*Object).Get("seed")
	if seed.(json.Number) != "18446744073709551615" {
		t.Fatalf("seed = %v", seed)
	}
	out, err := Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"z":1,"a":{"seed":18446744073709551615,"f":1.50},"m":[1,"x",null,true]}`; string(out) != want {
		t.Fatalf("Marshal = %s\nwant %s", out, want)
	}
}

func TestMarshalPython(t *testing.T) {
	obj := NewObject().Set("text", "café \"q\"\n😀").Set("n", []any{json.Number("1"), 2.0, false})
	got, err := MarshalPython(obj)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"text": "caf\u00e9 \"q\"\n\ud83d\ude00", "n": [1, 2.0, false]}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, in := range []string{``, `{`, `{"a":}`, `[1,]`, `{"a":1} x`, `{1:2}`} {
		if _, err := Decode([]byte(in)); err == nil {
			t.Errorf("Decode(%q): want error", in)
		}
	}
}

func TestFormatFloat(t *testing.T) {
	cases := map[float64]string{1: "1.0", 0.1: "0.1", 1e20: "1e+20", 1.5e-5: "1.5e-05", -2.25: "-2.25", 0: "0.0"}
	for f, want := range cases {
		if got := FormatFloat(f); got != want {
			t.Errorf("FormatFloat(%v) = %q, want %q", f, got, want)
		}
	}
}

func TestDeleteAndClone(t *testing.T) {
	o := NewObject().Set("a", 1).Set("b", []any{NewObject().Set("c", "d")})
	c := o.Clone()
	o.Delete("a")
	if o.Len() != 1 || c.Len() != 2 {
		t.Fatalf("len o=%d c=%d", o.Len(), c.Len())
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"a":[1,2,{"b":null}]}`, `[]`, `"x"`, `1e400`, `{"a":1,"a":2}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := Decode(data)
		if err != nil {
			return
		}
		out, err := Marshal(v)
		if err != nil {
			t.Fatalf("Marshal of decoded value: %v", err)
		}
		v2, err := Decode(out)
		if err != nil {
			t.Fatalf("re-decode %s: %v", out, err)
		}
		out2, _ := Marshal(v2)
		if string(out) != string(out2) {
			t.Fatalf("not stable: %s vs %s", out, out2)
		}
		if _, err := MarshalPython(v); err != nil {
			t.Fatalf("MarshalPython: %v", err)
		}
	})
}
