# Shared by scripts/run and scripts/test (sourced, not run): Debian packages, Python and the .venv.
# Works as root or through sudo; quick when everything is installed already.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
_apt_updated=""

say() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }
die() { say "$*"; exit 1; }

# Run a command as root: directly, or with sudo (never prompting when unattended).
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        if [ -n "${CI:-}" ] || [ ! -t 0 ]; then sudo -n "$@"; else sudo "$@"; fi
    else
        die "need root to run: $* (run as root, or install sudo)"
    fi
}

_installed() { dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null | grep -q '^ii'; }

# Install the Debian packages that are missing; `apt-get update` at most once, only if needed.
apt_ensure() {
    local missing=() pkg
    command -v dpkg-query >/dev/null 2>&1 || { say "not Debian: make sure these are installed: $*"; return 0; }
    for pkg in "$@"; do _installed "$pkg" || missing+=("$pkg"); done
    [ "${#missing[@]}" -eq 0 ] && return 0
    say "installing Debian packages: ${missing[*]}"
    if [ -z "$_apt_updated" ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q || die "apt-get update failed"
        _apt_updated=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}" \
        || die "apt-get install ${missing[*]} failed"
}

# A Python >= 3.11: $PYTHON if set, else python3 (installed from Debian if missing).
_good_python() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; }

find_python() {
    local candidate
    if [ -n "${PYTHON:-}" ]; then
        _good_python "$PYTHON" || die "PYTHON=$PYTHON is not a working Python 3.11 or newer"
        command -v "$PYTHON"
        return
    fi
    command -v python3 >/dev/null 2>&1 || apt_ensure python3 >&2
    for candidate in python3 python3.13 python3.12 python3.11; do
        if command -v "$candidate" >/dev/null 2>&1 && _good_python "$candidate"; then
            command -v "$candidate"
            return
        fi
    done
    die "Switchboard needs Python 3.11 or newer (Debian 12 or later has it); found: $(python3 --version 2>&1)"
}

_venv_ok() {
    [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import sys, pip; sys.exit(sys.version_info[:2] != $1)" \
        >/dev/null 2>&1
}

# Create .venv with the chosen Python (recreating a broken or other-version one), installing
# python3-venv when Debian's Python lacks it.
ensure_venv() {
    local python version
    python="$(find_python)"
    version="$("$python" -c 'import sys; print(tuple(sys.version_info[:2]))')"
    _venv_ok "$version" && return 0
    [ -e "$VENV" ] && { say "recreating $VENV"; rm -rf "$VENV"; }
    say "creating $VENV with $python ($("$python" --version 2>&1))"
    if ! "$python" -m venv "$VENV" >/dev/null 2>&1; then
        rm -rf "$VENV"
        case "$python" in
            /usr/bin/*)
                local short
                short="$(basename "$python")"
                apt_ensure python3-venv
                if [ "$short" != python3 ] && apt-cache show "$short-venv" >/dev/null 2>&1; then apt_ensure "$short-venv"; fi
                ;;
        esac
        "$python" -m venv "$VENV" || { rm -rf "$VENV"; die "cannot create a virtual environment with $python"; }
    fi
    _venv_ok "$version" || die "$VENV is not usable after creating it"
}

# pip install -e ".[EXTRAS]" unless this pyproject.toml was installed already with them
# (the "test" install covers the plain one).
ensure_project() {
    local extras="$1" stamp="$VENV/.switchboard-installed" spec="$ROOT" digest done_digest done_extras
    digest="$( (cat "$ROOT/pyproject.toml"; "$VENV/bin/python" -VV) | sha256sum | cut -d' ' -f1)"
    if [ -f "$stamp" ]; then
        read -r done_digest done_extras < "$stamp" || true
        if [ -x "$VENV/bin/switchboard" ] && [ "$done_digest" = "$digest" ] && { [ "${done_extras:-}" = "$extras" ] || [ "${done_extras:-}" = test ]; }; then
            return 0
        fi
    fi
    [ -n "$extras" ] && spec="$ROOT[$extras]"
    say "installing switchboard-pbx${extras:+[$extras]} and its dependencies into $VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$spec" \
        || die "pip install -e '$spec' failed"
    printf '%s %s\n' "$digest" "$extras" > "$stamp"
}
