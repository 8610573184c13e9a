r"""PyTorch -> Flax weight conversion for the ResNet family (torchvision) and LinearityIQA.

No network access and no torch at import: the user supplies the ``.pth`` file (e.g.
torchvision's ImageNet ``resnext101_32x8d`` weights, or a checkpoint saved by the authors'
LinearityIQA code), :func:`load_torch_checkpoint` reads it with torch (imported lazily; the
extra ``pip install "jaxvision[torch]"``), and the converters map the plain ``{name: array}``
dict onto a jaxvision variable tree::

    model = create_model("resnext101_32x8d")
    target = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 224, 224, 3)))
    variables = convert_torchvision_resnet(load_torch_checkpoint("resnext101.pth"), target)

Layout changes: conv ``(O, I/groups, kH, kW) -> (kH, kW, I/groups, O)`` (HWIO); linear
``(out, in) -> (in, out)``; BatchNorm ``weight, bias, running_mean, running_var ->
params scale, bias`` and ``batch_stats mean, var``; ``num_batches_tracked`` is dropped.

Numerical equivalence (checked in ``tests/models/test_convert.py`` against torchvision in
eval mode to ~1e-5): the ResNet layout is torchvision's (v1.5 stride on the 3x3 conv,
explicit paddings, -inf max-pool padding, 1x1 projection shortcut exactly where torchvision
has ``downsample``), and BatchNorm conventions agree: eps ``1e-5`` on both sides and
PyTorch's ``momentum=0.1`` is Flax's ``momentum=0.9`` (the defaults of
:class:`~jaxvision.models.resnet.ResNet`). Two differences only affect *training*: PyTorch
updates ``running_var`` with the unbiased batch variance ``n/(n-1) * var`` while Flax uses
the biased one, and Flax computes the batch variance as ``E[x^2] - E[x]^2``; the normalised
outputs and the eval-mode function are the same.
"""

from __future__ import annotations

import os
import re
from typing import Any, Callable, Mapping

import jax
import numpy as np

#: torchvision BatchNorm entries -> (collection, Flax leaf name).
_BN = {"weight": ("params", "scale"), "bias": ("params", "bias"),
       "running_mean": ("batch_stats", "mean"), "running_var": ("batch_stats", "var")}
_IGNORED_SUFFIXES = ("num_batches_tracked",)
_BLOCK = re.compile(r"stage(\d+)_block(\d+)$")


def _conv(x):
  if x.ndim != 4:
    raise ValueError(f"expected a 4-D conv weight (O, I, kH, kW); found shape {x.shape}")
  return np.transpose(x, (2, 3, 1, 0))


def _dense(x):
  if x.ndim != 2:
    raise ValueError(f"expected a 2-D linear weight (out, in); found shape {x.shape}")
  return np.transpose(x)


def _same(x):
  return x


def _to_numpy(value) -> np.ndarray:
  """A torch tensor (any device, bf16 included) or array-like as a NumPy array."""
  if hasattr(value, "detach") and hasattr(value, "cpu"):
    value = value.detach().cpu()
    if str(value.dtype) in ("torch.bfloat16", "torch.float16"):
      value = value.float()
    return value.numpy()
  return np.asarray(value)


def _torch_bn(module: str, leaf: str, collection: str):
  for torch_leaf, (coll, flax_leaf) in _BN.items():
    if (coll, flax_leaf) == (collection, leaf):
      return f"{module}.{torch_leaf}", _same
  return None


def _resnet_torch_name(collection: str, path: tuple[str, ...]):
  """The torchvision key of a jaxvision ResNet leaf and its layout transform, or ``None``."""
  if len(path) == 2:
    module, leaf = path
    if module == "stem_conv" and (collection, leaf) == ("params", "kernel"):
      return "conv1.weight", _conv
    if module == "stem_bn":
      return _torch_bn("bn1", leaf, collection)
    if module == "head" and collection == "params":
      return {"kernel": ("fc.weight", _dense), "bias": ("fc.bias", _same)}.get(leaf)
    return None
  if len(path) == 3:
    block, module, leaf = path
    m = _BLOCK.match(block)
    if m is None:
      return None
    prefix = f"layer{int(m.group(1))}.{int(m.group(2)) - 1}"
    if module in ("conv1", "conv2", "conv3", "proj_conv"):
      if (collection, leaf) != ("params", "kernel"):
        return None
      name = "downsample.0" if module == "proj_conv" else module
      return f"{prefix}.{name}.weight", _conv
    if module in ("bn1", "bn2", "bn3", "proj_bn"):
      name = "downsample.1" if module == "proj_bn" else module
      return _torch_bn(f"{prefix}.{name}", leaf, collection)
  return None


