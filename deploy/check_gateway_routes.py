"""The reverse proxy routes exactly what the embedded gateway routes; called by .ci/validate-deploy.

    python deploy/check_gateway_routes.py   (from the repository root)

One table, deploy/gateway-routes.txt, says which paths go to which service. The all-in-one
binary's gateway reads it; this checks deploy/nginx/default.conf against it both ways:
  - every route of the table has its two nginx locations (`= /path` and `^~ /path/`), sending
    to the same service, stripping the path when the table says so;
  - every nginx location is a route of the table, or the app's own (`/` and `/assets/`);
and that the proxy gives the app's pages the same Content-Security-Policy as the gateway.
Prints one line per finding and exits 1 when there is any.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

TABLE = Path("deploy/gateway-routes.txt")
NGINX = Path("deploy/nginx/default.conf")
HEADERS = Path("deploy/nginx/security-headers.conf")
GATEWAY_HEADERS = Path("crates/signal/src/gateway/app_files.rs")
APP_LOCATIONS = {("prefix", "/"), ("prefix", "/assets/")}
UPSTREAMS = {"$asset_service": "asset", "$alert_service": "alert"}


@dataclass(frozen=True)
class Location:
    kind: str  # "exact" (=) or "prefix" (^~ or none)
    path: str
    target: str  # asset, alert, none (JSON 404) or app
    strip: bool


def read_table() -> dict[str, tuple[str, bool]]:
    routes = {}
    for line in TABLE.read_text(encoding="utf-8").splitlines():
        words = line.split("#", 1)[0].split()
        if words:
            routes[words[0]] = (words[1], len(words) > 2 and words[2] == "strip")
    return routes


def blocks(text: str):
    """Yields (modifier, path, body) of every location block."""
    for match in re.finditer(r"location\s+(=|\^~)?\s*(\S+)\s*\{", text):
        depth, start = 1, match.end()
        end = start
        while depth and end < len(text):
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            end += 1
        yield match.group(1), match.group(2), text[start : end - 1]


def read_nginx() -> list[Location]:
    text = "\n".join(
        line.split("#", 1)[0] if not line.strip().startswith("return") else line
        for line in NGINX.read_text(encoding="utf-8").splitlines()
    )
    locations = []
    for modifier, path, body in blocks(text):
        proxy = re.search(r"proxy_pass\s+http://(\$\w+)\s*;", body)
        if proxy:
            target = UPSTREAMS.get(proxy.group(1), f"unknown upstream {proxy.group(1)}")
        elif re.search(r"return\s+404\b", body):
            target = "none"
        else:
            target = "app"
        strip = bool(re.search(r"rewrite\s+\^\S*\s+\S+\s+break\s*;", body))
        locations.append(Location("exact" if modifier == "=" else "prefix", path, target, strip))
    return locations


def expected(routes: dict[str, tuple[str, bool]]) -> set[Location]:
    wanted = set()
    for path, (target, strip) in routes.items():
        wanted.add(Location("exact", path, target, strip))
        wanted.add(Location("prefix", path + "/", target, strip))
    return wanted


def policy(text: str) -> str | None:
    match = re.search(r'Content-Security-Policy\s+"([^"]+)"', text)
    return match.group(1) if match else None


def gateway_policy() -> str | None:
    source = GATEWAY_HEADERS.read_text(encoding="utf-8")
    match = re.search(r'const CONTENT_SECURITY_POLICY: &str = "(.*?)";', source, re.S)
    return re.sub(r"\\\n\s*", "", match.group(1)) if match else None


def main() -> int:
    findings = []
    wanted = expected(read_table())
    found = read_nginx()
    present = set(found)
    for location in sorted(wanted - present, key=lambda l: l.path):
        findings.append(f"{NGINX}: missing `location {'=' if location.kind == 'exact' else '^~'} "
                        f"{location.path}` to {location.target}{' (stripped)' if location.strip else ''}")
    for location in found:
        if location in wanted:
            continue
        if (location.kind, location.path) in APP_LOCATIONS and location.target == "app":
            continue
        findings.append(f"{NGINX}: `location {location.path}` ({location.target}"
                        f"{', stripped' if location.strip else ''}) is not what {TABLE} routes")
    if policy(HEADERS.read_text(encoding="utf-8")) != gateway_policy():
        findings.append(f"{HEADERS}: its Content-Security-Policy differs from the gateway's ({GATEWAY_HEADERS})")
    for message in findings:
        print(message)
    if not findings:
        print(f"{len(wanted) // 2} routes, the same in the gateway's table and the proxy")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
