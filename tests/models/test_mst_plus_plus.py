"""MST++ (issue 7; spec spectral-transformer-ising Secs. 2, 7): counts, shapes, PyTorch port.

Parameter counts by ``jax.eval_shape`` (no compile); numerics on the one-stage
``mst_plus_plus_tiny`` at 8x8 / 13x11 with NumPy-drawn parameters (jit-compiling ``init``'s
RNG is the slow part on CPU), and the full three-stage model against a PyTorch
transcription of the release (``caiyuanhao1998/MST-plus-plus``
``architecture/MST_Plus_Plus.py``) when torch is installed.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxvision.models import MSTPlusPlus, create_model, list_models
from jaxvision.models.mst_plus_plus import convert_torch_mst_plus_plus, reflect_pad_to


def _count(tree):
  return sum(x.size for x in jax.tree.leaves(tree))


def _abstract(model, shape=(1, 16, 16, 3)):
  return jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros(shape)))


def _numpy_params(model, shape=(1, 8, 8, 3), seed=0):
  """Parameters of ``model.init``'s shapes drawn with NumPy (no compile): kernels
  ``N(0, 1/fan_in)``, biases ``N(0, 0.1^2)``, LayerNorm scales and ``rescale``
  ``1 + U(-.5, .5)``."""
  shapes = _abstract(model, shape)["params"]
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    name = path[-1].key
    if name == "kernel":
      fan_in = int(np.prod(leaf.shape[:-1]))
      return (rng.normal(size=leaf.shape) / np.sqrt(fan_in)).astype(np.float32)
    if name in ("scale", "rescale"):
      return (1 + rng.uniform(-0.5, 0.5, size=leaf.shape)).astype(np.float32)
    return (0.1 * rng.normal(size=leaf.shape)).astype(np.float32)

  return {"params": jax.tree_util.tree_map_with_path(draw, shapes)}


def _msab(c, heads):
  """MS_MSA (4 C^2 + 19 C + heads) + LayerNorm (2 C) + FeedForward (8 C^2 + 36 C)."""
  return 12 * c * c + 57 * c + heads


def _expected_mst(c=31):
  enc = _msab(c, 1) + c * 2 * c * 16 + _msab(2 * c, 2) + 2 * c * 4 * c * 16
  dec = (4 * c * 2 * c * 4 + 2 * c) + 4 * c * 2 * c + _msab(2 * c, 2) + (
      2 * c * c * 4 + c) + 2 * c * c + _msab(c, 1)
  return 2 * 9 * c * c + enc + _msab(4 * c, 4) + dec


def test_parameter_count_is_the_papers_1_62m():
  variables = _abstract(create_model("mst_plus_plus"))
  assert set(variables) == {"params"}                      # no BatchNorm statistics
  p = variables["params"]
  assert _count(p) == 1_619_625 == 3 * _expected_mst() + 3 * 31 * 9 + 31 * 31 * 9
  assert _expected_mst() == 536_713 and _count(p["body_0"]) == 536_713
  assert set(p) == {"conv_in", "body_0", "body_1", "body_2", "conv_out"}
  # Bias choices of the release: only the MS_MSA proj and the transposed convs have biases.
  biased = {"/".join(str(k.key) for k in path[:-1])
            for path, _ in jax.tree_util.tree_leaves_with_path(p) if path[-1].key == "bias"}
  assert all(b.endswith("attn/proj") or b.endswith("_norm") or b.endswith("_up")
             for b in biased), biased
  assert sum(b.endswith("_up") for b in biased) == 6 and sum(
      b.endswith("attn/proj") for b in biased) == 15
  mst = p["body_0"]
  assert mst["encoder_0_msab"]["blocks_0_attn"]["rescale"].shape == (1,)
  assert mst["bottleneck"]["blocks_0_attn"]["rescale"].shape == (4,)   # heads = 124 / 31
  assert mst["decoder_0_up"]["kernel"].shape == (2, 2, 124, 62)
  assert mst["encoder_1_down"]["kernel"].shape == (4, 4, 62, 124)


def test_tiny_and_registered_names():
  assert {"mst_plus_plus", "mst_plus_plus_tiny"} <= set(list_models())
  tiny = create_model("mst_plus_plus_tiny")
  assert tiny.stage == 1 and tiny.n_feat == 31
  assert _count(_abstract(tiny)["params"]) == 546_199 == _expected_mst() + 837 + 8649
  two = MSTPlusPlus(num_blocks=(1, 2, 1), stage=1)   # one more MSAB at 62 in enc and dec
  assert _count(_abstract(two)["params"]) == 546_199 + 2 * _msab(62, 2)


@pytest.mark.parametrize("hw", [(13, 11), (8, 8), (17, 24), (3, 5)])
def test_output_shapes_any_size(hw):
  model = create_model("mst_plus_plus")
  x = jax.ShapeDtypeStruct((2,) + hw + (3,), jnp.float32)
  out = jax.eval_shape(functools.partial(model.apply, train=False), _abstract(model), x)
  assert out.shape == (2,) + hw + (31,) and out.dtype == jnp.float32


@pytest.fixture(scope="module")
def tiny():
  model = create_model("mst_plus_plus_tiny")
  variables = _numpy_params(model)
  return model, variables, jax.jit(model.apply)


def test_reflect_padding_and_crop_back(tiny):
  model, variables, apply = tiny
  x = jax.random.uniform(jax.random.PRNGKey(1), (2, 13, 11, 3))
  out = apply(variables, x)
  assert out.shape == (2, 13, 11, 31) and bool(jnp.all(jnp.isfinite(out)))
  padded = reflect_pad_to(x, 8)
  assert padded.shape == (2, 16, 16, 3)
  # Reflection without edge repetition (PyTorch's mode="reflect"): row 13 is row 11.
  np.testing.assert_array_equal(padded[:, 13, :11], x[:, 11])
  np.testing.assert_array_equal(padded[:, 15, :11], x[:, 9])
  np.testing.assert_array_equal(padded[:, :13, 11], x[:, :, 9])
  np.testing.assert_allclose(apply(variables, padded)[:, :13, :11], out, rtol=1e-5, atol=1e-5)
  assert reflect_pad_to(padded, 8) is padded


def test_outer_residual_and_jit_gradients(tiny):
  model, variables, apply = tiny
  x = jax.random.uniform(jax.random.PRNGKey(2), (2, 16, 16, 3))   # the shape compiled above
  # conv_out = 0 leaves exactly the conv_in features (the release's `h += x`).
  zeroed = jax.tree.map(lambda a: a, variables)
  zeroed["params"]["conv_out"]["kernel"] = jnp.zeros_like(zeroed["params"]["conv_out"]["kernel"])
  conv_in = jax.lax.conv_general_dilated(
      x, variables["params"]["conv_in"]["kernel"], (1, 1), ((1, 1), (1, 1)),
      dimension_numbers=("NHWC", "HWIO", "NHWC"))
  np.testing.assert_allclose(apply(zeroed, x), conv_in, rtol=1e-5, atol=1e-6)

  # Gradients (a one-level MST keeps the CPU compile short).
  small = MSTPlusPlus(stage=1, mst_stage=1, num_blocks=(1, 1))
  params = _numpy_params(small)["params"]

  def loss(params, x):
    return jnp.mean(jnp.abs(small.apply({"params": params}, x, train=True) - 0.5))

  g, gx = jax.jit(jax.grad(loss, argnums=(0, 1)))(params, x[:1, :7, :6])
  assert all(bool(jnp.all(jnp.isfinite(a))) for a in jax.tree.leaves((g, gx)))
  assert float(jnp.abs(g["body_0"]["bottleneck"]["blocks_0_attn"]["rescale"]).sum()) > 0
  assert float(jnp.abs(gx).sum()) > 0


def test_errors_name_the_argument():
  x = jnp.zeros((1, 8, 8, 4))
  with pytest.raises(ValueError, match=r"NHWC \(batch, height, width, 3\).*\(1, 8, 8, 4\)"):
    jax.eval_shape(MSTPlusPlus().init, jax.random.PRNGKey(0), x)
  with pytest.raises(ValueError, match="out_channels.*n_feat.*out_channels=30, n_feat=31"):
    jax.eval_shape(MSTPlusPlus(out_channels=30).init, jax.random.PRNGKey(0),
                   jnp.zeros((1, 8, 8, 3)))
  with pytest.raises(ValueError, match="pad_multiple.*2\\^mst_stage = 4; found 6"):
    jax.eval_shape(MSTPlusPlus(pad_multiple=6).init, jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 3)))
  with pytest.raises(ValueError, match="num_blocks.*3 entries"):
    jax.eval_shape(MSTPlusPlus(num_blocks=(1, 1)).init, jax.random.PRNGKey(0),
                   jnp.zeros((1, 8, 8, 3)))
  with pytest.raises(TypeError, match="floating"):
    jax.eval_shape(MSTPlusPlus().init, jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 3), jnp.int32))
  with pytest.raises(KeyError, match="unexpected state_dict entry 'body.0.foo.weight'"):
    convert_torch_mst_plus_plus({"body.0.foo.weight": np.zeros((1,))})


# ------------------------------------------------------------------------------------------
# PyTorch transcription of the release (same module names, hence the same state_dict keys).


def _torch_mst_plus_plus(torch, stage=3):
  nn, F = torch.nn, torch.nn.functional

  class MSMSA(nn.Module):
    def __init__(self, dim, dim_head, heads):
      super().__init__()
      self.heads, self.dim_head = heads, dim_head
      self.to_q = nn.Linear(dim, dim_head * heads, bias=False)
      self.to_k = nn.Linear(dim, dim_head * heads, bias=False)
      self.to_v = nn.Linear(dim, dim_head * heads, bias=False)
      self.rescale = nn.Parameter(torch.ones(heads, 1, 1))
      self.proj = nn.Linear(dim_head * heads, dim, bias=True)
      self.pos_emb = nn.Sequential(nn.Conv2d(dim, dim, 3, 1, 1, bias=False, groups=dim),
                                   nn.GELU(), nn.Conv2d(dim, dim, 3, 1, 1, bias=False, groups=dim))

    def forward(self, x_in):                      # (b, h, w, c)
      b, h, w, c = x_in.shape
      x = x_in.reshape(b, h * w, c)
      q_inp, k_inp, v_inp = self.to_q(x), self.to_k(x), self.to_v(x)
      q, k, v = (t.reshape(b, h * w, self.heads, self.dim_head).permute(0, 2, 3, 1)
                 for t in (q_inp, k_inp, v_inp))  # (b, heads, d, hw)
      q, k = F.normalize(q, dim=-1, p=2), F.normalize(k, dim=-1, p=2)
      attn = ((k @ q.transpose(-2, -1)) * self.rescale).softmax(dim=-1)
      x = (attn @ v).permute(0, 3, 1, 2).reshape(b, h * w, self.heads * self.dim_head)
      out_c = self.proj(x).view(b, h, w, c)
      out_p = self.pos_emb(v_inp.reshape(b, h, w, c).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
      return out_c + out_p

  class FeedForward(nn.Module):
    def __init__(self, dim, mult=4):
      super().__init__()
      self.net = nn.Sequential(
          nn.Conv2d(dim, dim * mult, 1, 1, bias=False), nn.GELU(),
          nn.Conv2d(dim * mult, dim * mult, 3, 1, 1, bias=False, groups=dim * mult), nn.GELU(),
          nn.Conv2d(dim * mult, dim, 1, 1, bias=False))

    def forward(self, x):
      return self.net(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)

  class PreNorm(nn.Module):
    def __init__(self, dim, fn):
      super().__init__()
      self.fn, self.norm = fn, nn.LayerNorm(dim)

    def forward(self, x):
      return self.fn(self.norm(x))

  class MSAB(nn.Module):
    def __init__(self, dim, dim_head, heads, num_blocks):
      super().__init__()
      self.blocks = nn.ModuleList([nn.ModuleList([
          MSMSA(dim, dim_head, heads), PreNorm(dim, FeedForward(dim))])
          for _ in range(num_blocks)])

    def forward(self, x):
      x = x.permute(0, 2, 3, 1)
      for attn, ff in self.blocks:
        x = attn(x) + x
        x = ff(x) + x
      return x.permute(0, 3, 1, 2)

  class MST(nn.Module):
    def __init__(self, dim=31, stage=2, num_blocks=(1, 1, 1)):
      super().__init__()
      self.stage = stage
      self.embedding = nn.Conv2d(dim, dim, 3, 1, 1, bias=False)
      self.encoder_layers = nn.ModuleList([])
      d = dim
      for i in range(stage):
        self.encoder_layers.append(nn.ModuleList([
            MSAB(d, dim, d // dim, num_blocks[i]), nn.Conv2d(d, d * 2, 4, 2, 1, bias=False)]))
        d *= 2
      self.bottleneck = MSAB(d, dim, d // dim, num_blocks[-1])
      self.decoder_layers = nn.ModuleList([])
      for i in range(stage):
        self.decoder_layers.append(nn.ModuleList([
            nn.ConvTranspose2d(d, d // 2, stride=2, kernel_size=2, padding=0, output_padding=0),
            nn.Conv2d(d, d // 2, 1, 1, bias=False),
            MSAB(d // 2, dim, (d // 2) // dim, num_blocks[stage - 1 - i])]))
        d //= 2
      self.mapping = nn.Conv2d(dim, dim, 3, 1, 1, bias=False)

    def forward(self, x):
      fea, skips = self.embedding(x), []
      for msab, down in self.encoder_layers:
        fea = msab(fea)
        skips.append(fea)
        fea = down(fea)
      fea = self.bottleneck(fea)
      for i, (up, fusion, msab) in enumerate(self.decoder_layers):
        fea = msab(fusion(torch.cat([up(fea), skips[self.stage - 1 - i]], dim=1)))
      return self.mapping(fea) + x

  class MSTPlusPlusTorch(nn.Module):
    def __init__(self):
      super().__init__()
      self.conv_in = nn.Conv2d(3, 31, 3, padding=1, bias=False)
      self.body = nn.Sequential(*[MST(31, 2, (1, 1, 1)) for _ in range(stage)])
      self.conv_out = nn.Conv2d(31, 31, 3, padding=1, bias=False)

    def forward(self, x):
      _, _, h_inp, w_inp = x.shape
      pad_h, pad_w = (8 - h_inp % 8) % 8, (8 - w_inp % 8) % 8
      x = self.conv_in(F.pad(x, [0, pad_w, 0, pad_h], mode="reflect"))
      h = self.conv_out(self.body(x)) + x
      return h[:, :, :h_inp, :w_inp]

  return MSTPlusPlusTorch()


def test_matches_a_pytorch_transcription_of_the_release():
  torch = pytest.importorskip("torch")
  torch.manual_seed(0)
  net = _torch_mst_plus_plus(torch).eval()
  with torch.no_grad():  # exercise rescale, LayerNorm and biases away from their init
    for name, p in net.named_parameters():
      if name.endswith("rescale") or name.endswith("norm.weight"):
        p.uniform_(0.5, 1.5)
      elif name.endswith("bias"):
        p.normal_(0.0, 0.1)
  state = {"module." + k: v for k, v in net.state_dict().items()}   # as in the checkpoints
  assert sum(v.numel() for v in net.parameters()) == 1_619_625
  variables = convert_torch_mst_plus_plus(state)
  model = create_model("mst_plus_plus")
  shapes = _abstract(model)
  assert jax.tree.structure(variables) == jax.tree.structure(shapes)
  assert all(a.shape == b.shape for a, b in zip(jax.tree.leaves(variables),
                                                jax.tree.leaves(shapes)))
  x = np.random.default_rng(0).uniform(size=(2, 13, 11, 3)).astype(np.float32)
  with torch.no_grad():
    ref = net(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy().transpose(0, 2, 3, 1)
  out = jax.jit(model.apply)(variables, x)
  assert out.shape == ref.shape == (2, 13, 11, 31)
  np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
