"""Each command imports its capability when it runs: listing the commands loads no database driver.

``pgpulse --help`` (and shell completion, and every command's own ``--help``) builds the whole command tree;
with the drivers and the ORM imported up front that took seconds on a loaded machine.
"""

from __future__ import annotations

import json
import subprocess
import sys

DRIVERS = ["asyncpg", "sqlalchemy", "alembic", "psutil", "fastapi", "uvicorn", "jinja2", "matplotlib"]


def test_importing_the_cli_loads_no_driver_nor_orm() -> None:
    code = "import json, sys, pgpulse.cli; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout))
    assert "typer" in loaded and "pgpulse" in loaded
    assert sorted(loaded & set(DRIVERS)) == []
