#!/usr/bin/env bash
# gpu_check.sh: the prepared check of package cuda for a session with a GPU machine.
#
# The GPU machine has no Go and no clang. Build on the development machine, from the
# repository root, then carry bin/ (it is git-ignored) to the GPU machine:
#
#   CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go test -c -o bin/cuda.test ./cuda
#   CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -o bin/dypegraph ./cmd/dypegraph
#
# and run there, from the repository root (device tool: carry ["bin"], timeout ~540 s):
#
#   bash cuda/testdata/gpu_check.sh
#
# Steps (each with its own time limit, so one hang does not eat the session):
#   1. the machine: nvidia-smi, the driver's libcuda, a cuBLASLt (CUDA toolkit or the pip
#      wheel next to PyTorch) exported as DYPEGRAPH_LIBCUBLASLT;
#   2. parity: every kernel and op against the CPU backend, with cuBLASLt and with the
#      built-in GEMM (TestGPUConformance), Z-Image-sized pieces (TestGPULargeShapes),
#      fast precision, CUDA graphs, and the GPU-free checks (PTX signatures);
#   3. `dypegraph bench dit --backend cuda` at full Z-Image size (dim 3840, 30 layers,
#      2+2 refiners, 30 heads; 4096 image + 128 caption tokens = 1024², and 16384 = 2048²) in
#      exact and fast precision, sampling the GPU's memory use for the peak;
#   4. the PyTorch baseline of the same shapes (bf16, flash SDPA) on the same GPU.
# Everything is written to $OUT (the device tool's output folder) or ./gpu_check_out:
# parity.txt, bench.jsonl, torch.jsonl, machine.txt, summary.txt.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUTDIR=${OUT:-$ROOT/gpu_check_out}
mkdir -p "$OUTDIR"
cd "$ROOT"
log() { echo "== $*" | tee -a "$OUTDIR/summary.txt"; }

# 1. The machine.
{
  nvidia-smi || echo "nvidia-smi failed"
  echo "--- libcuda:"; ldconfig -p 2>/dev/null | grep -E 'libcuda\.so' || ls /usr/local/nvidia/lib64/libcuda* 2>/dev/null
} >"$OUTDIR/machine.txt" 2>&1
if [ -z "${DYPEGRAPH_LIBCUDA:-}" ] && ! ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1'; then
  for p in /usr/local/nvidia/lib64/libcuda.so.1 /usr/lib/x86_64-linux-gnu/libcuda.so.1; do
    [ -e "$p" ] && export DYPEGRAPH_LIBCUDA=$p && break
  done
fi
if [ -z "${DYPEGRAPH_LIBCUBLASLT:-}" ]; then
  lt=$(python3 -c 'import glob,os,nvidia; print(next(iter(sorted(p for r in nvidia.__path__ for p in glob.glob(os.path.join(r,"**","libcublasLt.so*"),recursive=True))),""))' 2>/dev/null)
  [ -z "$lt" ] && lt=$(ls /usr/local/cuda*/lib64/libcublasLt.so.* /usr/local/cuda*/targets/*/lib/libcublasLt.so.* 2>/dev/null | head -1)
  [ -z "$lt" ] && lt=$(find / -xdev -name 'libcublasLt.so.*' 2>/dev/null | head -1)
  [ -n "$lt" ] && export DYPEGRAPH_LIBCUBLASLT=$lt
fi
log "libcuda: ${DYPEGRAPH_LIBCUDA:-found on the loader search path}; cuBLASLt: ${DYPEGRAPH_LIBCUBLASLT:-not found}"
echo "DYPEGRAPH_LIBCUDA=${DYPEGRAPH_LIBCUDA:-} DYPEGRAPH_LIBCUBLASLT=${DYPEGRAPH_LIBCUBLASLT:-}" >>"$OUTDIR/machine.txt"

# 2. Parity.
if [ -x bin/cuda.test ]; then
  log "parity suite"
  (cd cuda && timeout 300 ../bin/cuda.test -test.v -test.count=1 -test.timeout 290s \
    -test.run 'TestGPU|TestKernelSignatures|TestPTXUpToDate|TestSelectPTX') >"$OUTDIR/parity.txt" 2>&1
  rc=$?
  grep -E '^(--- |ok|FAIL|PASS)|^    --- (FAIL|SKIP)' "$OUTDIR/parity.txt" | grep -v '^    --- PASS' | tail -40 | tee -a "$OUTDIR/summary.txt"
  log "parity exit status $rc"
else
  log "bin/cuda.test missing: build it with CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go test -c -o bin/cuda.test ./cuda"
fi

# 3. bench dit at full Z-Image size.
# sample_vram runs its arguments while sampling the GPU's memory use; it prints the peak.
sample_vram() {
  local f s r
  f=$(mktemp)
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 >"$f" 2>/dev/null &
  s=$!
  "$@"
  r=$?
  kill "$s" 2>/dev/null
  wait "$s" 2>/dev/null
  echo "peak_vram_mib=$(sort -n "$f" | tail -1)" >&2
  rm -f "$f"
  return $r
}
if [ -x bin/dypegraph ]; then
  for cfg in "4096 exact" "4096 fast" "16384 fast"; do
    set -- $cfg
    log "bench dit --tokens $1 --caption 128, precision $2"
    sample_vram timeout 240 env DYPEGRAPH_CUDA_PRECISION="$2" bin/dypegraph bench dit --backend cuda \
      --dim 3840 --layers 30 --refiner-layers 2 --heads 30 --tokens "$1" --caption 128 --warmup 1 --repeats 3 --json \
      >>"$OUTDIR/bench.jsonl" 2>>"$OUTDIR/bench.err"
    echo "exit $? (tokens $1, $2)" >>"$OUTDIR/bench.err"
    tail -1 "$OUTDIR/bench.jsonl" | tee -a "$OUTDIR/summary.txt"
    grep peak_vram "$OUTDIR/bench.err" | tail -1 | tee -a "$OUTDIR/summary.txt"
  done
else
  log "bin/dypegraph missing: build it with CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -o bin/dypegraph ./cmd/dypegraph (the command must import package cuda)"
fi

# 4. PyTorch on the same shapes.
for n in 4096 16384; do
  log "torch baseline --tokens $n --caption 128"
  timeout 150 python3 cuda/testdata/torch_dit_bench.py --tokens "$n" --caption 128 --json >>"$OUTDIR/torch.jsonl" 2>>"$OUTDIR/torch.err"
  tail -1 "$OUTDIR/torch.jsonl" | tee -a "$OUTDIR/summary.txt"
done
log "done; files in $OUTDIR"
