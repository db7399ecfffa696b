package server

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"

	"github.com/dypegraph/dypegraph/internal/ojson"
	"github.com/dypegraph/dypegraph/ui"
)

// Version strings reported by /system_stats. comfyui_version is the ComfyUI API level this
// server follows, so clients that gate features on it behave.
const (
	apiCompatVersion        = "0.33.0"
	requiredFrontendVersion = "1.49.6"
	serverName              = "dypegraph"
)

// routes builds the handler: every API route is served at its path and under /api (routes
// declared with /api/ also at /api/api/), like ComfyUI.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	api := func(pattern string, h http.HandlerFunc) {
		method, p, _ := strings.Cut(pattern, " ")
		mux.HandleFunc(method+" "+p, h)
		mux.HandleFunc(method+" /api"+p, h)
	}
	api("GET /ws", s.handleWS)
	api("GET /embeddings", s.handleEmbeddings)
	api("GET /models", s.handleModelFolders)
	api("GET /models/{folder}", s.handleModels)
	api("GET /extensions", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, []any{}) })
	api("POST /upload/image", s.handleUploadImage)
	api("POST /upload/mask", s.handleUploadMask)
	api("GET /view", s.handleView)
	api("GET /system_stats", s.handleSystemStats)
	api("GET /features", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, s.features()) })
	api("GET /prompt", s.handleGetPrompt)
	api("POST /prompt", s.handlePostPrompt)
	api("GET /object_info", s.handleObjectInfo)
	api("GET /object_info/{class}", s.handleObjectInfoClass)
	api("GET /history", s.handleGetHistory)
	api("GET /history/{id}", s.handleGetHistoryID)
	api("POST /history", s.handlePostHistory)
	api("GET /queue", s.handleGetQueue)
	api("POST /queue", s.handlePostQueue)
	api("POST /interrupt", s.handleInterrupt)
	api("POST /free", s.handleFree)
	api("GET /api/jobs", s.handleJobs)
	api("GET /api/jobs/{id}", s.handleJob)
	api("POST /api/jobs/{id}/cancel", s.handleJobCancel)
	api("POST /api/jobs/cancel", s.handleJobsCancel)
	// User data (userdata.go): single-user, the Comfy-User header is ignored.
	api("GET /users", s.handleGetUsers)
	api("POST /users", s.handlePostUsers)
	api("GET /settings", s.handleGetSettings)
	api("POST /settings", s.handlePostSettings)
	api("GET /settings/{id}", s.handleGetSetting)
	api("POST /settings/{id}", s.handlePostSetting)
	api("GET /userdata", s.handleListUserdata)
	api("GET /v2/userdata", s.handleListUserdataV2)
	api("GET /userdata/{file}", s.handleGetUserdata)
	api("POST /userdata/{file}", s.handlePostUserdata)
	api("DELETE /userdata/{file}", s.handleDeleteUserdata)
	api("POST /userdata/{file}/move/{dest}", s.handleMoveUserdata)
	// Start-up routes of the official frontend (auxroutes.go).
	api("GET /i18n", emptyObject)
	api("GET /workflow_templates", s.handleWorkflowTemplates)
	mux.HandleFunc("GET /api/workflow_templates/"+templatesModule+"/{file}", s.handleWorkflowTemplate)
	api("GET /global_subgraphs", emptyObject)
	api("GET /global_subgraphs/{id}", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, nil) })
	api("GET /node_replacements", emptyObject)
	api("GET /experiment/models", s.handleExperimentModels)
	api("GET /experiment/models/{folder}", s.handleExperimentModelFiles)
	api("GET /view_metadata/{folder}", s.handleViewMetadata)
	// ComfyUI's /internal routes have no /api twin.
	mux.HandleFunc("GET /internal/logs", s.handleLogs)
	mux.HandleFunc("GET /internal/logs/raw", s.handleLogsRaw)
	mux.HandleFunc("PATCH /internal/logs/subscribe", s.handleLogsSubscribe)
	mux.HandleFunc("GET /internal/folder_paths", s.handleFolderPaths)
	mux.HandleFunc("GET /internal/files/{type}", s.handleInternalFiles)
	// dypegraph's own routes for its web UI (uiroutes.go).
	api("GET /dypegraph/workflows", s.handleWorkflows)
	api("GET /dypegraph/workflows/{name}", s.handleWorkflow)
	api("GET /dypegraph/folders", s.handleFolders)
	if s.cfg.FrontEndRoot != "" {
		mux.Handle("GET /", noCacheIndex(http.FileServerFS(os.DirFS(s.cfg.FrontEndRoot))))
	} else {
		// The embedded web UI (package ui), or a page saying how to build it.
		mux.Handle("GET /", ui.Handler())
	}
	return s.middleware(mux)
}

