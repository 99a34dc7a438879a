#!/usr/bin/env bash
# Local stand-ins for the registry images docker-compose.yml uses, for sites
# (and CI here) that reach PyPI and a Debian mirror but no container registry.
#
#   scripts/docker_local_images.sh         install + start the engine if needed, build what is
#                                          missing, write the compose variables to
#                                          $STATE/images.env and print them
#   scripts/docker_local_images.sh stop    stop the dockerd this script started (if it did)
#
# Then:  docker-compose --env-file .cache/docker-local/images.env up -d --build
#
# Idempotent and cached: every image carries a label with the hash of its
# inputs (its Dockerfile, files, build args and parent image), and a run
# rebuilds only images whose inputs changed (about 1 s when nothing did).
# Images: a Debian base from debootstrap (with this host's CA bundle, so TLS
# to PyPI works inside builds), Python 3.11 (for BASE_IMAGE), Airflow from PyPI
# (AIRFLOW_BASE_IMAGE), Chroma from the pinned chromadb wheel (`chroma run`),
# PostgreSQL, Redis and nginx from Debian packages.
set -euo pipefail
cd "$(dirname "$0")/.."

STATE=${DOCKER_LOCAL_STATE:-.cache/docker-local}
# Debian's client: its BuildKit works; a newer client first on PATH may lack buildx.
DOCKER=${DOCKER:-/usr/bin/docker}
PREFIX=${LOCAL_IMAGE_PREFIX:-tender-local}
SUITE=bookworm
LOCAL=deploy/local
mkdir -p "$STATE"

log() { echo "docker_local_images: $*" >&2; }
die() { log "$*"; exit 1; }

pin() {  # pin NAME FILE -> the version pinned with == in FILE
    sed -nE "s/^$1==([^ #]+).*/\1/p" "$2" | head -1
}
dockerfile_arg() {  # the default of a global ARG in ./Dockerfile
    sed -nE "s/^ARG $1=(.*)$/\1/p" Dockerfile | head -1
}

stop_pidfile() {
    local file=$1 pid
    [[ -f $file ]] || return 0
    pid=$(cat "$file")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
        log "stopped ${file##*/} (pid $pid)"
    fi
    rm -f "$file"
}

if [[ ${1:-} == stop ]]; then
    stop_pidfile "$STATE/dockerd.pid"
    exit 0
