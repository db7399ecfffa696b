package server

import (
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/dypegraph/dypegraph/internal/ojson"
	"github.com/dypegraph/dypegraph/models/safetensors"
	"github.com/dypegraph/dypegraph/workflows"
)

// Auxiliary routes the official frontend and common SDKs call at start-up (ComfyUI's
// app/custom_node_manager.py, app/model_manager.py, app/subgraph_manager.py,
// app/node_replace_manager.py, server.py's /view_metadata and the /internal routes). dypegraph
// has no custom nodes, so their translations, subgraph blueprints and node replacements are
// empty; its bundled editor workflows are offered as the templates of a "dypegraph" module.

// templatesModule is the module name the bundled workflows are listed under in
// /workflow_templates and served from at /api/workflow_templates/{module}/{name}.json.
const templatesModule = "dypegraph"

// maxMetadataHeader is the largest safetensors header /view_metadata reads (ComfyUI's 1 MiB).
const maxMetadataHeader = 1 << 20

func emptyObject(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, ojson.NewObject())
}

// uiWorkflows lists the bundled workflows in the editor's format, without ".json".
func uiWorkflows() []string {
	var out []string
	for _, name := range workflows.Names() {
		data, err := workflows.Read(name)
		if err == nil && workflowFormat(data) == "ui" {
			out = append(out, strings.TrimSuffix(name, ".json"))
		}
	}
	return out
}

// handleWorkflowTemplates is GET /workflow_templates: {module: [workflow names]}.
func (s *Server) handleWorkflowTemplates(w http.ResponseWriter, r *http.Request) {
	out := ojson.NewObject()
	if names := uiWorkflows(); len(names) > 0 {
		list := make([]any, len(names))
		for i, n := range names {
			list[i] = n
		}
		out.Set(templatesModule, list)
	}
	writeJSON(w, http.StatusOK, out)
}

// handleWorkflowTemplate serves one template listed by /workflow_templates.
func (s *Server) handleWorkflowTemplate(w http.ResponseWriter, r *http.Request) {
	name, ok := strings.CutSuffix(r.PathValue("file"), ".json")
	if !ok || !slices.Contains(uiWorkflows(), name) {
		httpError(w, http.StatusNotFound, "no workflow template "+strconv.Quote(r.PathValue("file")))
		return
	}
	data, err := workflows.Read(name + ".json")
	if err != nil {
		serverError(w, s.log, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(data)
}

// findModelFolder returns the model folder named name.
func findModelFolder(name string) (modelFolder, bool) {
	for _, mf := range modelFolders {
		if mf.name == name {
			return mf, true
		}
	}
	return modelFolder{}, false
}

// folderPaths lists a model folder's directories as absolute paths.
func (s *Server) folderPaths(mf modelFolder) []any {
	out := make([]any, len(mf.dirs))
	for i, d := range mf.dirs {
		out[i] = filepath.Join(s.cfg.ModelsDir, d)
	}
	return out
}

// handleExperimentModels is GET /experiment/models: [{"name", "folders", "extensions"}] for
// every model folder but configs.
func (s *Server) handleExperimentModels(w http.ResponseWriter, r *http.Request) {
	out := []any{}
	for _, mf := range modelFolders {
		if mf.name == "configs" {
			continue
		}
		exts := slices.Clone(mf.exts)
		sort.Strings(exts)
		list := make([]any, len(exts))
		for i, e := range exts {
			list[i] = e
		}
		out = append(out, ojson.NewObject().Set("name", mf.name).Set("folders", s.folderPaths(mf)).Set("extensions", list))
	}
	writeJSON(w, http.StatusOK, out)
}

// handleExperimentModelFiles is GET /experiment/models/{folder}: the model files of every
// directory of the folder, [{"name", "pathIndex", "modified", "created", "size"}] (times in
// seconds). Like ComfyUI it lists the model extensions whatever the folder, and skips hidden
// names and .git.
func (s *Server) handleExperimentModelFiles(w http.ResponseWriter, r *http.Request) {
	mf, ok := findModelFolder(r.PathValue("folder"))
	if !ok {
		httpError(w, http.StatusNotFound, "unknown model folder "+strconv.Quote(r.PathValue("folder")))
		return
	}
	out := []any{}
	for idx, d := range mf.dirs {
		root := filepath.Join(s.cfg.ModelsDir, d)
		_ = filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if p == root {
				return nil
			}
			if strings.HasPrefix(e.Name(), ".") {
				if e.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if e.IsDir() || !slices.Contains(ptExtensions, strings.ToLower(filepath.Ext(p))) {
				return nil
			}
			if len(out) >= maxListedFiles {
				return filepath.SkipAll
			}
			fi, err := os.Stat(p)
			if err != nil || fi.IsDir() {
				return nil
			}
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return nil
			}
			out = append(out, ojson.NewObject().Set("name", rel).Set("pathIndex", idx).
				Set("modified", seconds(fi.ModTime().UnixNano())).Set("created", seconds(changeTime(fi).UnixNano())).
				Set("size", fi.Size()))
			return nil
		})
	}
	writeJSON(w, http.StatusOK, out)
}

