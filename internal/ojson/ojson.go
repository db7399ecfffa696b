// Package ojson decodes and encodes JSON with the two properties ComfyUI compatibility needs and
// encoding/json's map decoding lacks: object key order is kept (prompts, inputs, history) and
// numbers are kept exactly as written (seeds up to 2^64-1 never pass through float64).
//
// Decoded values are nil, bool, json.Number, string, []any and *Object. The package also writes
// JSON the way Python's json.dumps does by default (", " and ": " separators, non-ASCII escaped),
// which is what ComfyUI puts into PNG text chunks. It must not know about workflows or nodes.
package ojson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxDepth bounds nesting so hostile input cannot exhaust the stack.
const MaxDepth = 512

// Object is a JSON object that remembers its key order.
type Object struct {
	keys   []string
	values map[string]any
}

// NewObject returns an empty object.
func NewObject() *Object { return &Object{values: map[string]any{}} }

// Keys returns the keys in insertion order. The slice must not be modified.
func (o *Object) Keys() []string {
	if o == nil {
		return nil
	}
	return o.keys
}

// Len returns the number of keys.
func (o *Object) Len() int {
	if o == nil {
		return 0
	}
	return len(o.keys)
}

// Get returns the value for key.
func (o *Object) Get(key string) (any, bool) {
	if o == nil {
		return nil, false
	}
	v, ok := o.values[key]
	return v, ok
}

// Set sets key to v, appending the key when new and keeping its position otherwise.
func (o *Object) Set(key string, v any) *Object {
	if o.values == nil {
		o.values = map[string]any{}
	}
	if _, ok := o.values[key]; !ok {
		o.keys = append(o.keys, key)
	}
	o.values[key] = v
	return o
}

// Delete removes key.
func (o *Object) Delete(key string) {
	if o == nil {
		return
	}
	if _, ok := o.values[key]; !ok {
		return
	}
	delete(o.values, key)
	for i, k := range o.keys {
		if k == key {
			o.keys = append(o.keys[:i:i], o.keys[i+1:]...)
			break
		}
	}
}

// Clone returns a deep copy of o.
func (o *Object) Clone() *Object {
	if o == nil {
		return nil
	}
	c := &Object{keys: append([]string(nil), o.keys...), values: make(map[string]any, len(o.values))}
	for k, v := range o.values {
		c.values[k] = CloneValue(v)
	}
	return c
}

// CloneValue deep-copies a decoded JSON value.
func CloneValue(v any) any {
	switch t := v.(type) {
	case *Object:
		return t.Clone()
	case []any:
		c := make([]any, len(t))
		for i, e := range t {
			c[i] = CloneValue(e)
		}
		return c
	}
	return v
}

// MarshalJSON writes compact JSON with keys in order.
func (o *Object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	if err := encode(&b, o, false, 0); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// UnmarshalJSON decodes an object, keeping key order and exact numbers.
func (o *Object) UnmarshalJSON(data []byte) error {
	v, err := Decode(data)
	if err != nil {
		return err
	}
	obj, ok := v.(*Object)
	if !ok {
		return fmt.Errorf("ojson: expected a JSON object, got %s", Kind(v))
	}
	*o = *obj
	return nil
}

// Kind names the JSON kind of a decoded value for error messages.
func Kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case json.Number:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	case *Object:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

// Decode parses one JSON value. Trailing non-space data is an error.
func Decode(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := decodeValue(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		if err == nil {
			return nil, errors.New("invalid JSON: unexpected data after the top-level value")
		}
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	return v, nil
}

func decodeValue(dec *json.Decoder, depth int) (any, error) {
	if depth > MaxDepth {
		return nil, fmt.Errorf("invalid JSON: nesting deeper than %d", MaxDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		if err == io.EOF {
			return nil, errors.New("invalid JSON: unexpected end of input")
		}
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			obj := NewObject()
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, fmt.Errorf("invalid JSON: %w", err)
				}
				key, ok := kt.(string)
				if !ok {
					return nil, errors.New("invalid JSON: object key is not a string")
				}
				val, err := decodeValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				obj.Set(key, val) // a repeated key keeps its first position and the last value, like Python
			}
			if _, err := dec.Token(); err != nil {
				return nil, fmt.Errorf("invalid JSON: %w", err)
			}
			return obj, nil
		case '[':
			arr := []any{}
			for dec.More() {
				val, err := decodeValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				arr = append(arr, val)
			}
			if _, err := dec.Token(); err != nil {
				return nil, fmt.Errorf("invalid JSON: %w", err)
			}
			return arr, nil
		}
		return nil, fmt.Errorf("invalid JSON: unexpected %q", t)
	default:
		return t, nil
	}
}

