"""Helpers shared by the benchmark scripts."""

import json
import platform
from pathlib import Path
from typing import Callable


def cpu_name() -> str:
  """The CPU model from /proc/cpuinfo (or ``platform.processor()`` elsewhere)."""
  try:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor()


def docstring_paragraphs(doc: str, start: int, stop: int) -> str:
  """Paragraphs ``start:stop`` of a module docstring joined into one line (a report's
  description of the claim and the setup)."""
  return " ".join(doc.split("\n\n")[start:stop]).replace("\n", " ")


def write_report(result: dict, out: Path, write_markdown: Callable[[dict, Path], None],
                 plot: Callable[[dict, Path], None] | None = None) -> None:
  """``out.json`` (written atomically: a temporary file, then a rename), ``out.md`` and, with
  ``plot``, ``out.png``."""
  out.parent.mkdir(parents=True, exist_ok=True)
  tmp = out.with_suffix(".json.tmp")
  tmp.write_text(json.dumps(result, indent=1, default=float) + "\n")
  tmp.replace(out.with_suffix(".json"))
  write_markdown(result, out.with_suffix(".md"))
  if plot is not None:
    plot(result, out.with_suffix(".png"))


def render_report(out: Path, description: str, write_markdown: Callable[[dict, Path], None],
                  plot: Callable[[dict, Path], None] | None = None) -> None:
  """Re-writes ``out.md`` (and ``out.png``) from the saved ``out.json``, with the current
  ``description``."""
  result = json.loads(out.with_suffix(".json").read_text())
  result["meta"]["description"] = description
  write_markdown(result, out.with_suffix(".md"))
  if plot is not None:
    plot(result, out.with_suffix(".png"))
