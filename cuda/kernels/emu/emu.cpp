// emu.cpp: a CUDA execution emulator for the GPU-free tests of package cuda.
//
// It runs the kernels of all.cu, compiled for the host, on a memory region shared with the Go
// test process: every CUDA thread of a block is a fiber (ucontext); __syncthreads and warp
// exchanges switch fibers, so kernels with shared memory, barriers and shuffles run as they
// would on a GPU (one block at a time, deterministically). It also checks what the hardware
// leaves undefined: divergent barriers, warp exchanges with exited or diverged lanes, and
// (with guard pages around every allocation) out-of-bounds accesses, reported as errors.
//
// Protocol on stdin/stdout (little endian):
//   'L' u16 nameLen, name, u32 grid[3], u32 block[3], u32 smem, u32 paramLen, params
//   'M' u64 offset, u64 length, u8 prot        (1: read/write, 0: no access)
//   'Q'
// Each request is answered with u32 status (0 ok), u32 msgLen, msg.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <functional>
#include <memory>
#include <string>
#include <sys/mman.h>
#include <tuple>
#include <type_traits>
#include <ucontext.h>
#include <unistd.h>
#include <vector>

#include "../all.cu"

emu_uint3 emu_block_idx, emu_block_dim, emu_grid_dim;
unsigned char *emu_dyn_smem;

