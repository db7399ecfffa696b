package server

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/dypegraph/dypegraph/internal/ojson"
)

// ComfyUI's user data routes (app/user_manager.py, app/app_settings.py): the user list, the
// settings file and the user's files (saved workflows, templates, keybindings, user.css), kept in
// data-dir/user/default like ComfyUI's user/default folder.
//
// dypegraph is single-user, like ComfyUI without --multi-user: every request is the "default"
// user and the Comfy-User header is ignored. All access goes through an os.Root on the user's
// folder, so no name reaches outside it.

const (
	defaultUser  = "default"
	settingsFile = "comfy.settings.json"
)

// userRoot is the default user's folder.
func (s *Server) userRoot() string { return filepath.Join(s.cfg.DataDir, "user", defaultUser) }

// openUserRoot opens the user's folder, creating it when create is set. A missing folder is
// reported as fs.ErrNotExist.
func (s *Server) openUserRoot(create bool) (*os.Root, error) {
	dir := s.userRoot()
	if create {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create user folder: %w", err)
		}
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open user folder: %w", err)
	}
	return root, nil
}

// userPath turns a client's file name into a clean slash path inside the user folder: names
// with a "%" are URL-decoded once more (ComfyUI's rule, so "a%252Fb" works like "a%2Fb"), and
// ok is false for a name that leaves the folder or is not UTF-8 (JSON answers could not name it). "" is the folder itself, returned as ".".
func userPath(name string) (string, bool) {
	if strings.Contains(name, "%") {
		if d, err := url.PathUnescape(name); err == nil {
			name = d
		}
	}
	name = strings.ReplaceAll(name, "\\", "/")
	if strings.HasPrefix(name, "/") || hasDrive(name) || strings.ContainsRune(name, 0) || !utf8.ValidString(name) {
		return "", false
	}
	p := path.Clean(name)
	if p == ".." || strings.HasPrefix(p, "../") {
		return "", false
	}
	return p, true
}

// ---- /users

func (s *Server) handleGetUsers(w http.ResponseWriter, r *http.Request) {
	_, err := os.Stat(s.userRoot())
	writeJSON(w, http.StatusOK, ojson.NewObject().Set("storage", "server").Set("migrated", err == nil))
}

// handlePostUsers answers ComfyUI's user creation. dypegraph has one user, so a new name is
// refused with a 400 that says so (ComfyUI's own 400 shape, {"error": message}).
func (s *Server) handlePostUsers(w http.ResponseWriter, r *http.Request) {
	body, ok := readJSONObject(w, r)
	if !ok {
		return
	}
	v, _ := body.Get("username")
	name, isStr := v.(string)
	msg := "dypegraph is single-user: every client uses the \"default\" user, so users cannot be added"
	switch {
	case !isStr:
		msg = "username not provided: send {\"username\": \"name\"}"
	case strings.TrimSpace(name) == "":
		msg = "username not provided"
	case name == defaultUser:
		msg = "Duplicate username."
	}
	writeJSON(w, http.StatusBadRequest, ojson.NewObject().Set("error", msg))
}

// ---- /settings

// loadSettings reads the settings object; a missing or unreadable file is {} (ComfyUI logs a
// corrupted file and carries on).
func (s *Server) loadSettings() *ojson.Object {
	root, err := s.openUserRoot(false)
	if err != nil {
		return ojson.NewObject()
	}
	defer root.Close()
	b, err := root.ReadFile(settingsFile)
	if err != nil {
		return ojson.NewObject()
	}
	v, err := ojson.Decode(b)
	obj, ok := v.(*ojson.Object)
	if err != nil || !ok {
		s.log.Error("the user settings file is corrupted: ignoring it", "file", filepath.Join(s.userRoot(), settingsFile))
		return ojson.NewObject()
	}
	return obj
}

// saveSettings writes the settings object atomically, indented like ComfyUI's file.
func (s *Server) saveSettings(settings *ojson.Object) error {
	b, err := ojson.Marshal(settings)
	if err != nil {
		return fmt.Errorf("encode settings: %w", err)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "    "); err != nil {
		return fmt.Errorf("encode settings: %w", err)
	}
	root, err := s.openUserRoot(true)
	if err != nil {
		return err
	}
	defer root.Close()
	if err := writeAtomic(root, settingsFile, out.Bytes()); err != nil {
		return fmt.Errorf("save settings: %w", err)
	}
	return nil
}

