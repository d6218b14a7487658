"""One-off migration (issue 21): every committed run directory renamed from
`seed-<S>[-cuda][-<hash of overrides>]` to `seed-<S>-<device>-<hash of every setting>`, each
result.json given the `reading` it lacks (from its config.json), and each config.json completed with the settings it lacks, which were added after it was written, each at
the value those runs had: the setting's default (the text reading's; `reading` text, no base),
except FF_best's negatives, which were the head's hard ones before `negatives` was its setting
(commit 1354a3e).
Run once from the repository root: `python runs/migrate_full_identity.py`; deleted afterwards."""

import json
import os
import sys
from pathlib import Path

from ffbench.core.settings import DEFAULTS, FIELDS, plain
from ffbench.runner.store import identity, write_json

HISTORIC = {"ff_best": {"negatives": "hard"}}
moves = []
for config_path in sorted(Path("runs").glob("*/*/*/*/config.json")):
    path = config_path.parent
    config = json.loads(config_path.read_text())
    was = HISTORIC.get(config["method"], {})
    missing = {k: was.get(k, plain(DEFAULTS[k])) for k in FIELDS if k not in config}
    config = {k: config.get(k, missing.get(k)) for k in FIELDS} | {
        k: v for k, v in config.items() if k not in FIELDS}  # fmt: skip
    result = json.loads((path / "result.json").read_text())
    assert result["experiment"] == config["name"] and result["seed"] == config["seed"]
    assert path.parts[2] == config["reading"] and path.parts[3] == config["name"], path
    device = config["device"].split(":")[0]
    name = f"seed-{config['seed']}-{device}-"
    name += identity(config, config["reading"], config["seed"], device)
    if "reading" not in result:
        result = {"experiment": result["experiment"], "reading": config["reading"]} | result
    moves.append((path, path.with_name(name), config, missing, result))

targets = [new for _, new, *_ in moves]
clash = {t for t in targets if targets.count(t) > 1}
if clash:
    sys.exit(f"two runs would share a name: {sorted(map(str, clash))}")
for old, new, config, missing, result in moves:
    if missing:
        write_json(old / "config.json", config)
        write_json(old / "result.json", result)
    os.rename(old, new)
    print(f"{old} -> {new.name}" + (f" (filled {sorted(missing)})" if missing else ""))
print(f"{len(moves)} runs moved")
