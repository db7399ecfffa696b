package server

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/jpeg"
	"image/png"
	"io"
	"io/fs"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/dypegraph/dypegraph/internal/ojson"
	"github.com/dypegraph/dypegraph/nodes"
)

// Every file the server reads or writes for a client goes through an os.Root opened on the
// input, output or temp folder, so no name, subfolder or symlink can reach outside it; the
// checks below only make the errors clear and ComfyUI-shaped.

const (
	maxNameBytes   = 255
	maxSubfolder   = 1024
	maxFieldBytes  = 64 << 10
	maxParts       = 64
	maxViewPixels  = 1 << 26
	maxDupeSuffix  = 10000
	uploadField    = "image"
	stagingPattern = ".upload-*"
)

var errPathEscape = errors.New("path escapes the folder")

// dirByType maps "input", "output" and "temp" to their folders.
func (s *Server) dirByType(typ string) (string, bool) {
	switch typ {
	case "input":
		return s.cfg.InputDir, true
	case "output":
		return s.cfg.OutputDir, true
	case "temp":
		return s.cfg.TempDir, true
	}
	return "", false
}

// cleanSubfolder checks a client-supplied subfolder: relative, "/"-separated, no "..", no
// NUL, no control characters, no backslashes or drive letters (Windows separators). It returns
// the cleaned slash path ("" for the folder itself).
func cleanSubfolder(sub string) (string, error) {
	if sub == "" {
		return "", nil
	}
	if len(sub) > maxSubfolder {
		return "", fmt.Errorf("subfolder is longer than %d bytes", maxSubfolder)
	}
	if err := checkChars(sub); err != nil {
		return "", fmt.Errorf("subfolder: %w", err)
	}
	if strings.HasPrefix(sub, "/") || filepath.IsAbs(sub) || hasDrive(sub) {
		return "", fmt.Errorf("subfolder %q: %w (absolute path)", sub, errPathEscape)
	}
	for _, part := range strings.Split(sub, "/") {
		if part == ".." {
			return "", fmt.Errorf("subfolder %q: %w", sub, errPathEscape)
		}
		if len(part) > maxNameBytes {
			return "", fmt.Errorf("subfolder %q: a component is longer than %d bytes", sub, maxNameBytes)
		}
	}
	c := path.Clean(sub)
	if c == "." {
		return "", nil
	}
	return c, nil
}

// checkUploadName checks a file name for an upload: one path component, no "..", not hidden
// tricks such as NUL, control characters, separators or drive letters.
func checkUploadName(name string) error {
	if name == "" {
		return errors.New("empty file name")
	}
	if len(name) > maxNameBytes {
		return fmt.Errorf("file name is longer than %d bytes", maxNameBytes)
	}
	if err := checkChars(name); err != nil {
		return fmt.Errorf("file name: %w", err)
	}
	if strings.Contains(name, "/") || hasDrive(name) {
		return fmt.Errorf("file name %q must not contain a path", name)
	}
	if name == "." || name == ".." || strings.Contains(name, "..") {
		return fmt.Errorf("file name %q: %w", name, errPathEscape)
	}
	return nil
}

func checkChars(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("not valid UTF-8")
	}
	for _, r := range s {
		switch {
		case r == 0:
			return errors.New("contains a NUL byte")
		case r == '\\':
			return errors.New(`contains a backslash (use "/" as the separator)`)
		case unicode.IsControl(r):
			return errors.New("contains a control character")
		}
	}
	return nil
}