// Marshal writes compact JSON (Go style separators, UTF-8 kept).
func Marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	if err := encode(&b, v, false, 0); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// MarshalPython writes JSON as Python's json.dumps does by default: ", " and ": " separators
// and every non-ASCII character escaped as \uXXXX.
func MarshalPython(v any) ([]byte, error) {
	var b bytes.Buffer
	if err := encode(&b, v, true, 0); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func encode(b *bytes.Buffer, v any, py bool, depth int) error {
	if depth > MaxDepth {
		return fmt.Errorf("ojson: nesting deeper than %d", MaxDepth)
	}
	comma, colon := ",", ":"
	if py {
		comma, colon = ", ", ": "
	}
	switch t := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(t))
	case json.Number:
		if !validNumber(string(t)) {
			return fmt.Errorf("ojson: invalid number %q", string(t))
		}
		b.WriteString(string(t))
	case string:
		writeString(b, t, py)
	case int:
		b.WriteString(strconv.Itoa(t))
	case int64:
		b.WriteString(strconv.FormatInt(t, 10))
	case uint64:
		b.WriteString(strconv.FormatUint(t, 10))
	case float64:
		b.WriteString(FormatFloat(t))
	case float32:
		b.WriteString(FormatFloat(float64(t)))
	case *Object:
		if t == nil {
			b.WriteString("null")
			return nil
		}
		b.WriteByte('{')
		for i, k := range t.keys {
			if i > 0 {
				b.WriteString(comma)
			}
			writeString(b, k, py)
			b.WriteString(colon)
			if err := encode(b, t.values[k], py, depth+1); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	case []any:
		b.WriteByte('[')
		for i, e := range t {
			if i > 0 {
				b.WriteString(comma)
			}
			if err := encode(b, e, py, depth+1); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case []string:
		b.WriteByte('[')
		for i, e := range t {
			if i > 0 {
				b.WriteString(comma)
			}
			writeString(b, e, py)
		}
		b.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteString(comma)
			}
			writeString(b, k, py)
			b.WriteString(colon)
			if err := encode(b, t[k], py, depth+1); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	default:
		// Other Go values go through encoding/json, then are re-decoded so that the chosen
		// separators apply to them too.
		raw, err := json.Marshal(t)
		if err != nil {
			return fmt.Errorf("ojson: %w", err)
		}
		if !py {
			b.Write(raw)
			return nil
		}
		dv, err := Decode(raw)
		if err != nil {
			return err
		}
		return encode(b, dv, py, depth+1)
	}
	return nil
}

// FormatFloat writes a float the way Python's repr does for finite values (shortest round-trip,
// always with a fraction or exponent: 1.0, 0.1, 1e+20). Non-finite values become NaN, Infinity
// and -Infinity, as Python's json module writes them.
func FormatFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	abs := math.Abs(f)
	if abs != 0 && (abs < 1e-4 || abs >= 1e16) {
		s := strconv.FormatFloat(f, 'e', -1, 64)
		// Python writes 1e+20 and 1e-05; Go writes 1e+20 and 1e-05 as well.
		return s
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsAny(s, ".eE") {
		s += ".0"
	}
	return s
}

func validNumber(s string) bool {
	return json.Valid([]byte(s)) && s != "" && (s[0] == '-' || (s[0] >= '0' && s[0] <= '9'))
}

const hexDigits = "0123456789abcdef"

func writeString(b *bytes.Buffer, s string, asciiOnly bool) {
	b.WriteByte('"')
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r < 0x20 || (asciiOnly && r > 0x7f) || r == utf8.RuneError && size == 1:
			if r == utf8.RuneError && size == 1 {
				r = utf8.RuneError
			}
			if r > 0xffff {
				r1, r2 := utf16.EncodeRune(r)
				writeU(b, r1)
				writeU(b, r2)
			} else {
				writeU(b, r)
			}
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
}

func writeU(b *bytes.Buffer, r rune) {
	b.WriteString(`\u`)
	b.WriteByte(hexDigits[(r>>12)&0xf])
	b.WriteByte(hexDigits[(r>>8)&0xf])
	b.WriteByte(hexDigits[(r>>4)&0xf])
	b.WriteByte(hexDigits[r&0xf])
}
