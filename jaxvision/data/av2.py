"""Argoverse 2 motion forecasting, read from a user's local copy, as padded scene batches.

The AV2 motion-forecasting dataset (250k 11 s scenarios at 10 Hz: 200k train, 25k val,
25k test) cannot be downloaded here; this module reads a copy the user already has::

  <data_dir>/<split>/<scenario_id>/scenario_<scenario_id>.parquet
  <data_dir>/<split>/<scenario_id>/log_map_archive_<scenario_id>.json

with ``split`` one of ``train``, ``val``, ``test``. The parquet file is the table written
by ``av2.datasets.motion_forecasting.scenario_serialization``: one row per (track,
timestep) with the columns ``observed`` (bool), ``track_id`` (str), ``object_type`` (str, one
of :data:`AV2_OBJECT_TYPES`), ``object_category`` (int, :data:`AV2_TRACK_CATEGORIES`),
``timestep`` (int in ``[0, num_timestamps)``), ``position_x``, ``position_y``, ``heading``,
``velocity_x``, ``velocity_y`` (float, city frame, metres, radians, m/s) and the
per-scenario constants ``scenario_id``, ``start_timestamp``, ``end_timestamp``,
``num_timestamps``, ``focal_track_id`` and ``city``. The map JSON (``ArgoverseStaticMap``)
holds ``lane_segments`` (id -> ``{"id", "lane_type", "is_intersection",
"left_lane_boundary", "right_lane_boundary", "left_lane_mark_type", "right_lane_mark_type",
"predecessors", "successors", "left_neighbor_id", "right_neighbor_id"}``, boundaries being
lists of ``{"x", "y", "z"}``), ``drivable_areas`` and ``pedestrian_crossings`` (id ->
``{"id", "edge1", "edge2"}``).

Each scenario becomes one example in the *scene batch* format shared with the synthetic
scenes (:mod:`jaxvision.data.scenes`), all arrays padded and float32/int32
(:data:`SCENE_FIELDS`):

* agents: the focal track first, then the scored tracks, then the others by distance to the
  focal agent at the current step, up to ``max_agents``. Tracks never observed in the
  history window are dropped (there is nothing to condition on).
* time: ``history_steps + future_steps`` frames ending ``future_steps`` after AV2's current
  step 49, so the current time is index ``history_steps - 1`` (AV2: H = 50, F = 60, the
  whole 110-step scenario). AV2's test split has no future: those frames are invalid.
* map: each lane's centreline is the mean of its left and right boundaries, both resampled
  to the same number of points equally spaced in arc length; pedestrian crossings give the
  mean of their two edges. Centrelines are cut into pieces of at most
  ``max_segment_length`` (5 m) and the ``max_segments`` pieces nearest to the focal agent's
  current position are kept, nearest first.
* ``agent_predict`` marks the focal and scored tracks observed at the current step (the
  targets of AV2's single- and multi-agent challenges).

This module also holds what the two scene sources share: the AV2 taxonomies, the field list
and the polyline helpers. Parsing needs ``pyarrow`` (imported when a file is read).
"""

from __future__ import annotations

import json
import math
import os

import numpy as np

from jaxvision.data.registry import register_dataset
from jaxvision.data.sources import Batch, DatasetInfo

# AV2 ``ObjectType`` values, in the order of the enum (the index is ``agent_type``).
AV2_OBJECT_TYPES = ("vehicle", "pedestrian", "motorcyclist", "cyclist", "bus", "static",
                    "background", "construction", "riderless_bicycle", "unknown")
# Map-segment types (``map_type``): AV2 ``LaneType`` values, then pedestrian crossings.
AV2_MAP_TYPES = ("VEHICLE", "BIKE", "BUS", "PEDESTRIAN")
# AV2 ``TrackCategory`` values (the integer in ``object_category`` is the index).
AV2_TRACK_CATEGORIES = ("TRACK_FRAGMENT", "UNSCORED_TRACK", "SCORED_TRACK", "FOCAL_TRACK")
SCORED_TRACK = AV2_TRACK_CATEGORIES.index("SCORED_TRACK")

AV2_SPLITS = ("train", "val", "test")
AV2_HISTORY_STEPS = 50
AV2_FUTURE_STEPS = 60
AV2_CURRENT_STEP = AV2_HISTORY_STEPS - 1
MAX_SEGMENT_LENGTH = 5.0
MIN_CENTERLINE_POINTS = 10  # as av2's compute_midpoint_line default

