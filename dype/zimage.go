package dype

import (
	"errors"
	"fmt"
	"math"
)

// Z-Image geometry constants.
const (
	// VAEDownscale is pixels per latent cell.
	VAEDownscale = 8
	// PatchSize is latent cells per token side.
	PatchSize = 2
	// PixelsPerToken is VAEDownscale·PatchSize.
	PixelsPerToken = VAEDownscale * PatchSize
	// MaxImageSide bounds width and height (pixels) accepted by New.
	MaxImageSide = 1 << 16
)

// RopeSpec is the model's RoPE: θ, the dims of the three axes (caption/time, rows, columns),
// the axes lengths of its integer table (CD takes the comfy base grid from them) and the token
// padding multiple of its sequences.
type RopeSpec struct {
	Theta    float64
	AxesDims [3]int
	// AxesLens: comfy mode uses max(AxesLens[1], AxesLens[2]) as the YaRN base length and
	// AxesLens[1]·AxesLens[2] as the schedule-shift base; zeros mean "no axes_lens" (then
	// (R/8)/2 as CD does).
	AxesLens [3]int
	// PadMultiple pads the image token sequence to a multiple (32 for Z-Image; 0 or 1 = none).
	PadMultiple int
}

// ZImageRope is the real Z-Image model's RoPE: θ 256, axes (32, 48, 48), lens (1536, 512, 512),
// padding to 32 tokens.
func ZImageRope() RopeSpec {
	return RopeSpec{Theta: 256, AxesDims: [3]int{32, 48, 48}, AxesLens: [3]int{1536, 512, 512}, PadMultiple: 32}
}

// Lanes is the number of complex lanes per head (sum of dims / 2).
func (s RopeSpec) Lanes() int { return (s.AxesDims[0] + s.AxesDims[1] + s.AxesDims[2]) / 2 }

func (s RopeSpec) validate() error {
	if !(s.Theta > 0) || s.Theta == 1 || math.IsInf(s.Theta, 0) {
		return fmt.Errorf("dype rope: theta: must be positive, finite and ≠ 1, got %v", s.Theta)
	}
	for a, d := range s.AxesDims {
		if d <= 0 || d%2 != 0 {
			return fmt.Errorf("dype rope: axes_dims[%d]: must be positive and even, got %d", a, d)
		}
	}
	for a, l := range s.AxesLens {
		if l < 0 {
			return fmt.Errorf("dype rope: axes_lens[%d]: must be ≥ 0, got %d", a, l)
		}
	}
	if s.PadMultiple < 0 || s.PadMultiple > 1<<16 {
		return fmt.Errorf("dype rope: pad_multiple: must lie in [0, 65536], got %d", s.PadMultiple)
	}
	return nil
}

// Geometry is the image being generated.
type Geometry struct {
	// Width and Height of the sampled image in pixels (multiples of 16: VAE ÷8, patch 2).
	Width, Height int
	// RequestedWidth and RequestedHeight are what the ComfyUI DyPE node was set to (comfy mode:
	// they set δ, the scale hint and μ; the node's example workflow uses a size other than the
	// latent's). Zero means Width/Height. Ignored by llm_dit.
	RequestedWidth, RequestedHeight int
}

func (g Geometry) requested() (w, h int) {
	w, h = g.RequestedWidth, g.RequestedHeight
	if w == 0 {
		w = g.Width
	}
	if h == 0 {
		h = g.Height
	}
	return w, h
}

func (g Geometry) validate() error {
	check := func(name string, v int, mult int) error {
		if v <= 0 || v > MaxImageSide {
			return fmt.Errorf("dype geometry: %s: must lie in [1, %d] pixels, got %d", name, MaxImageSide, v)
		}
		if v%mult != 0 {
			return fmt.Errorf("dype geometry: %s: must be a multiple of %d pixels, got %d", name, mult, v)
		}
		return nil
	}
	if err := check("width", g.Width, PixelsPerToken); err != nil {
		return err
	}
	if err := check("height", g.Height, PixelsPerToken); err != nil {
		return err
	}
	if g.RequestedWidth != 0 {
		if err := check("requested_width", g.RequestedWidth, 1); err != nil {
			return err
		}
	}
	if g.RequestedHeight != 0 {
		if err := check("requested_height", g.RequestedHeight, 1); err != nil {
			return err
		}
	}
	return nil
}

// TokenID is a token's position on the three RoPE axes.
type TokenID [3]float64