def _flatten(tree, prefix=()):
  if isinstance(tree, Mapping):
    for key, value in tree.items():
      yield from _flatten(value, prefix + (str(key),))
  else:
    yield prefix, tree


def _unflatten(items) -> dict:
  out: dict = {}
  for path, value in items:
    node = out
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = value
  return out


def _convert(state_dict: Mapping[str, Any], target: Mapping[str, Any],
             torch_name: Callable, *, what: str, strict: bool,
             ignore: Callable[[str], bool] = lambda key: False) -> dict:
  """Maps ``state_dict`` onto the leaves of ``target`` through ``torch_name``."""
  if not isinstance(state_dict, Mapping):
    raise TypeError(f"{what}: `state_dict` must be a Mapping[str, array]; found "
                    f"{type(state_dict).__name__}.")
  if not isinstance(target, Mapping) or "params" not in target:
    raise TypeError(f"{what}: `target` must be the model's variables (e.g. jax.eval_shape("
                    f"model.init, ...)) with a 'params' collection; found "
                    f"{type(target).__name__} with keys {list(getattr(target, 'keys', list)())}.")
  extra_collections = sorted(set(target) - {"params", "batch_stats"})
  if extra_collections:
    raise ValueError(f"{what}: the target has collections {extra_collections} that torchvision "
                     f"checkpoints do not hold (only 'params' and 'batch_stats' are converted): "
                     f"convert a model without spectral-norm / whitening layers.")
  out, used, missing, unmapped, bad_shapes = [], set(), [], [], []
  for collection in ("params", "batch_stats"):
    for path, leaf in _flatten(target.get(collection, {})):
      mapped = torch_name(collection, path)
      flax_path = "/".join((collection,) + path)
      if mapped is None:
        unmapped.append(flax_path)
        continue
      key, transform = mapped
      if key not in state_dict:
        missing.append(f"{key} (for {flax_path})")
        continue
      used.add(key)
      raw = _to_numpy(state_dict[key])
      try:
        value = transform(raw)
      except ValueError as e:
        bad_shapes.append(f"{key} -> {flax_path}: {e}")
        continue
      if tuple(value.shape) != tuple(leaf.shape):
        bad_shapes.append(f"{key} -> {flax_path}: expected {tuple(leaf.shape)} (Flax layout), "
                          f"found torch shape {tuple(raw.shape)} -> {tuple(value.shape)}")
        continue
      out.append(((collection,) + path, np.asarray(value, dtype=leaf.dtype)))
  if unmapped:
    raise ValueError(f"{what}: {len(unmapped)} target variables have no torchvision "
                     f"equivalent: {unmapped[:10]}{' ...' if len(unmapped) > 10 else ''}")
  if bad_shapes:
    raise ValueError(f"{what}: {len(bad_shapes)} shape mismatches (is the checkpoint for this "
                     f"architecture?):\n  " + "\n  ".join(bad_shapes[:20]))
  if missing:
    raise KeyError(f"{what}: {len(missing)} keys missing from the state_dict: "
                   f"{missing[:20]}{' ...' if len(missing) > 20 else ''}")
  unexpected = sorted(k for k in state_dict if k not in used
                      and not k.endswith(_IGNORED_SUFFIXES) and not ignore(k))
  if unexpected and strict:
    raise KeyError(f"{what}: {len(unexpected)} unexpected keys in the state_dict (not used by "
                   f"the target model; pass strict=False to ignore them): "
                   f"{unexpected[:20]}{' ...' if len(unexpected) > 20 else ''}")
  result = _unflatten(out)
  result.setdefault("params", {})
  if "batch_stats" in target:
    result.setdefault("batch_stats", {})
  return result