# name -> (dtype, symbolic shape of one example); A agents, T steps, M map segments.
SCENE_FIELDS = {
    "agent_position": (np.float32, ("A", "T", 2)),
    "agent_heading": (np.float32, ("A", "T")),
    "agent_velocity": (np.float32, ("A", "T", 2)),
    "agent_valid": (np.float32, ("A", "T")),
    "agent_type": (np.int32, ("A",)),
    "agent_mask": (np.float32, ("A",)),
    "agent_predict": (np.float32, ("A",)),
    "map_start": (np.float32, ("M", 2)),
    "map_end": (np.float32, ("M", 2)),
    "map_type": (np.int32, ("M",)),
    "map_mask": (np.float32, ("M",)),
}

LAYOUT = ("<data_dir>/<split>/<scenario_id>/scenario_<scenario_id>.parquet and "
          "<data_dir>/<split>/<scenario_id>/log_map_archive_<scenario_id>.json, split in "
          f"{AV2_SPLITS}")


def empty_scene_batch(n: int, max_agents: int, num_steps: int, max_segments: int) -> Batch:
  """Zero-filled scene batch: every field of :data:`SCENE_FIELDS` with a leading ``n``."""
  sizes = {"A": max_agents, "T": num_steps, "M": max_segments}
  return {name: np.zeros((n,) + tuple(sizes.get(d, d) for d in shape), dtype)
          for name, (dtype, shape) in SCENE_FIELDS.items()}


def check_scene_sizes(name: str, max_agents: int, max_segments: int, history_steps: int,
                      future_steps: int):
  """Raises ``ValueError`` naming the first size argument that is out of range."""
  for arg, value, low in (("max_agents", max_agents, 1), ("max_segments", max_segments, 1),
                          ("history_steps", history_steps, 1), ("future_steps", future_steps, 1)):
    if not isinstance(value, (int, np.integer)) or value < low:
      raise ValueError(f"{name}: `{arg}` must be an int >= {low}; found {value!r}.")


# ------------------------------------------------------------------------------------------
# Polylines (numpy float64).


def resample_polyline(points: np.ndarray, num: int) -> np.ndarray:
  """``num`` points equally spaced in arc length along a polyline, endpoints included.

  Args:
    points: float ``(P, 2)``, ``P >= 1``.
    num: number of output points, ``>= 2``.

  Returns:
    float64 ``(num, 2)``; a zero-length polyline gives ``num`` copies of its first point.
  """
  points = np.asarray(points, np.float64)
  step = points[1:] - points[:-1]
  cum = np.concatenate([[0.0], np.cumsum(np.hypot(step[:, 0], step[:, 1]))])
  if cum[-1] <= 0.0:
    return np.repeat(points[:1], num, axis=0)
  target = np.linspace(0.0, cum[-1], num)
  return np.stack([np.interp(target, cum, points[:, 0]), np.interp(target, cum, points[:, 1])],
                  axis=-1)


def polyline_length(points: np.ndarray) -> float:
  """Arc length of a ``(P, 2)`` polyline."""
  step = np.diff(np.asarray(points, np.float64), axis=0)
  return float(np.hypot(step[:, 0], step[:, 1]).sum())


def polyline_to_segments(points: np.ndarray, max_length: float = MAX_SEGMENT_LENGTH
                         ) -> tuple[np.ndarray, np.ndarray]:
  """Cuts a polyline into ``ceil(length / max_length)`` pieces of equal arc length.

  Each piece is replaced by its chord, so every segment is at most ``max_length`` long.

  Args:
    points: float ``(P, 2)``.
    max_length: longest allowed piece (metres).

  Returns:
    ``(starts, ends)``, float64 ``(S, 2)`` each, ``S >= 1``, in polyline order.
  """
  pieces = max(1, math.ceil(polyline_length(points) / max_length - 1e-9))
  knots = resample_polyline(points, pieces + 1)
  return knots[:-1], knots[1:]