// Rope is DyPE for one Z-Image generation: config, model RoPE, geometry, and the per-step
// state σ (starts at 1.0). Build it with New; get each step's frequencies with Step or StepAt.
type Rope struct {
	cfg   Config
	spec  RopeSpec
	geom  Geometry
	sigma float64

	th, tw    int // token grid (rows, columns)
	imageRows int // image tokens incl. padding

	// comfy mode, fixed per geometry.
	hint    float64   // scale hint s
	delta   float64   // δ = (latent/tokens)·iso (same for both axes)
	rawRow  []float32 // stretched y of rows 0..last padded row
	rawCol  []float32 // stretched x of columns 0..tw−1
	gridRow gridAxis
	gridCol gridAxis
	baseLen int // YaRN base length (axes_lens)
}

// New validates the inputs and prepares the geometry.
func New(cfg Config, spec RopeSpec, geom Geometry) (*Rope, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := spec.validate(); err != nil {
		return nil, err
	}
	if err := geom.validate(); err != nil {
		return nil, err
	}
	r := &Rope{cfg: cfg, spec: spec, geom: geom, sigma: 1.0}
	r.th = geom.Height / PixelsPerToken
	r.tw = geom.Width / PixelsPerToken
	n := r.th * r.tw
	if m := spec.PadMultiple; m > 1 {
		n = ceilDiv(n, m) * m
	}
	r.imageRows = n
	if cfg.Mode == ModeComfy {
		r.prepareComfy()
	}
	return r, nil
}

// prepareComfy builds CD's stretched grid (patched patchify_and_embed) and the blend parameters
// of _resize_rope_grid, which depend only on the geometry.
func (r *Rope) prepareComfy() {
	reqW, reqH := r.geom.requested()
	hint, iso := ComfyScaleHint(r.cfg.BaseResolution, reqW, reqH)
	r.hint = hint
	latH, latW := r.geom.Height/VAEDownscale, r.geom.Width/VAEDownscale
	strideY := (float64(latH) / float64(max(1, r.th))) * iso
	strideX := (float64(latW) / float64(max(1, r.tw))) * iso
	r.delta = strideY
	lastRow := (r.imageRows - 1) / r.tw
	r.rawRow = make([]float32, lastRow+1)
	for i := range r.rawRow {
		r.rawRow[i] = float32(i) * float32(strideY)
	}
	r.rawCol = make([]float32, r.tw)
	for i := range r.rawCol {
		r.rawCol[i] = float32(i) * float32(strideX)
	}
	// Image rows of the embedder call are the tokens with a non-zero spatial coordinate: every
	// image token except (0, 0). Row 0 takes part on axis 1 iff it has a second column; column
	// 0 takes part on axis 2 iff there is a second row.
	numel := r.imageRows - 1
	rows := r.rawRow
	if r.tw < 2 {
		rows = rows[1:]
	}
	cols := r.rawCol
	if r.imageRows <= r.tw {
		cols = cols[1:]
	}
	r.gridRow = newGridAxis(uniqueSorted(rows), numel)
	r.gridCol = newGridAxis(uniqueSorted(cols), numel)
	lens := max(r.spec.AxesLens[1], r.spec.AxesLens[2])
	if r.spec.AxesLens[1] == 0 || r.spec.AxesLens[2] == 0 {
		lens = r.cfg.BasePatchGrid()
	}
	r.baseLen = lens
}

// Config returns the config.
func (r *Rope) Config() Config { return r.cfg }

// Spec returns the model RoPE.
func (r *Rope) Spec() RopeSpec { return r.spec }

// Geometry returns the geometry.
func (r *Rope) Geometry() Geometry { return r.geom }

// TokenGrid returns the image token grid (rows, columns).
func (r *Rope) TokenGrid() (rows, cols int) { return r.th, r.tw }

// ImageRows is the number of image tokens including padding.
func (r *Rope) ImageRows() int { return r.imageRows }

// SetSigma sets the per-step σ ∈ [0, 1] (the flow-matching noise level after the scheduler
// shift; 1 = pure noise). On a nil Rope (a model without DyPE) it does nothing, like
// set_zimage_timestep on an unpatched model.
func (r *Rope) SetSigma(sigma float64) error {
	if r == nil {
		return nil
	}
	if err := checkSigma(sigma); err != nil {
		return err
	}
	r.sigma = sigma
	return nil
}

// Sigma returns the current σ (1.0 until SetSigma).
func (r *Rope) Sigma() float64 { return r.sigma }

func checkSigma(sigma float64) error {
	if !(sigma >= 0 && sigma <= 1) {
		return fmt.Errorf("dype: sigma: must lie in [0, 1], got %v", sigma)
	}
	return nil
}

