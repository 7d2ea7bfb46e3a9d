#!/usr/bin/env bash
# Runs on the deploy host, called over SSH by the `deploy` job of .github/workflows/ci.yml:
#   remote-deploy.sh DIR IMAGE TAG [REGISTRY_USER]   (registry token on standard input)
# DIR holds docker-compose.yml (copied by the job) and the host's own .env with the secrets.
# Pulls the image the job just pushed and restarts what changed, as the original deployment did
# (`docker compose pull && docker compose up -d`), then waits until every service is healthy.
set -euo pipefail

dir=$1
image=$2
tag=$3
registry_user=${4:-}

cd "$dir"
if [[ ! -f .env ]]; then
  echo "no .env in $dir: copy .env.example to .env and set the secrets first" >&2
  exit 1
fi

# The image and tag of this deployment win over the values in .env.
export SIGNAL_IMAGE="$image" SIGNAL_TAG="$tag"

if [[ -n "$registry_user" ]]; then
  # The token is the job's short-lived GITHUB_TOKEN: log in for this pull only.
  docker login ghcr.io --username "$registry_user" --password-stdin
  trap 'docker logout ghcr.io >/dev/null 2>&1 || true' EXIT
fi

docker compose pull
docker compose up -d --remove-orphans --wait --wait-timeout 300
docker compose ps
docker image prune -f >/dev/null
echo "deployed $image:$tag"