namespace {

enum State { RUNNABLE, AT_BARRIER, AT_WARP, DONE };

struct Fiber {
  ucontext_t ctx;
  unsigned tid;
  State state;
  int line;
  unsigned gen;  // warp exchanges done
};

const size_t kStack = 256 << 10;
std::vector<Fiber> fibers;
std::vector<std::unique_ptr<char[]>> stacks;
int cur = -1;
ucontext_t sched;
std::function<void()> thunk;
std::string fault;  // first error of the running launch
const char *running = "";
unsigned char slots[2][1024][64];  // warp exchange buffers, double-buffered by generation

void fail(const std::string &msg) {
  if (fault.empty()) fault = msg;
}

void fiber_main() {
  thunk();
  fibers[cur].state = DONE;
}

void yield_to_scheduler() { swapcontext(&fibers[cur].ctx, &sched); }

std::string describe_states(unsigned n) {
  std::string s;
  for (unsigned t = 0; t < n && s.size() < 600; ++t) {
    const Fiber &f = fibers[t];
    static const char *names[] = {"runnable", "barrier", "warp", "done"};
    s += " t" + std::to_string(t) + ":" + names[f.state] + "@" + std::to_string(f.line);
  }
  return s;
}

// run_block runs every thread of one block to completion.
bool run_block(unsigned n) {
  for (unsigned t = 0; t < n; ++t) {
    Fiber &f = fibers[t];
    f.tid = t;
    f.state = RUNNABLE;
    f.line = 0;
    f.gen = 0;
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = stacks[t].get();
    f.ctx.uc_stack.ss_size = kStack;
    f.ctx.uc_link = &sched;
    makecontext(&f.ctx, fiber_main, 0);
  }
  for (;;) {
    for (unsigned t = 0; t < n; ++t) {
      if (fibers[t].state != RUNNABLE) continue;
      cur = (int)t;
      swapcontext(&sched, &fibers[t].ctx);
      if (!fault.empty()) return false;
    }
    cur = -1;
    bool all_done = true, released = false;
    for (unsigned t = 0; t < n; ++t) all_done = all_done && fibers[t].state == DONE;
    if (all_done) return true;
    // Release warps whose live lanes all wait at the same exchange.
    for (unsigned w = 0; w * 32 < n; ++w) {
      unsigned lo = w * 32, hi = lo + 32 < n ? lo + 32 : n;
      int waiting = 0, done = 0, other = 0, line = -1;
      bool same = true;
      for (unsigned t = lo; t < hi; ++t) {
        const Fiber &f = fibers[t];
        if (f.state == AT_WARP) {
          if (line >= 0 && f.line != line) same = false;
          line = f.line;
          ++waiting;
        } else if (f.state == DONE) {
          ++done;
        } else {
          ++other;
        }
      }
      if (waiting == 0 || other > 0) continue;
      if (done > 0) {
        fail("warp exchange at line " + std::to_string(line) + " in a warp where " +
             std::to_string(done) + " lanes have exited (warp " + std::to_string(w) + ")");
        return false;
      }
      if (!same) {
        fail("lanes of warp " + std::to_string(w) + " wait at different warp exchanges:" +
             describe_states(n));
        return false;
      }
      for (unsigned t = lo; t < hi; ++t) fibers[t].state = RUNNABLE;
      released = true;
    }
    if (released) continue;
    // Release a block barrier when every thread waits at the same one.
    int line = -1;
    bool same = true, all_bar = true, any_done = false;
    for (unsigned t = 0; t < n; ++t) {
      const Fiber &f = fibers[t];
      if (f.state == DONE) {
        any_done = true;
        continue;
      }
      if (f.state != AT_BARRIER) {
        all_bar = false;
        continue;
      }
      if (line >= 0 && f.line != line) same = false;
      line = f.line;
    }
    if (all_bar && any_done) {
      fail("__syncthreads at line " + std::to_string(line) + " after some threads exited:" +
           describe_states(n));
      return false;
    }
    if (all_bar && !same) {
      fail("divergent __syncthreads:" + describe_states(n));
      return false;
    }
    if (!all_bar) {
      fail("deadlock (threads wait at a barrier and a warp exchange at once):" + describe_states(n));
      return false;
    }
    for (unsigned t = 0; t < n; ++t)
      if (fibers[t].state == AT_BARRIER) fibers[t].state = RUNNABLE;
  }
}

// ---- kernel registry: unpack a CUDA parameter buffer into the kernel's arguments ----

template <class T>
bool unpack(T &v, const unsigned char *buf, size_t len, size_t &off) {
  off = (off + alignof(T) - 1) & ~(alignof(T) - 1);
  if (off + sizeof(T) > len) return false;
  std::memcpy(&v, buf + off, sizeof(T));
  off += sizeof(T);
  return true;
}

template <class... A>
std::function<void()> bind_args(void (*f)(A...), const unsigned char *buf, size_t len,
                                std::string &err) {
  auto args = std::make_shared<std::tuple<std::decay_t<A>...>>();
  size_t off = 0;
  bool ok = true;
  std::apply([&](auto &...a) { ((ok = ok && unpack(a, buf, len, off)), ...); }, *args);
  if (!ok || off != len) {
    err = "parameter buffer of " + std::to_string(len) + " bytes does not match the kernel's " +
          std::to_string(sizeof...(A)) + " parameters (" + std::to_string(off) + " bytes used)";
    return nullptr;
  }
  return [f, args] { std::apply(f, *args); };
}

struct Entry {
  const char *name;
  std::function<std::function<void()>(const unsigned char *, size_t, std::string &)> bind;
};

#define REG(k) {#k, [](const unsigned char *b, size_t n, std::string &e) { return bind_args(&k, b, n, e); }},
const Entry registry[] = {
#include "registry.inc"
};

// ---- memory and protocol ----

unsigned char *base;
size_t region;

void on_segv(int, siginfo_t *si, void *) {
  char msg[256];
  int n = snprintf(msg, sizeof msg,
                   "emu: kernel %s: invalid memory access at %p (region %p+%zu): out of bounds "
                   "of an allocation, or a stray pointer\n",
                   running, si->si_addr, (void *)base, region);
  if (write(2, msg, (size_t)n) < 0) {
  }
  _exit(3);
}

bool read_full(void *p, size_t n) {
  unsigned char *c = (unsigned char *)p;
  while (n > 0) {
    ssize_t r = read(0, c, n);
    if (r <= 0) return false;
    c += r;
    n -= (size_t)r;
  }
  return true;
}

void write_full(const void *p, size_t n) {
  const unsigned char *c = (const unsigned char *)p;
  while (n > 0) {
    ssize_t r = write(1, c, n);
    if (r <= 0) _exit(4);
    c += r;
    n -= (size_t)r;
  }
}

void reply(unsigned status, const std::string &msg) {
  unsigned h[2] = {status, (unsigned)msg.size()};
  write_full(h, sizeof h);
  write_full(msg.data(), msg.size());
}

std::string launch(const std::string &name, const unsigned g[3], const unsigned b[3],
                   unsigned smem, const std::vector<unsigned char> &params) {
  const Entry *e = nullptr;
  for (const Entry &r : registry)
    if (name == r.name) e = &r;
  if (!e) return "no kernel named " + name;
  if (b[1] != 1 || b[2] != 1 || b[0] == 0 || b[0] > 1024 || b[0] % 32 != 0)
    return "block " + std::to_string(b[0]) + "x" + std::to_string(b[1]) + "x" +
           std::to_string(b[2]) + ": the kernels use 1-D blocks of a multiple of 32 threads";
  if (g[0] == 0 || g[1] == 0 || g[2] == 0 || g[1] > 65535 || g[2] > 65535)
    return "invalid grid";
  std::string err;
  thunk = e->bind(params.data(), params.size(), err);
  if (!thunk) return name + ": " + err;
  running = e->name;
  std::vector<unsigned char> dyn(smem + 16);
  emu_dyn_smem = dyn.data();
  unsigned n = b[0];
  if (fibers.size() < n) {
    fibers.resize(n);
    while (stacks.size() < n) stacks.emplace_back(new char[kStack]);
  }
  emu_block_dim = {b[0], b[1], b[2]};
  emu_grid_dim = {g[0], g[1], g[2]};
  fault.clear();
  for (unsigned z = 0; z < g[2]; ++z)
    for (unsigned y = 0; y < g[1]; ++y)
      for (unsigned x = 0; x < g[0]; ++x) {
        emu_block_idx = {x, y, z};
        if (!run_block(n))
          return name + " block (" + std::to_string(x) + "," + std::to_string(y) + "," +
                 std::to_string(z) + "): " + fault;
      }
  running = "";
  return "";
}

}  // namespace

