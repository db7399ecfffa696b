// Package experiments runs the workflows that package workflows/build makes and measures them:
// the one code path behind `dypegraph generate` and the DyPE test tools that reproduce the
// original DyPE testing guide (`bench dype`: the resolution × method matrix with results.csv,
// summary.txt and labelled comparison grids; `sweep dype`: the dype_scale × dype_exponent grid;
// `grid`: any folder of images into one labelled sheet).
//
// Why a top-level package: none of the existing packages may own this. graph, executor and nodes
// must stay unaware of each other's callers; workflows is the bundled example files and
// workflows/build only builds graphs (it must not run anything); server is HTTP; and the command
// package must not hold logic. What is left — validating and executing a built prompt, timing it,
// measuring peak memory, collecting the saved images, composing comparison sheets and writing
// the CSV and summary files — is an experiment harness over the public APIs, named after the
// original tool's experiments/ folder.
//
// It owns: Runner (graph.Validate + executor.Run on a built prompt, progress callbacks, saved
// image paths, time excluding model loading, peak RSS), model folder resolution (a ComfyUI models
// folder or a diffusers folder), resolution lists ("1K,2K", "256", "2048x1024"), the bench and
// sweep plans with their output files, and Grid (a labelled contact sheet drawn with
// golang.org/x/image/font/basicfont).
//
// It must not parse command lines, print progress bars or know about terminals (the command
// does), nor build workflows by hand: every graph comes from workflows/build.
package experiments
