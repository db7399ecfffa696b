package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/dypegraph/dypegraph/experiments"
)

// progressPrinter shows a run's progress: on a terminal one status line redrawn in place (node,
// then a bar with step, it/s and ETA while sampling); otherwise plain lines, one per node and one
// per sampler step, for logs.
type progressPrinter struct {
	mu       sync.Mutex
	w        io.Writer
	tty      bool
	now      func() time.Time
	passFrom time.Time // when the running sampler started
	lineOpen bool
}

func newProgressPrinter(w io.Writer, tty bool) *progressPrinter {
	return &progressPrinter{w: w, tty: tty, now: time.Now}
}

// node is called when a node starts.
func (p *progressPrinter) node(_, class, title string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if class == "KSampler" || class == "KSamplerAdvanced" {
		p.passFrom = p.now()
	}
	if p.tty {
		fmt.Fprintf(p.w, "\r\x1b[K%s…", title)
		p.lineOpen = true
		return
	}
	fmt.Fprintf(p.w, "%s\n", title)
}

// step is called after each sampler step.
func (p *progressPrinter) step(pr experiments.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	elapsed := p.now().Sub(p.passFrom).Seconds()
	rate := 0.0
	if elapsed > 0 && pr.Step > 0 {
		rate = float64(pr.Step) / elapsed
	}
	eta := "?"
	if rate > 0 {
		eta = formatSeconds(float64(pr.Steps-pr.Step) / rate)
	}
	pass := ""
	if pr.Passes > 1 && pr.Pass >= 0 {
		pass = fmt.Sprintf("pass %d/%d ", pr.Pass+1, pr.Passes)
	}
	if p.tty {
		fmt.Fprintf(p.w, "\r\x1b[K%s%s %d/%d  %.2f it/s  ETA %s", pass, progressBar(pr.Step, pr.Steps, 30), pr.Step, pr.Steps, rate, eta)
		p.lineOpen = true
		return
	}
	fmt.Fprintf(p.w, "%sstep %d/%d  %.2f it/s  ETA %s\n", pass, pr.Step, pr.Steps, rate, eta)
}

// finish ends the status line.
func (p *progressPrinter) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && p.lineOpen {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.lineOpen = false
	}
}

// progressBar draws a progress bar of width cells.
func progressBar(done, total, width int) string {
	if total <= 0 {
		total = 1
	}
	done = max(0, min(done, total))
	n := done * width / total
	return "|" + strings.Repeat("█", n) + strings.Repeat("░", width-n) + "|"
}

// formatSeconds prints a duration as 4.2s, 3m05s or 1h02m.
func formatSeconds(s float64) string {
	switch {
	case s < 60:
		return fmt.Sprintf("%.1fs", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", int(s)/60, int(s)%60)
	}
	return fmt.Sprintf("%dh%02dm", int(s)/3600, int(s)%3600/60)
}
