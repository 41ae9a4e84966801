"""`import tidal` stays light: no database, dataframe or model libraries until needed."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ["sqlalchemy", "pandas", "numpy", "scipy", "sklearn", "pyarrow", "alembic", "fsspec"]


def test_import_tidal_loads_no_heavy_modules():
    code = (
        "import json, sys, tidal; "
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    loaded = json.loads(subprocess.check_output([sys.executable, "-c", code], text=True))
    assert loaded == []


def test_the_project_api_does_not_load_training_libraries():
    code = (
        "import json, sys, tidal; tidal.Project; "
        "print(json.dumps([m for m in ['pandas', 'sklearn', 'pyarrow'] if m in sys.modules]))"
    )
    loaded = json.loads(subprocess.check_output([sys.executable, "-c", code], text=True))
    assert loaded == []
