package server

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dypegraph/dypegraph/nodes"
)

// multipartBody builds an upload; filename is written verbatim into Content-Disposition.
func multipartBody(t testing.TB, filename string, content []byte, fields ...string) (string, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="image"; filename="%s"`, strings.ReplaceAll(filename, `"`, `\"`)))
	h.Set("Content-Type", "image/png")
	pw, err := mw.CreatePart(h)
	if err != nil {
		t.Fatal(err)
	}
	pw.Write(content)
	for i := 0; i+1 < len(fields); i += 2 {
		if err := mw.WriteField(fields[i], fields[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	mw.Close()
	return mw.FormDataContentType(), &buf
}

func (f *fixture) upload(path, filename string, content []byte, fields ...string) *response {
	f.t.Helper()
	ct, body := multipartBody(f.t, filename, content, fields...)
	return f.do(http.MethodPost, path, body, "Content-Type", ct)
}

func pngBytes(t *testing.T, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func solid(w, h int, c color.Color) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, c)
		}
	}
	return img
}

// listAll returns every file path under dir.
func listAll(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && info.Mode()&os.ModeSymlink == 0 {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

func TestViewPathTraversal(t *testing.T) {
	f := newFixture(t)
	outside := t.TempDir()
	writeFile(t, filepath.Join(outside, "secret.txt"), []byte("secret"))
	writeFile(t, filepath.Join(f.cfg.OutputDir, "ok.png"), []byte("png"))
	writeFile(t, filepath.Join(f.cfg.OutputDir, "sub", "in.png"), []byte("png"))
	if err := os.Symlink(outside, filepath.Join(f.cfg.OutputDir, "linkdir")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "secret.txt"), filepath.Join(f.cfg.OutputDir, "link.txt")); err != nil {
		t.Fatal(err)
	}
	if r := f.get("/view?filename=ok.png"); r.status != http.StatusOK || string(r.body) != "png" {
		t.Fatalf("plain view = %d", r.status)
	}
	if r := f.get("/view?filename=in.png&subfolder=sub"); r.status != http.StatusOK {
		t.Fatalf("subfolder view = %d", r.status)
	}
	cases := []struct {
		query string
		want  int
	}{
		{"filename=../secret.txt", 400},
		{"filename=" + url.QueryEscape("..%2Fsecret.txt"), 400},
		{"filename=" + url.QueryEscape("/etc/passwd"), 400},
		{"filename=", 400},
		{"filename=ok.png%00.txt", 400},
		{"filename=" + url.QueryEscape(`..\secret.txt`), 400},
		{"filename=" + url.QueryEscape(`sub\in.png`), 400},
		{"filename=" + url.QueryEscape("C:secret.txt"), 400},
		{"filename=ok.png&type=models", 400},
		{"filename=secret.txt&subfolder=..", 403},
		{"filename=secret.txt&subfolder=" + url.QueryEscape("../.."), 403},
		{"filename=secret.txt&subfolder=" + url.QueryEscape(outside), 403},
		{"filename=secret.txt&subfolder=" + url.QueryEscape("sub/../../x"), 403},
		{"filename=secret.txt&subfolder=" + url.QueryEscape(`..\..`), 403},
		{"filename=secret.txt&subfolder=linkdir", 403},
		{"filename=link.txt", 403},
		{"filename=missing.png", 404},
		{"filename=sub", 404},
		{"type=output", 404},
	}
	for _, c := range cases {
		r := f.get("/view?" + c.query)
		if r.status != c.want {
			t.Errorf("/view?%s = %d (%s), want %d", c.query, r.status, strings.TrimSpace(string(r.body)), c.want)
		}
		if bytes.Contains(r.body, []byte("secret")) && !bytes.Contains(r.body, []byte("secret.txt")) {
			t.Errorf("/view?%s leaked the outside file", c.query)
		}
	}
}

func TestUploadPathTraversalAndNames(t *testing.T) {
	f := newFixture(t)
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(f.cfg.InputDir, "linkdir")); err != nil {
		t.Fatal(err)
	}
	content := []byte("\x89PNG fake")
	bad := []struct {
		name   string
		fields []string
	}{
		{"../evil.png", nil},
		{"../../evil.png", nil},
		{"/tmp/evil.png", nil},
		{`..\evil.png`, nil},
		{`sub\evil.png`, nil},
		{"a/b.png", nil},
		{"..", nil},
		{"", nil},
		{"nul\x00.png", nil},
		{"ctl\x01.png", nil},
		{"C:evil.png", nil},
		{strings.Repeat("a", 300) + ".png", nil},
		{"ok.png", []string{"subfolder", "../.."}},
		{"ok.png", []string{"subfolder", "/etc"}},
		{"ok.png", []string{"subfolder", `..\..`}},
		{"ok.png", []string{"subfolder", "a/../../.."}},
		{"ok.png", []string{"subfolder", "linkdir"}},
		{"ok.png", []string{"type", "models"}},
	}
	for _, c := range bad {
		r := f.upload("/upload/image", c.name, content, c.fields...)
		if r.status != http.StatusBadRequest {
			t.Errorf("upload %q %v = %d %s, want 400", c.name, c.fields, r.status, r.body)
		}
	}
	if files := listAll(t, outside); len(files) != 0 {
		t.Fatalf("files escaped into %s: %v", outside, files)
	}
	if files := listAll(t, filepath.Dir(f.cfg.InputDir)); len(files) != 0 {
		for _, fl := range files {
			if !strings.HasPrefix(fl, "data"+string(filepath.Separator)) {
				t.Fatalf("a refused upload left %s", fl)
			}
		}
	}
	// No file part, not multipart at all.
	if r := f.post("/upload/image", "plain"); r.status != http.StatusBadRequest {
		t.Errorf("non-multipart upload = %d", r.status)
	}
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField("type", "input")
	mw.Close()
	if r := f.do(http.MethodPost, "/upload/image", &buf, "Content-Type", mw.FormDataContentType()); r.status != http.StatusBadRequest {
		t.Errorf("upload without a file = %d", r.status)
	}
}