func hasDrive(s string) bool {
	return len(s) >= 2 && s[1] == ':' && ((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z'))
}

// splitAnnotation strips ComfyUI's " [output]" / " [input]" / " [temp]" suffix.
func splitAnnotation(name string) (string, string) {
	for _, t := range []string{"output", "input", "temp"} {
		suffix := "[" + t + "]"
		if strings.HasSuffix(name, suffix) {
			return strings.TrimSuffix(strings.TrimSuffix(name, suffix), " "), t
		}
	}
	return name, ""
}

// viewTarget resolves /view's query to a folder and a relative slash path, with ComfyUI's
// status codes: 400 for a bad file name or type, 403 for a subfolder escaping its folder.
func (s *Server) viewTarget(filename, typ, subfolder string, hasSub bool) (dir, rel string, status int, err error) {
	name, ann := splitAnnotation(filename)
	if name == "" {
		return "", "", http.StatusBadRequest, errors.New("empty filename")
	}
	if strings.HasPrefix(name, "/") || strings.Contains(name, "..") || hasDrive(name) {
		return "", "", http.StatusBadRequest, fmt.Errorf("filename %q: %w", name, errPathEscape)
	}
	if err := checkChars(name); err != nil {
		return "", "", http.StatusBadRequest, fmt.Errorf("filename: %w", err)
	}
	if ann != "" {
		typ = ann
	}
	if typ == "" {
		typ = "output"
	}
	dir, ok := s.dirByType(typ)
	if !ok {
		return "", "", http.StatusBadRequest, fmt.Errorf("unknown type %q (want output, input or temp)", typ)
	}
	sub := ""
	if hasSub {
		sub, err = cleanSubfolder(subfolder)
		if err != nil {
			return "", "", http.StatusForbidden, err
		}
	}
	// Like ComfyUI, only the base name of filename counts; the folder comes from subfolder.
	return dir, path.Join(sub, path.Base(name)), 0, nil
}

// openInRoot opens rel inside dir without following anything out of it.
func openInRoot(dir, rel string) (*os.File, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	return root.Open(rel)
}

var dangerousTypes = map[string]bool{
	"text/html": true, "text/html-sandboxed": true, "application/xhtml+xml": true,
	"text/javascript": true, "application/javascript": true, "application/x-javascript": true,
	"application/ecmascript": true, "text/css": true, "image/svg+xml": true,
	"application/xml": true, "text/xml": true, "message/rfc822": true,
}

func isDangerousType(ct string) bool {
	n := strings.ToLower(strings.TrimSpace(strings.SplitN(ct, ";", 2)[0]))
	return dangerousTypes[n] || strings.HasSuffix(n, "+xml") || strings.HasSuffix(n, "/xml")
}

func quoteFilename(name string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\r", "", "\n", "").Replace(name) + `"`
}

// lenientQuery parses a query string splitting on "&" only: ComfyUI clients send
// preview=webp;90 unescaped, which net/url would drop.
func lenientQuery(raw string) url.Values {
	v := url.Values{}
	for _, pair := range strings.Split(raw, "&") {
		if pair == "" {
			continue
		}
		k, val, _ := strings.Cut(pair, "=")
		key, err1 := url.QueryUnescape(k)
		value, err2 := url.QueryUnescape(val)
		if err1 != nil || err2 != nil {
			continue
		}
		v.Add(key, value)
	}
	return v
}

func (s *Server) handleView(w http.ResponseWriter, r *http.Request) {
	q := lenientQuery(r.URL.RawQuery)
	if !q.Has("filename") {
		httpError(w, http.StatusNotFound, "filename is required")
		return
	}
	dir, rel, status, err := s.viewTarget(q.Get("filename"), q.Get("type"), q.Get("subfolder"), q.Has("subfolder"))
	if err != nil {
		httpError(w, status, err.Error())
		return
	}
	f, err := openInRoot(dir, rel)
	if err != nil {
		if isEscape(err) {
			httpError(w, http.StatusForbidden, "path escapes the folder")
			return
		}
		httpError(w, http.StatusNotFound, "file not found")
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		httpError(w, http.StatusNotFound, "file not found")
		return
	}
	name := path.Base(rel)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	channel := q.Get("channel")
	if q.Has("preview") || channel == "rgb" || channel == "a" {
		s.viewConverted(w, f, name, q.Get("preview"), q.Has("preview"), channel)
		return
	}
	ct := mime.TypeByExtension(strings.ToLower(path.Ext(name)))
	if ct == "" {
		ct = "application/octet-stream"
	}
	disposition := "filename=" + quoteFilename(name)
	if isDangerousType(ct) {
		w.Header().Set("Vary", "Sec-Fetch-Dest")
		w.Header().Set("Cache-Control", "no-store")
		safeImage := r.Header.Get("Sec-Fetch-Dest") == "image" && strings.HasPrefix(strings.ToLower(ct), "image/svg+xml")
		if !safeImage {
			ct = "application/octet-stream"
			disposition = "attachment; filename=" + quoteFilename(name)
		}
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Disposition", disposition)
	http.ServeContent(w, r, "", st.ModTime(), f)
}

func isEscape(err error) bool {
	return err != nil && strings.Contains(err.Error(), "escapes from parent")
}

// decodeBounded decodes an image after checking its declared size.
func decodeBounded(r io.ReadSeeker) (image.Image, error) {
	cfg, _, err := image.DecodeConfig(r)
	if err != nil {
		return nil, fmt.Errorf("not a readable image: %w", err)
	}
	if int64(cfg.Width)*int64(cfg.Height) > maxViewPixels {
		return nil, fmt.Errorf("image of %dx%d is too large to convert", cfg.Width, cfg.Height)
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	img, _, err := image.Decode(r)
	if err != nil {
		return nil, fmt.Errorf("not a readable image: %w", err)
	}
	return img, nil
}

// viewConverted serves /view's preview= and channel= variants. WebP cannot be encoded here:
// a webp preview comes back as JPEG (or PNG when the alpha channel is asked for).
func (s *Server) viewConverted(w http.ResponseWriter, f *os.File, name, preview string, hasPreview bool, channel string) {
	img, err := decodeBounded(f)
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	var buf bytes.Buffer
	ct := "image/png"
	switch {
	case hasPreview:
		parts := strings.Split(preview, ";")
		quality := 90
		if q, err := strconv.Atoi(parts[len(parts)-1]); err == nil && q >= 1 && q <= 100 {
			quality = q
		}
		if strings.Contains(channel, "a") {
			err = png.Encode(&buf, img)
		} else {
			// "jpeg" and "webp" (the default) both come back as JPEG: no WebP encoder here.
			ct = "image/jpeg"
			err = jpeg.Encode(&buf, dropAlpha(img), &jpeg.Options{Quality: quality})
		}
	case channel == "rgb":
		err = png.Encode(&buf, dropAlpha(img))
	default: // channel == "a"
		err = png.Encode(&buf, alphaOnly(img))
	}
	if err != nil {
		httpError(w, http.StatusInternalServerError, "encode image: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Disposition", "filename="+quoteFilename(name))
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	_, _ = w.Write(buf.Bytes())
}

// dropAlpha returns an opaque RGB copy of img (what PIL's split/merge RGB gives: the colour
// channels as stored, alpha ignored).
func dropAlpha(img image.Image) image.Image {
	b := img.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
			out.SetRGBA(x-b.Min.X, y-b.Min.Y, color.RGBA{R: c.R, G: c.G, B: c.B, A: 255})
		}
	}
	return out
}

// alphaOnly is an RGBA image whose colour is black and whose alpha is img's alpha.
func alphaOnly(img image.Image) image.Image {
	b := img.Bounds()
	out := image.NewNRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			_, _, _, a := img.At(x, y).RGBA()
			out.SetNRGBA(x-b.Min.X, y-b.Min.Y, color.NRGBA{A: uint8(a >> 8)})
		}
	}
	return out
}

// uploadForm is a parsed multipart upload: the file is staged on disk.
type uploadForm struct {
	filename    string
	staged      string // path of the staged file
	sum         [32]byte
	typ         string
	subfolder   string
	overwrite   bool
	originalRef string
	hasImage    bool
}

func (u *uploadForm) cleanup() {
	if u.staged != "" {
		_ = os.Remove(u.staged)
	}
}

// rawFilename returns the filename parameter as sent (multipart.Part.FileName strips paths,
// which would hide a traversal attempt instead of refusing it).
func rawFilename(p *multipart.Part) (string, bool) {
	_, params, err := mime.ParseMediaType(p.Header.Get("Content-Disposition"))
	if err != nil {
		return "", false
	}
	name, ok := params["filename"]
	return name, ok
}

// readUpload streams the multipart body: the image part goes to a staging file in stageDir
// (hashed on the way), the small fields are read with a size limit.
func readUpload(r *http.Request, stageDir string) (*uploadForm, int, error) {
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, http.StatusBadRequest, fmt.Errorf("expected a multipart/form-data body: %w", err)
	}
	u := &uploadForm{}
	fail := func(status int, err error) (*uploadForm, int, error) {
		u.cleanup()
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("upload is larger than the %d byte limit", mbe.Limit)
		}
		return nil, status, err
	}
	for i := 0; ; i++ {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fail(http.StatusBadRequest, fmt.Errorf("read multipart body: %w", err))
		}
		if i >= maxParts {
			p.Close()
			return fail(http.StatusBadRequest, fmt.Errorf("more than %d form parts", maxParts))
		}
		name := p.FormName()
		if name == uploadField && !u.hasImage {
			fn, isFile := rawFilename(p)
			if !isFile {
				p.Close()
				return fail(http.StatusBadRequest, errors.New("the image field must be a file"))
			}
			u.filename, u.hasImage = fn, true
			f, err := os.CreateTemp(stageDir, stagingPattern)
			if err != nil {
				p.Close()
				return fail(http.StatusInternalServerError, fmt.Errorf("stage upload: %w", err))
			}
			u.staged = f.Name()
			h := sha256.New()
			_, err = io.Copy(io.MultiWriter(f, h), p)
			cerr := f.Close()
			p.Close()
			if err != nil {
				return fail(http.StatusBadRequest, fmt.Errorf("read upload: %w", err))
			}
			if cerr != nil {
				return fail(http.StatusInternalServerError, fmt.Errorf("stage upload: %w", cerr))
			}
			copy(u.sum[:], h.Sum(nil))
			continue
		}
		var field *string
		switch name {
		case "type":
			field = &u.typ
		case "subfolder":
			field = &u.subfolder
		case "overwrite":
			val, err := readField(p)
			if err != nil {
				return fail(http.StatusBadRequest, err)
			}
			u.overwrite = val == "true" || val == "1"
			continue
		case "original_ref":
			field = &u.originalRef
		}
		if field == nil {
			_, err := io.Copy(io.Discard, p)
			p.Close()
			if err != nil {
				return fail(http.StatusBadRequest, fmt.Errorf("read multipart body: %w", err))
			}
			continue
		}
		val, err := readField(p)
		if err != nil {
			return fail(http.StatusBadRequest, err)
		}
		*field = val
	}
	return u, 0, nil
}

func readField(p *multipart.Part) (string, error) {
	defer p.Close()
	b, err := io.ReadAll(io.LimitReader(p, maxFieldBytes+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return "", err
		}
		return "", fmt.Errorf("read field %q: %w", p.FormName(), err)
	}
	if len(b) > maxFieldBytes {
		return "", fmt.Errorf("field %q is longer than %d bytes", p.FormName(), maxFieldBytes)
	}
	return string(b), nil
}

func (s *Server) handleUploadImage(w http.ResponseWriter, r *http.Request) {
	s.handleUpload(w, r, false)
}
func (s *Server) handleUploadMask(w http.ResponseWriter, r *http.Request) { s.handleUpload(w, r, true) }

func (s *Server) handleUpload(w http.ResponseWriter, r *http.Request, mask bool) {
	u, status, err := readUpload(r, s.stageDir)
	if err != nil {
		httpError(w, status, err.Error())
		return
	}
	defer u.cleanup()
	if !u.hasImage {
		httpError(w, http.StatusBadRequest, "no image file in the upload (form field \"image\")")
		return
	}
	if err := checkUploadName(u.filename); err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	typ := u.typ
	if typ == "" {
		typ = "input"
	}
	dir, ok := s.dirByType(typ)
	if !ok {
		httpError(w, http.StatusBadRequest, fmt.Sprintf("unknown type %q (want input, temp or output)", typ))
		return
	}
	sub, err := cleanSubfolder(u.subfolder)
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	var write func(io.Writer) error
	if mask {
		write, status, err = s.maskWriter(u)
		if err != nil {
			httpError(w, status, err.Error())
			return
		}
	} else {
		write = func(dst io.Writer) error {
			f, err := os.Open(u.staged)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(dst, f)
			return err
		}
	}
	name, err := s.placeUpload(dir, sub, u.filename, u.sum, u.overwrite, write)
	if err != nil {
		if errors.Is(err, errPathEscape) || isEscape(err) {
			httpError(w, http.StatusBadRequest, err.Error())
			return
		}
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, ojson.NewObject().Set("name", name).Set("subfolder", u.subfolder).Set("type", typ))
}

// placeUpload picks the final name (ComfyUI's rule: an existing file with identical content is
// reused, otherwise "stem (1).ext", "(2)" ... unless overwrite) and writes the file atomically
// through a temporary name in the same folder.
func (s *Server) placeUpload(dir, sub, filename string, sum [32]byte, overwrite bool, write func(io.Writer) error) (string, error) {
	s.uploadMu.Lock()
	defer s.uploadMu.Unlock()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create folder: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return "", fmt.Errorf("open folder: %w", err)
	}
	defer root.Close()
	if sub != "" {
		if err := root.MkdirAll(sub, 0o755); err != nil {
			return "", fmt.Errorf("create subfolder: %w", err)
		}
	}
	name := filename
	if !overwrite {
		ext := path.Ext(filename)
		stem := strings.TrimSuffix(filename, ext)
		for i := 1; ; i++ {
			st, err := root.Lstat(path.Join(sub, name))
			if errors.Is(err, fs.ErrNotExist) {
				break
			}
			if err != nil {
				return "", fmt.Errorf("check %s: %w", name, err)
			}
			if st.Mode().IsRegular() && sameContent(root, path.Join(sub, name), sum) {
				return name, nil
			}
			if i > maxDupeSuffix {
				return "", fmt.Errorf("too many files named like %q", filename)
			}
			name = fmt.Sprintf("%s (%d)%s", stem, i, ext)
		}
	}
	if len(name) > maxNameBytes {
		return "", fmt.Errorf("file name %q is too long", name)
	}
	tmp := path.Join(sub, fmt.Sprintf(".upload-%x.tmp", sum[:8]))
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return "", fmt.Errorf("write upload: %w", err)
	}
	err = write(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = root.Remove(tmp)
		return "", fmt.Errorf("write upload: %w", err)
	}
	if err := root.Rename(tmp, path.Join(sub, name)); err != nil {
		_ = root.Remove(tmp)
		return "", fmt.Errorf("write upload: %w", err)
	}
	return name, nil
}

func sameContent(root *os.Root, rel string, sum [32]byte) bool {
	f, err := root.Open(rel)
	if err != nil {
		return false
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return false
	}
	var got [32]byte
	copy(got[:], h.Sum(nil))
	return got == sum
}

// maskWriter prepares /upload/mask: the uploaded image's alpha copied onto the image that
// original_ref names, text chunks of the original kept, saved as PNG.
func (s *Server) maskWriter(u *uploadForm) (func(io.Writer) error, int, error) {
	if u.originalRef == "" {
		return nil, http.StatusBadRequest, errors.New("original_ref is required for a mask upload")
	}
	v, err := ojson.Decode([]byte(u.originalRef))
	if err != nil {
		return nil, http.StatusBadRequest, fmt.Errorf("original_ref: %w", err)
	}
	ref, ok := v.(*ojson.Object)
	if !ok {
		return nil, http.StatusBadRequest, errors.New("original_ref must be a JSON object")
	}
	str := func(k string) string {
		x, _ := ref.Get(k)
		s, _ := x.(string)
		return s
	}
	typ := str("type")
	if typ == "" {
		typ = "output"
	}
	_, hasSub := ref.Get("subfolder")
	dir, rel, status, err := s.viewTarget(str("filename"), typ, str("subfolder"), hasSub)
	if err != nil {
		return nil, status, fmt.Errorf("original_ref: %w", err)
	}
	orig, err := openInRoot(dir, rel)
	if err != nil {
		if isEscape(err) {
			return nil, http.StatusForbidden, errors.New("original_ref: path escapes the folder")
		}
		return nil, http.StatusNotFound, fmt.Errorf("original_ref: %s not found", rel)
	}
	defer orig.Close()
	texts, _ := nodes.ReadPNGText(orig)
	if _, err := orig.Seek(0, io.SeekStart); err != nil {
		return nil, http.StatusInternalServerError, err
	}
	base, err := decodeBounded(orig)
	if err != nil {
		return nil, http.StatusBadRequest, fmt.Errorf("original_ref: %w", err)
	}
	mf, err := os.Open(u.staged)
	if err != nil {
		return nil, http.StatusInternalServerError, err
	}
	defer mf.Close()
	maskImg, err := decodeBounded(mf)
	if err != nil {
		return nil, http.StatusBadRequest, fmt.Errorf("mask: %w", err)
	}
	if base.Bounds().Dx() != maskImg.Bounds().Dx() || base.Bounds().Dy() != maskImg.Bounds().Dy() {
		return nil, http.StatusBadRequest, fmt.Errorf("mask is %dx%d but the image is %dx%d", maskImg.Bounds().Dx(), maskImg.Bounds().Dy(), base.Bounds().Dx(), base.Bounds().Dy())
	}
	out := applyMask(base, maskImg)
	var pt []nodes.PNGText
	for k, v := range texts {
		pt = append(pt, nodes.PNGText{Key: k, Value: v})
	}
	sortTexts(pt)
	return func(w io.Writer) error { return nodes.EncodePNG(w, out, png.DefaultCompression, pt) }, 0, nil
}

func sortTexts(pt []nodes.PNGText) {
	// Keep "prompt" before "workflow" (ComfyUI's order), others after, by name.
	rank := func(k string) string {
		switch k {
		case "prompt":
			return "0"
		case "workflow":
			return "1"
		}
		return "2" + k
	}
	for i := 1; i < len(pt); i++ {
		for j := i; j > 0 && rank(pt[j].Key) < rank(pt[j-1].Key); j-- {
			pt[j], pt[j-1] = pt[j-1], pt[j]
		}
	}
}

// applyMask returns base's colours with mask's alpha channel.
func applyMask(base, mask image.Image) *image.NRGBA {
	b := base.Bounds()
	out := image.NewNRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(out, out.Bounds(), base, b.Min, draw.Src)
	mb := mask.Bounds()
	for y := 0; y < b.Dy(); y++ {
		for x := 0; x < b.Dx(); x++ {
			_, _, _, a := mask.At(mb.Min.X+x, mb.Min.Y+y).RGBA()
			c := out.NRGBAAt(x, y) // the original's own alpha is replaced, not multiplied
			c.A = uint8(a >> 8)
			out.SetNRGBA(x, y, c)
		}
	}
	return out
}