// NormalizeSigma is CD's σ/σ_max clamped to [0, 1] (σ_max = 1 for flow models).
func NormalizeSigma(sigma, sigmaMax float64) float64 {
	if !(sigmaMax > 0) {
		return sigma
	}
	v := sigma / sigmaMax
	if !(v >= 0) {
		return 0
	}
	return math.Min(v, 1)
}

// Scale is the global scale: llm_dit s_g = max(1, H/g, W/g) of the image grid; comfy the scale
// hint max(1, longest requested side / R).
func (r *Rope) Scale() float64 {
	if r.cfg.Mode == ModeComfy {
		return r.hint
	}
	e := r.posEmbed(1)
	return e.Scale(r.llmAxes())
}

// ShiftMu is the noise-schedule μ: llm_dit compute_dype_shift(n, n_base, n); comfy the μ
// ComfyUI-DyPE sets (ok false when it sets none: enable_dype off).
func (r *Rope) ShiftMu() (mu float64, ok bool) {
	if r.cfg.Mode == ModeComfy {
		reqW, reqH := r.geom.requested()
		base := r.spec.AxesLens[1] * r.spec.AxesLens[2]
		if base == 0 {
			g := r.cfg.BasePatchGrid()
			base = g * g
		}
		return ComfyShift(r.cfg, reqW, reqH, base)
	}
	return LLMDiTShift(r.cfg, r.geom.Width, r.geom.Height), true
}

// Step returns the frequencies at the current σ.
func (r *Rope) Step() (*Step, error) { return r.StepAt(r.sigma) }

// Step is the RoPE of one sampling step: per axis the frequencies, amplitudes and positions for
// the image call and the caption call. It is immutable.
type Step struct {
	Mode Mode
	// Method is the method actually run (llm_dit: ntk when disabled; base = static ntk).
	Method Method
	// Dynamic reports whether the σ-dependent schedule is on (CD's dype flag; LD's enabled).
	Dynamic bool
	// Sigma is σ as the embedder saw it (comfy rounds it to float32 as ComfyUI does).
	Sigma float64
	// KT is dype_scale·σ^dype_exponent.
	KT float64
	// Scale is the global scale (see Rope.Scale).
	Scale float64
	// Blend is the PI→integer blend factor 1 − t_norm^λt of comfy positions (0 = none; the
	// positions use its float32 rounding, as upstream).
	Blend float64
	// Image holds the axes of the image tokens; Image[1].Positions / Image[2].Positions are the
	// row / column positions.
	Image [3]Axis
	// Caption holds the axes of the caption tokens: vanilla in llm_dit (diffusers embeds the
	// caption ids in a separate call), the image axes in comfy (one call for both).
	Caption [3]Axis

	mode     Mode
	th, tw   int
	rows     int
	rowPos   []float64 // positions of rows 0..last padded row
	colPos   []float64
	capPos   [2]float64 // spatial coordinates of caption tokens
	padImage bool       // llm_dit: padding tokens are (0,0,0)
}

// StepAt returns the frequencies at σ without changing the stored σ.
func (r *Rope) StepAt(sigma float64) (*Step, error) {
	if r == nil {
		return nil, errors.New("dype: StepAt on a nil Rope")
	}
	if err := checkSigma(sigma); err != nil {
		return nil, err
	}
	if r.cfg.Mode == ModeComfy {
		return r.comfyStep(sigma)
	}
	return r.llmStep(sigma)
}

func (r *Rope) posEmbed(sigma float64) PosEmbed {
	e := NewPosEmbed(r.spec.Theta, r.spec.AxesDims, r.cfg)
	e.Sigma = sigma
	return e
}

// llmAxes are the axis values of LD's image call: the integer rows and columns (padding ids
// (0,0,0) add nothing new).
func (r *Rope) llmAxes() [3][]float32 {
	rows := make([]float32, r.th)
	for i := range rows {
		rows[i] = float32(i)
	}
	cols := make([]float32, r.tw)
	for i := range cols {
		cols[i] = float32(i)
	}
	return [3][]float32{{0}, rows, cols}
}

func (r *Rope) llmStep(sigma float64) (*Step, error) {
	e := r.posEmbed(sigma)
	axes := r.llmAxes()
	img, err := e.Components(axes)
	if err != nil {
		return nil, err
	}
	method, dynamic := e.methodUsed()
	s := &Step{
		Mode: ModeLLMDiT, Method: method, Dynamic: dynamic, Sigma: sigma, KT: r.cfg.KT(sigma),
		Scale: e.Scale(axes), Image: img, mode: ModeLLMDiT, th: r.th, tw: r.tw, rows: r.imageRows,
		padImage: true,
	}
	for a := range 3 {
		s.Caption[a] = vanillaAxis(a, r.spec.AxesDims[a], r.spec.Theta)
	}
	s.rowPos = intPositions(r.th)
	s.colPos = intPositions(r.tw)
	s.Image[1].Positions = s.rowPos
	s.Image[2].Positions = s.colPos
	return s, nil
}