def convert_torchvision_resnet(state_dict: Mapping[str, Any], target: Mapping[str, Any], *,
                               strict: bool = True) -> dict:
  """A torchvision ResNet / ResNeXt ``state_dict`` as jaxvision ResNet variables.

  Args:
    state_dict: ``{torch name: array-like}`` (torch tensors or NumPy arrays), e.g.
      ``"conv1.weight"``, ``"bn1.running_mean"``, ``"layer1.0.conv2.weight"``,
      ``"layer2.0.downsample.0.weight"``, ``"fc.weight"``.
    target: the jaxvision model's variables, abstract (``jax.eval_shape(model.init, ...)``)
      or concrete: every leaf's shape and dtype is checked against the converted array.
    strict: raise on keys of ``state_dict`` that the target does not use. ``fc.*`` is
      always ignored when the target has no head (``num_classes=None``: the classifier is
      removed), and ``*.num_batches_tracked`` always.

  Returns:
    ``{"params": ..., "batch_stats": ...}`` of NumPy arrays with the target's structure,
    shapes and dtypes.

  Raises:
    KeyError: a key the target needs is missing (the message names the torch key and the
      Flax path), or ``strict`` and there are unexpected keys.
    ValueError: a shape does not match (torch and Flax shapes named), or the target has
      variables with no torchvision equivalent (e.g. a spectral-norm stem).
  """
  has_head = "head" in target.get("params", {})
  return _convert(state_dict, target, _resnet_torch_name, what="convert_torchvision_resnet",
                  strict=strict, ignore=lambda k: not has_head and k.startswith("fc."))


def merge_variables(variables: Mapping[str, Any], sub_variables: Mapping[str, Any], *,
                    prefix: str = "backbone") -> dict:
  """``variables`` with its ``prefix`` subtree in every collection replaced by ``sub_variables``.

  Every leaf of ``sub_variables[c]`` must exist in ``variables[c][prefix]`` with the same
  shape (and vice versa); the result is a new dict (``variables`` is not modified).
  """
  out = {c: dict(v) if isinstance(v, Mapping) else v for c, v in variables.items()}
  for collection, subtree in sub_variables.items():
    if collection not in variables or prefix not in variables[collection]:
      raise KeyError(f"merge_variables: the model variables have no '{collection}/{prefix}' "
                     f"subtree; found collections {sorted(variables)} and "
                     f"{collection!r} keys {sorted(variables.get(collection, {}))}.")
    old = dict(_flatten(variables[collection][prefix]))
    new = dict(_flatten(subtree))
    if set(old) != set(new):
      only_old = sorted("/".join(p) for p in set(old) - set(new))[:10]
      only_new = sorted("/".join(p) for p in set(new) - set(old))[:10]
      raise KeyError(f"merge_variables: '{collection}/{prefix}' structure differs; missing "
                     f"{only_old}, unexpected {only_new}.")
    for path, value in new.items():
      if tuple(np.shape(value)) != tuple(old[path].shape):
        raise ValueError(f"merge_variables: '{collection}/{prefix}/{'/'.join(path)}': expected "
                         f"shape {tuple(old[path].shape)}, found {tuple(np.shape(value))}.")
    out[collection][prefix] = subtree
  return out


def convert_torchvision_backbone(state_dict: Mapping[str, Any], variables: Mapping[str, Any],
                                 *, prefix: str = "backbone", strict: bool = True) -> dict:
  """Loads a torchvision ResNet / ResNeXt checkpoint into the ``prefix`` backbone of a model.

  Args:
    state_dict: the torchvision ``state_dict`` (``fc.*`` is ignored: the backbone is headless).
    variables: the model's initialised variables (e.g. ``LinearityIQA``'s ``model.init``),
      whose ``params[prefix]`` / ``batch_stats[prefix]`` subtrees are a headless ResNet.
    prefix: the backbone submodule's name (``"backbone"`` in
      :class:`~jaxvision.models.linearity_iqa.LinearityIQA`).
    strict: see :func:`convert_torchvision_resnet`.

  Returns:
    ``variables`` with the backbone replaced and the other layers (the new heads) kept.
  """
  sub = {c: v[prefix] for c, v in variables.items()
         if isinstance(v, Mapping) and prefix in v}
  if "params" not in sub:
    raise KeyError(f"convert_torchvision_backbone: `variables['params']` has no {prefix!r} "
                   f"submodule; found {sorted(variables.get('params', {}))}.")
  target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), sub)
  converted = convert_torchvision_resnet(state_dict, target, strict=strict)
  return merge_variables(variables, converted, prefix=prefix)