func TestUploadDedupeAndOverwrite(t *testing.T) {
	f := newFixture(t)
	a := []byte("content A")
	b := []byte("content B")
	c := []byte("content C")
	name := func(r *response) string {
		t.Helper()
		if r.status != http.StatusOK {
			t.Fatalf("upload = %d %s", r.status, r.body)
		}
		return str(r.json(t), "name")
	}
	if n := name(f.upload("/upload/image", "pic.png", a)); n != "pic.png" {
		t.Fatalf("first upload name %q", n)
	}
	if n := name(f.upload("/api/upload/image", "pic.png", a)); n != "pic.png" {
		t.Fatalf("identical re-upload name %q, want reuse", n)
	}
	if n := name(f.upload("/upload/image", "pic.png", b)); n != "pic (1).png" {
		t.Fatalf("different content name %q", n)
	}
	if n := name(f.upload("/upload/image", "pic.png", c)); n != "pic (2).png" {
		t.Fatalf("third name %q", n)
	}
	if n := name(f.upload("/upload/image", "pic.png", b)); n != "pic (1).png" {
		t.Fatalf("re-upload of B = %q, want the existing pic (1).png", n)
	}
	if n := name(f.upload("/upload/image", "pic.png", c, "overwrite", "true")); n != "pic.png" {
		t.Fatalf("overwrite name %q", n)
	}
	got, _ := os.ReadFile(filepath.Join(f.cfg.InputDir, "pic.png"))
	if string(got) != string(c) {
		t.Fatalf("overwrite did not replace the file: %q", got)
	}
	r := f.upload("/upload/image", "s.png", a, "subfolder", "x/y", "type", "temp")
	if r.status != http.StatusOK || compactJSON(t, r.body) != `{"name":"s.png","subfolder":"x/y","type":"temp"}` {
		t.Fatalf("subfolder upload = %d %s", r.status, r.body)
	}
	if got, _ := os.ReadFile(filepath.Join(f.cfg.TempDir, "x", "y", "s.png")); string(got) != string(a) {
		t.Fatalf("temp upload content %q", got)
	}
	// Uploaded images appear in LoadImage's combo at request time.
	info := f.get("/object_info/LoadImage")
	if !bytes.Contains(info.body, []byte(`"pic (1).png"`)) {
		t.Fatalf("object_info does not list the uploaded file: %s", info.body)
	}
	if files := listAll(t, f.srv.stageDir); len(files) != 0 {
		t.Fatalf("staging files left behind: %v", files)
	}
}

