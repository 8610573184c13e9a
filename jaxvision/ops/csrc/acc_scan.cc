// The Adjacent Channel Coupler's exact scan (eq. 4, the two-chain model) as one CPU kernel.
//
// Semantics: jaxvision/ops/acc.py, ``adjacent_channel_coupler(solver="scan")``; this file is
// its float32 CPU fast path (jaxvision/ops/acc_native.py builds, loads and calls it through
// the XLA FFI; tests/ops/test_acc_native.py checks it against the XLA scan).
//
//   Z^d_c = f^d_c(X_c) * sigmoid(g^d_c(X_c) + h^d_c(Y^d_prev)),  Y^d_c = X_c + Z^d_c
//   Y_c   = X_c + mean_d Z^d_c
//
// Each f, g, h is a single-channel zero-padded 3x3 cross-correlation with a bias. Why a kernel:
// XLA:CPU runs each step of the scan as ~5 separate loops over whole planes (the padded copy
// of the inputs, the fused convs and gate, the state update, two output updates); here one
// pass per step reads the two input planes and the two state planes and writes the two new
// states and the two output planes, and the rows of each step are split over threads (a
// barrier between steps: step t + 1 reads the neighbouring rows of step t). The layout
// changes to and from channel-last stay in XLA (its transposes are faster than a simple
// blocked loop here).
//
// Buffers (FFI):
//   x        f32[..., C, H, W]  input planes; the leading axes are batch.
//   weights  f32[..., C, D, 27] per step t (forward chain at channel t, backward at C-1-t)
//                               and chain d: the f, g, h 3x3 kernels, row-major, in step order.
//   biases   f32[..., C, D, 3]  the f, g, h biases, same order.
//   y        f32[..., C, H, W]  the result planes.
// Attributes: directions (0 both, 1 forward, 2 backward), boundary (0 zero, 1 input),
// num_threads (0: all hardware threads).

#include <algorithm>
#include <barrier>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

// exp(x) for the sigmoid, vectorisable: Cody-Waite range reduction to r in [-ln2/2, ln2/2]
// and a degree-6 Taylor polynomial (relative error < 2e-7 there), scaled by 2^n through the
// exponent bits. Inputs are clamped to [-87.3, 88.3] (the normal range of float32); a NaN
// stays NaN (both comparisons are false).
inline float exp_f32(float x) {
  x = x < -87.3f ? -87.3f : x;
  x = x > 88.3f ? 88.3f : x;
  const float n = std::floor(x * 1.44269504088896341f + 0.5f);
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.3888889e-3f;
  p = p * r + 8.3333333e-3f;
  p = p * r + 4.1666667e-2f;
  p = p * r + 1.6666667e-1f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  return p * std::bit_cast<float>(bits);
}

struct Step {
  const float* w;  // 27 weights: f, g, h kernels
  const float* b;  // 3 biases
  const float* x;  // input plane of this chain's channel (H x W, unpadded)
  const float* y;  // padded previous state ((H + 2) x (W + 2), zero border)
  float* y_next;   // padded new state (interior written)
  float* acc;      // output plane of the channel (H x W): X_c + mean_d Z^d_c
  float scale;     // 1 / number of chains
};

// Row i of an unpadded H x W plane into a zero-bordered row of W + 2 (zeros outside 0..H-1).
inline void load_padded_row(const float* plane, int64_t i, int64_t h, int64_t w, float* row) {
  row[0] = 0.0f;
  row[w + 1] = 0.0f;
  if (i < 0 || i >= h) {
    std::fill(row + 1, row + w + 1, 0.0f);
  } else {
    std::memcpy(row + 1, plane + i * w, w * sizeof(float));
  }
}