func seconds(ns int64) float64 { return float64(ns) / 1e9 }

// legacyFolderNames are the old model folder names ComfyUI still accepts where it looks a
// model file up (folder_paths.map_legacy).
var legacyFolderNames = map[string]string{"unet": "diffusion_models", "clip": "text_encoders"}

// handleViewMetadata is GET /view_metadata/{folder}?filename=: the "__metadata__" object of a
// .safetensors model file's header; 404 for another file, a missing file, a header over 1 MiB
// or one without metadata. Like ComfyUI, the legacy folder names unet and clip are accepted.
func (s *Server) handleViewMetadata(w http.ResponseWriter, r *http.Request) {
	notFound := func(why string) { httpError(w, http.StatusNotFound, why) }
	folder := r.PathValue("folder")
	if name, ok := legacyFolderNames[folder]; ok {
		folder = name
	}
	mf, ok := findModelFolder(folder)
	if !ok {
		notFound("unknown model folder " + strconv.Quote(r.PathValue("folder")))
		return
	}
	name := r.URL.Query().Get("filename")
	if !strings.HasSuffix(name, ".safetensors") {
		notFound("filename must name a .safetensors file")
		return
	}
	rel := path.Clean(strings.ReplaceAll(name, "\\", "/"))
	if !fs.ValidPath(rel) {
		notFound("no model file " + strconv.Quote(name))
		return
	}
	for _, d := range mf.dirs {
		md, found := readMetadata(filepath.Join(s.cfg.ModelsDir, d), rel)
		if !found {
			continue
		}
		if md == nil {
			notFound("the header of " + strconv.Quote(name) + " has no __metadata__ (or is over 1 MiB)")
			return
		}
		writeJSON(w, http.StatusOK, md)
		return
	}
	notFound("no model file " + strconv.Quote(name) + " in " + mf.name)
}

// readMetadata reads the metadata of dir/rel. found is false when the file is not there (or not
// a regular file inside dir); md is nil when it has no readable metadata.
func readMetadata(dir, rel string) (md *ojson.Object, found bool) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, false
	}
	defer root.Close()
	fh, err := root.Open(rel) // confined: no "..", absolute path or symlink leaves dir
	if err != nil {
		return nil, false
	}
	defer fh.Close()
	inRoot, err := fh.Stat()
	if err != nil || !inRoot.Mode().IsRegular() {
		return nil, false
	}
	f, err := safetensors.Open(filepath.Join(dir, filepath.FromSlash(rel)))
	if err != nil {
		return nil, true
	}
	defer f.Close()
	// The file opened by path must be the one opened through the root.
	if st, err := os.Stat(f.Path()); err != nil || !os.SameFile(st, inRoot) {
		return nil, false
	}
	meta := f.Metadata()
	if meta == nil || f.HeaderSize() > maxMetadataHeader {
		return nil, true
	}
	keys := make([]string, 0, len(meta))
	for k := range meta {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	md = ojson.NewObject()
	for _, k := range keys {
		md.Set(k, meta[k])
	}
	return md, true
}

// handleFolderPaths is GET /internal/folder_paths: {folder: [absolute directories]}.
func (s *Server) handleFolderPaths(w http.ResponseWriter, r *http.Request) {
	out := ojson.NewObject()
	for _, mf := range modelFolders {
		out.Set(mf.name, s.folderPaths(mf))
	}
	writeJSON(w, http.StatusOK, out)
}

// handleInternalFiles is GET /internal/files/{input|output|temp}: the folder's visible files
// (not sub-folders), newest first, as "name [type]".
func (s *Server) handleInternalFiles(w http.ResponseWriter, r *http.Request) {
	typ := r.PathValue("type")
	dir, ok := s.dirByType(typ)
	if !ok {
		writeJSON(w, http.StatusBadRequest, ojson.NewObject().Set("error", "Invalid directory type"))
		return
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		writeJSON(w, http.StatusOK, []any{})
		return
	}
	defer root.Close()
	entries, err := fs.ReadDir(root.FS(), ".")
	if err != nil {
		serverError(w, s.log, err)
		return
	}
	type file struct {
		name  string
		mtime int64
	}
	var files []file
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		fi, err := root.Stat(e.Name())
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		files = append(files, file{e.Name(), fi.ModTime().UnixNano()})
		if len(files) >= maxListedFiles {
			break
		}
	}
	slices.SortStableFunc(files, func(a, b file) int {
		switch {
		case a.mtime > b.mtime:
			return -1
		case a.mtime < b.mtime:
			return 1
		}
		return strings.Compare(a.name, b.name)
	})
	out := make([]any, len(files))
	for i, f := range files {
		out[i] = f.name + " [" + typ + "]"
	}
	writeJSON(w, http.StatusOK, out)
}