def _linearity_iqa_torch_name(collection: str, path: tuple[str, ...]):
  """The key of a LinearityIQA leaf in the authors' ``IQAModel.state_dict()``."""
  if path[0] == "backbone":
    mapped = _resnet_torch_name(collection, path[1:])
    if mapped is None:
      return None
    key, transform = mapped
    # IQAModel.features = Sequential(conv1, bn1, relu, maxpool, layer1, ..., layer4).
    key = re.sub(r"^layer(\d)\.", lambda m: f"features.{int(m.group(1)) + 3}.", key)
    key = key.replace("conv1.", "features.0.", 1) if key.startswith("conv1.") else key
    key = key.replace("bn1.", "features.1.", 1) if key.startswith("bn1.") else key
    return key, transform
  module = path[0]
  level = {"encoder_conv4": "dr6", "encoder_conv5": "dr7"}
  if module in level and len(path) == 3:
    m = re.fullmatch(r"(dense|bn)(\d+)", path[1])
    if m is None:
      return None
    index = 2 * (int(m.group(2)) - 1) + (m.group(1) == "bn")
    if m.group(1) == "bn":
      return _torch_bn(f"{level[module]}.{index}", path[2], collection)
    return _linear(f"{level[module]}.{index}", path[2], collection)
  heads = {"aux_head_conv4": "regr6", "aux_head_conv5": "regr7", "head": "regression"}
  if len(path) == 2:
    for name, torch_name in heads.items():
      if module == name:  # use_bn_end=False: a bare Linear; True: Sequential(Linear, BN).
        return ("use_bn_end", torch_name, path[1], collection)
      if module == f"{name}_bn":
        return _torch_bn(f"{torch_name}.1", path[1], collection)
  return None


def _linear(module: str, leaf: str, collection: str):
  if collection != "params":
    return None
  return {"kernel": (f"{module}.weight", _dense), "bias": (f"{module}.bias", _same)}.get(leaf)


def convert_linearity_iqa_checkpoint(state_dict: Mapping[str, Any], target: Mapping[str, Any],
                                     *, strict: bool = True) -> dict:
  """A state_dict of the authors' PyTorch ``IQAModel`` (lidq92/LinearityIQA) as variables of
  :class:`~jaxvision.models.linearity_iqa.LinearityIQA`.

  The authors' names: ``features.{0,1,4..7}`` (conv1, bn1, layer1..layer4), ``dr6`` /
  ``dr7`` (the conv4 / conv5 encoders, ``Sequential(Linear, BN, Linear, BN, Linear, BN,
  ReLU)``), ``regr6`` / ``regr7`` (the auxiliary heads) and ``regression`` (the main head);
  with ``use_bn_end`` the heads are ``Sequential(Linear, BatchNorm1d)``. The target model
  must have ``levels=("conv4", "conv5")``, ``encoder_widths=(1024, 256, 64)`` and the
  checkpoint's backbone; a ``"module."`` prefix (``DataParallel``) is stripped.

  Args and errors: as :func:`convert_torchvision_resnet` (``target`` is the LinearityIQA
  variables, abstract or concrete).
  """
  state_dict = {(k[len("module."):] if k.startswith("module.") else k): v
                for k, v in state_dict.items()}
  bn_end = "head_bn" in target.get("params", {})

  def torch_name(collection, path):
    mapped = _linearity_iqa_torch_name(collection, path)
    if mapped is not None and mapped[0] == "use_bn_end":
      _, module, leaf, coll = mapped
      return _linear(f"{module}.0" if bn_end else module, leaf, coll)
    return mapped

  return _convert(state_dict, target, torch_name, what="convert_linearity_iqa_checkpoint",
                  strict=strict)