// Rows [r0, r1) of one chain's step. Padded planes have row stride W + 2.
template <bool kFirst>
void step_rows(const Step& s, int64_t h, int64_t w_cols, int64_t r0, int64_t r1, float* ring) {
  const int64_t ps = w_cols + 2;
  // The 27 weights as scalars: loop-invariant registers, not loads the stores could alias.
  const float k0 = s.w[0], k1 = s.w[1], k2 = s.w[2], k3 = s.w[3], k4 = s.w[4];
  const float k5 = s.w[5], k6 = s.w[6], k7 = s.w[7], k8 = s.w[8];
  const float k9 = s.w[9], k10 = s.w[10], k11 = s.w[11], k12 = s.w[12], k13 = s.w[13];
  const float k14 = s.w[14], k15 = s.w[15], k16 = s.w[16], k17 = s.w[17];
  const float k18 = s.w[18], k19 = s.w[19], k20 = s.w[20], k21 = s.w[21], k22 = s.w[22];
  const float k23 = s.w[23], k24 = s.w[24], k25 = s.w[25], k26 = s.w[26];
  const float bf = s.b[0], bg = s.b[1], bh = s.b[2], scale = s.scale;
  // ring: three zero-bordered input rows (i - 1, i, i + 1), slot (row + 1) % 3.
  for (int64_t r = r0 - 1; r <= r0; ++r) {
    load_padded_row(s.x, r, h, w_cols, ring + ((r + 1) % 3) * ps);
  }
  for (int64_t i = r0; i < r1; ++i) {
    load_padded_row(s.x, i + 1, h, w_cols, ring + ((i + 2) % 3) * ps);
    const float* __restrict x0 = ring + (i % 3) * ps;
    const float* __restrict x1 = ring + ((i + 1) % 3) * ps;
    const float* __restrict x2 = ring + ((i + 2) % 3) * ps;
    const float* __restrict y0 = s.y + i * ps;
    const float* __restrict y1 = y0 + ps;
    const float* __restrict y2 = y1 + ps;
    float* __restrict yn = s.y_next + (i + 1) * ps + 1;
    float* __restrict acc = s.acc + i * w_cols;
    // The planes never overlap (separate buffers or planes); gcc cannot prove it.
#pragma GCC ivdep
    for (int64_t j = 0; j < w_cols; ++j) {
      const float f = bf + k0 * x0[j] + k1 * x0[j + 1] + k2 * x0[j + 2] +
                      k3 * x1[j] + k4 * x1[j + 1] + k5 * x1[j + 2] +
                      k6 * x2[j] + k7 * x2[j + 1] + k8 * x2[j + 2];
      const float g = bg + k9 * x0[j] + k10 * x0[j + 1] + k11 * x0[j + 2] +
                      k12 * x1[j] + k13 * x1[j + 1] + k14 * x1[j + 2] +
                      k15 * x2[j] + k16 * x2[j + 1] + k17 * x2[j + 2];
      const float h = bh + k18 * y0[j] + k19 * y0[j + 1] + k20 * y0[j + 2] +
                      k21 * y1[j] + k22 * y1[j + 1] + k23 * y1[j + 2] +
                      k24 * y2[j] + k25 * y2[j + 1] + k26 * y2[j + 2];
      const float z = f / (1.0f + exp_f32(-(g + h)));
      yn[j] = x1[j + 1] + z;
      if constexpr (kFirst) {
        acc[j] = x1[j + 1] + scale * z;
      } else {
        acc[j] += scale * z;
      }
    }
  }
}

void zero_borders(float* planes, int64_t n, int64_t h, int64_t w) {
  const int64_t ps = w + 2, plane = (h + 2) * ps;
  for (int64_t k = 0; k < n; ++k) {
    float* p = planes + k * plane;
    std::fill(p, p + ps, 0.0f);
    std::fill(p + (h + 1) * ps, p + plane, 0.0f);
    for (int64_t i = 1; i <= h; ++i) {
      p[i * ps] = 0.0f;
      p[i * ps + w + 1] = 0.0f;
    }
  }
}

// Per calling thread, reused across calls (grown on demand): two zero-bordered state planes
// per chain, and per worker thread a ring of three zero-bordered input rows.
struct Workspace {
  std::vector<float> ystate, rings;
};