fi
[[ $# == 0 ]] || die "usage: $0 [stop]"

# ----------------------------------------------------------------------------- engine
start=$SECONDS
missing=()
[[ -x /usr/sbin/dockerd && -x /usr/bin/docker ]] || missing+=(docker.io)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if ((${#missing[@]})); then
    [[ $(id -u) == 0 ]] || die "needs ${missing[*]} (apt-get install -y ${missing[*]}, as root)"
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! "$DOCKER" info >/dev/null 2>&1; then
    [[ $(id -u) == 0 ]] || die "no Docker engine answers and only root can start one"
    log "starting dockerd (log: $STATE/dockerd.log)"
    setsid /usr/sbin/dockerd >"$STATE/dockerd.log" 2>&1 < /dev/null &
    echo $! > "$STATE/dockerd.pid"
    for _ in $(seq 1 60); do "$DOCKER" info >/dev/null 2>&1 && break; sleep 1; done
    "$DOCKER" info >/dev/null 2>&1 || die "dockerd did not start: $(tail -5 "$STATE/dockerd.log")"
fi
log "engine ready in $((SECONDS - start)) s"

# ----------------------------------------------------------------------------- images
label=org.tender.inputs
image_id() { "$DOCKER" image inspect -f '{{.Id}}' "$1" 2>/dev/null || true; }
built_from() { "$DOCKER" image inspect -f "{{ index .Config.Labels \"$label\" }}" "$1" 2>/dev/null || true; }

# build TAG DOCKERFILE [--build-arg K=V ...]: build from deploy/local/ unless its inputs are unchanged.
build() {
    local tag=$1 file=$2; shift 2
    local parent hash t0=$SECONDS
    parent=$(sed -nE 's/^ARG (DEBIAN|PYTHON)_IMAGE$/\1/p' "$LOCAL/$file")
    case $parent in
        DEBIAN) parent=$(image_id "$DEBIAN_IMAGE") ;;
        PYTHON) parent=$(image_id "$PYTHON_IMAGE") ;;
    esac
    hash=$( { cat "$LOCAL/$file" "$LOCAL"/*.sh; echo "$parent $*"; } | sha256sum | cut -c1-16)
    if [[ $(built_from "$tag") == "$hash" ]]; then
        log "$tag: cached"
        return
    fi
    log "$tag: building"
    DOCKER_BUILDKIT=1 "$DOCKER" build -q -f "$LOCAL/$file" --label "$label=$hash" -t "$tag" "$@" "$LOCAL" >/dev/null \
        || die "$tag: build failed (rerun: $DOCKER build -f $LOCAL/$file $* $LOCAL)"
    log "$tag: built in $((SECONDS - t0)) s"
}

# Debian base: debootstrap + docker import, with the host's CA certificates.
DEBIAN_IMAGE=$PREFIX/debian:$SUITE
mirror=${DEBIAN_MIRROR:-$(sed -nE 's/^URIs: *(http[^ ]*debian)\/?$/\1/p; s/^deb +(http[^ ]*debian)\/? .*/\1/p' \
    /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null | head -1 || true)}
mirror=${mirror:-http://deb.debian.org/debian}
certs=$(cat /etc/ssl/certs/ca-certificates.crt /usr/local/share/ca-certificates/*.crt 2>/dev/null | sha256sum | cut -c1-16 || true)
base_hash=$(echo "$SUITE $mirror $certs" | sha256sum | cut -c1-16)
if [[ $(built_from "$DEBIAN_IMAGE") == "$base_hash" ]]; then
    log "$DEBIAN_IMAGE: cached"
else
    t0=$SECONDS
    log "$DEBIAN_IMAGE: debootstrap $SUITE from $mirror"
    rootfs=$(mktemp -d /tmp/tender-rootfs.XXXXXX)
    trap 'rm -rf "$rootfs"' EXIT
    debootstrap --variant=minbase "$SUITE" "$rootfs" "$mirror" >"$STATE/debootstrap.log" 2>&1 \
        || die "debootstrap failed: $(tail -5 "$STATE/debootstrap.log")"
    mkdir -p "$rootfs/etc/ssl/certs" "$rootfs/usr/local/share/ca-certificates"
    cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
    cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/" 2>/dev/null || true
    security=${mirror%/debian}/debian-security
    cat > "$rootfs/etc/apt/sources.list" <<EOF
deb $mirror $SUITE main
deb $mirror $SUITE-updates main
deb $security $SUITE-security main
EOF
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | "$DOCKER" import \
        -c 'ENV LANG=C.UTF-8 SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
        -c "LABEL $label=$base_hash" -c 'CMD ["/bin/bash"]' - "$DEBIAN_IMAGE" >/dev/null
    rm -rf "$rootfs"
    trap - EXIT
    log "$DEBIAN_IMAGE: imported in $((SECONDS - t0)) s"
fi

python_version=$(dockerfile_arg PYTHON_VERSION)
airflow_version=$(dockerfile_arg AIRFLOW_VERSION)
chroma_version=$(pin chromadb requirements.txt)
[[ $python_version == 3.11 ]] || die "Debian $SUITE has Python 3.11, the Dockerfile wants $python_version"
PYTHON_IMAGE=$PREFIX/python:$python_version
build "$PYTHON_IMAGE" python.Dockerfile --build-arg "DEBIAN_IMAGE=$DEBIAN_IMAGE"
AIRFLOW_IMAGE=$PREFIX/airflow:$airflow_version-python$python_version
build "$AIRFLOW_IMAGE" airflow.Dockerfile --build-arg "PYTHON_IMAGE=$PYTHON_IMAGE" \
    --build-arg "AIRFLOW_VERSION=$airflow_version" --build-arg "FAB_PROVIDER_VERSION=3.10.2"
CHROMA_IMAGE=$PREFIX/chroma:$chroma_version
build "$CHROMA_IMAGE" chroma.Dockerfile --build-arg "PYTHON_IMAGE=$PYTHON_IMAGE" \
    --build-arg "CHROMA_VERSION=$chroma_version"
for name in postgres redis nginx; do
    build "$PREFIX/$name:$SUITE" "$name.Dockerfile" --build-arg "DEBIAN_IMAGE=$DEBIAN_IMAGE"
done
# Earlier builds of these images, untagged by the rebuilds above (only dangling images with our label).
"$DOCKER" image prune -f --filter "label=$label" >/dev/null || true

{
    echo "# written by scripts/docker_local_images.sh: compose variables for the local images"
    echo "BASE_IMAGE=$PYTHON_IMAGE"
    echo "AIRFLOW_BASE_IMAGE=$AIRFLOW_IMAGE"
    echo "CHROMA_IMAGE=$CHROMA_IMAGE"
    echo "POSTGRES_IMAGE=$PREFIX/postgres:$SUITE"
    echo "REDIS_IMAGE=$PREFIX/redis:$SUITE"
    echo "NGINX_IMAGE=$PREFIX/nginx:$SUITE"
} > "$STATE/images.env"
log "ready in $((SECONDS - start)) s; compose variables in $STATE/images.env"
grep -v '^#' "$STATE/images.env"
