"""What a fresh interpreter has loaded after some imports: how the layering tests see that a
layer keeps Flask, SQLAlchemy (or lxml) out, which this process, having imported them all,
cannot show."""

from __future__ import annotations

import subprocess
import sys


def loaded_after(imports: str, modules: tuple[str, ...]) -> list[str]:
    """Those of `modules` in sys.modules once `import IMPORTS` ran in a new interpreter."""
    code = f"import sys, {imports}; print(' '.join(m for m in {modules!r} if m in sys.modules))"
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return output.stdout.split()
