#!/usr/bin/env bash
# The image's HEALTHCHECK: liveness of whichever role the container runs.
#   TANDEM_HEALTH=frontend  GET http://127.0.0.1:$TANDEM_HEALTH_PORT/live answers 200
#   TANDEM_HEALTH=worker    the worker's gRPC port ($TANDEM_HEALTH_PORT) accepts a connection
# (Kubernetes probes the real endpoints instead: /health and the gRPC health service, deploy/k8s/.)
set -euo pipefail
port="${TANDEM_HEALTH_PORT:?expected TANDEM_HEALTH_PORT, the port to check}"
case "${TANDEM_HEALTH:-frontend}" in
  frontend) exec curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:${port}/live" ;;
  worker) exec bash -c "exec 3<>/dev/tcp/127.0.0.1/${port}" ;;
  *) echo "healthcheck: TANDEM_HEALTH: expected frontend or worker, found '${TANDEM_HEALTH}'" >&2; exit 2 ;;
esac