ffi::Error AccScanImpl(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> weights,
                       ffi::Buffer<ffi::F32> biases, ffi::ResultBuffer<ffi::F32> y,
                       int64_t directions, int64_t boundary, int64_t num_threads) {
  const auto dims = x.dimensions();
  if (dims.size() < 3) {
    return ffi::Error::InvalidArgument("acc_scan: x must have rank >= 3 (..., C, H, W)");
  }
  const int64_t rank = dims.size();
  const int64_t c = dims[rank - 3], h = dims[rank - 2], w = dims[rank - 1];
  int64_t batch = 1;
  for (int64_t k = 0; k < rank - 3; ++k) batch *= dims[k];
  const int64_t nd = directions == 0 ? 2 : 1;
  if (static_cast<int64_t>(weights.element_count()) != batch * c * nd * 27 ||
      static_cast<int64_t>(biases.element_count()) != batch * c * nd * 3) {
    return ffi::Error::InvalidArgument("acc_scan: weights/biases do not match x");
  }
  if (batch == 0 || h == 0 || w == 0 || c == 0) return ffi::Error::Success();
  // Chain d's sign: +1 runs channels 0..C-1, -1 runs C-1..0.
  int sign[2] = {1, -1};
  if (directions == 2) sign[0] = -1;

  // Threads: as asked (the Python side passes the CPUs this process may use), at most one per
  // row and one per kMinPixelsPerThread pixels (small planes run on the calling thread).
  constexpr int64_t kMinPixelsPerThread = 16384;
  int64_t threads = num_threads > 0 ? num_threads : std::thread::hardware_concurrency();
  threads = std::max<int64_t>(1, std::min<int64_t>({threads, h, h * w / kMinPixelsPerThread}));
  thread_local Workspace ws;
  const int64_t ps = w + 2, plane = (h + 2) * ps, hw = h * w;
  ws.ystate.resize(static_cast<size_t>(2 * nd * plane));
  ws.rings.resize(static_cast<size_t>(threads * 3 * ps));
  float* ystate = ws.ystate.data();
  float* rings = ws.rings.data();
  zero_borders(ystate, 2 * nd, h, w);
  const float scale = 1.0f / static_cast<float>(nd);
  const float* xdata = x.typed_data();
  const float* wdata = weights.typed_data();
  const float* bdata = biases.typed_data();
  float* ydata = y->typed_data();
  std::barrier sync(threads);

  auto worker = [&](int64_t tid) {
    const int64_t r0 = h * tid / threads, r1 = h * (tid + 1) / threads;
    float* ring = rings + tid * 3 * ps;
    for (int64_t bi = 0; bi < batch; ++bi) {
      const float* xb = xdata + bi * c * hw;
      float* yb = ydata + bi * c * hw;
      for (int64_t d = 0; d < nd; ++d) {  // Y^d before its first channel, in buffer 0
        float* st = ystate + d * plane;
        const float* first_plane = xb + (sign[d] > 0 ? 0 : c - 1) * hw;
        for (int64_t i = r0; i < r1; ++i) {
          float* row = st + (i + 1) * ps + 1;
          if (boundary == 1) {
            std::memcpy(row, first_plane + i * w, w * sizeof(float));
          } else {
            std::fill(row, row + w, 0.0f);
          }
        }
      }
      sync.arrive_and_wait();
      for (int64_t t = 0; t < c; ++t) {
        const int cur = t & 1;
        for (int64_t d = 0; d < nd; ++d) {
          const int64_t ch = sign[d] > 0 ? t : c - 1 - t;
          Step s;
          s.w = wdata + ((bi * c + t) * nd + d) * 27;
          s.b = bdata + ((bi * c + t) * nd + d) * 3;
          s.x = xb + ch * hw;
          s.y = ystate + (cur * nd + d) * plane;
          s.y_next = ystate + ((1 - cur) * nd + d) * plane;
          s.acc = yb + ch * hw;
          s.scale = scale;
          // Channel ch is reached by the forward chain at step ch and by the backward chain
          // at step C-1-ch; whichever comes first initialises its output plane (at the middle
          // channel of an odd C both come at once, and the forward chain goes first).
          const bool first = nd == 1 || (d == 0 ? t <= c - 1 - t : t < c - 1 - t);
          if (first) {
            step_rows<true>(s, h, w, r0, r1, ring);
          } else {
            step_rows<false>(s, h, w, r0, r1, ring);
          }
        }
        sync.arrive_and_wait();  // step t + 1 reads the neighbouring rows of step t
      }
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(threads - 1);
  for (int64_t tid = 1; tid < threads; ++tid) pool.emplace_back(worker, tid);
  worker(0);
  for (auto& th : pool) th.join();
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxvisionAccScan, AccScanImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int64_t>("directions")
                                  .Attr<int64_t>("boundary")
                                  .Attr<int64_t>("num_threads"));
