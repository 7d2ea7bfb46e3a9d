"""Print docker-compose.yml as JSON with its ${...} interpolated, as `docker compose config`
would resolve it; called by .ci/validate-deploy, which has no Docker to ask.

    python deploy/compose_resolve.py [ENV_FILE]   (default: .env.example)

Like Compose, it parses the YAML first (anchors and `<<` merges included) and interpolates
string values, reading variables from ENV_FILE (its dotenv lines that are not comments) the
way Compose reads .env. Supports what the Compose Specification defines: $$, $VAR, ${VAR},
${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, ${VAR:+alt}, ${VAR+alt}. A
missing required variable is an error, so this also proves ENV_FILE is enough to start the
stack.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from ruamel.yaml import YAML

TOKEN = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
)


def read_env(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key.strip()] = value
    return env


class Interpolator:
    def __init__(self, env: dict[str, str]):
        self.env = env
        self.errors: list[str] = []

    def string(self, text: str) -> str:
        return TOKEN.sub(self._replace, text)

    def _replace(self, m: re.Match) -> str:
        if m.group("escaped"):
            return "$"
        name = m.group("braced") or m.group("plain")
        op, arg = m.group("op"), m.group("arg") or ""
        value = self.env.get(name)
        unset_or_empty = value is None or (op is not None and op.startswith(":") and value == "")
        if op in (":-", "-"):
            return arg if unset_or_empty else value
        if op in (":?", "?"):
            if unset_or_empty:
                self.errors.append(f"{name}: {arg}")
                return ""
            return value
        if op in (":+", "+"):
            return "" if unset_or_empty else arg
        if value is None:
            print(f"warning: {name} is not set; it becomes an empty string", file=sys.stderr)
            return ""
        return value

    def walk(self, node):
        if isinstance(node, dict):
            return {key: self.walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [self.walk(value) for value in node]
        if isinstance(node, str):
            return self.string(node)
        return node


def main() -> None:
    env_file = Path(sys.argv[1] if len(sys.argv) > 1 else ".env.example")
    doc = YAML(typ="safe").load(Path("docker-compose.yml").read_text(encoding="utf-8"))
    interpolator = Interpolator(read_env(env_file))
    resolved = interpolator.walk(doc)
    if interpolator.errors:
        for error in interpolator.errors:
            print(f"required variable missing: {error}", file=sys.stderr)
        raise SystemExit(1)
    json.dump(resolved, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
