"""Project rules for the deployment files that no schema expresses; called by .ci/validate-deploy.

    python deploy/check_policy.py   (from the repository root; needs ruamel.yaml)

Prints one line per finding and exits 1 when there is any.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from ruamel.yaml import YAML

SECRET_KEY = re.compile(r"SECRET|PASSWORD|TOKEN|APP_KEY|CREDENTIAL", re.IGNORECASE)
# One whole interpolation, e.g. ${SIGNAL_AUTH__JWT_SECRET:?message}.
INTERPOLATION = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*(?:(?::?[-?])[^}]*)?\}$")
# Every interpolation in a string; `$$` is a literal dollar, not one.
REFERENCE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)")
# user:password@ in a URL.
URL_CREDENTIALS = re.compile(r"://[^/:@\s]+:([^@\s]+)@")

findings: list[str] = []


def finding(message: str) -> None:
    findings.append(message)


def environment(service: dict) -> dict:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return {
            item.split("=", 1)[0]: (item.split("=", 1)[1] if "=" in item else None)
            for item in env
        }
    return dict(env)


def check_compose(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    doc = YAML(typ="safe").load(text)
    if "version" in doc:
        finding(f"{path}: the obsolete top-level `version:` key")
    services = doc.get("services") or {}
    for name, service in services.items():
        where = f"{path}: service {name}"
        image = service.get("image", "")
        if not image:
            finding(f"{where}: no image")
        elif "${" not in image and (":" not in image or image.endswith(":latest")):
            finding(f"{where}: image {image} is not pinned to a version tag")
        if not (service.get("healthcheck") or {}).get("test"):
            finding(f"{where}: no healthcheck")
        for dep, cond in (service.get("depends_on") or {}).items():
            if not isinstance(cond, dict) or cond.get("condition") != "service_healthy":
                finding(f"{where}: depends_on {dep} without condition: service_healthy")
        for key, value in environment(service).items():
            if value is None:
                continue  # passed through from the environment, or left unset
            value = str(value)
            if SECRET_KEY.search(key) and not INTERPOLATION.match(value):
                finding(f"{where}: {key} is a literal; take it from the environment: ${{{key}}}")
            for password in URL_CREDENTIALS.findall(value):
                if not INTERPOLATION.match(password):
                    finding(f"{where}: {key} holds a literal password; use ${{...}}")
    for required in ("SIGNAL_AUTH__JWT_SECRET", "POSTGRES_PASSWORD"):
        if not re.search(r"\$\{" + required + r":\?", text):
            finding(f"{path}: {required} must be required from the environment (${{{required}:?...}})")
    for lineno, line in enumerate(text.splitlines(), 1):
        if "JWT_SECRET" in line and ":" in line and not line.lstrip().startswith("#"):
            value = line.split(":", 1)[1].strip()
            if value and not value.startswith("${"):
                finding(f"{path}:{lineno}: JWT secret not taken from ${{...}}")
    return set(REFERENCE.findall(text))


def env_example_names(path: Path) -> dict[str, str]:
    names = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^\s*#?\s*([A-Z][A-Z0-9_]*)=(.*)$", line)
        if m:
            names[m.group(1)] = m.group(2)
    return names


def main() -> int:
    referenced = check_compose(Path("docker-compose.yml"))

    example = env_example_names(Path(".env.example"))
    for name in sorted(referenced - example.keys()):
        finding(f".env.example: {name} (used by docker-compose.yml) is not listed")
    for name in ("SIGNAL_AUTH__JWT_SECRET", "POSTGRES_PASSWORD"):
        if not example.get(name, "").startswith("change-me"):
            finding(f".env.example: {name} must hold a change-me placeholder, not a value")

    for lineno, line in enumerate(Path("Dockerfile").read_text(encoding="utf-8").splitlines(), 1):
        m = re.match(r"^\s*(ENV|ARG)\s+(\S+)", line)
        if m and SECRET_KEY.search(m.group(2)):
            finding(f"Dockerfile:{lineno}: secret-like {m.group(1)} {m.group(2)} baked into the image")

    ignore = Path(".dockerignore").read_text(encoding="utf-8").split()
    for pattern in ("target", ".git", "data", ".env"):
        if pattern not in ignore and f"{pattern}/" not in ignore:
            finding(f".dockerignore: {pattern} is not excluded")

    for message in findings:
        print(message)
    if not findings:
        print("no findings")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
