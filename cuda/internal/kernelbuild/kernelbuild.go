// Package kernelbuild compiles the CUDA kernels of package cuda (cuda/kernels/*.cu, *.cuh) to
// PTX with Debian's clang-19 and checks that the committed PTX is up to date. It is used by
// the generator (go run ./cuda/internal/genptx) and by the cuda package's tests; it needs no
// GPU and no CUDA SDK.
//
// Every generated file starts with a header line that records the SHA-256 of the kernel
// sources and the compile flags, the clang version and the target, so that staleness can be
// detected without a compiler (the hash) and, where clang-19 is installed, by regenerating.
package kernelbuild

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Target is one PTX flavour that is generated and embedded.
type Target struct {
	Arch string // clang --cuda-gpu-arch, e.g. "sm_80"
	PTX  string // PTX ISA feature, e.g. "ptx70"
}

// File is the name of the generated PTX file for t (in cuda/ptx).
func (t Target) File() string { return "kernels_" + t.Arch + ".ptx" }

// Targets are the generated flavours: sm_80 (PTX ISA 7.0, Ampere and later through the
// driver's JIT) and sm_90 (PTX ISA 7.8, Hopper).
var Targets = []Target{{Arch: "sm_80", PTX: "ptx70"}, {Arch: "sm_90", PTX: "ptx78"}}

// Flags are the clang flags besides the target; they are part of the source hash.
var Flags = []string{"-x", "cuda", "--cuda-device-only", "-nocudainc", "-nocudalib", "-O3",
	"-ffp-contract=on", "-std=c++17", "-S"}

// Entry is the translation unit.
const Entry = "all.cu"

// HeaderPrefix starts the first line of every generated file.
const HeaderPrefix = "// dypegraph-genptx:"

// ClangEnv names the environment variable that overrides the compiler path.
const ClangEnv = "DYPEGRAPH_CLANG"

// FindClang returns the clang-19 to use: $DYPEGRAPH_CLANG, else clang-19 on the PATH.
func FindClang() (string, error) {
	if p := os.Getenv(ClangEnv); p != "" {
		return p, nil
	}
	p, err := exec.LookPath("clang-19")
	if err != nil {
		return "", errors.New("kernelbuild: clang-19 not found (apt-get install -y clang-19, or set " + ClangEnv + ")")
	}
	return p, nil
}

// ClangVersion returns the first line of `clang --version`.
func ClangVersion(clang string) (string, error) {
	out, err := exec.Command(clang, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("kernelbuild: %s --version: %w", clang, err)
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line), nil
}

// SourceFiles lists the kernel sources in dir (*.cu and *.cuh, not the emulator), sorted.
func SourceFiles(dir string) ([]string, error) {
	var files []string
	for _, pat := range []string{"*.cu", "*.cuh"} {
		m, err := filepath.Glob(filepath.Join(dir, pat))
		if err != nil {
			return nil, err
		}
		files = append(files, m...)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("kernelbuild: no kernel sources in %s", dir)
	}
	slices.Sort(files)
	return files, nil
}

// SourceHash hashes the kernel sources in dir (names and contents) and the compile flags.
func SourceHash(dir string) (string, error) {
	files, err := SourceFiles(dir)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "flags %q\n", Flags)
	for _, t := range Targets {
		fmt.Fprintf(h, "target %s %s\n", t.Arch, t.PTX)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", fmt.Errorf("kernelbuild: %w", err)
		}
		// Normalise line endings so that a checkout with CRLF hashes the same.
		b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
		fmt.Fprintf(h, "file %s %d\n", filepath.Base(f), len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Header is the first line written to a generated file.
func Header(hash, clangVersion string, t Target) string {
	return fmt.Sprintf("%s sources=%s arch=%s ptx=%s clang=%q", HeaderPrefix, hash, t.Arch, t.PTX, clangVersion)
}

// Info is what a generated file's header records.
type Info struct {
	Hash, Arch, PTX, Clang string
}

// ParseHeader reads the header line of a generated PTX file.
func ParseHeader(ptx []byte) (Info, error) {
	line, _, _ := bytes.Cut(ptx, []byte("\n"))
	s, ok := strings.CutPrefix(string(line), HeaderPrefix)
	if !ok {
		return Info{}, errors.New("kernelbuild: PTX has no genptx header (regenerate with go run ./cuda/internal/genptx)")
	}
	var info Info
	for _, f := range strings.Fields(s) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "sources":
			info.Hash = v
		case "arch":
			info.Arch = v
		case "ptx":
			info.PTX = v
		}
	}
	if _, c, ok := strings.Cut(s, "clang="); ok {
		info.Clang = strings.Trim(c, `"`)
	}
	if info.Hash == "" || info.Arch == "" {
		return Info{}, fmt.Errorf("kernelbuild: malformed genptx header %q", line)
	}
	return info, nil
}

