package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/dypegraph/dypegraph/models/detect"
	"github.com/dypegraph/dypegraph/models/safetensors"
)

func init() {
	commands["models"] = command{summary: "model files: inspect weights (models inspect), write a test fixture (models fixture)", run: runModels}
}

// modelsSubcommand is one `dypegraph models <sub>`; run gets the arguments after the
// subcommand name and returns the exit code.
type modelsSubcommand struct {
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

// modelsCommands is the registry of `dypegraph models` subcommands; other files add theirs.
var modelsCommands = map[string]modelsSubcommand{
	"inspect": {summary: "print the tensors and metadata of a safetensors file; --detect names the model", run: runModelsInspect},
}

func runModels(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		modelsUsage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	sub, ok := modelsCommands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "dypegraph models: unknown subcommand %q\n\n", args[0])
		modelsUsage(stderr)
		return 2
	}
	return sub.run(args[1:], stdout, stderr)
}

func modelsUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: dypegraph models <subcommand> [flags] [args]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "subcommands:")
	names := make([]string, 0, len(modelsCommands))
	for name := range modelsCommands {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		fmt.Fprintf(w, "  %-10s %s\n", name, modelsCommands[name].summary)
	}
}

// parseInterspersed parses flags that may come before or after the positional arguments (flag
// stops at the first positional); "--" ends flag parsing.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(positional, rest...), nil
		}
		if len(rest) == 0 {
			return positional, nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

func runModelsInspect(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("models inspect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	withDetect := fs.Bool("detect", false, "also name the model (zimage_dit, qwen3, flux_vae or unknown) and its config\ninferred from the tensor shapes, merged with <weights>.config.json when present")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: dypegraph models inspect [--detect] FILE")
		fmt.Fprintln(stderr)
		fmt.Fprintln(stderr, "Prints the metadata and tensors (dtype, shape, data offsets) of a safetensors file as JSON.")
		fmt.Fprintln(stderr, "FILE may also be a *.safetensors.index.json or a folder of shards.")
		fmt.Fprintln(stderr)
		fs.PrintDefaults()
	}
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if len(positional) != 1 {
		fmt.Fprintf(stderr, "dypegraph models inspect: want exactly one FILE, got %d arguments\n\n", len(positional))
		fs.Usage()
		return 2
	}
	path := positional[0]
	set, err := safetensors.OpenSet(path)
	if err != nil {
		fmt.Fprintf(stderr, "dypegraph models inspect: %v\n", err)
		return 1
	}
	defer set.Close()

	var det *detect.Result
	if *withDetect {
		r, err := detect.DetectPath(path, set)
		if err != nil {
			fmt.Fprintf(stderr, "dypegraph models inspect: %v\n", err)
			return 1
		}
		det = &r
	}
	out, err := inspectJSON(set, det)
	if err != nil {
		fmt.Fprintf(stderr, "dypegraph models inspect: %s: %v\n", path, err)
		return 1
	}
	if _, err := stdout.Write(out); err != nil {
		fmt.Fprintf(stderr, "dypegraph models inspect: %v\n", err)
		return 1
	}
	return 0
}

// inspectJSON renders the report: one line per tensor so a 450-tensor listing stays readable.
// Shards are named per tensor when the set has more than one file.
func inspectJSON(set *safetensors.Set, det *detect.Result) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("{\n  \"metadata\": {")
	md := set.Metadata()
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s: %s", jsonText(k), jsonText(md[k]))
	}
	b.WriteString("},\n  \"tensors\": {")
	sharded := len(set.Files()) > 1
	for i, name := range set.Names() {
		info, ok := set.Info(name)
		if !ok {
			return nil, fmt.Errorf("tensor %q vanished", name)
		}
		if i > 0 {
			b.WriteByte(',')
		}
		dims := make([]string, len(info.Shape))
		for j, d := range info.Shape {
			dims[j] = strconv.Itoa(d)
		}
		fmt.Fprintf(&b, "\n    %s: {\"dtype\": %s, \"shape\": [%s], \"offsets\": [%d, %d]",
			jsonText(name), jsonText(string(info.DType)), strings.Join(dims, ", "), info.Offsets[0], info.Offsets[1])
		if sharded {
			fmt.Fprintf(&b, ", \"file\": %s", jsonText(filepath.Base(info.File)))
		}
		b.WriteByte('}')
	}
	if set.Len() > 0 {
		b.WriteString("\n  ")
	}
	b.WriteByte('}')
	if det != nil {
		b.WriteString(",\n  \"detected\": {\n    \"model\": ")
		b.WriteString(jsonText(det.Model))
		b.WriteString(",\n    \"config\": {")
		ckeys := make([]string, 0, len(det.Config))
		for k := range det.Config {
			ckeys = append(ckeys, k)
		}
		slices.Sort(ckeys)
		for i, k := range ckeys {
			v, err := json.Marshal(det.Config[k])
			if err != nil {
				return nil, fmt.Errorf("config %q: %w", k, err)
			}
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "\n      %s: %s", jsonText(k), v)
		}
		if len(ckeys) > 0 {
			b.WriteString("\n    ")
		}
		b.WriteByte('}')
		for _, extra := range []struct {
			key  string
			list []string
		}{{"missing", det.Missing}, {"conflicts", det.Conflicts}} {
			if len(extra.list) > 0 {
				v, _ := json.Marshal(extra.list)
				fmt.Fprintf(&b, ",\n    %q: %s", extra.key, v)
			}
		}
		if det.Sidecar != "" {
			fmt.Fprintf(&b, ",\n    \"sidecar\": %s", jsonText(det.Sidecar))
		}
		if det.Reason != "" {
			fmt.Fprintf(&b, ",\n    \"reason\": %s", jsonText(det.Reason))
		}
		b.WriteString("\n  }")
	}
	b.WriteString("\n}\n")
	if !json.Valid(b.Bytes()) {
		return nil, errors.New("internal error: the report is not valid JSON")
	}
	return b.Bytes(), nil
}

// jsonText encodes s as a JSON string without HTML escaping.
func jsonText(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return strings.TrimSuffix(b.String(), "\n")
}
