package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/dypegraph/dypegraph/executor"
	"github.com/dypegraph/dypegraph/graph"
	"github.com/dypegraph/dypegraph/internal/ojson"
	"github.com/dypegraph/dypegraph/nodes"
)

func init() {
	commands["validate"] = command{summary: "validate a workflow file (API or UI JSON, or a PNG with an embedded workflow)", run: runValidate}
	commands["run"] = command{summary: "validate and execute a workflow, printing events as JSON lines", run: runRun}
	commands["nodes"] = command{summary: "print the node definitions (the /object_info JSON)", run: runNodes}
}

// dirFlags are the installation folders shared by the workflow commands.
type dirFlags struct {
	models, input, output, temp string
}

func (d *dirFlags) register(fs *flag.FlagSet, all bool) {
	fs.StringVar(&d.models, "models-dir", "models", "models folder (ComfyUI layout)")
	fs.StringVar(&d.input, "input-dir", "input", "folder LoadImage reads")
	if all {
		fs.StringVar(&d.output, "output-dir", "output", "folder SaveImage writes")
		fs.StringVar(&d.temp, "temp-dir", "temp", "folder PreviewImage writes")
	}
}

func (d *dirFlags) env() nodes.Env {
	abs := func(p string) string {
		if p == "" {
			return ""
		}
		if a, err := filepath.Abs(p); err == nil {
			return a
		}
		return p
	}
	return nodes.Env{ModelsDir: abs(d.models), InputDir: abs(d.input), OutputDir: abs(d.output), TempDir: abs(d.temp)}
}

// loadedWorkflow is a workflow read from a file, with the UI workflow to embed in saved PNGs.
type loadedWorkflow struct {
	wf           *graph.Workflow
	extraPNGInfo *ojson.Object
}

// loadWorkflow reads an API- or UI-format JSON file, or a PNG whose text chunks carry a
// workflow (the "prompt" chunk is preferred: it is the exact API prompt that made the image).
func loadWorkflow(path string, env nodes.Env) (*loadedWorkflow, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read workflow: %w", err)
	}
	if bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")) {
		texts, err := nodes.ReadPNGText(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		var extra *ojson.Object
		if ui, ok := texts["workflow"]; ok {
			if v, err := ojson.Decode([]byte(ui)); err == nil {
				extra = ojson.NewObject().Set("workflow", v)
			}
		}
		src, ok := texts["prompt"]
		if !ok {
			src, ok = texts["workflow"]
		}
		if !ok {
			return nil, fmt.Errorf("read %s: the PNG has no embedded workflow (no \"prompt\" or \"workflow\" text chunk)", path)
		}
		wf, err := graph.Parse([]byte(src), nodes.Default(), env)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		return &loadedWorkflow{wf: wf, extraPNGInfo: extra}, nil
	}
	doc, err := ojson.Decode(data)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var extra *ojson.Object
	if obj, ok := doc.(*ojson.Object); ok && graph.IsUIFormat(obj) {
		extra = ojson.NewObject().Set("workflow", obj)
	}
	wf, err := graph.Parse(data, nodes.Default(), env)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return &loadedWorkflow{wf: wf, extraPNGInfo: extra}, nil
}

func writeJSONLine(w io.Writer, v any) {
	b, err := ojson.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(map[string]string{"error": err.Error()})
	}
	fmt.Fprintf(w, "%s\n", b)
}

func parseOneFile(fs *flag.FlagSet, args []string, stderr io.Writer) (string, int) {
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return "", 0
		}
		return "", 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintf(stderr, "%s: expected exactly one workflow FILE\n", fs.Name())
		fs.Usage()
		return "", 2
	}
	return fs.Arg(0), -1
}

func newFlagSet(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: dypegraph %s\n\nflags:\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

func runValidate(args []string, stdout, stderr io.Writer) int {
	var dirs dirFlags
	fs := newFlagSet("validate", "validate [--models-dir DIR] [--input-dir DIR] FILE", stderr)
	dirs.register(fs, false)
	file, code := parseOneFile(fs, args, stderr)
	if code >= 0 {
		return code
	}
	env := dirs.env()
	lw, err := loadWorkflow(file, env)
	if err != nil {
		fmt.Fprintf(stderr, "dypegraph validate: %v\n", err)
		return 2
	}
	res := graph.Validate(lw.wf, nodes.Default(), env, nil)
	if !res.OK() {
		writeJSONLine(stdout, res.ErrorResponse(lw.wf.Order))
		return 1
	}
	outs := make([]any, len(res.Outputs))
	for i, o := range res.Outputs {
		outs[i] = o
	}
	out := ojson.NewObject().Set("ok", true).Set("outputs", outs)
	if len(res.NodeErrors) > 0 {
		out.Set("node_errors", res.NodeErrorsJSON(lw.wf.Order))
	}
	writeJSONLine(stdout, out)
	return 0
}

func runRun(args []string, stdout, stderr io.Writer) int {
	var dirs dirFlags
	fs := newFlagSet("run", "run [--output-dir DIR] [--input-dir DIR] [--temp-dir DIR] [--models-dir DIR] FILE", stderr)
	dirs.register(fs, true)
	file, code := parseOneFile(fs, args, stderr)
	if code >= 0 {
		return code
	}
	env := dirs.env()
	lw, err := loadWorkflow(file, env)
	if err != nil {
		fmt.Fprintf(stderr, "dypegraph run: %v\n", err)
		return 2
	}
	res := graph.Validate(lw.wf, nodes.Default(), env, nil)
	if !res.OK() {
		writeJSONLine(stdout, ojson.NewObject().Set("type", "validation_error").Set("data", res.ErrorResponse(lw.wf.Order)))
		return 1
	}
	ctx, stop := signalContext()
	defer stop()
	promptID := newPromptID()
	exec := executor.New(nodes.Default(), env)
	sink := executor.SinkFunc(func(e executor.Event) {
		writeJSONLine(stdout, ojson.NewObject().Set("type", e.Type).Set("data", e.Data))
	})
	result := exec.Run(ctx, &executor.Request{PromptID: promptID, Workflow: lw.wf, Validation: res, ExtraPNGInfo: lw.extraPNGInfo}, sink)
	sink.Send(executor.Event{Type: "executing", Data: ojson.NewObject().Set("node", nil).Set("prompt_id", promptID)})
	if !result.Success {
		if result.Err != nil {
			fmt.Fprintf(stderr, "dypegraph run: %v\n", strings.TrimSpace(result.Err.Error()))
		}
		return 1
	}
	return 0
}

func runNodes(args []string, stdout, stderr io.Writer) int {
	var dirs dirFlags
	fs := newFlagSet("nodes", "nodes [--models-dir DIR] [--input-dir DIR]", stderr)
	dirs.register(fs, false)
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	writeJSONLine(stdout, nodes.Default().Info(dirs.env()))
	return 0
}