func intPositions(n int) []float64 {
	p := make([]float64, n)
	for i := range p {
		p[i] = float64(i)
	}
	return p
}

// comfyDypeFlag is CD's embedder flag: always on for vision_yarn, off for base, else enabled.
func comfyDypeFlag(cfg Config) bool {
	switch cfg.Method {
	case MethodVisionYarn:
		return true
	case MethodBase:
		return false
	}
	return cfg.Enabled
}

func (r *Rope) comfyStep(sigmaIn float64) (*Step, error) {
	cfg := r.cfg
	sigma := float64(float32(sigmaIn)) // ComfyUI hands σ over in a float32 tensor
	flag := comfyDypeFlag(cfg)
	s := &Step{
		Mode: ModeComfy, Method: cfg.Method, Dynamic: flag, Sigma: sigma, KT: cfg.KT(sigma),
		Scale: r.hint, mode: ModeComfy, th: r.th, tw: r.tw, rows: r.imageRows,
	}
	dims := r.spec.AxesDims
	m := ComfyMScale(r.hint, sigma, flag, cfg)
	s.Image[0] = vanillaAxis(0, dims[0], r.spec.Theta)
	L := float64(r.baseLen)
	for a := 1; a <= 2; a++ {
		if !(r.hint > 1.0) {
			s.Image[a] = vanillaAxis(a, dims[a], r.spec.Theta)
			continue
		}
		var omega []float64
		var ms float64
		var err error
		switch cfg.Method {
		case MethodVisionYarn:
			mo := m
			omega, ms, err = VisionYarnFreqs(VisionYarnParams{
				Dim: dims[a], Theta: r.spec.Theta, LinearScale: r.hint, NTKScale: r.hint,
				OriMaxPELen: L, DyPE: flag, Sigma: sigma, DypeScale: cfg.DypeScale,
				DypeExponent: cfg.DypeExponent, MScaleOverride: &mo,
			})
		case MethodYarn:
			fake := math.Trunc(L * r.hint) // int(base_axis_len * scale_global)
			omega, ms, err = YarnFreqs(YarnParams{
				Dim: dims[a], Theta: r.spec.Theta, MaxPELen: fake, OriMaxPELen: L, DyPE: flag,
				Sigma: sigma, DypeScale: cfg.DypeScale, DypeExponent: cfg.DypeExponent,
			})
			if flag {
				ms *= m
			}
		default: // ntk, base
			d := float64(dims[a])
			f := math.Pow(r.hint, d/(d-2))
			if flag {
				f = math.Pow(f, cfg.KT(sigma))
			}
			f = math.Max(1.0, f)
			omega, ms = NTKFreqs(dims[a], r.spec.Theta, f), 1.0
		}
		if err != nil {
			return nil, fmt.Errorf("dype comfy: axis %d: %w", a, err)
		}
		s.Image[a] = Axis{Axis: a, Dims: dims[a], Omega: omega, MScale: ms}
	}
	// Positions: stretched grid, blended towards integer steps as σ falls.
	var blend float32
	if flag {
		b := 1.0 - math.Pow(TNorm(sigma, cfg.DypeStartSigma), cfg.DypeExponent)
		if b > BlendThreshold {
			blend = float32(b) // torch.tensor(blend_val, dtype=float32)
			s.Blend = b
		}
	}
	rowG, colG := r.gridRow, r.gridCol
	if blend == 0 {
		rowG, colG = gridAxis{}, gridAxis{}
	}
	s.rowPos = make([]float64, len(r.rawRow))
	for i, p := range r.rawRow {
		s.rowPos[i] = float64(rowG.at(p, blend))
	}
	s.colPos = make([]float64, len(r.rawCol))
	for i, p := range r.rawCol {
		s.colPos[i] = float64(colG.at(p, blend))
	}
	s.capPos = [2]float64{float64(rowG.at(0, blend)), float64(colG.at(0, blend))}
	s.Image[1].Positions = s.rowPos[:r.th]
	s.Image[2].Positions = s.colPos
	s.Caption = s.Image
	s.Caption[1].Positions, s.Caption[2].Positions = nil, nil
	return s, nil
}

// Lanes is the number of complex lanes per token (sum over axes of Dims/2).
func (s *Step) Lanes() int { return s.Image[0].Lanes() + s.Image[1].Lanes() + s.Image[2].Lanes() }

