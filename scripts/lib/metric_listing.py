"""The metric table as the binary has it: the JSON of `authserver metrics-names --format json`.

Shared by scripts/check-metric-names.py and scripts/drills/check-runbooks.py, so both read the
table the code really compiles (never the Rust source).
"""
import json
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def read_listing(metrics: Path | None = None, binary: Path | None = None, who: str = "metric-listing"):
    """(listing, where it came from): from `metrics` (a saved listing), else `binary`, else
    `cargo run -q -p authserver` in the repo (builds the debug binary if needed, as the drills do)."""
    if metrics:
        return json.loads(Path(metrics).read_text(encoding="utf-8")), str(metrics)
    if binary:
        cmd, where = [str(binary)], str(binary)
    else:
        cmd, where = ["cargo", "run", "-q", "-p", "authserver", "--"], "cargo run -p authserver"
    cmd += ["metrics-names", "--format", "json"]
    try:
        r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    except OSError as e:
        raise SystemExit(f"{who}: cannot run {' '.join(cmd)}: {e}")
    if r.returncode != 0:
        raise SystemExit(f"{who}: {' '.join(cmd)} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    try:
        return json.loads(r.stdout), f"{where} metrics-names"
    except json.JSONDecodeError as e:
        raise SystemExit(f"{who}: {' '.join(cmd)} printed no JSON: {e}")
