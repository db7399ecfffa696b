package server

import (
	"io/fs"
	"math"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

func FuzzParseClientMessage(f *testing.F) {
	for _, s := range []string{
		`{"type": "feature_flags", "data": {"supports_preview_metadata": true}}`,
		`{"type": "feature_flags", "data": 5}`,
		`{"type": 5}`, `{}`, `[]`, `null`, `{"type": "x", "data": [1, 2]}`, `{"type": "feature_flags"}`,
		`{"type": "feature_flags", "data": {"a": {"b": [1e999, -0, 18446744073709551616]}}}`,
		strings.Repeat(`{"a":`, 600) + strings.Repeat("}", 600),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		msg, err := parseClientMessage(b)
		if err != nil {
			if msg != nil {
				t.Fatalf("error with a message")
			}
			return
		}
		if msg.Data == nil {
			t.Fatalf("accepted message without data object")
		}
	})
}

// within reports whether rel joined to base stays inside base.
func within(base, rel string) bool {
	full := filepath.Join(base, filepath.FromSlash(rel))
	r, err := filepath.Rel(base, full)
	return err == nil && r != ".." && !strings.HasPrefix(r, ".."+string(filepath.Separator)) && !filepath.IsAbs(r)
}

func FuzzUploadNameAndSubfolder(f *testing.F) {
	for _, s := range [][2]string{
		{"a.png", ""}, {"../a.png", "x"}, {"a.png", "../.."}, {"a.png", "/etc"}, {`..\a.png`, `..\..`},
		{"a\x00.png", "s\x00"}, {"C:a.png", "C:/x"}, {"a.png", "x/./y//z/"}, {"é.png", "ü/ß"}, {".", "."},
		{"a.png", "a/b/../../.."}, {"\u202e.png", "\xff"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, name, sub string) {
		if err := checkUploadName(name); err == nil {
			if strings.ContainsAny(name, "/\\\x00") || name == "." || name == ".." || path.Base(name) != name {
				t.Fatalf("accepted unsafe name %q", name)
			}
			if !within("/base", name) {
				t.Fatalf("name %q escapes", name)
			}
		}
		clean, err := cleanSubfolder(sub)
		if err != nil {
			return
		}
		if strings.ContainsAny(clean, "\\\x00") || strings.HasPrefix(clean, "/") || clean == ".." || strings.HasPrefix(clean, "../") {
			t.Fatalf("subfolder %q cleaned to unsafe %q", sub, clean)
		}
		if !within("/base", clean) || !within("/base", path.Join(clean, "x.png")) {
			t.Fatalf("subfolder %q (%q) escapes", sub, clean)
		}
	})
}

func FuzzParsePromptRequest(f *testing.F) {
	for _, s := range []string{
		`{"prompt": {"1": {"class_type": "SaveImage", "inputs": {}}}, "client_id": "a"}`,
		`{"prompt": {}, "prompt_id": "e2b1c7d4-5f7a-4b7e-9a51-0d2b8f5c1a33", "number": 5, "front": true}`,
		`{"prompt": {}, "number": "1e400"}`, `{"prompt": {}, "number": "nan"}`, `{"prompt": {}, "number": true}`,
		`{"prompt": {}, "partial_execution_targets": ["1", 2]}`, `{"prompt": 1}`, `{"prompt": {}, "extra_data": null}`,
		`{`, ``, `[]`, `{"prompt": {"1": {"inputs": {"seed": 18446744073709551615}}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, aerr := parsePromptRequest(b)
		if aerr != nil {
			if req != nil {
				t.Fatalf("error with a request")
			}
			if aerr.typ == "" || aerr.body() == nil {
				t.Fatalf("error without a type")
			}
			return
		}
		if req.prompt == nil || req.extra == nil {
			t.Fatalf("accepted request without prompt or extra_data")
		}
		if req.promptID != "" && !isCanonicalUUID(req.promptID) {
			t.Fatalf("accepted prompt_id %q", req.promptID)
		}
		if math.IsNaN(req.number) || math.IsInf(req.number, 0) {
			t.Fatalf("accepted number %v", req.number)
		}
	})
}

// FuzzUserPath: an accepted user file name is a clean relative path that stays in the user
// folder (os.Root enforces it again on access; this keeps the 403 answers right).
func FuzzUserPath(f *testing.F) {
	for _, s := range []string{"workflows/a.json", "workflows%2Fa.json", "a%252Fb", "..", "../x", "%2E%2E%2Fx", "/etc/passwd",
		`C:\x`, `a\..\..\b`, "a/./b/../c", "", ".", "%", "%zz", "a\x00b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		p, ok := userPath(name)
		if !ok {
			return
		}
		if p != "." && !fs.ValidPath(p) {
			t.Fatalf("userPath(%q) = %q, not a valid relative path", name, p)
		}
		if !within("/base", p) || path.Clean(p) != p {
			t.Fatalf("userPath(%q) = %q leaves the folder or is not clean", name, p)
		}
	})
}
