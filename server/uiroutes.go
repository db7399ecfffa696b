package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"

	"github.com/dypegraph/dypegraph/internal/ojson"
	"github.com/dypegraph/dypegraph/workflows"
)

// Routes for dypegraph's own web UI (not part of ComfyUI's API): the bundled example workflows
// and where the model folders are, so the UI can say where a missing model file belongs.

// handleWorkflows lists the bundled examples: {"workflows": [{"name", "format"}]}, format "ui"
// (the editor's graph) or "api" (a prompt).
func (s *Server) handleWorkflows(w http.ResponseWriter, r *http.Request) {
	list := []any{}
	for _, name := range workflows.Names() {
		data, err := workflows.Read(name)
		if err != nil {
			continue
		}
		list = append(list, ojson.NewObject().Set("name", name).Set("format", workflowFormat(data)))
	}
	writeJSON(w, http.StatusOK, ojson.NewObject().Set("workflows", list))
}

// workflowFormat tells a UI workflow (a "nodes" array) from an API prompt.
func workflowFormat(data []byte) string {
	var probe struct {
		Nodes json.RawMessage `json:"nodes"`
	}
	if json.Unmarshal(data, &probe) == nil && bytes.HasPrefix(bytes.TrimSpace(probe.Nodes), []byte("[")) {
		return "ui"
	}
	return "api"
}

// handleWorkflow returns one bundled example's JSON as stored.
func (s *Server) handleWorkflow(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !slices.Contains(workflows.Names(), name) {
		httpError(w, http.StatusNotFound, "no bundled workflow named "+strconv.Quote(name))
		return
	}
	data, err := workflows.Read(name)
	if err != nil {
		httpError(w, http.StatusInternalServerError, "read bundled workflow: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(data)
}

// handleFolders tells where files go: {"models_dir", "input_dir", "model_folders": {folder:
// [sub-folders of models_dir]}}, the folders /models/{folder} and the loaders read.
func (s *Server) handleFolders(w http.ResponseWriter, r *http.Request) {
	folders := ojson.NewObject()
	for _, mf := range modelFolders {
		dirs := make([]any, len(mf.dirs))
		for i, d := range mf.dirs {
			dirs[i] = d
		}
		folders.Set(mf.name, dirs)
	}
	writeJSON(w, http.StatusOK, ojson.NewObject().Set("models_dir", s.cfg.ModelsDir).
		Set("input_dir", s.cfg.InputDir).Set("model_folders", folders))
}