func TestOversizedUploadAndBody(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxUploadSize = 4 << 10 })
	big := bytes.Repeat([]byte("x"), 64<<10)
	r := f.upload("/upload/image", "big.png", big)
	if r.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized upload = %d %s", r.status, r.body)
	}
	if files := listAll(t, f.cfg.InputDir); len(files) != 0 {
		t.Fatalf("oversized upload left %v", files)
	}
	if files := listAll(t, f.srv.stageDir); len(files) != 0 {
		t.Fatalf("oversized upload left staging files %v", files)
	}
	body := `{"prompt": {"1": {"class_type": "EmptyImage", "inputs": {"pad": "` + strings.Repeat("p", 8<<10) + `"}}}}`
	r = f.post("/prompt", body)
	if r.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized prompt = %d %s", r.status, r.body)
	}
	if feat := f.get("/features").json(t); mustJSON(t, feat) == "" || !strings.Contains(mustJSON(t, feat), `"max_upload_size":4096`) {
		t.Fatalf("features = %s", mustJSON(t, feat))
	}
	// A small upload still works.
	if r := f.upload("/upload/image", "small.png", []byte("ok")); r.status != http.StatusOK {
		t.Fatalf("small upload = %d", r.status)
	}
}

func TestUploadMask(t *testing.T) {
	f := newFixture(t)
	orig := image.NewNRGBA(image.Rect(0, 0, 4, 3))
	for i := range orig.Pix {
		orig.Pix[i] = 200
	}
	var ob bytes.Buffer
	if err := nodes.EncodePNG(&ob, orig, png.DefaultCompression, []nodes.PNGText{{Key: "prompt", Value: `{"1": {}}`}}); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(f.cfg.InputDir, "clip", "orig.png"), ob.Bytes())
	mask := solid(4, 3, color.NRGBA{A: 77})
	ref := `{"filename": "orig.png", "subfolder": "clip", "type": "input"}`
	r := f.upload("/upload/mask", "masked.png", pngBytes(t, mask), "original_ref", ref, "subfolder", "clip")
	if r.status != http.StatusOK || str(r.json(t), "name") != "masked.png" {
		t.Fatalf("mask upload = %d %s", r.status, r.body)
	}
	data, err := os.ReadFile(filepath.Join(f.cfg.InputDir, "clip", "masked.png"))
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	c := color.NRGBAModel.Convert(img.At(1, 1)).(color.NRGBA)
	if c.A != 77 || c.R != 200 {
		t.Fatalf("masked pixel = %+v, want colour 200 with alpha 77", c)
	}
	texts, _ := nodes.ReadPNGText(bytes.NewReader(data))
	if texts["prompt"] != `{"1": {}}` {
		t.Fatalf("text chunks not preserved: %v", texts)
	}
	// Bad references.
	for _, c := range []struct {
		ref  string
		want int
	}{
		{``, 400},
		{`not json`, 400},
		{`{"filename": "../x.png"}`, 400},
		{`{"filename": "orig.png", "subfolder": "../..", "type": "input"}`, 403},
		{`{"filename": "missing.png", "type": "input"}`, 404},
	} {
		fields := []string{}
		if c.ref != "" {
			fields = append(fields, "original_ref", c.ref)
		}
		if r := f.upload("/upload/mask", "m.png", pngBytes(t, mask), fields...); r.status != c.want {
			t.Errorf("mask with ref %q = %d %s, want %d", c.ref, r.status, r.body, c.want)
		}
	}
	if r := f.upload("/upload/mask", "m.png", pngBytes(t, solid(2, 2, color.NRGBA{A: 1})), "original_ref", ref); r.status != http.StatusBadRequest {
		t.Errorf("mask of another size = %d", r.status)
	}
}

