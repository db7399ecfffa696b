package nodes

import (
	"context"
)

// The primitive nodes (ComfyUI comfy_extras/nodes_primitive.py, V3 schema): each outputs its
// widget value unchanged.

const sysMaxsize = int64(1<<63 - 1)

type primitive struct{ schema *Schema }

func (p *primitive) Schema() *Schema { return p.schema }

func (p *primitive) Execute(_ context.Context, in *Inputs, _ Runtime) (*Outputs, error) {
	return &Outputs{Values: []any{in.Value("value")}}, nil
}

func primitiveSchema(name, display, typ string, input InputSpec, aliases []string, essentials string) *Schema {
	input.Name, input.Type = "value", typ
	return &Schema{
		Name: name, DisplayName: display, Category: "utilities/primitive",
		PythonModule: "comfy_extras.nodes_primitive", V3: true,
		Inputs:        []InputSpec{input},
		Outputs:       []OutputSpec{{Type: typ}},
		SearchAliases: aliases, EssentialsCategory: essentials,
	}
}

func init() {
	register(&primitive{primitiveSchema("PrimitiveString", "Text", TypeString,
		InputSpec{Extra: []KV{{"multiline", false}}},
		[]string{"text", "string", "text box", "prompt"}, "")})
	register(&primitive{primitiveSchema("PrimitiveStringMultiline", "Text (Multiline)", TypeString,
		InputSpec{Extra: []KV{{"multiline", true}}},
		[]string{"text", "string", "text multiline", "string multiline", "text box", "prompt"}, "Basics")})
	register(&primitive{primitiveSchema("PrimitiveInt", "Int", TypeInt,
		InputSpec{Min: -sysMaxsize, Max: sysMaxsize, ControlAfterGenerate: "fixed"}, nil, "")})
	register(&primitive{primitiveSchema("PrimitiveFloat", "Float", TypeFloat,
		InputSpec{Min: -sysMaxsize, Max: sysMaxsize, Step: 0.1}, nil, "")})
	register(&primitive{primitiveSchema("PrimitiveBoolean", "Boolean", TypeBoolean, InputSpec{}, nil, "")})
}
