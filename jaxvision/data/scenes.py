"""Synthetic driving scenes: a CPU stand-in for Argoverse 2 motion forecasting (spec Sec. 4).

Scene ``i`` of a split is a deterministic function of ``(seed, split, i)``, generated on the
fly in a few milliseconds, in the padded *scene batch* format of the AV2 reader
(:data:`jaxvision.data.av2.SCENE_FIELDS`). Each scene is built in four steps.

1. **Lane graph.** A single 4-way intersection or a 2x1 / 2x2 grid of them (blocks 45-70 m),
   one lane of width 3.2-3.8 m in each direction of every road (right-hand traffic), dead-end
   stubs at the border, the whole layout rotated and offset at random in the world frame. At
   every node each incoming lane continues through a connector lane: straight (a line), a left
   or a right turn (quadratic Bezier curves tangent to both lanes; no U-turns). A crosswalk
   with 3 m of sidewalk on either side crosses every arm next to the intersection.
2. **Map.** Every lane and crosswalk is cut into pieces of at most 5 m (``map_type`` VEHICLE
   or PEDESTRIAN of :data:`~jaxvision.data.av2.AV2_MAP_TYPES`); the pieces near the focal
   agent's trajectory and then those nearest its current position are kept, up to
   ``max_segments``, nearest first.
3. **Focal agent.** A vehicle, usually placed so that it reaches an intersection during the
   future window, where it goes straight (p = 0.5), turns left or right (0.25 each): the
   multimodality of the task. It is observed at every step.
4. **Other agents.** Vehicles (78 %), buses (5 %), cyclists (7 %, keeping to the right of
   the lane) and pedestrians (10 %, on crosswalks), some stopped. Each follows a lane path at
   a desired speed drifting as a random walk (``speed_noise``), limited by a comfortable
   lateral acceleration (3 m/s^2) in curves with braking (3 m/s^2) ahead of them, so turning
   vehicles visibly slow down before the turn; it weaves smoothly about the lane centre (a
   sinusoid of period 4-10 s and rms ``lateral_noise``). Agents may appear late, vanish
   early, drive off a dead end or out of the kept map (``agent_valid``: they are observed only
   within 2 m of a kept lane, pedestrians of a kept crosswalk); a candidate whose oriented
   box would overlap another agent's at any time is rejected.

Positions carry Gaussian noise (``position_noise``); velocities are the central differences
of the noise-free positions plus noise of the same size (m/s); headings follow the velocity
of moving agents and the lane direction of stopped ones (0.01 rad noise). Frames are 10 Hz,
``T = history_steps + future_steps`` (10 + 12 by default; AV2 is 50 + 60), the current time
is index ``history_steps - 1``. ``agent_predict`` marks the focal agent and every agent
observed from the current step to the end (the scored tracks). Agents are ordered focal,
scored, then others by distance to the focal agent at the current step.

Training (``get`` with seeds) can apply a random whole-scene SE(2) transform
(``augment_se2``): a rotation about the origin and a translation.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Sequence

import numpy as np

from jaxvision.data.av2 import (AV2_MAP_TYPES, AV2_OBJECT_TYPES, SCENE_FIELDS,
                                check_scene_sizes, cut_polylines, empty_scene_batch,
                                point_segment_distance, polyline_length, resample_polyline,
                                set_map_fields)
from jaxvision.data.registry import register_dataset
from jaxvision.data.sources import Batch, DatasetInfo

DT = 0.1  # seconds per frame (10 Hz)
SPLIT_IDS = {"train": 0, "test": 1, "val": 2}
DEFAULT_NUM_EXAMPLES = {"train": 16384, "test": 1024, "val": 1024}

VEHICLE = AV2_OBJECT_TYPES.index("vehicle")
PEDESTRIAN = AV2_OBJECT_TYPES.index("pedestrian")
CYCLIST = AV2_OBJECT_TYPES.index("cyclist")
BUS = AV2_OBJECT_TYPES.index("bus")
LANE_MAP_TYPE = AV2_MAP_TYPES.index("VEHICLE")
CROSSWALK_MAP_TYPE = AV2_MAP_TYPES.index("PEDESTRIAN")

# Agent mix (type, probability) of the non-focal agents; box (length, width) in metres.
AGENT_MIX = ((VEHICLE, 0.78), (BUS, 0.05), (CYCLIST, 0.07), (PEDESTRIAN, 0.10))
AGENT_MIX_P = tuple(p for _, p in AGENT_MIX)
AGENT_BOX = {VEHICLE: (4.6, 1.9), BUS: (12.0, 2.5), CYCLIST: (1.8, 0.7), PEDESTRIAN: (0.6, 0.6)}
PEDESTRIAN_SPEED = (0.8, 1.8)
CYCLIST_SPEED = (3.0, 7.0)
CYCLIST_OFFSET = -0.8  # metres to the right of the lane centre
STOPPED_PROB = 0.1  # vehicles waiting near the stop line / pedestrians standing
LATE_PROB = 0.2  # appears after the first frame
EARLY_PROB = 0.2  # disappears before the last frame
TURN_PROBS = {0: 0.5, 1: 0.25, -1: 0.25}  # straight, left, right
FOCAL_AT_INTERSECTION_PROB = 0.8
FOCAL_TRIES = 40
ATTEMPTS_PER_AGENT = 6

LANE_WIDTH = (3.2, 3.8)
BLOCK_LENGTH = (45.0, 70.0)
SIDEWALK = 3.0
A_LAT, A_ACC, A_BRAKE = 3.0, 2.0, 3.0  # m/s^2
PATH_STEP = 0.25  # metres between path samples
CURVATURE_WINDOW = 9  # samples (~2 m) of curvature smoothing
HEADING_NOISE = 0.01  # radians
LATERAL_PERIOD = (4.0, 10.0)  # seconds: period of the lateral weaving
MOVING_SPEED = 0.5  # m/s above which the heading follows the velocity
NEAR_LANE = 2.0  # metres: agents are observed only this close to a kept map segment
BOX_MARGIN = 0.3  # metres added to the half-extents in the overlap test


@dataclasses.dataclass
class Lane:
  """A directed lane (or an undirected crosswalk) of the synthetic lane graph.

  Attributes:
    points: float64 ``(P, 2)`` dense polyline, world frame.
    kind: ``"road"``, ``"connector"`` (inside an intersection) or ``"crosswalk"``.
    turn: connectors: 0 straight, 1 left, -1 right.
    from_node, to_node: intersection at the start / end, -1 at a dead end or for others.
    successors, predecessors: lane indices.
  """
  points: np.ndarray
  kind: str
  turn: int = 0
  from_node: int = -1
  to_node: int = -1
  successors: list = dataclasses.field(default_factory=list)
  predecessors: list = dataclasses.field(default_factory=list)

  @functools.cached_property
  def length(self) -> float:
    return polyline_length(self.points)


def wrap_angle(theta: np.ndarray) -> np.ndarray:
  """Angles wrapped to ``[-pi, pi)`` (numpy)."""
  return (np.asarray(theta) + np.pi) % (2 * np.pi) - np.pi


def rotation(theta: float) -> np.ndarray:
  """The 2x2 rotation matrix of angle ``theta`` (numpy float64)."""
  c, s = math.cos(theta), math.sin(theta)
  return np.array([[c, -s], [s, c]])


def _central_difference(x: np.ndarray) -> np.ndarray:
  """``np.gradient(x, axis=0)`` (unit spacing; one-sided at the ends, zero if ``len(x) < 2``)."""
  out = np.zeros_like(x)
  if len(x) > 1:
    out[1:-1] = 0.5 * (x[2:] - x[:-2])
    out[0], out[-1] = x[1] - x[0], x[-1] - x[-2]
  return out


def _line(p0: np.ndarray, p1: np.ndarray) -> np.ndarray:
  return np.stack([p0, p1])


def _connector(p0: np.ndarray, h_in: np.ndarray, p1: np.ndarray, h_out: np.ndarray
               ) -> tuple[np.ndarray, int]:
  """Straight line or quadratic Bezier from ``p0`` (heading ``h_in``) to ``p1`` (``h_out``)."""
  cross = h_in[0] * h_out[1] - h_in[1] * h_out[0]
  if abs(cross) < 0.5:
    return _line(p0, p1), 0
  # Control point: where the two lane lines meet, p0 + a h_in = p1 - b h_out.
  a, _ = np.linalg.solve(np.stack([h_in, h_out], axis=1), p1 - p0)
  c = p0 + a * h_in
  u = np.linspace(0.0, 1.0, 24)[:, None]
  return (1 - u) ** 2 * p0 + 2 * u * (1 - u) * c + u ** 2 * p1, 1 if cross > 0 else -1


def build_lane_graph(rng: np.random.Generator, stub_length: float, world_extent: float
                     ) -> list[Lane]:
  """Random intersection / grid lane graph (module docstring, step 1), world frame."""
  w = rng.uniform(*LANE_WIDTH)
  half_box = w + 1.5
  nx, ny = ((1, 1), (2, 1), (2, 2))[rng.choice(3, p=(0.5, 0.3, 0.2))]
  xs = np.concatenate([[0.0], np.cumsum(rng.uniform(*BLOCK_LENGTH, nx - 1))])
  ys = np.concatenate([[0.0], np.cumsum(rng.uniform(*BLOCK_LENGTH, ny - 1))])
  nodes = np.array([(x, y) for y in ys - ys.mean() for x in xs - xs.mean()])
  units = np.array([(1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0)])
  steps = ((1, 0), (0, 1), (-1, 0), (0, -1))
  lanes: list[Lane] = []
  for j in range(ny):
    for i in range(nx):
      node = j * nx + i
      for k, (di, dj) in enumerate(steps):
        if 0 <= i + di < nx and 0 <= j + dj < ny:
          if k >= 2:
            continue  # the road to this neighbour was added from the other side
          ends = [(node, nodes[node]), ((j + dj) * nx + i + di, nodes[(j + dj) * nx + i + di])]
        else:
          ends = [(node, nodes[node]), (-1, nodes[node] + units[k] * stub_length
                                        * rng.uniform(0.6, 1.0))]
        (a, pa), (b, pb) = ends
        d = (pb - pa) / np.linalg.norm(pb - pa)
        right = np.array([d[1], -d[0]]) * w / 2
        trim_a, trim_b = d * half_box * (a >= 0), d * half_box * (b >= 0)
        lanes.append(Lane(_line(pa + trim_a + right, pb - trim_b + right), "road",
                          from_node=a, to_node=b))
        lanes.append(Lane(_line(pb - trim_b - right, pa + trim_a - right), "road",
                          from_node=b, to_node=a))
  for node in range(len(nodes)):
    incoming = [i for i, l in enumerate(lanes) if l.to_node == node]
    outgoing = [i for i, l in enumerate(lanes) if l.from_node == node]
    for i in incoming:
      h_in = lanes[i].points[-1] - lanes[i].points[-2]
      h_in /= np.linalg.norm(h_in)
      for o in outgoing:
        h_out = lanes[o].points[1] - lanes[o].points[0]
        h_out /= np.linalg.norm(h_out)
        if np.dot(h_in, h_out) < -0.5:
          continue  # no U-turns
        points, turn = _connector(lanes[i].points[-1], h_in, lanes[o].points[0], h_out)
        lanes.append(Lane(points, "connector", turn=turn, predecessors=[i], successors=[o]))
        lanes[i].successors.append(len(lanes) - 1)
        lanes[o].predecessors.append(len(lanes) - 1)
    for u in units:
      centre = nodes[node] + u * (half_box + 1.5)
      across = np.array([-u[1], u[0]]) * (w + SIDEWALK)
      lanes.append(Lane(_line(centre - across, centre + across), "crosswalk"))
  rot = rotation(rng.uniform(-np.pi, np.pi))
  offset = rng.uniform(-world_extent, world_extent, 2)
  for lane in lanes:
    lane.points = lane.points @ rot.T + offset
  return lanes


def _choose_successor(lanes: list[Lane], lane: int, rng: np.random.Generator) -> int:
  succ = lanes[lane].successors
  if len(succ) == 1:
    return succ[0]
  p = np.array([TURN_PROBS[lanes[s].turn] for s in succ])
  return succ[rng.choice(len(succ), p=p / p.sum())]


@dataclasses.dataclass
class Path:
  """A lane path resampled every ~``PATH_STEP`` m, extended straight past its end.

  Attributes:
    points, tangents: float64 ``(P, 2)``; unit tangents.
    step: metres between samples.
    length: arc length of the real path (beyond it the agent has left the map).
    speed_cap: float64 ``(P,)`` the curvature/braking speed limit at each sample (m/s).
    connector_starts: arc lengths where the path enters an intersection.
  """
  points: np.ndarray
  tangents: np.ndarray
  step: float
  length: float
  speed_cap: np.ndarray
  connector_starts: np.ndarray


def make_path(lanes: list[Lane], ids: Sequence[int], extension: float, reverse: bool = False
              ) -> Path:
  """Concatenates lanes ``ids`` into a :class:`Path` (``reverse``: walk it backwards)."""
  pieces = [lanes[ids[0]].points] + [lanes[i].points[1:] for i in ids[1:]]
  raw = np.concatenate(pieces)
  if reverse:
    raw = raw[::-1]
  starts, total = [], 0.0
  for i in ids:
    if lanes[i].kind == "connector":
      starts.append(total)
    total += lanes[i].length
  length = polyline_length(raw)
  n = max(2, math.ceil(length / PATH_STEP) + 1)
  points = resample_polyline(raw, n)
  step = length / (n - 1) if length > 0 else PATH_STEP
  end_dir = points[-1] - points[-2]
  norm = np.linalg.norm(end_dir)
  end_dir = end_dir / norm if norm > 0 else np.array([1.0, 0.0])
  extra = math.ceil(extension / step) + 1
  points = np.concatenate([points, points[-1] + step * np.arange(1, extra + 1)[:, None]
                           * end_dir])
  tangents = _central_difference(points)
  tangents /= np.maximum(np.linalg.norm(tangents, axis=-1, keepdims=True), 1e-12)
  angles = np.arctan2(tangents[:, 1], tangents[:, 0])
  curvature = np.abs(wrap_angle(np.diff(angles, prepend=angles[0]))) / step
  curvature = np.convolve(curvature, np.ones(CURVATURE_WINDOW) / CURVATURE_WINDOW, "same")
  cap_sq = A_LAT / np.maximum(curvature, 1e-4)
  s = step * np.arange(len(points))
  # Braking ahead of curves: v(s)^2 <= min_{s' >= s} cap(s')^2 + 2 a (s' - s).
  speed_cap = np.sqrt(np.minimum.accumulate((cap_sq + 2 * A_BRAKE * s)[::-1])[::-1]
                      - 2 * A_BRAKE * s)
  return Path(points, tangents, step, length, speed_cap, np.asarray(starts))


@dataclasses.dataclass
class Track:
  """One simulated agent: noise-free and observed states over the T frames."""
  kind: int
  true_position: np.ndarray  # (T, 2)
  heading: np.ndarray  # (T,) observed
  position: np.ndarray  # (T, 2) observed
  velocity: np.ndarray  # (T, 2) observed
  present: np.ndarray  # (T,) bool: on its path (physically in the scene)
  valid: np.ndarray  # (T,) bool: observed
  arc: np.ndarray  # (T,) arc length along the path


class SceneGenerator:
  """Generates scenes (module docstring); all arguments as :func:`synthetic_scenes`."""

  def __init__(self, *, max_agents: int, max_segments: int, history_steps: int,
               future_steps: int, speed_range: tuple[float, float], speed_noise: float,
               position_noise: float, lateral_noise: float, world_extent: float):
    self.max_agents, self.max_segments = max_agents, max_segments
    self.H, self.T = history_steps, history_steps + future_steps
    self.speed_range = speed_range
    self.speed_noise, self.position_noise = speed_noise, position_noise
    self.lateral_noise, self.world_extent = lateral_noise, world_extent
    self.travel = speed_range[1] * self.T * DT  # longest distance an agent covers

  # -- one agent ---------------------------------------------------------------------------

  def simulate(self, path: Path, s0: float, speed: float, kind: int,
               rng: np.random.Generator) -> Track:
    """Drives ``path`` from arc length ``s0`` at desired speed ``speed`` (module docstring)."""
    T = self.T
    top = self.speed_range[1] if kind in (VEHICLE, BUS) else (
        CYCLIST_SPEED[1] if kind == CYCLIST else PEDESTRIAN_SPEED[1])
    desired = np.clip(speed + np.cumsum(rng.normal(0.0, self.speed_noise * math.sqrt(DT), T)),
                      0.0, top) if speed else np.zeros(T)
    cap, last = path.speed_cap, len(path.speed_cap) - 1
    arc = np.empty(T)
    s, v = s0, min(speed, cap[min(int(s0 / path.step), last)])
    for t in range(T):
      arc[t] = s
      v += min(max(desired[t] - v, -A_BRAKE * DT), A_ACC * DT)
      v = max(min(v, cap[min(int((s + v * DT) / path.step), last)]), 0.0)
      s += v * DT
    grid = path.step * np.arange(len(path.points))
    base = np.stack([np.interp(arc, grid, path.points[:, 0]),
                     np.interp(arc, grid, path.points[:, 1])], -1)
    tangent = np.stack([np.interp(arc, grid, path.tangents[:, 0]),
                        np.interp(arc, grid, path.tangents[:, 1])], -1)
    tangent /= np.linalg.norm(tangent, axis=-1, keepdims=True)
    # Smooth weaving about the lane centre: a sinusoid of rms ``lateral_noise``.
    amplitude = math.sqrt(2.0) * self.lateral_noise
    phase = rng.uniform(0.0, 2 * np.pi)
    period = rng.uniform(*LATERAL_PERIOD) if speed else np.inf
    lateral = amplitude * np.sin(2 * np.pi * DT * np.arange(T) / period + phase)
    lateral += CYCLIST_OFFSET if kind == CYCLIST else 0.0
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], -1)
    true = base + normal * lateral[:, None]
    velocity = _central_difference(true) / DT
    moving = np.linalg.norm(velocity, axis=-1) > MOVING_SPEED
    heading = np.where(moving, np.arctan2(velocity[:, 1], velocity[:, 0]),
                       np.arctan2(tangent[:, 1], tangent[:, 0]))
    heading = wrap_angle(heading + rng.normal(0.0, HEADING_NOISE, T))
    noise = rng.normal(0.0, self.position_noise, (2, T, 2))
    present = arc <= path.length + 1e-9
    return Track(kind, true, heading, true + noise[0], velocity + noise[1], present,
                 present.copy(), arc)

  def _focal(self, lanes: list[Lane], rng: np.random.Generator) -> tuple[Track, Path]:
    H, T = self.H, self.T
    incoming = [i for i, l in enumerate(lanes) if l.kind == "road" and l.successors]
    driving = [i for i, l in enumerate(lanes) if l.kind in ("road", "connector")]
    weights = np.array([lanes[i].length for i in driving])
    fallback = None
    for _ in range(FOCAL_TRIES):
      speed = rng.uniform(*self.speed_range)
      at_intersection = rng.random() < FOCAL_AT_INTERSECTION_PROB
      if at_intersection:
        pivot = incoming[rng.integers(len(incoming))]
        back = rng.uniform(0.0, 0.8 * speed * (T - H) * DT) + speed * (H - 1) * DT
        ids, before = [pivot], lanes[pivot].length
        while before < back and lanes[ids[0]].predecessors:
          pred = lanes[ids[0]].predecessors
          ids.insert(0, pred[rng.integers(len(pred))])
          before += lanes[ids[0]].length
        s0 = max(before - back, 0.0)
      else:
        ids = [driving[rng.choice(len(driving), p=weights / weights.sum())]]
        s0 = rng.uniform(0.0, lanes[ids[0]].length)
      ahead = sum(lanes[i].length for i in ids) - s0
      while ahead < 1.3 * speed * T * DT + 5.0 and lanes[ids[-1]].successors:
        ids.append(_choose_successor(lanes, ids[-1], rng))
        ahead += lanes[ids[-1]].length
      path = make_path(lanes, ids, self.travel)
      track = self.simulate(path, s0, speed, VEHICLE, rng)
      if not track.present.all():
        continue
      fallback = fallback or (track, path)
      c = path.connector_starts
      if not at_intersection or np.any((track.arc[H - 1] < c) & (track.arc[-1] > c + 2.0)):
        return track, path
    if fallback is not None:
      return fallback
    pivot = incoming[rng.integers(len(incoming))]  # a vehicle waiting at the stop line
    path = make_path(lanes, [pivot], self.travel)
    return self.simulate(path, max(path.length - 2.0, 0.0), 0.0, VEHICLE, rng), path

  def _candidate(self, lanes: list[Lane], pools: dict[str, tuple[np.ndarray, np.ndarray]],
                 rng: np.random.Generator) -> Track | None:
    H, T = self.H, self.T
    kind = AGENT_MIX[rng.choice(len(AGENT_MIX), p=AGENT_MIX_P)][0]
    stopped = rng.random() < STOPPED_PROB
    pool, p = pools["crosswalk" if kind == PEDESTRIAN else ("stop" if stopped else "drive")]
    if not len(pool):
      return None
    lane = int(pool[rng.choice(len(pool), p=p)])
    if kind == PEDESTRIAN:
      speed = 0.0 if stopped else rng.uniform(*PEDESTRIAN_SPEED)
      path = make_path(lanes, [lane], PEDESTRIAN_SPEED[1] * T * DT, reverse=rng.random() < 0.5)
      s0 = rng.uniform(0.0, path.length)
    elif stopped:
      speed = 0.0
      path = make_path(lanes, [lane], self.travel)
      s0 = max(path.length - rng.uniform(1.0, 10.0), 0.0)
    else:
      speed = rng.uniform(*(CYCLIST_SPEED if kind == CYCLIST else self.speed_range))
      ids = [lane]
      s0 = rng.uniform(0.0, lanes[lane].length)
      ahead = lanes[lane].length - s0
      while ahead < 1.3 * speed * T * DT + 5.0 and lanes[ids[-1]].successors:
        ids.append(_choose_successor(lanes, ids[-1], rng))
        ahead += lanes[ids[-1]].length
      path = make_path(lanes, ids, self.travel)
    track = self.simulate(path, s0, speed, kind, rng)
    start = int(rng.integers(1, H)) if H > 1 and rng.random() < LATE_PROB else 0
    stop = int(rng.integers(start + 1, T)) if start + 1 < T and rng.random() < EARLY_PROB else T
    track.valid[:start] = False
    track.valid[stop:] = False
    return track

  @staticmethod
  def _overlaps(track: Track, others: list[Track]) -> bool:
    """Whether ``track``'s box overlaps any of ``others``' at a common time.

    Boxes are (length, width) of :data:`AGENT_BOX` plus :data:`BOX_MARGIN`; the centre offset
    is tested against the summed half-extents in the frame of either agent.
    """
    both = track.present & np.stack([o.present for o in others])  # (N, T)
    rel = track.true_position - np.stack([o.true_position for o in others])  # (N, T, 2)
    length, width = AGENT_BOX[track.kind]
    sizes = np.array([AGENT_BOX[o.kind] for o in others])
    half_l = ((sizes[:, 0] + length) / 2 + BOX_MARGIN)[:, None]
    half_w = ((sizes[:, 1] + width) / 2 + BOX_MARGIN)[:, None]
    for heading in (track.heading[None], np.stack([o.heading for o in others])):
      c, s = np.cos(heading), np.sin(heading)
      along = rel[..., 0] * c + rel[..., 1] * s
      across = rel[..., 1] * c - rel[..., 0] * s
      if np.any(both & (np.abs(along) < half_l) & (np.abs(across) < half_w)):
        return True
    return False

  # -- one scene ---------------------------------------------------------------------------

  def generate(self, rng: np.random.Generator) -> Batch:
    """One padded scene example (fields of :data:`SCENE_FIELDS`, no batch axis)."""
    H, T, A, M = self.H, self.T, self.max_agents, self.max_segments
    lanes = build_lane_graph(rng, max(30.0, 0.7 * self.travel), self.world_extent)
    starts, ends, seg_type, seg_lane = cut_polylines([
        (l.points, CROSSWALK_MAP_TYPE if l.kind == "crosswalk" else LANE_MAP_TYPE)
        for l in lanes])

    focal, _ = self._focal(lanes, rng)
    now = point_segment_distance(focal.true_position[H - 1:H], starts, ends)[0]
    on_path = point_segment_distance(focal.true_position, starts, ends).min(0) <= NEAR_LANE
    keep = np.lexsort((now, ~on_path))[:M]
    keep = keep[np.argsort(now[keep], kind="stable")]
    walk = seg_type[keep] == CROSSWALK_MAP_TYPE
    kept = {True: (starts[keep][walk], ends[keep][walk]),
            False: (starts[keep][~walk], ends[keep][~walk])}
    # Lanes with kept segments, weighted by their number, for each kind of agent.
    weight = np.bincount(seg_lane[keep], minlength=len(lanes)).astype(np.float64)
    pools = {}
    for name, ok in (("crosswalk", lambda l: l.kind == "crosswalk"),
                     ("stop", lambda l: l.kind == "road" and bool(l.successors)),
                     ("drive", lambda l: l.kind in ("road", "connector"))):
      ids = np.array([i for i, l in enumerate(lanes) if weight[i] > 0 and ok(l)], np.int64)
      pools[name] = (ids, weight[ids] / weight[ids].sum() if len(ids) else ids)

    tracks = [focal]
    target = int(rng.integers(max(1, (A + 1) // 2), A + 1))
    for _ in range(ATTEMPTS_PER_AGENT * A):
      if len(tracks) >= target:
        break
      track = self._candidate(lanes, pools, rng)
      if track is None:
        continue
      # Observed only near a kept segment of its own kind (lanes / crosswalks).
      near = point_segment_distance(track.true_position, *kept[track.kind == PEDESTRIAN])
      track.valid &= near.min(1) <= NEAR_LANE
      if not track.valid[:H].any() or self._overlaps(track, tracks):
        continue
      tracks.append(track)

    # Order: focal, scored (observed from the current step to the end), others; by distance.
    ref = focal.true_position[H - 1]
    keys = []
    for i, t in enumerate(tracks):
      last = H - 1 - int(np.argmax(t.valid[:H][::-1]))
      scored = bool(t.valid[H - 1:].all())
      rank = 0 if i == 0 else (1 if scored else 2)
      keys.append((rank, float(np.linalg.norm(t.true_position[last] - ref)), i, scored))
    keys.sort()
    out = {k: v[0] for k, v in empty_scene_batch(1, A, T, M).items()}
    for slot, (rank, _, i, scored) in enumerate(keys):
      t, valid = tracks[i], tracks[i].valid
      out["agent_position"][slot] = np.where(valid[:, None], t.position, 0.0)
      out["agent_velocity"][slot] = np.where(valid[:, None], t.velocity, 0.0)
      out["agent_heading"][slot] = np.where(valid, t.heading, 0.0)
      out["agent_valid"][slot] = valid
      out["agent_type"][slot] = t.kind
      out["agent_mask"][slot] = 1.0
      out["agent_predict"][slot] = rank == 0 or scored
    set_map_fields(out, starts[keep], ends[keep], seg_type[keep])
    return out


def se2_augment(scene: Batch, rng: np.random.Generator, translation: float) -> Batch:
  """Applies one random SE(2) transform to a whole scene (one example or a batch).

  Positions and map points become ``R p + t`` and velocities ``R v``, with ``R`` a rotation
  by ``theta ~ U[-pi, pi)`` and ``t ~ U[-translation, translation]^2``; headings become
  ``wrap(heading + theta)``. Padded / unobserved entries stay zero.

  Args:
    scene: scene fields (:data:`SCENE_FIELDS`), with or without a leading batch axis.
    rng: numpy generator.
    translation: translation range (metres).

  Returns:
    A new dict with the transformed fields (same shapes and dtypes).
  """
  theta = rng.uniform(-np.pi, np.pi)
  rot = rotation(theta)
  shift = rng.uniform(-translation, translation, 2)
  out = dict(scene)
  valid = scene["agent_valid"][..., None]
  mask = scene["map_mask"][..., None]
  out["agent_position"] = ((scene["agent_position"] @ rot.T + shift) * valid).astype(np.float32)
  out["agent_velocity"] = ((scene["agent_velocity"] @ rot.T) * valid).astype(np.float32)
  out["agent_heading"] = (wrap_angle(scene["agent_heading"] + theta)
                          * scene["agent_valid"]).astype(np.float32)
  out["map_start"] = ((scene["map_start"] @ rot.T + shift) * mask).astype(np.float32)
  out["map_end"] = ((scene["map_end"] @ rot.T + shift) * mask).astype(np.float32)
  return out


class SyntheticScenes:
  """A :class:`~jaxvision.data.sources.Source` of synthetic driving scenes.

  Scene ``i`` is generated from ``np.random.default_rng([seed, split_id, i])``; training
  ``seeds`` only drive the optional SE(2) augmentation. Arguments as
  :func:`synthetic_scenes`.
  """

  def __init__(self, split: str, *, num_examples: int, seed: int, augment_se2: bool,
               **generator_kwargs):
    if split not in SPLIT_IDS:
      raise ValueError(f"synthetic_scenes: `split` must be one of {tuple(SPLIT_IDS)}; "
                       f"found {split!r}.")
    if not isinstance(num_examples, (int, np.integer)) or num_examples <= 0:
      raise ValueError(f"synthetic_scenes: `num_examples` must be a positive int; found "
                       f"{num_examples!r}.")
    self.split, self.seed, self.augment_se2 = split, int(seed), bool(augment_se2)
    self.generator = SceneGenerator(**generator_kwargs)
    self.info = DatasetInfo("synthetic_scenes", 0, (), int(num_examples))

  def __len__(self) -> int:
    return self.info.num_examples

  def scene(self, index: int) -> Batch:
    """Scene ``index`` (no augmentation), one unbatched padded example."""
    if not 0 <= index < len(self):
      raise IndexError(f"synthetic_scenes: index {index} out of range [0, {len(self)}).")
    rng = np.random.default_rng([self.seed, SPLIT_IDS[self.split], int(index)])
    return self.generator.generate(rng)

  def get(self, indices: np.ndarray, seeds: np.ndarray | None = None) -> Batch:
    """Padded scene batch for ``indices`` (fields of :data:`SCENE_FIELDS`, batch first)."""
    indices = np.asarray(indices).reshape(-1)
    scenes = [self.scene(int(i)) for i in indices]
    if seeds is not None and self.augment_se2:
      scenes = [se2_augment(s, np.random.default_rng(int(seed)),
                            self.generator.world_extent) for s, seed in zip(scenes, seeds)]
    return {k: np.stack([s[k] for s in scenes]) for k in SCENE_FIELDS}


@register_dataset("synthetic_scenes")
def synthetic_scenes(split: str, num_examples: int | None = None, max_agents: int = 8,
                     max_segments: int = 64, history_steps: int = 10, future_steps: int = 12,
                     seed: int = 0, speed_range: Sequence[float] = (4.0, 14.0),
                     speed_noise: float = 0.3, position_noise: float = 0.05,
                     lateral_noise: float = 0.15, world_extent: float = 100.0,
                     augment_se2: bool = False) -> SyntheticScenes:
  """Synthetic driving scenes in the AV2 scene-batch format (module docstring).

  Args:
    split: ``"train"``, ``"test"`` (or ``"val"``); each split has its own scenes.
    num_examples: scenes in the split (default 16384 for train, 1024 otherwise).
    max_agents, max_segments: padded sizes A and M.
    history_steps, future_steps: H and F at 10 Hz (AV2: 50 and 60).
    seed: scene seed.
    speed_range: (min, max) desired vehicle speed, m/s.
    speed_noise: std of the desired-speed random walk, m/s per sqrt(s) (clipped to
      ``[0, max]`` of the agent type's speed range).
    position_noise: std of the position (m) and velocity (m/s) observation noise.
    lateral_noise: rms of the smooth lateral offset from the lane centre, m.
    world_extent: scene offsets (and augmentation translations) are uniform in
      ``[-world_extent, world_extent]^2``, m.
    augment_se2: with training seeds, transform each scene by a random rotation and
      translation.
  """
  check_scene_sizes("synthetic_scenes", max_agents, max_segments, history_steps, future_steps)
  speed_range = tuple(float(v) for v in speed_range)
  if len(speed_range) != 2 or not 0.0 < speed_range[0] <= speed_range[1]:
    raise ValueError(f"synthetic_scenes: `speed_range` must be (min, max) with 0 < min <= max; "
                     f"found {speed_range}.")
  for arg, value in (("speed_noise", speed_noise), ("position_noise", position_noise),
                     ("lateral_noise", lateral_noise), ("world_extent", world_extent)):
    if not value >= 0.0:
      raise ValueError(f"synthetic_scenes: `{arg}` must be >= 0; found {value!r}.")
  if num_examples is None:
    num_examples = DEFAULT_NUM_EXAMPLES.get(split, DEFAULT_NUM_EXAMPLES["test"])
  return SyntheticScenes(split, num_examples=num_examples, seed=seed, augment_se2=augment_se2,
                         max_agents=max_agents, max_segments=max_segments,
                         history_steps=history_steps, future_steps=future_steps,
                         speed_range=speed_range, speed_noise=speed_noise,
                         position_noise=position_noise, lateral_noise=lateral_noise,
                         world_extent=world_extent)