def cut_polylines(polylines: list[tuple[np.ndarray, int]], max_length: float = MAX_SEGMENT_LENGTH
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """Cuts typed polylines into map segments (:func:`polyline_to_segments` on each).

  Args:
    polylines: ``[(points float (P, 2), map type index)]``, at least one.
    max_length: longest segment (metres).

  Returns:
    ``(starts, ends, types, owner)``: float64 ``(S, 2)`` twice, int32 ``(S,)`` type indices
    and int64 ``(S,)`` the index of the polyline each segment comes from.
  """
  pieces = [polyline_to_segments(points, max_length) for points, _ in polylines]
  counts = [len(s) for s, _ in pieces]
  types = np.repeat(np.array([t for _, t in polylines], np.int32), counts)
  owner = np.repeat(np.arange(len(pieces)), counts)
  return (np.concatenate([s for s, _ in pieces]), np.concatenate([e for _, e in pieces]), types,
          owner)


def set_map_fields(example: Batch, starts: np.ndarray, ends: np.ndarray, types: np.ndarray):
  """Writes the first ``len(starts)`` map slots of an unbatched padded example in place."""
  m = len(starts)
  example["map_start"][:m] = starts
  example["map_end"][:m] = ends
  example["map_type"][:m] = types
  example["map_mask"][:m] = 1.0


def point_segment_distance(points: np.ndarray, starts: np.ndarray, ends: np.ndarray
                           ) -> np.ndarray:
  """Euclidean distance from each point to each line segment.

  Args:
    points: float ``(P, 2)``.
    starts, ends: float ``(S, 2)`` segment endpoints.

  Returns:
    float64 ``(P, S)``.
  """
  p = np.asarray(points, np.float64)
  a = np.asarray(starts, np.float64)
  d = np.asarray(ends, np.float64) - a
  px, py = p[:, 0, None] - a[None, :, 0], p[:, 1, None] - a[None, :, 1]
  t = np.clip((px * d[:, 0] + py * d[:, 1]) / np.maximum(np.sum(d * d, -1), 1e-12), 0.0, 1.0)
  return np.hypot(px - t * d[:, 0], py - t * d[:, 1])


def lane_centerline(left: np.ndarray, right: np.ndarray) -> np.ndarray:
  """Centreline of a lane: the mean of its boundaries resampled to a common point count.

  Both boundaries are resampled to ``max(len(left), len(right), 10)`` points equally spaced
  in arc length (av2's ``compute_midpoint_line`` convention), then averaged.

  Args:
    left, right: float ``(P, 2)`` and ``(Q, 2)`` boundary polylines, same direction.

  Returns:
    float64 ``(max(P, Q, 10), 2)``.
  """
  num = max(len(left), len(right), MIN_CENTERLINE_POINTS)
  return 0.5 * (resample_polyline(left, num) + resample_polyline(right, num))


# ------------------------------------------------------------------------------------------
# Parsing.

_NUMERIC_COLUMNS = ("position_x", "position_y", "heading", "velocity_x", "velocity_y")
_INTEGER_COLUMNS = ("timestep", "object_category")
_STRING_COLUMNS = ("track_id", "object_type", "focal_track_id")
REQUIRED_COLUMNS = _STRING_COLUMNS + _INTEGER_COLUMNS + _NUMERIC_COLUMNS


def _import_pyarrow():
  try:
    import pyarrow
    import pyarrow.parquet
  except ImportError as e:
    raise ImportError("reading Argoverse 2 scenarios needs pyarrow: pip install pyarrow") from e
  return pyarrow


def read_scenario_table(path: str) -> dict[str, np.ndarray]:
  """Reads the columns of an AV2 scenario parquet file that the converter uses.

  Args:
    path: a ``scenario_<id>.parquet`` file.

  Returns:
    ``{column: numpy array (rows,)}`` for :data:`REQUIRED_COLUMNS`: strings as object
    arrays, ``timestep``/``object_category`` int64, the rest float64.

  Raises:
    FileNotFoundError: the file is missing.
    ValueError: a required column is missing, has the wrong type or holds nulls (the message
      names the file and the column).
  """
  pa = _import_pyarrow()
  if not os.path.isfile(path):
    raise FileNotFoundError(f"Argoverse 2 scenario file {path} is missing (expected layout: "
                            f"{LAYOUT}).")
  try:
    table = pa.parquet.read_table(path)
  except (pa.ArrowException, OSError) as e:
    raise ValueError(f"{path}: not a readable parquet file: {e}") from None
  missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
  if missing:
    raise ValueError(f"{path}: missing column(s) {missing}; an AV2 scenario table has "
                     f"{list(REQUIRED_COLUMNS)} (found {table.column_names}).")
  checks = ([(c, pa.types.is_floating, "floating point") for c in _NUMERIC_COLUMNS]
            + [(c, pa.types.is_integer, "integer") for c in _INTEGER_COLUMNS]
            + [(c, lambda t: pa.types.is_string(t) or pa.types.is_large_string(t), "string")
               for c in _STRING_COLUMNS])
  out = {}
  for name, ok, kind in checks:
    column = table.column(name)
    if pa.types.is_dictionary(column.type):
      column = column.cast(column.type.value_type)
    if not ok(column.type):
      raise ValueError(f"{path}: column {name!r} must be {kind}; found type {column.type}.")
    if column.null_count:
      raise ValueError(f"{path}: column {name!r} has {column.null_count} null value(s).")
    values = column.to_numpy()
    out[name] = values.astype(object if kind == "string" else
                              np.int64 if kind == "integer" else np.float64)
  return out


def _polyline_xy(path: str, where: str, waypoints) -> np.ndarray:
  try:
    xy = np.array([[float(p["x"]), float(p["y"])] for p in waypoints], np.float64)
  except (TypeError, KeyError, ValueError) as e:
    raise ValueError(f"{path}: {where} must be a list of {{'x', 'y', 'z'}} waypoints; "
                     f"found {str(waypoints)[:80]!r} ({type(e).__name__}: {e}).") from None
  if len(xy) == 0:
    raise ValueError(f"{path}: {where} has no waypoints.")
  return xy


def read_map_polylines(path: str) -> list[tuple[np.ndarray, int]]:
  """Lane and crosswalk centrelines of an AV2 map JSON.

  Args:
    path: a ``log_map_archive_<id>.json`` file.

  Returns:
    ``[(centerline float64 (P, 2), map type index into AV2_MAP_TYPES)]``: lane segments in
    sorted id order (``lane_type`` VEHICLE/BIKE/BUS), then pedestrian crossings (PEDESTRIAN).

  Raises:
    FileNotFoundError: the map file is missing.
    ValueError: malformed JSON or a missing/ill-typed key (the message names file and key).
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f"Argoverse 2 map file {path} is missing (expected layout: "
                            f"{LAYOUT}).")
  try:
    with open(path) as f:
      data = json.load(f)
  except json.JSONDecodeError as e:
    raise ValueError(f"{path}: not valid JSON: {e}") from None
  if not isinstance(data, dict) or not isinstance(data.get("lane_segments"), dict):
    raise ValueError(f"{path}: an AV2 map needs a 'lane_segments' object (id -> lane "
                     f"segment); found keys {sorted(data) if isinstance(data, dict) else data}.")
  out = []
  lanes = data["lane_segments"]
  for key in sorted(lanes, key=lambda k: (len(str(k)), str(k))):
    lane = lanes[key]
    where = f"lane_segments[{key!r}]"
    for field in ("lane_type", "left_lane_boundary", "right_lane_boundary"):
      if not isinstance(lane, dict) or field not in lane:
        raise ValueError(f"{path}: {where} has no {field!r}.")
    if lane["lane_type"] not in AV2_MAP_TYPES[:3]:
      raise ValueError(f"{path}: {where}['lane_type'] must be one of {AV2_MAP_TYPES[:3]}; "
                       f"found {lane['lane_type']!r}.")
    left = _polyline_xy(path, f"{where}['left_lane_boundary']", lane["left_lane_boundary"])
    right = _polyline_xy(path, f"{where}['right_lane_boundary']", lane["right_lane_boundary"])
    out.append((lane_centerline(left, right), AV2_MAP_TYPES.index(lane["lane_type"])))
  crossings = data.get("pedestrian_crossings") or {}
  if not isinstance(crossings, dict):
    raise ValueError(f"{path}: 'pedestrian_crossings' must be an object (id -> crossing); "
                     f"found {type(crossings).__name__}.")
  for key in sorted(crossings, key=lambda k: (len(str(k)), str(k))):
    crossing, where = crossings[key], f"pedestrian_crossings[{key!r}]"
    if not isinstance(crossing, dict) or "edge1" not in crossing or "edge2" not in crossing:
      raise ValueError(f"{path}: {where} needs 'edge1' and 'edge2'.")
    e1 = _polyline_xy(path, f"{where}['edge1']", crossing["edge1"])
    e2 = _polyline_xy(path, f"{where}['edge2']", crossing["edge2"])
    if np.dot(e1[-1] - e1[0], e2[-1] - e2[0]) < 0:  # edges nominally parallel; align them
      e2 = e2[::-1]
    out.append((lane_centerline(e1, e2), AV2_MAP_TYPES.index("PEDESTRIAN")))
  return out


def convert_scenario(columns: dict[str, np.ndarray], polylines: list[tuple[np.ndarray, int]], *,
                     max_agents: int, max_segments: int, history_steps: int, future_steps: int,
                     source: str = "scenario") -> Batch:
  """Converts one parsed scenario to an (unbatched) padded scene example.

  Args:
    columns: output of :func:`read_scenario_table`.
    polylines: output of :func:`read_map_polylines`.
    max_agents, max_segments: padded sizes A and M.
    history_steps, future_steps: H <= 50 and F <= 60; frames are AV2 steps
      ``[50 - H, 50 + F)``.
    source: file name used in error messages.

  Returns:
    ``{field: array}`` with the shapes of :data:`SCENE_FIELDS` (no batch axis).
  """
  H, T = history_steps, history_steps + future_steps
  out = {k: v[0] for k, v in empty_scene_batch(1, max_agents, T, max_segments).items()}
  track_ids, inverse = np.unique(columns["track_id"], return_inverse=True)
  focal_id = columns["focal_track_id"][0]
  if focal_id not in track_ids:
    raise ValueError(f"{source}: focal_track_id {focal_id!r} is not among the track_id "
                     f"values.")
  type_index = {name: i for i, name in enumerate(AV2_OBJECT_TYPES)}
  bad = sorted(set(columns["object_type"]) - set(type_index))
  if bad:
    raise ValueError(f"{source}: column 'object_type' has unknown value(s) {bad}; expected "
                     f"{AV2_OBJECT_TYPES}.")
  n = len(track_ids)
  step = columns["timestep"] - (AV2_CURRENT_STEP - (H - 1))
  rows = np.flatnonzero((step >= 0) & (step < T))
  pos = np.zeros((n, T, 2))
  pos[inverse[rows], step[rows]] = np.stack([columns["position_x"][rows],
                                             columns["position_y"][rows]], -1)
  vel = np.zeros((n, T, 2))
  vel[inverse[rows], step[rows]] = np.stack([columns["velocity_x"][rows],
                                             columns["velocity_y"][rows]], -1)
  heading = np.zeros((n, T))
  heading[inverse[rows], step[rows]] = columns["heading"][rows]
  valid = np.zeros((n, T), bool)
  valid[inverse[rows], step[rows]] = True
  types = np.zeros(n, np.int32)
  types[inverse] = [type_index[t] for t in columns["object_type"]]
  category = np.zeros(n, np.int64)
  np.maximum.at(category, inverse, columns["object_category"])

  hist = valid[:, :H]
  focal = int(np.searchsorted(track_ids, focal_id))
  if not hist[focal].any():
    raise ValueError(f"{source}: the focal track {focal_id!r} has no observation in the "
                     f"{H} history steps.")
  last = H - 1 - np.argmax(hist[:, ::-1], axis=1)  # last observed history step per track
  ref = pos[np.arange(n), last]
  dist = np.linalg.norm(ref - ref[focal], axis=-1)
  rank = np.where(category >= SCORED_TRACK, 1, 2)
  rank[focal] = 0
  order = [i for i in np.lexsort((np.arange(n), dist, rank)) if hist[i].any()][:max_agents]
  a = len(order)
  out["agent_position"][:a] = pos[order]
  out["agent_velocity"][:a] = vel[order]
  out["agent_heading"][:a] = heading[order]
  out["agent_valid"][:a] = valid[order]
  out["agent_type"][:a] = types[order]
  out["agent_mask"][:a] = 1.0
  out["agent_predict"][:a] = (rank[order] <= 1) & valid[order, H - 1]

  if polylines:
    starts, ends, kinds, _ = cut_polylines(polylines)
    d = point_segment_distance(ref[focal][None], starts, ends)[0]
    keep = np.argsort(d, kind="stable")[:max_segments]
    set_map_fields(out, starts[keep], ends[keep], kinds[keep])
  return out


class AV2MotionSource:
  """A :class:`~jaxvision.data.sources.Source` over a local AV2 motion-forecasting split.

  The scenario list (sorted directory names) is read once at construction; files are read
  in :meth:`get`. Evaluation and training read the same arrays (``seeds`` are ignored: a
  scene model built on relative poses is SE(2)-invariant without augmentation).

  Args:
    data_dir: root of the AV2 motion-forecasting copy (holds ``train/``, ``val/``, ``test/``).
    split: AV2 split directory, one of ``train``, ``val``, ``test``.
    max_agents, max_segments: padded sizes A and M.
    history_steps, future_steps: H <= 50 and F <= 60 (AV2 is 50 + 60 at 10 Hz).
    name: dataset name for ``info`` and messages.
  """

  def __init__(self, data_dir: str | os.PathLike | None, split: str, *, max_agents: int = 64,
               max_segments: int = 512, history_steps: int = AV2_HISTORY_STEPS,
               future_steps: int = AV2_FUTURE_STEPS, name: str = "av2_motion"):
    check_scene_sizes(name, max_agents, max_segments, history_steps, future_steps)
    if history_steps > AV2_HISTORY_STEPS or future_steps > AV2_FUTURE_STEPS:
      raise ValueError(f"{name}: AV2 scenarios have {AV2_HISTORY_STEPS} history and "
                       f"{AV2_FUTURE_STEPS} future steps; found history_steps={history_steps}, "
                       f"future_steps={future_steps}.")
    if split not in AV2_SPLITS:
      raise ValueError(f"{name}: `split` must be one of {AV2_SPLITS}; found {split!r}.")
    if not data_dir:
      raise ValueError(f"{name}: `data_dir` is required: the root of a local Argoverse 2 "
                       f"motion-forecasting copy laid out as {LAYOUT} (jaxvision never "
                       f"downloads it).")
    root = os.path.expanduser(os.fspath(data_dir))
    if not os.path.isdir(root):
      raise FileNotFoundError(f"{name}: data_dir {root} does not exist; expected an Argoverse "
                              f"2 motion-forecasting copy laid out as {LAYOUT}.")
    self.split_dir = os.path.join(root, split)
    if not os.path.isdir(self.split_dir):
      found = sorted(e.name for e in os.scandir(root) if e.is_dir())
      raise FileNotFoundError(f"{name}: split directory {self.split_dir} does not exist "
                              f"(found {found or 'no directories'} in {root}); expected "
                              f"{LAYOUT}.")
    self.scenario_ids = sorted(e.name for e in os.scandir(self.split_dir) if e.is_dir())
    if not self.scenario_ids:
      raise FileNotFoundError(f"{name}: {self.split_dir} holds no scenario directories; "
                              f"expected {LAYOUT}.")
    self.max_agents, self.max_segments = max_agents, max_segments
    self.history_steps, self.future_steps = history_steps, future_steps
    self.info = DatasetInfo(name, 0, (), len(self.scenario_ids))

  def __len__(self) -> int:
    return len(self.scenario_ids)

  def paths(self, index: int) -> tuple[str, str]:
    """``(parquet path, map JSON path)`` of scenario ``index``."""
    sid = self.scenario_ids[index]
    folder = os.path.join(self.split_dir, sid)
    return (os.path.join(folder, f"scenario_{sid}.parquet"),
            os.path.join(folder, f"log_map_archive_{sid}.json"))

  def scene(self, index: int) -> Batch:
    """Scenario ``index`` as one unbatched padded example."""
    scenario_path, map_path = self.paths(int(index))
    columns = read_scenario_table(scenario_path)
    polylines = read_map_polylines(map_path)
    return convert_scenario(columns, polylines, max_agents=self.max_agents,
                            max_segments=self.max_segments, history_steps=self.history_steps,
                            future_steps=self.future_steps, source=scenario_path)

  def get(self, indices: np.ndarray, seeds: np.ndarray | None = None) -> Batch:
    """Padded scene batch of the scenarios ``indices`` (fields of :data:`SCENE_FIELDS`)."""
    del seeds
    scenes = [self.scene(i) for i in np.asarray(indices).reshape(-1)]
    return {k: np.stack([s[k] for s in scenes]) for k in SCENE_FIELDS}


@register_dataset("av2_motion")
def av2_motion(split: str, data_dir: str | None = None, av2_split: str | None = None,
               max_agents: int = 64, max_segments: int = 512,
               history_steps: int = AV2_HISTORY_STEPS,
               future_steps: int = AV2_FUTURE_STEPS) -> AV2MotionSource:
  """Argoverse 2 motion forecasting from a local copy (see module docstring).

  ``split`` ``"train"`` reads AV2's ``train/``; ``"test"`` reads ``val/`` (AV2's own test
  split has no ground-truth future); ``av2_split`` overrides the directory.
  """
  directory = av2_split or ("val" if split == "test" else split)
  return AV2MotionSource(data_dir, directory, max_agents=max_agents, max_segments=max_segments,
                         history_steps=history_steps, future_steps=future_steps)