func (s *Server) handleGetSettings(w http.ResponseWriter, r *http.Request) {
	s.settingsMu.Lock()
	defer s.settingsMu.Unlock()
	writeJSON(w, http.StatusOK, s.loadSettings())
}

func (s *Server) handleGetSetting(w http.ResponseWriter, r *http.Request) {
	s.settingsMu.Lock()
	defer s.settingsMu.Unlock()
	v, _ := s.loadSettings().Get(r.PathValue("id"))
	writeJSON(w, http.StatusOK, v)
}

// handlePostSettings merges a JSON object into the settings.
func (s *Server) handlePostSettings(w http.ResponseWriter, r *http.Request) {
	body, ok := readJSONObject(w, r)
	if !ok {
		return
	}
	s.settingsMu.Lock()
	defer s.settingsMu.Unlock()
	settings := s.loadSettings()
	for _, k := range body.Keys() {
		v, _ := body.Get(k)
		settings.Set(k, v)
	}
	if err := s.saveSettings(settings); err != nil {
		serverError(w, s.log, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// handlePostSetting sets one setting to the JSON body.
func (s *Server) handlePostSetting(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	b, status, err := readBody(r)
	if err != nil {
		httpError(w, status, err.Error())
		return
	}
	v, err := ojson.Decode(b)
	if err != nil {
		httpError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
		return
	}
	s.settingsMu.Lock()
	defer s.settingsMu.Unlock()
	settings := s.loadSettings()
	settings.Set(id, v)
	if err := s.saveSettings(settings); err != nil {
		serverError(w, s.log, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// ---- /userdata

// fileInfo is ComfyUI's FileInfo: path relative to base, size, and times in milliseconds.
func fileInfo(rel string, fi fs.FileInfo) *ojson.Object {
	return ojson.NewObject().Set("path", rel).Set("size", fi.Size()).
		Set("modified", fi.ModTime().UnixMilli()).Set("created", changeTime(fi).UnixMilli())
}

// handleListUserdata is GET /userdata?dir=&recurse=&full_info=&split=: the files (not folders)
// of dir, as paths relative to dir, file infos, or [path, parts...] lists. Like ComfyUI's glob,
// names starting with "." are skipped.
func (s *Server) handleListUserdata(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	dir := q.Get("dir")
	if dir == "" {
		httpError(w, http.StatusBadRequest, "Directory not provided")
		return
	}
	rel, ok := userPath(dir)
	if !ok {
		httpError(w, http.StatusForbidden, "Invalid directory")
		return
	}
	recurse := strings.EqualFold(q.Get("recurse"), "true")
	fullInfo := strings.EqualFold(q.Get("full_info"), "true")
	split := strings.EqualFold(q.Get("split"), "true")
	root, err := s.openUserRoot(false)
	if err != nil {
		httpError(w, http.StatusNotFound, "Directory not found")
		return
	}
	defer root.Close()
	if st, err := root.Stat(rel); err != nil || !st.IsDir() {
		httpError(w, http.StatusNotFound, "Directory not found")
		return
	}
	type found struct {
		rel string
		fi  fs.FileInfo
	}
	var files []found
	err = fs.WalkDir(root.FS(), rel, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if p == rel {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if !recurse {
				return fs.SkipDir
			}
			return nil
		}
		fi, err := root.Stat(p) // follows a symlinked file (inside the folder only)
		if err != nil || !fi.Mode().IsRegular() {
			return nil
		}
		r, _ := strings.CutPrefix(p, rel+"/")
		if rel == "." {
			r = p
		}
		files = append(files, found{r, fi})
		if len(files) >= maxListedFiles {
			return fs.SkipAll
		}
		return nil
	})
	if err != nil {
		serverError(w, s.log, fmt.Errorf("list user data %s: %w", rel, err))
		return
	}
	out := make([]any, 0, len(files))
	for _, f := range files {
		switch {
		case fullInfo:
			out = append(out, fileInfo(f.rel, f.fi))
		case split:
			parts := []any{f.rel}
			for _, s := range strings.Split(f.rel, "/") {
				parts = append(parts, s)
			}
			out = append(out, parts)
		default:
			out = append(out, f.rel)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// handleListUserdataV2 is GET /v2/userdata?path=: every file and folder under path (hidden ones
// included), paths relative to the user folder, folders first then by name.
func (s *Server) handleListUserdataV2(w http.ResponseWriter, r *http.Request) {
	rel := "."
	if p := r.URL.Query().Get("path"); p != "" {
		var ok bool
		if rel, ok = userPath(p); !ok {
			httpError(w, http.StatusBadRequest, "Invalid path requested")
			return
		}
	}
	root, err := s.openUserRoot(false)
	if err != nil {
		if rel == "." {
			writeJSON(w, http.StatusOK, []any{}) // a new user: nothing saved yet
		} else {
			httpError(w, http.StatusNotFound, "Requested path not found")
		}
		return
	}
	defer root.Close()
	st, err := root.Stat(rel)
	if err != nil {
		httpError(w, http.StatusNotFound, "Requested path not found")
		return
	}
	if !st.IsDir() {
		httpError(w, http.StatusBadRequest, "Requested path is not a directory")
		return
	}
	type entry struct {
		dir  bool
		name string
		obj  *ojson.Object
	}
	var entries []entry
	err = fs.WalkDir(root.FS(), rel, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == rel {
				return err
			}
			return nil
		}
		if p == rel {
			return nil
		}
		if len(entries) >= maxListedFiles {
			return fs.SkipAll
		}
		if d.IsDir() {
			entries = append(entries, entry{true, d.Name(), ojson.NewObject().Set("name", d.Name()).Set("path", p).Set("type", "directory")})
			return nil
		}
		o := ojson.NewObject().Set("name", d.Name()).Set("path", p).Set("type", "file")
		if fi, err := root.Stat(p); err == nil {
			o.Set("size", fi.Size()).Set("modified", float64(fi.ModTime().UnixNano())/1e9)
		}
		entries = append(entries, entry{false, d.Name(), o})
		return nil
	})
	if err != nil {
		s.log.Error("list user data", "path", rel, "err", err)
		httpError(w, http.StatusInternalServerError, "Error reading directory contents")
		return
	}
	slices.SortStableFunc(entries, func(a, b entry) int {
		if a.dir != b.dir {
			if a.dir {
				return -1
			}
			return 1
		}
		return strings.Compare(strings.ToLower(a.name), strings.ToLower(b.name))
	})
	out := make([]any, len(entries))
	for i, e := range entries {
		out[i] = e.obj
	}
	writeJSON(w, http.StatusOK, out)
}

// userFileParam reads a {file} or {dest} path value: 400 when empty, 403 when it leaves the
// user folder or names the folder itself.
func userFileParam(w http.ResponseWriter, r *http.Request, param string) (string, bool) {
	name := r.PathValue(param)
	if name == "" {
		httpError(w, http.StatusBadRequest, "no file name given")
		return "", false
	}
	rel, ok := userPath(name)
	if !ok || rel == "." {
		httpError(w, http.StatusForbidden, "the file name "+fmt.Sprintf("%q", name)+" leaves the user folder")
		return "", false
	}
	return rel, true
}

// handleGetUserdata serves one user file. Like ComfyUI it is a download (Content-Disposition:
// attachment, nosniff, script and markup types served as application/octet-stream), except
// the user folder's user.css, which the frontend loads as a stylesheet.
func (s *Server) handleGetUserdata(w http.ResponseWriter, r *http.Request) {
	rel, ok := userFileParam(w, r, "file")
	if !ok {
		return
	}
	root, err := s.openUserRoot(false)
	if err != nil {
		httpError(w, http.StatusNotFound, "no user file "+rel)
		return
	}
	defer root.Close()
	f, err := root.Open(rel)
	if err != nil {
		httpError(w, http.StatusNotFound, "no user file "+rel)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		httpError(w, http.StatusNotFound, "no user file "+rel)
		return
	}
	ct := mime.TypeByExtension(path.Ext(rel))
	disposition := "attachment"
	switch {
	case rel == "user.css":
		ct, disposition = "text/css", "inline"
	case ct == "" || isDangerousType(ct):
		ct = "application/octet-stream"
	}
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Disposition", disposition)
	http.ServeContent(w, r, "", st.ModTime(), f)
}

// userFileAnswer is the answer of a write or move: the path relative to the user folder, or
// its file info with full_info=true.
func userFileAnswer(w http.ResponseWriter, r *http.Request, root *os.Root, rel string) {
	if !strings.EqualFold(r.URL.Query().Get("full_info"), "true") {
		writeJSON(w, http.StatusOK, rel)
		return
	}
	fi, err := root.Stat(rel)
	if err != nil {
		httpError(w, http.StatusInternalServerError, "stat "+rel+": "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, fileInfo(rel, fi))
}

// handlePostUserdata writes the raw body to a user file, atomically; overwrite=false refuses an
// existing file with 409.
func (s *Server) handlePostUserdata(w http.ResponseWriter, r *http.Request) {
	rel, ok := userFileParam(w, r, "file")
	if !ok {
		return
	}
	overwrite := r.URL.Query().Get("overwrite") != "false"
	body, status, err := readBody(r)
	if err != nil {
		httpError(w, status, err.Error())
		return
	}
	s.userMu.Lock()
	defer s.userMu.Unlock()
	root, err := s.openUserRoot(true)
	if err != nil {
		serverError(w, s.log, err)
		return
	}
	defer root.Close()
	if !overwrite {
		if _, err := root.Lstat(rel); err == nil {
			httpError(w, http.StatusConflict, "File already exists")
			return
		}
	}
	if dir := path.Dir(rel); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			s.log.Warn("user data not saved", "file", rel, "err", err)
			httpError(w, http.StatusBadRequest, "Invalid filename. Please avoid special characters like :\\/*?\"<>| ("+err.Error()+")")
			return
		}
	}
	if err := writeAtomic(root, rel, body); err != nil {
		s.log.Warn("user data not saved", "file", rel, "err", err)
		httpError(w, http.StatusBadRequest, "Invalid filename. Please avoid special characters like :\\/*?\"<>| ("+err.Error()+")")
		return
	}
	userFileAnswer(w, r, root, rel)
}

func (s *Server) handleDeleteUserdata(w http.ResponseWriter, r *http.Request) {
	rel, ok := userFileParam(w, r, "file")
	if !ok {
		return
	}
	s.userMu.Lock()
	defer s.userMu.Unlock()
	root, ok := s.existingUserFile(w, rel)
	if !ok {
		return
	}
	defer root.Close()
	if err := root.Remove(rel); err != nil {
		serverError(w, s.log, fmt.Errorf("delete user file %s: %w", rel, err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// existingUserFile opens the user folder for an existing file rel, answering 404 when either
// is missing. The caller holds userMu and closes the root.
func (s *Server) existingUserFile(w http.ResponseWriter, rel string) (*os.Root, bool) {
	root, err := s.openUserRoot(false)
	if err != nil {
		httpError(w, http.StatusNotFound, "no user file "+rel)
		return nil, false
	}
	if _, err := root.Lstat(rel); err != nil {
		root.Close()
		httpError(w, http.StatusNotFound, "no user file "+rel)
		return nil, false
	}
	return root, true
}

// handleMoveUserdata renames a user file (POST /userdata/{file}/move/{dest}); overwrite=false
// refuses an existing destination with 409.
func (s *Server) handleMoveUserdata(w http.ResponseWriter, r *http.Request) {
	src, ok := userFileParam(w, r, "file")
	if !ok {
		return
	}
	s.userMu.Lock()
	defer s.userMu.Unlock()
	root, ok := s.existingUserFile(w, src)
	if !ok {
		return
	}
	defer root.Close()
	dest, ok := userFileParam(w, r, "dest")
	if !ok {
		return
	}
	if r.URL.Query().Get("overwrite") == "false" {
		if _, err := root.Lstat(dest); err == nil {
			httpError(w, http.StatusConflict, "File already exists")
			return
		}
	}
	if dir := path.Dir(dest); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			serverError(w, s.log, fmt.Errorf("move user file to %s: %w", dest, err))
			return
		}
	}
	if err := root.Rename(src, dest); err != nil {
		serverError(w, s.log, fmt.Errorf("move user file %s to %s: %w", src, dest, err))
		return
	}
	s.log.Info("user file moved", "from", src, "to", dest)
	userFileAnswer(w, r, root, dest)
}

// writeAtomic writes data to rel inside root through a temporary file in the same folder.
func writeAtomic(root *os.Root, rel string, data []byte) error {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := path.Join(path.Dir(rel), ".tmp-"+hex.EncodeToString(rnd[:]))
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if serr := f.Sync(); err == nil {
		err = serr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = root.Rename(tmp, rel)
	}
	if err != nil {
		_ = root.Remove(tmp)
		return err
	}
	return nil
}
