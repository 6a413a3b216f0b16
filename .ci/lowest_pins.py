"""Print ``name==floor`` for every runtime dependency (and the local and serve extras).

CI installs these to prove the floors we declare are real. torch is the one exception: its
lowest CPU wheel is not on the package index, so the README's pinned CPU wheel stands in.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
TORCH_CPU = "torch==2.13.0"


def floor(spec: str) -> str:
    """``name==lowest`` for one requirement (torch: the README's CPU wheel)."""
    requirement = Requirement(spec)
    if requirement.name == "torch":
        return TORCH_CPU
    lows = [s.version for s in requirement.specifier if s.operator in (">=", "==", "~=")]
    if not lows:
        sys.exit(f"{spec!r} declares no lower bound: every runtime dependency needs one")
    return f"{requirement.name}=={lows[0]}"


def main() -> None:
    """Print one pin per runtime dependency and per dependency of the runtime extras."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    specs = [*project["dependencies"], *extras["local"], *extras["serve"]]
    print("\n".join(floor(spec) for spec in specs))


if __name__ == "__main__":
    main()