func TestViewContentTypesAndVariants(t *testing.T) {
	f := newFixture(t)
	writeFile(t, filepath.Join(f.cfg.OutputDir, "x.html"), []byte("<script>alert(1)</script>"))
	writeFile(t, filepath.Join(f.cfg.OutputDir, "x.svg"), []byte("<svg/>"))
	writeFile(t, filepath.Join(f.cfg.OutputDir, "x.js"), []byte("alert(1)"))
	writeFile(t, filepath.Join(f.cfg.OutputDir, `q"uote.html`), []byte("<b>"))
	for _, name := range []string{"x.html", "x.js", "x.svg"} {
		r := f.get("/view?filename=" + name)
		if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/octet-stream" ||
			!strings.HasPrefix(r.header.Get("Content-Disposition"), "attachment;") || r.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s served as %d %v", name, r.status, r.header)
		}
	}
	r := f.get("/view?filename=x.svg", "Sec-Fetch-Dest", "image")
	if r.header.Get("Content-Type") != "image/svg+xml" || strings.HasPrefix(r.header.Get("Content-Disposition"), "attachment") {
		t.Errorf("svg as an image = %v", r.header)
	}
	r = f.get("/view?filename=" + url.QueryEscape(`q"uote.html`))
	if d := r.header.Get("Content-Disposition"); d != `attachment; filename="q\"uote.html"` {
		t.Errorf("quoted disposition = %q", d)
	}

	src := solid(6, 4, color.NRGBA{R: 10, G: 20, B: 30, A: 128})
	writeFile(t, filepath.Join(f.cfg.OutputDir, "a.png"), pngBytes(t, src))
	r = f.get("/view?filename=a.png&channel=rgb")
	img, err := png.Decode(bytes.NewReader(r.body))
	if err != nil {
		t.Fatalf("channel=rgb: %v", err)
	}
	if c := color.NRGBAModel.Convert(img.At(0, 0)).(color.NRGBA); c != (color.NRGBA{10, 20, 30, 255}) {
		t.Errorf("channel=rgb pixel %+v", c)
	}
	r = f.get("/view?filename=a.png&channel=a")
	img, err = png.Decode(bytes.NewReader(r.body))
	if err != nil {
		t.Fatalf("channel=a: %v", err)
	}
	if c := color.NRGBAModel.Convert(img.At(0, 0)).(color.NRGBA); c.A != 128 || c.R != 0 {
		t.Errorf("channel=a pixel %+v", c)
	}
	r = f.get("/view?filename=a.png&preview=jpeg;50")
	if r.header.Get("Content-Type") != "image/jpeg" || !bytes.HasPrefix(r.body, []byte{0xFF, 0xD8}) {
		t.Errorf("preview=jpeg: %v % x", r.header, r.body[:min(4, len(r.body))])
	}
	writeFile(t, filepath.Join(f.cfg.OutputDir, "notimg.png"), []byte("nope"))
	if r := f.get("/view?filename=notimg.png&channel=rgb"); r.status != http.StatusBadRequest {
		t.Errorf("converting a non-image = %d", r.status)
	}
	// Range requests work on the plain branch.
	r = f.get("/view?filename=x.js", "Range", "bytes=0-4")
	if r.status != http.StatusPartialContent || string(r.body) != "alert" {
		t.Errorf("range = %d %q", r.status, r.body)
	}
	_ = io.Discard
}