def load_torch_checkpoint(path: str | os.PathLike, *, key: str | None = None
                          ) -> dict[str, np.ndarray]:
  """Reads a PyTorch ``.pth`` / ``.pt`` file into ``{name: float NumPy array}``.

  Uses ``torch.load(path, map_location="cpu", weights_only=True)`` (no code from the file is
  executed). A checkpoint dict that wraps the weights (the authors' LinearityIQA checkpoints
  store them under ``"model"``; others under ``"state_dict"``) is unwrapped: ``key`` names
  the entry, ``None`` picks ``"state_dict"`` or ``"model"`` when the top level is not itself
  a state_dict. Non-tensor entries are dropped.

  Raises:
    ImportError: torch is not installed (``pip install "jaxvision[torch]"``).
    FileNotFoundError: ``path`` does not exist.
    KeyError: ``key`` is not in the checkpoint, or no state_dict is found in it.
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f"load_torch_checkpoint: no such file: {os.fspath(path)!r}.")
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ImportError('load_torch_checkpoint needs PyTorch to read .pth files: '
                      'pip install "jaxvision[torch]" (or pip install torch).') from e
  obj = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
  if not isinstance(obj, Mapping):
    raise KeyError(f"load_torch_checkpoint: {os.fspath(path)!r} holds a "
                   f"{type(obj).__name__}, not a state_dict mapping.")
  is_tensor = lambda v: isinstance(v, torch.Tensor)
  if key is not None:
    if key not in obj:
      raise KeyError(f"load_torch_checkpoint: key {key!r} not in {os.fspath(path)!r}; found "
                     f"{sorted(obj)[:20]}.")
    obj = obj[key]
  elif not any(is_tensor(v) for v in obj.values()):
    for candidate in ("state_dict", "model"):
      if isinstance(obj.get(candidate), Mapping):
        obj = obj[candidate]
        break
    else:
      raise KeyError(f"load_torch_checkpoint: no state_dict in {os.fspath(path)!r}: its top "
                     f"level has no tensors and no 'state_dict' / 'model' entry; found keys "
                     f"{sorted(obj)[:20]}; pass key=...")
  return {k: _to_numpy(v) for k, v in obj.items() if is_tensor(v)}


INIT_FORMATS = ("torchvision", "linearity_iqa")


def load_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """A ``{torch name: array}`` state_dict from a ``.pth``/``.pt`` (needs torch) or ``.npz``.

  ``.npz`` lets a machine without PyTorch load torchvision weights converted once elsewhere:
  ``np.savez(out, **{k: v.numpy() for k, v in torch.load(pth).items()})``.
  """
  path = os.fspath(path)
  if path.endswith(".npz"):
    if not os.path.isfile(path):
      raise FileNotFoundError(f"load_state_dict: no such file: {path!r}.")
    with np.load(path) as arrays:
      return {k: np.asarray(arrays[k]) for k in arrays.files}
  return load_torch_checkpoint(path)


def load_pretrained(variables: Mapping[str, Any], path: str | os.PathLike, *,
                    fmt: str = "torchvision", prefix: str = "backbone",
                    strict: bool = True) -> dict:
  """``variables`` with pretrained weights from ``path`` (the trainer's ``config.init``).

  Args:
    variables: the freshly initialised model variables (host or device arrays).
    path: a ``.pth``/``.pt``/``.npz`` state_dict (:func:`load_state_dict`).
    fmt: ``"torchvision"`` (an ImageNet ResNet/ResNeXt; loaded into the ``prefix``
      submodule, or the whole model when ``prefix`` is ``""``) or ``"linearity_iqa"`` (a
      checkpoint of the authors' LinearityIQA code, the whole model).
    prefix: the backbone submodule of ``variables`` (``"backbone"`` for LinearityIQA).
    strict: raise on unused checkpoint keys.
  """
  if fmt not in INIT_FORMATS:
    raise ValueError(f"load_pretrained: `fmt` must be one of {INIT_FORMATS}; found {fmt!r}.")
  state_dict = load_state_dict(path)
  variables = {c: v for c, v in variables.items()}
  if fmt == "linearity_iqa":
    return convert_linearity_iqa_checkpoint(state_dict, variables)
  if prefix:
    return convert_torchvision_backbone(state_dict, variables, prefix=prefix, strict=strict)
  return convert_torchvision_resnet(state_dict, variables, strict=strict)
