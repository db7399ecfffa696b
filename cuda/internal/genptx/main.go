// Command genptx compiles the CUDA kernels of package cuda to the PTX files it embeds, with
// Debian's clang-19 (no GPU, no CUDA SDK needed):
//
//	go run ./cuda/internal/genptx          # regenerate cuda/ptx/*.ptx
//	go run ./cuda/internal/genptx -check   # fail if the committed PTX is stale; compile every kernel
//
// Run it from the module root (or pass -root). The compiler is $DYPEGRAPH_CLANG or clang-19 on
// the PATH. It exits non-zero, printing clang's diagnostics, on any compile error or warning.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/dypegraph/dypegraph/cuda/internal/kernelbuild"
)

func main() {
	check := flag.Bool("check", false, "verify the committed PTX instead of writing it")
	root := flag.String("root", ".", "module root (the folder holding cuda/)")
	flag.Parse()
	if err := run(*root, *check); err != nil {
		fmt.Fprintln(os.Stderr, "genptx:", err)
		os.Exit(1)
	}
}

func run(root string, check bool) error {
	kdir := filepath.Join(root, "cuda", "kernels")
	pdir := filepath.Join(root, "cuda", "ptx")
	if _, err := os.Stat(kdir); err != nil {
		return fmt.Errorf("%w (run from the module root or pass -root)", err)
	}
	clang, err := kernelbuild.FindClang()
	if err != nil {
		return err
	}
	ctx := context.Background()
	if check {
		notes, err := kernelbuild.Check(ctx, clang, kdir, pdir)
		for _, n := range notes {
			fmt.Println("genptx: note:", n)
		}
		if err != nil {
			return err
		}
		fmt.Println("genptx: committed PTX is up to date; every kernel compiles")
		return nil
	}
	for _, t := range kernelbuild.Targets {
		ptx, err := kernelbuild.Compile(ctx, clang, kdir, t)
		if err != nil {
			return err
		}
		out := filepath.Join(pdir, t.File())
		if err := os.WriteFile(out, ptx, 0o644); err != nil {
			return err
		}
		fmt.Printf("genptx: wrote %s (%d bytes)\n", out, len(ptx))
	}
	return nil
}