emu_uint3 emu_thread_idx() { return {fibers[cur].tid, 0, 0}; }

void emu_syncthreads(int line) {
  fibers[cur].state = AT_BARRIER;
  fibers[cur].line = line;
  yield_to_scheduler();
}

void emu_warp_gather(const void *mine, int bytes, void *all, int line) {
  Fiber &f = fibers[cur];
  unsigned g = f.gen++ & 1;
  std::memcpy(slots[g][f.tid], mine, (size_t)bytes);
  f.state = AT_WARP;
  f.line = line;
  yield_to_scheduler();
  unsigned base_lane = fibers[cur].tid & ~31u;
  for (unsigned l = 0; l < 32; ++l)
    std::memcpy((unsigned char *)all + l * (size_t)bytes, slots[g][base_lane + l], (size_t)bytes);
}

// The fragment layouts of mma.m16n8k16 with .bf16 A/B and .f32 C/D (PTX ISA, "Matrix
// Fragments for mma.m16n8k16 with floating point type"), for lane = 4·groupID + tig:
//   A (16×16, row): a0,a1 (row g, cols 2t, 2t+1), a2,a3 (row g+8, same cols),
//                   a4,a5 (row g, cols 2t+8, 2t+9), a6,a7 (row g+8, cols 2t+8, 2t+9);
//                   register r holds a(2r) in its low and a(2r+1) in its high 16 bits.
//   B (16×8, col):  b0,b1 (rows k = 2t, 2t+1, col g), b2,b3 (rows 2t+8, 2t+9, col g).
//   C, D (16×8):    c0,c1 (row g, cols 2t, 2t+1), c2,c3 (row g+8, cols 2t, 2t+1).
void emu_mma_bf16(float *d, const unsigned *a, const unsigned *b, const float *c, int line) {
  struct Frag {
    unsigned a[4], b[2];
    float c[4];
  } mine, all[32];
  std::memcpy(mine.a, a, sizeof mine.a);
  std::memcpy(mine.b, b, sizeof mine.b);
  std::memcpy(mine.c, c, sizeof mine.c);
  emu_warp_gather(&mine, sizeof mine, all, line);
  float A[16][16], B[16][8], C[16][8];
  auto bf = [](unsigned v, int hi) { return u2f((hi ? v >> 16 : v & 0xffffu) << 16); };
  for (int l = 0; l < 32; ++l) {
    int g = l >> 2, t = l & 3;
    for (int h = 0; h < 2; ++h) {
      A[g][2 * t + h] = bf(all[l].a[0], h);
      A[g + 8][2 * t + h] = bf(all[l].a[1], h);
      A[g][2 * t + 8 + h] = bf(all[l].a[2], h);
      A[g + 8][2 * t + 8 + h] = bf(all[l].a[3], h);
      B[2 * t + h][g] = bf(all[l].b[0], h);
      B[2 * t + 8 + h][g] = bf(all[l].b[1], h);
      C[g][2 * t + h] = all[l].c[h];
      C[g + 8][2 * t + h] = all[l].c[2 + h];
    }
  }
  int lane = (int)(emu_thread_idx().x & 31u), g = lane >> 2, t = lane & 3;
  for (int e = 0; e < 4; ++e) {
    int row = e < 2 ? g : g + 8, col = 2 * t + (e & 1);
    float acc = C[row][col];
    for (int k = 0; k < 16; ++k) acc += A[row][k] * B[k][col];
    d[e] = acc;
  }
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: emu SHM_PATH SIZE BASE_ADDRESS\n");
    return 2;
  }
  region = strtoull(argv[2], nullptr, 0);
  void *want = (void *)strtoull(argv[3], nullptr, 0);
  int fd = open(argv[1], O_RDWR);
  if (fd < 0) {
    perror("emu: open");
    return 2;
  }
  void *p = mmap(want, region, PROT_NONE, MAP_SHARED | MAP_FIXED_NOREPLACE, fd, 0);
  if (p == MAP_FAILED || p != want) {
    perror("emu: mmap at the fixed base");
    return 2;
  }
  base = (unsigned char *)p;
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_segv;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigaction(SIGSEGV, &sa, nullptr);
  sigaction(SIGBUS, &sa, nullptr);
  static char altstack[1 << 16];
  stack_t ss = {};
  ss.ss_sp = altstack;
  ss.ss_size = sizeof altstack;
  sigaltstack(&ss, nullptr);
  for (;;) {
    unsigned char op;
    if (!read_full(&op, 1)) return 0;
    if (op == 'Q') {
      reply(0, "");
      return 0;
    }
    if (op == 'M') {
      unsigned long long off, len;
      unsigned char prot;
      if (!read_full(&off, 8) || !read_full(&len, 8) || !read_full(&prot, 1)) return 1;
      if (off + len > region || mprotect(base + off, len, prot ? PROT_READ | PROT_WRITE : PROT_NONE) != 0)
        reply(1, "mprotect failed");
      else
        reply(0, "");
      continue;
    }
    if (op != 'L') {
      reply(1, "unknown request");
      return 1;
    }
    unsigned short nlen;
    if (!read_full(&nlen, 2)) return 1;
    std::string name(nlen, '\0');
    unsigned g[3], b[3], smem, plen;
    if (!read_full(&name[0], nlen) || !read_full(g, 12) || !read_full(b, 12) ||
        !read_full(&smem, 4) || !read_full(&plen, 4))
      return 1;
    std::vector<unsigned char> params(plen);
    if (plen > 0 && !read_full(params.data(), plen)) return 1;
    std::string err = launch(name, g, b, smem, params);
    reply(err.empty() ? 0 : 1, err);
  }
}