// TokenGrid returns the image token grid (rows, columns).
func (s *Step) TokenGrid() (rows, cols int) { return s.th, s.tw }

// ImageRows is the number of image tokens including padding.
func (s *Step) ImageRows() int { return s.rows }

// CaptionIDs returns the ids of n caption tokens (n = the caption length already padded by the
// model): (1+i, c, c) with c = 0 (comfy: the blended 0, which is 0 on every grid with at least
// two rows and two columns).
func (s *Step) CaptionIDs(n int) []TokenID {
	ids := make([]TokenID, max(n, 0))
	for i := range ids {
		ids[i] = TokenID{float64(1 + i), s.capPos[0], s.capPos[1]}
	}
	return ids
}

// ImageIDs returns the ids of all ImageRows image tokens, row-major, then the padding tokens.
// axis0 is the image tokens' axis-0 position (caption length padded, plus 1). llm_dit padding
// ids are (0,0,0); comfy padding continues the raster (ComfyUI-DyPE's patchify does).
func (s *Step) ImageIDs(axis0 float64) []TokenID {
	ids := make([]TokenID, s.rows)
	for i := range ids {
		if i >= s.th*s.tw && s.padImage {
			continue // (0,0,0)
		}
		r, c := i/s.tw, i%s.tw
		ids[i] = TokenID{axis0, s.rowPos[r], s.colPos[c]}
	}
	return ids
}

// ImageTable returns the float32 cos and sin tables (len(ids)·Lanes values each, row-major,
// lanes [axis0 | axis1 | axis2], mscale included) of image token ids.
func (s *Step) ImageTable(ids []TokenID) (cos, sin []float32) { return tokenTable(&s.Image, ids) }

// CaptionTable is ImageTable for caption token ids.
func (s *Step) CaptionTable(ids []TokenID) (cos, sin []float32) {
	return tokenTable(&s.Caption, ids)
}

// tokenTable fills the rows of ids. Each axis row depends only on that axis' coordinate, and a
// grid repeats few coordinates, so rows are computed once per distinct coordinate and copied.
func tokenTable(axes *[3]Axis, ids []TokenID) (cos, sin []float32) {
	lanes := axes[0].Lanes() + axes[1].Lanes() + axes[2].Lanes()
	cos = make([]float32, len(ids)*lanes)
	sin = make([]float32, len(ids)*lanes)
	type axisCache struct {
		row      map[float64]int // coordinate → offset in cos/sin of the first row using it
		lastP    float64
		lastOff  int
		haveLast bool
	}
	var caches [3]axisCache
	for a := range caches {
		caches[a].row = map[float64]int{}
	}
	for i, id := range ids {
		off := i * lanes
		for a := range axes {
			ax := &axes[a]
			k := ax.Lanes()
			c := &caches[a]
			p := id[a]
			src, ok := c.lastOff, c.haveLast && c.lastP == p && !math.IsNaN(p)
			if !ok {
				src, ok = c.row[p]
			}
			if ok {
				copy(cos[off:off+k], cos[src:src+k])
				copy(sin[off:off+k], sin[src:src+k])
			} else {
				fillRow(cos[off:off+k], sin[off:off+k], ax.Omega, ax.MScale, ax.Position(p))
				src = off
				if !math.IsNaN(p) {
					c.row[p] = off
				}
			}
			c.lastP, c.lastOff, c.haveLast = p, src, true
			off += k
		}
	}
	return cos, sin
}

// RawImageIDs returns the image ids before any blend: llm_dit the integer grid (with (0,0,0)
// padding); comfy CD's stretched grid r·δ, c·δ (what its patchify passes to the embedder).
func (r *Rope) RawImageIDs(axis0 float64) []TokenID {
	ids := make([]TokenID, r.imageRows)
	for i := range ids {
		if i >= r.th*r.tw && r.cfg.Mode != ModeComfy {
			continue
		}
		row, c := i/r.tw, i%r.tw
		if r.cfg.Mode == ModeComfy {
			ids[i] = TokenID{axis0, float64(r.rawRow[row]), float64(r.rawCol[c])}
		} else {
			ids[i] = TokenID{axis0, float64(row), float64(c)}
		}
	}
	return ids
}

// Delta is comfy mode's stretch δ = (latent rows / token rows)·min(R/h, R/w) (2R/max(h, w) for
// even latents); 1 in llm_dit mode.
func (r *Rope) Delta() float64 {
	if r.cfg.Mode != ModeComfy {
		return 1
	}
	return r.delta
}
