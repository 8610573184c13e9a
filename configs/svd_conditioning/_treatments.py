"""The treatments of Song, Sebe & Wang (ECCV 2022), Tables 2-5, as config edits.

Shared by the experiment files of this folder (loaded by path; the leading underscore
keeps it out of ``jaxvision list``). Each treatment acts on the "Pre-SVD layer": conv1
(``stem_conv``) before the decorrelated BN, or the 1x1 reduction conv
(``gcp_reduce_conv``) before covariance pooling.
"""

TREATMENTS = ("svd", "sn", "ol", "ow", "nog", "olr", "nog_ow", "nog_ow_olr", "ns",
              "nog_sn", "nog_ol", "ow_olr", "nog_olr")
# The paper gives no weight for the orthogonality loss (eq. 12); this is our choice.
ORTHOGONALITY_WEIGHT = 1e-2


def apply_treatment(c, treatment: str, pre_svd: str, *, ns_iters: int = 5) -> None:
  """Edits config ``c`` in place for ``treatment``; ``pre_svd`` names the Pre-SVD conv.

  ``svd``: the plain SVD meta-layer (eigh with the exact gradient); ``sn``: spectral
  norm (eq. 11); ``ol``: orthogonality loss (eq. 12); ``ow``: orthogonal weight by SOC
  (eq. 13); ``nog``: nearest orthogonal gradient (eqs. 14-17); ``olr``: optimal learning
  rate (eqs. 18-21); ``ns``: Newton-Schulz instead of eigh; ``a_b``: both.
  """
  if treatment not in TREATMENTS:
    raise ValueError(f"unknown treatment {treatment!r}; expected one of {TREATMENTS}.")
  parts = treatment.split("_")
  if "sn" in parts or "ow" in parts:
    kind = "spectral_norm" if "sn" in parts else "orthogonal"
    # The GCP reduction 512 -> 256 under OW keeps the first rows of a square SOC 1x1 conv.
    c.model["stem_conv" if pre_svd == "stem_conv" else "pooling_reduce_conv"] = kind
  if "ol" in parts:
    c.regularizers = dict(orthogonality=dict(pattern=f"{pre_svd}/kernel",
                                             weight=ORTHOGONALITY_WEIGHT))
  if "nog" in parts:
    c.optimizer.kwargs["nog"] = pre_svd
  if "olr" in parts:
    c.optimizer.kwargs["olr"] = pre_svd
  if "ns" in parts:
    key = "whitening" if pre_svd == "stem_conv" else "pooling"
    c.model[f"{key}_method"] = "newton_schulz"
    c.model[f"{key}_num_iters"] = ns_iters
