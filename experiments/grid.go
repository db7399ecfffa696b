package experiments

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	_ "image/gif"  // grid inputs
	_ "image/jpeg" // grid inputs

	_ "golang.org/x/image/bmp"  // grid inputs
	_ "golang.org/x/image/tiff" // grid inputs
	_ "golang.org/x/image/webp" // grid inputs
)

// Cell is one image of a grid with its label (lines separated by "\n").
type Cell struct {
	Image image.Image
	Label string
}

// glyph metrics of basicfont.Face7x13.
const (
	glyphW = 7
	glyphH = 13
)

// maxGridPixels bounds a grid so a huge folder cannot exhaust memory (about 1 GiB of RGBA).
const maxGridPixels = 1 << 28

// LabelScale is the integer factor labels are drawn at for cells w pixels wide: 1 up to 512 px,
// then growing with the cell so labels stay readable on 4K images.
func LabelScale(w int) int { return max(1, int(math.Round(float64(w)/512))) }

// Grid lays cells out in rows of cols, like the original tool's create_comparison_grid: every
// cell is the largest image's width × (its height + a label band), white, with the image
// centred at the top and its label centred under it, drawn with the 7×13 basic font scaled for
// the cell size. cols ≤ 0 picks ⌈√n⌉.
func Grid(cells []Cell, cols int) (*image.RGBA, error) {
	if len(cells) == 0 {
		return nil, errors.New("grid: no images")
	}
	if cols <= 0 {
		cols = int(math.Ceil(math.Sqrt(float64(len(cells)))))
	}
	cols = min(cols, len(cells))
	rows := (len(cells) + cols - 1) / cols
	cellW, imgH, maxLines := 0, 0, 1
	for i, c := range cells {
		if c.Image == nil {
			return nil, fmt.Errorf("grid: cell %d has no image", i)
		}
		b := c.Image.Bounds()
		cellW = max(cellW, b.Dx())
		imgH = max(imgH, b.Dy())
		maxLines = max(maxLines, len(strings.Split(c.Label, "\n")))
	}
	s := LabelScale(cellW)
	band := s * (10 + glyphH*maxLines + 8)
	cellH := imgH + band
	if int64(cellW)*int64(cols)*int64(cellH)*int64(rows) > maxGridPixels {
		return nil, fmt.Errorf("grid: %d×%d cells of %d×%d px would be too large; use fewer or smaller images", cols, rows, cellW, cellH)
	}
	out := image.NewRGBA(image.Rect(0, 0, cellW*cols, cellH*rows))
	draw.Draw(out, out.Bounds(), image.White, image.Point{}, draw.Src)
	for i, c := range cells {
		x0, y0 := (i%cols)*cellW, (i/cols)*cellH
		b := c.Image.Bounds()
		at := image.Pt(x0+(cellW-b.Dx())/2, y0)
		draw.Draw(out, image.Rectangle{Min: at, Max: at.Add(b.Size())}, c.Image, b.Min, draw.Over)
		for li, line := range strings.Split(c.Label, "\n") {
			line = asciiLabel(line)
			w := len(line) * glyphW * s
			drawText(out, line, x0+(cellW-w)/2, y0+imgH+s*(10+li*glyphH), s)
		}
	}
	return out, nil
}

// asciiLabel replaces what the basic font cannot draw.
func asciiLabel(s string) string {
	s = strings.ReplaceAll(s, "×", "x")
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
}

// drawText draws one line of black text with its top-left corner at (x, y), scaled by s.
func drawText(dst *image.RGBA, text string, x, y, s int) {
	if text == "" {
		return
	}
	small := image.NewRGBA(image.Rect(0, 0, len(text)*glyphW, glyphH))
	d := font.Drawer{Dst: small, Src: image.Black, Face: basicfont.Face7x13,
		Dot: fixed.P(0, basicfont.Face7x13.Ascent)}
	d.DrawString(text)
	b := dst.Bounds()
	for sy := 0; sy < glyphH; sy++ {
		for sx := 0; sx < len(text)*glyphW; sx++ {
			a := small.RGBAAt(sx, sy).A
			if a == 0 {
				continue
			}
			v := 255 - a // black over white, with the glyph's coverage
			for dy := 0; dy < s; dy++ {
				for dx := 0; dx < s; dx++ {
					px, py := x+sx*s+dx, y+sy*s+dy
					if image.Pt(px, py).In(b) {
						dst.SetRGBA(px, py, color.RGBA{v, v, v, 255})
					}
				}
			}
		}
	}
}

// imageExts are the file types LoadCells reads.
var imageExts = []string{".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff"}

// LoadCells reads every image file at the top level of dir (sorted by name, skipping the files
// named in skip) as cells labelled with their file names.
func LoadCells(dir string, skip ...string) ([]Cell, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("grid: %w", err)
	}
	var cells []Cell
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || !slices.Contains(imageExts, strings.ToLower(filepath.Ext(name))) {
			continue
		}
		full := filepath.Join(dir, name)
		if slices.ContainsFunc(skip, func(s string) bool { return sameFile(s, full) }) {
			continue
		}
		img, err := readImage(full)
		if err != nil {
			return nil, err
		}
		cells = append(cells, Cell{Image: img, Label: name})
	}
	if len(cells) == 0 {
		return nil, fmt.Errorf("grid: no images (%s) in %s", strings.Join(imageExts, ", "), dir)
	}
	return cells, nil
}

func sameFile(a, b string) bool {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	if err1 == nil && err2 == nil {
		return os.SameFile(fa, fb)
	}
	aa, _ := filepath.Abs(a)
	ab, _ := filepath.Abs(b)
	return aa == ab
}

// readImage decodes an image file, bounding its size before decoding.
func readImage(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("grid: %w", err)
	}
	defer f.Close()
	cfg, _, err := image.DecodeConfig(f)
	if err != nil {
		return nil, fmt.Errorf("grid: %s: not a readable image: %w", path, err)
	}
	if int64(cfg.Width)*int64(cfg.Height) > maxGridPixels {
		return nil, fmt.Errorf("grid: %s is %d×%d, too large", path, cfg.Width, cfg.Height)
	}
	if _, err := f.Seek(0, 0); err != nil {
		return nil, fmt.Errorf("grid: %w", err)
	}
	img, _, err := image.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("grid: %s: not a readable image: %w", path, err)
	}
	return img, nil
}

// WritePNG writes img to path (through a temporary file, so a failed write leaves no partial
// image).
func WritePNG(path string, img image.Image) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".grid-*.png")
	if err != nil {
		return err
	}
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(tmp, img); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
