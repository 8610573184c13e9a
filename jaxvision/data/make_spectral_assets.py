"""Regenerates ``jaxvision/data/assets/spectral_measured.npz`` from colour-science.

The synthetic hyperspectral dataset (:mod:`jaxvision.data.spectral`, ``synthetic_hsi``) is
built from measured spectra that ship inside the colour-science package (BSD-3-Clause,
https://www.colour-science.org). jaxvision does not import colour at run or test time:
this script extracts what it needs once, resampled to the 31 bands 400, 410, ..., 700 nm,
into a small committed asset (about 30 kB)::

  python -m jaxvision.data.make_spectral_assets            # rewrites the asset
  python -m jaxvision.data.make_spectral_assets --check    # compares it with colour's data

Needs ``pip install 'colour-science>=0.4.4'`` (tested with 0.4.7). ``tests/data/
test_spectral.py`` checks (when colour is installed) that the committed asset equals a
fresh :func:`extract`.

What is extracted (every array float64, bands on the last axis):

* ``reflectances`` ``(83, 31)``: surface reflectance factors in ``[0, 1]`` of
  ``colour.SDS_COLOURCHECKERS["BabelColor Average"]`` (24 patches: the mean of 30 measured
  ColorChecker Classic charts, BabelColor 2012), ``colour.SDS_COLOURCHECKERS["PMC"]``
  (30 patches of the preferred-memory-colour chart), ``colour.quality.SDS_TCS["CIE 1995"]``
  (the 14 CIE 13.3 test colour samples, Munsell chips) and ``colour.quality.SDS_VS["NIST
  CQS 9.0"]`` (the 15 saturated Munsell samples of the NIST colour quality scale), with
  ``reflectance_names`` / ``reflectance_sets``;
* ``illuminants`` ``(9, 31)``: relative spectral power of the CIE illuminants A, D50, D65,
  D75, FL2, FL7, FL11, LED-B3 and LED-V1 (``colour.SDS_ILLUMINANTS``), each divided by its
  maximum over 400..700 nm, with ``illuminant_names``;
* ``camera_nikon_d5100`` ``(31, 3)``: the NPL-measured red, green, blue spectral
  sensitivities of a Nikon D5100 (``colour.MSDS_CAMERA_SENSITIVITIES["Nikon 5100 (NPL)"]``,
  Darrodi et al. 2015), each column divided by its maximum;
* ``cmfs_cie1931`` ``(31, 3)``: the CIE 1931 2-degree colour-matching functions
  x̄, ȳ, z̄ (``colour.MSDS_CMFS["CIE 1931 2 Degree Standard Observer"]``);
* ``xyz_to_linear_srgb`` ``(3, 3)``: colour's CIE XYZ -> linear sRGB matrix (IEC 61966-2-1,
  D65 white);
* ``wavelengths`` ``(31,)``: 400..700 nm, and ``provenance``: a JSON string (colour
  version, licence, the exact dataset names, the resampling).

Resampling: every source is tabulated at 5 or 10 nm on a range covering 400..700 nm, so
the 31 values are the tabulated samples themselves (colour's ``SpectralDistribution.align``
to ``SpectralShape(400, 700, 10)``; its interpolators pass through the samples, checked).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

ASSET = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets",
                     "spectral_measured.npz")
WAVELENGTHS = np.arange(400.0, 701.0, 10.0)
REFLECTANCE_SETS = (
    ("colour.SDS_COLOURCHECKERS", "BabelColor Average"),
    ("colour.SDS_COLOURCHECKERS", "PMC"),
    ("colour.quality.SDS_TCS", "CIE 1995"),
    ("colour.quality.SDS_VS", "NIST CQS 9.0"),
)
ILLUMINANTS = ("A", "D50", "D65", "D75", "FL2", "FL7", "FL11", "LED-B3", "LED-V1")
CAMERA = "Nikon 5100 (NPL)"
CMFS = "CIE 1931 2 Degree Standard Observer"


def _sample(sd) -> np.ndarray:
  """The values of a colour (multi-)spectral distribution at 400..700 nm step 10."""
  import colour
  shape = colour.SpectralShape(400, 700, 10)
  wl = np.asarray(sd.wavelengths, np.float64)
  values = np.asarray(sd.values, np.float64)
  aligned = np.asarray(sd.copy().align(shape).values, np.float64)
  # Every source used here is tabulated on a grid containing 400, 410, ..., 700 nm: the
  # aligned values must be those samples (no interpolation happened).
  idx = np.searchsorted(wl, WAVELENGTHS)
  if np.any(idx >= len(wl)) or not np.allclose(wl[np.minimum(idx, len(wl) - 1)], WAVELENGTHS):
    raise ValueError(f"{sd.name}: not tabulated at every 10 nm of 400..700 nm "
                     f"(shape {sd.shape}).")
  if not np.allclose(aligned, values[idx], rtol=0, atol=1e-12):
    raise ValueError(f"{sd.name}: colour's align changed the tabulated samples.")
  return values[idx]


def extract() -> dict[str, np.ndarray]:
  """The asset's arrays, freshly extracted from the installed colour-science."""
  import colour
  from colour.quality import SDS_TCS, SDS_VS
  tables = {"colour.SDS_COLOURCHECKERS": colour.SDS_COLOURCHECKERS,
            "colour.quality.SDS_TCS": SDS_TCS, "colour.quality.SDS_VS": SDS_VS}
  refl, names, sets = [], [], []
  for table, key in REFLECTANCE_SETS:
    for name, sd in tables[table][key].items():
      refl.append(_sample(sd))
      names.append(name)
      sets.append(key)
  illum = np.stack([_sample(colour.SDS_ILLUMINANTS[k]) for k in ILLUMINANTS])
  illum = illum / illum.max(axis=1, keepdims=True)
  camera = _sample(colour.MSDS_CAMERA_SENSITIVITIES[CAMERA])
  camera = camera / camera.max(axis=0, keepdims=True)
  cmfs = _sample(colour.MSDS_CMFS[CMFS])
  xyz_to_rgb = np.asarray(colour.RGB_COLOURSPACES["sRGB"].matrix_XYZ_to_RGB, np.float64)
  provenance = {
      "generator": "python -m jaxvision.data.make_spectral_assets",
      "source": "colour-science (https://www.colour-science.org), package-shipped datasets",
      "colour_version": colour.__version__,
      "licence": "BSD-3-Clause (colour-science); the datasets' own references are cited "
                 "in colour's documentation",
      "wavelengths_nm": "400..700 step 10 (31 bands): the tabulated samples",
      "reflectances": [f"{t}[{k!r}]" for t, k in REFLECTANCE_SETS],
      "illuminants": [f"colour.SDS_ILLUMINANTS[{k!r}] / max over 400..700 nm"
                      for k in ILLUMINANTS],
      "camera_nikon_d5100": f"colour.MSDS_CAMERA_SENSITIVITIES[{CAMERA!r}] / column max",
      "cmfs_cie1931": f"colour.MSDS_CMFS[{CMFS!r}]",
      "xyz_to_linear_srgb": "colour.RGB_COLOURSPACES['sRGB'].matrix_XYZ_to_RGB",
  }
  return {
      "wavelengths": WAVELENGTHS.copy(),
      "reflectances": np.stack(refl),
      "reflectance_names": np.array(names, dtype=str),
      "reflectance_sets": np.array(sets, dtype=str),
      "illuminants": illum,
      "illuminant_names": np.array(ILLUMINANTS, dtype=str),
      "camera_nikon_d5100": camera,
      "cmfs_cie1931": cmfs,
      "xyz_to_linear_srgb": xyz_to_rgb,
      "provenance": np.array(json.dumps(provenance, indent=1)),
  }


def compare(stored, fresh) -> list[str]:
  """Names of the arrays (all but ``provenance``) where ``stored`` and ``fresh`` differ."""
  bad = []
  for key, value in fresh.items():
    if key == "provenance":
      continue
    if key not in stored:
      bad.append(key)
    elif value.dtype.kind in "US":
      if stored[key].tolist() != value.tolist():
        bad.append(key)
    elif stored[key].shape != value.shape or not np.allclose(stored[key], value, rtol=0,
                                                              atol=1e-12):
      bad.append(key)
  return bad


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--check", action="store_true",
                      help="compare the committed asset with a fresh extraction; write nothing")
  parser.add_argument("--out", default=ASSET, help="where to write the asset")
  args = parser.parse_args(argv)
  fresh = extract()
  if args.check:
    with np.load(args.out, allow_pickle=False) as stored:
      bad = compare(dict(stored), fresh)
    print("asset up to date" if not bad else f"asset differs in {bad}")
    return int(bool(bad))
  np.savez_compressed(args.out, **fresh)
  print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