func noCacheIndex(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" || strings.HasSuffix(r.URL.Path, "/index.html") {
			w.Header().Set("Cache-Control", "no-store, must-revalidate")
			w.Header().Set("Pragma", "no-cache")
			w.Header().Set("Expires", "0")
		}
		h.ServeHTTP(w, r)
	})
}

// middleware applies, outermost first: CORS or the Host/Origin guard, the auth token, the
// request body limit and the shutdown check.
func (s *Server) middleware(next http.Handler) http.Handler {
	var tokenSum [32]byte
	var cookie string
	if s.cfg.AuthToken != "" {
		tokenSum = sha256.Sum256([]byte(s.cfg.AuthToken))
		cookie = authCookieValue(tokenSum)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.CORSOrigin != "" {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", s.cfg.CORSOrigin)
			h.Set("Access-Control-Allow-Methods", "POST, GET, DELETE, PUT, OPTIONS, PATCH")
			h.Set("Access-Control-Allow-Headers", "Content-Type, Authorization")
			h.Set("Access-Control-Allow-Credentials", "true")
			if r.Method == http.MethodOptions {
				w.WriteHeader(http.StatusOK)
				return
			}
		} else {
			if reason := originRejection(r); reason != "" {
				s.log.Warn("request refused by the origin guard", "reason", reason, "path", r.URL.Path)
				httpError(w, http.StatusForbidden, reason)
				return
			}
			if r.Method == http.MethodOptions {
				w.WriteHeader(http.StatusOK)
				return
			}
		}
		if s.cfg.AuthToken != "" && !authorize(w, r, tokenSum, cookie) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="dypegraph"`)
			httpError(w, http.StatusUnauthorized, "missing or wrong auth token: send \"Authorization: Bearer <token>\", or add ?token=<token> to the URL (the web UI: open /?token=<token>)")
			return
		}
		if s.closing.Load() {
			httpError(w, http.StatusServiceUnavailable, "the server is shutting down")
			return
		}
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxUploadSize)
		}
		next.ServeHTTP(w, r)
	})
}

// authCookie is the cookie that carries the auth token's proof for browsers: a request with a
// valid ?token= sets it, so the web UI opened as /?token=<token> can make its later requests and
// open its websocket without being able to set headers.
const authCookie = "dypegraph_auth"

// authCookieValue is what the cookie holds: a hash of the token (cookie values cannot carry
// every character a token may have, and the token itself is not stored in the browser).
func authCookieValue(want [32]byte) string {
	sum := sha256.Sum256(append([]byte("dypegraph auth cookie\x00"), want[:]...))
	return hex.EncodeToString(sum[:])
}

// authorize checks the request's credentials: "Authorization: Bearer <token>", ?token=<token>
// or the auth cookie; each is compared in constant time (tokens are hashed first, so not even
// the length leaks). A valid ?token= also sets the cookie (HttpOnly, SameSite=Strict) and asks
// browsers not to send the URL as a referrer.
func authorize(w http.ResponseWriter, r *http.Request, want [32]byte, cookie string) bool {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, found := strings.Cut(h, " ")
		if found && strings.EqualFold(scheme, "Bearer") && tokenMatches(strings.TrimSpace(tok), want) {
			return true
		}
	}
	if t := r.URL.Query().Get("token"); t != "" && tokenMatches(t, want) {
		w.Header().Set("Referrer-Policy", "no-referrer")
		http.SetCookie(w, &http.Cookie{Name: authCookie, Value: cookie, Path: "/", HttpOnly: true,
			SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
		return true
	}
	if c, err := r.Cookie(authCookie); err == nil && subtle.ConstantTimeCompare([]byte(c.Value), []byte(cookie)) == 1 {
		return true
	}
	return false
}

func tokenMatches(got string, want [32]byte) bool {
	sum := sha256.Sum256([]byte(got))
	return subtle.ConstantTimeCompare(sum[:], want[:]) == 1
}

// originRejection is ComfyUI's origin-only middleware: a cross-site fetch is refused, and when
// the Host names this machine (loopback) a browser Origin naming another host is refused, which
// stops web pages from queueing prompts on a local server. An Origin of "null" (sandboxed
// frames, file: pages) is refused for loopback hosts too. It returns "" to let the request in.
func originRejection(r *http.Request) string {
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return "cross-site request refused"
	}
	origin := r.Header.Get("Origin")
	host := strings.ToLower(r.Host)
	if origin == "" || host == "" {
		return ""
	}
	hostName, hostPort := splitHostPort(host)
	if !isLoopbackName(hostName) {
		return ""
	}
	if strings.EqualFold(origin, "null") {
		return "request with an opaque (null) origin refused"
	}
	u, err := url.Parse(strings.ToLower(origin))
	if err != nil || u.Host == "" {
		return "request with an unreadable origin refused"
	}
	originHost := u.Host
	originName, originPort := splitHostPort(originHost)
	hostSide, originSide := host, originHost
	if originPort == "" {
		hostSide = hostName
	}
	if hostPort == "" {
		originSide = originName
	}
	if hostSide != originSide {
		return "request with non matching host and origin " + hostSide + " != " + originSide
	}
	return ""
}

func splitHostPort(hp string) (string, string) {
	if h, p, err := net.SplitHostPort(hp); err == nil {
		return strings.Trim(h, "[]"), p
	}
	return strings.Trim(hp, "[]"), ""
}

func isLoopbackName(h string) bool {
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// features is the server's feature-flag dict (the websocket reply and GET /features).
func (s *Server) features() *ojson.Object {
	return ojson.NewObject().Set("supports_preview_metadata", true).Set("max_upload_size", s.cfg.MaxUploadSize).
		Set("node_replacements", false).Set("assets", false)
}

func (s *Server) handleWS(w http.ResponseWriter, r *http.Request) {
	sid := r.URL.Query().Get("clientId")
	if len(sid) > 256 {
		httpError(w, http.StatusBadRequest, "clientId is longer than 256 bytes")
		return
	}
	if sid == "" {
		sid = strings.ReplaceAll(newUUID(), "-", "")
	}
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered the client
	}
	// The first messages are queued under qmu so that no status change can slip between them
	// and the client's registration.
	s.qmu.Lock()
	first := []outMsg{jsonMsg("status", s.statusDataLocked(sid), true)}
	if s.running != nil && s.running.clientID == sid {
		if ln := s.lastNode.Load(); ln != nil && ln.promptID == s.running.promptID && ln.node != "" {
			first = append(first, jsonMsg("executing", ojson.NewObject().Set("node", ln.node), true))
		}
	}
	c := s.hub.attach(conn, sid, first...)
	s.qmu.Unlock()
	if c == nil {
		return
	}
	s.hub.run(c, func(c *wsClient, flags *ojson.Object) []outMsg {
		v, _ := flags.Get("supports_preview_metadata")
		c.previewMeta.Store(v == true)
		return []outMsg{jsonMsg("feature_flags", s.features(), true)}
	})
}

func (s *Server) handleObjectInfo(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.cfg.Registry.Info(s.env))
}

func (s *Server) handleObjectInfoClass(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("class")
	out := ojson.NewObject()
	if n, ok := s.cfg.Registry.Get(name); ok {
		out.Set(name, n.Schema().Info(s.env))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleSystemStats(w http.ResponseWriter, r *http.Request) {
	total, free := memInfo()
	goos := runtime.GOOS
	if goos == "windows" {
		goos = "win32"
	}
	system := ojson.NewObject().Set("os", goos).Set("ram_total", total).Set("ram_free", free).
		Set("comfyui_version", apiCompatVersion).Set("required_frontend_version", requiredFrontendVersion).
		Set("installed_templates_version", nil).Set("required_templates_version", nil).
		Set("comfy_package_versions", ojson.NewObject()).
		Set("python_version", "").Set("pytorch_version", "").Set("embedded_python", false).
		Set("deploy_environment", serverName).
		// argv is not the real command line: it could carry --auth-token.
		Set("argv", []any{serverName, "serve"}).
		Set("server", serverName).Set("go_version", runtime.Version())
	device := ojson.NewObject().Set("name", "cpu").Set("type", "cpu").Set("index", nil).
		Set("vram_total", total).Set("vram_free", free).Set("torch_vram_total", 0).Set("torch_vram_free", 0)
	writeJSON(w, http.StatusOK, ojson.NewObject().Set("system", system).Set("devices", []any{device}))
}

// memInfo reads total and available RAM in bytes (Linux /proc/meminfo; zeros elsewhere).
func memInfo() (total, free int64) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		kb, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			continue
		}
		switch fields[0] {
		case "MemTotal:":
			total = kb * 1024
		case "MemAvailable:":
			free = kb * 1024
		}
	}
	return total, free
}

// ---- model folders (ComfyUI's folder_paths layout under the models dir)

var ptExtensions = []string{".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}

type modelFolder struct {
	name string
	dirs []string // relative to the models dir
	exts []string // nil: any file
}

var modelFolders = []modelFolder{
	{"checkpoints", []string{"checkpoints"}, ptExtensions},
	{"configs", []string{"configs"}, []string{".yaml"}},
	{"loras", []string{"loras"}, ptExtensions},
	{"vae", []string{"vae"}, ptExtensions},
	{"text_encoders", []string{"text_encoders", "clip"}, ptExtensions},
	{"diffusion_models", []string{"unet", "diffusion_models"}, ptExtensions},
	{"clip_vision", []string{"clip_vision"}, ptExtensions},
	{"style_models", []string{"style_models"}, ptExtensions},
	{"embeddings", []string{"embeddings"}, ptExtensions},
	{"diffusers", []string{"diffusers"}, []string{"folder"}},
	{"vae_approx", []string{"vae_approx"}, ptExtensions},
	{"controlnet", []string{"controlnet", "t2i_adapter"}, ptExtensions},
	{"gligen", []string{"gligen"}, ptExtensions},
	{"upscale_models", []string{"upscale_models"}, ptExtensions},
	{"latent_upscale_models", []string{"latent_upscale_models"}, ptExtensions},
	{"hypernetworks", []string{"hypernetworks"}, ptExtensions},
	{"photomaker", []string{"photomaker"}, ptExtensions},
	{"classifiers", []string{"classifiers"}, []string{""}},
	{"model_patches", []string{"model_patches"}, ptExtensions},
	{"audio_encoders", []string{"audio_encoders"}, ptExtensions},
}

// maxListedFiles bounds one folder listing.
const maxListedFiles = 100000

// listModelFiles lists the files of a model folder: relative paths with "/" separators,
// extension-filtered, sorted, deduplicated across the folder's directories. Hidden folders are
// skipped; symlinked files are listed, symlinked directories are not followed.
func listModelFiles(modelsDir string, mf modelFolder) []string {
	seen := map[string]bool{}
	for _, d := range mf.dirs {
		root := filepath.Join(modelsDir, d)
		_ = filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if e.IsDir() {
				if p != root && strings.HasPrefix(e.Name(), ".") {
					return filepath.SkipDir
				}
				return nil
			}
			if len(seen) >= maxListedFiles {
				return filepath.SkipAll
			}
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return nil
			}
			ext := strings.ToLower(filepath.Ext(rel))
			ok := mf.exts == nil
			for _, x := range mf.exts {
				ok = ok || x == ext
			}
			if ok {
				seen[filepath.ToSlash(rel)] = true
			}
			return nil
		})
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (s *Server) handleModelFolders(w http.ResponseWriter, r *http.Request) {
	names := make([]any, len(modelFolders))
	for i, mf := range modelFolders {
		names[i] = mf.name
	}
	writeJSON(w, http.StatusOK, names)
}

func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("folder")
	for _, mf := range modelFolders {
		if mf.name == name {
			files := listModelFiles(s.cfg.ModelsDir, mf)
			out := make([]any, len(files))
			for i, f := range files {
				out[i] = f
			}
			writeJSON(w, http.StatusOK, out)
			return
		}
	}
	httpError(w, http.StatusNotFound, "unknown model folder "+strconv.Quote(name))
}

func (s *Server) handleEmbeddings(w http.ResponseWriter, r *http.Request) {
	out := []any{}
	for _, mf := range modelFolders {
		if mf.name == "embeddings" {
			for _, f := range listModelFiles(s.cfg.ModelsDir, mf) {
				out = append(out, strings.TrimSuffix(f, filepath.Ext(f)))
			}
		}
	}
	writeJSON(w, http.StatusOK, out)
}
