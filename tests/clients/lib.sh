# Shared by the client tests: a git repository holding planted secrets, a
# config for it, and the installed clients. Sourced, not run.
set -euo pipefail
clients=${WARDEN_BUILD_DIR:?}/clients
if [ ! -d "$clients/node_modules/@modelcontextprotocol/sdk" ]; then
  if [ -d "${WARDEN_SOURCE_DIR:?}/../shared/clients" ]; then
    echo "FAIL: clients not installed; run tests/clients/install.sh $clients (scripts/test.sh does)"; exit 1
  fi
  echo "SKIP: ../shared/clients not found"; exit 77
fi
work=$(mktemp -d /tmp/warden-clients-XXXXXX)
trap 'rm -rf "$work"' EXIT
PLANTED_PASSWORD='Zq9!vault-Prod-4471'
PLANTED_KEY_LINE='b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW'
repo=$work/infra
mkdir -p "$repo/deploy"
cat > "$repo/deploy/id_ed25519" <<KEY
-----BEGIN OPENSSH PRIVATE KEY-----
$PLANTED_KEY_LINE
QyNTUxOQAAACBQk2d0ZXN0a2V5Zm9yd2FyZGVucHJvdG9jb2x0ZXN0c29ubHkAAAAAAAAA
-----END OPENSSH PRIVATE KEY-----
KEY
printf 'DB_USER=app\nDB_PASSWORD=%s\n' "$PLANTED_PASSWORD" > "$repo/.env"
export GIT_CONFIG_GLOBAL=/dev/null GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.com GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@example.com
git -C "$repo" init -q -b main && git -C "$repo" add -A && git -C "$repo" commit -q -m "add deploy key and env"
cat > "$work/warden.yaml" <<YAML
state_dir: $work/state
git:
  repos:
    infra: $repo
YAML
