"""Build hook: compile the statement key's C file (analysis/statement_key.c) into the wheel.

It needs only a C compiler and Python's headers (Debian: gcc and python3-dev); where they
are missing the package installs without it and the DuckDB macro computes the same keys,
more slowly (analysis.fingerprint.key_implementation says which one runs).
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCE = "analysis/statement_key.c"


class StatementKeyHook(BuildHookInterface):
    """Compile the extension; an editable install finds it beside its source."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict) -> None:
        if self.target_name != "wheel":
            return
        name = "statement_key" + sysconfig.get_config_var("EXT_SUFFIX")
        if version == "editable":
            out = Path(self.root) / "analysis" / name
        else:
            # outside the checkout: building the wheel leaves nothing in it
            out = Path(tempfile.mkdtemp(prefix="postmortem-build-")) / name
        cc = shlex.split(sysconfig.get_config_var("CC") or "cc")
        flags = ["-O2", "-shared", "-fPIC", "-I", sysconfig.get_paths()["include"]]
        if sys.platform == "darwin":
            flags += ["-undefined", "dynamic_lookup"]
        cmd = [*cc, *flags, str(Path(self.root) / SOURCE), "-o", str(out)]
        try:
            subprocess.run(cmd, check=True, capture_output=True, text=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            detail = getattr(exc, "stderr", "") or str(exc)
            self.app.display_warning(
                f"{SOURCE} was not compiled, statement keys will be computed by the DuckDB "
                f"macro: {' '.join(cmd)}: {detail.strip()[-500:]}"
            )
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        if version != "editable":
            build_data["force_include"][str(out)] = f"analysis/{name}"