// Compile compiles dir/all.cu for t and returns the PTX with its header line. A compile
// error (or warning, which the kernels must not have) fails with clang's output.
func Compile(ctx context.Context, clang, dir string, t Target) ([]byte, error) {
	hash, err := SourceHash(dir)
	if err != nil {
		return nil, err
	}
	ver, err := ClangVersion(clang)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "genptx")
	if err != nil {
		return nil, fmt.Errorf("kernelbuild: %w", err)
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, t.File())
	args := append([]string{}, Flags...)
	args = append(args, "--cuda-gpu-arch="+t.Arch, "-Xclang", "-target-feature", "-Xclang", "+"+t.PTX,
		"-Werror", "-Wall", "-Wno-unknown-cuda-version", "-o", out, filepath.Join(dir, Entry))
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, clang, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("kernelbuild: %s %s failed: %w\n%s", clang, strings.Join(args, " "), err, stderr.String())
	}
	if stderr.Len() > 0 {
		return nil, fmt.Errorf("kernelbuild: %s printed diagnostics for %s:\n%s", clang, t.Arch, stderr.String())
	}
	body, err := os.ReadFile(out)
	if err != nil {
		return nil, fmt.Errorf("kernelbuild: %w", err)
	}
	var b bytes.Buffer
	b.WriteString(Header(hash, ver, t))
	b.WriteString("\n")
	b.Write(body)
	return b.Bytes(), nil
}

// Check reports whether the committed PTX files in ptxDir match the sources in kernelDir:
// the recorded hash must equal the sources' hash, and when clang is not empty every file
// must equal a fresh compile (byte for byte when the clang version is the recorded one;
// with another clang version only the hash is checked and a note is returned).
func Check(ctx context.Context, clang, kernelDir, ptxDir string) (notes []string, err error) {
	hash, err := SourceHash(kernelDir)
	if err != nil {
		return nil, err
	}
	var ver string
	if clang != "" {
		if ver, err = ClangVersion(clang); err != nil {
			return nil, err
		}
	}
	for _, t := range Targets {
		path := filepath.Join(ptxDir, t.File())
		committed, err := os.ReadFile(path)
		if err != nil {
			return notes, fmt.Errorf("kernelbuild: %w (run go run ./cuda/internal/genptx)", err)
		}
		info, err := ParseHeader(committed)
		if err != nil {
			return notes, fmt.Errorf("%s: %w", path, err)
		}
		if info.Hash != hash {
			return notes, fmt.Errorf("kernelbuild: %s is stale: built from sources %.12s, the kernels are now %.12s (run go run ./cuda/internal/genptx)", path, info.Hash, hash)
		}
		if clang == "" {
			continue
		}
		fresh, err := Compile(ctx, clang, kernelDir, t)
		if err != nil {
			return notes, err
		}
		if info.Clang != ver {
			notes = append(notes, fmt.Sprintf("%s was generated by %q; this machine has %q, so only the source hash was compared (it matches) and the fresh compile succeeded", path, info.Clang, ver))
			continue
		}
		if !bytes.Equal(fresh, committed) {
			return notes, fmt.Errorf("kernelbuild: %s differs from a fresh compile by the same clang (run go run ./cuda/internal/genptx)", path)
		}
	}
	return notes, nil
}
