"""Building and running deploy/container/Containerfile with Debian's tools.

No image registry is reachable from these machines, so the base image is
bootstrapped from Debian's archive with mmdebstrap, imported into buildah's
storage under the exact name the Containerfile's FROM uses, and the unchanged
Containerfile is built with `buildah bud --isolation chroot` (chroot isolation
needs no container runtime, and runs in the host's network namespace).
The bootstrapped tarball is kept under var/ so reruns skip the bootstrap.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONTAINERFILE = REPO / "deploy" / "container" / "Containerfile"
IGNOREFILE = REPO / "deploy" / "container" / "Containerfile.dockerignore"
CACHE = REPO / "var" / "container"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
# The host's CA bundle: where TLS to PyPI is inspected by a proxy, pip in the
# build needs it (mounted for the build only, never part of the image).
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
TOOLS = ("mmdebstrap", "buildah")

# As debuerreotype trims Debian's official -slim images: no manuals, docs
# (copyrights kept) or translations.
_SLIM = (
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/info/*",
)


class BuildFailed(RuntimeError):
    pass


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def base_images(containerfile: Path = CONTAINERFILE) -> set[str]:
    """The images the FROM lines name (stage names excluded)."""
    stages: set[str] = set()
    bases: set[str] = set()
    for line in containerfile.read_text(encoding="utf-8").splitlines():
        found = re.match(r"(?i)^FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?\s*$", line)
        if found is None:
            continue
        image, stage = found.group(1), found.group(2)
        if image not in stages:
            bases.add(image)
        if stage:
            stages.add(stage)
    return bases


def suite_of(image: str) -> str:
    """`docker.io/library/debian:bookworm-slim` → `bookworm`."""
    found = re.fullmatch(r"(?:docker\.io/library/)?debian:([a-z]+)(?:-slim)?", image)
    if found is None:
        raise BuildFailed(f"{image}: not a Debian image this test can bootstrap")
    return found.group(1)


def _run(argv: Sequence[str], *, timeout: float, what: str) -> str:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise BuildFailed(
            f"{what} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc.stdout


def bootstrap_tarball(suite: str, cache: Path = CACHE) -> Path:
    """A minbase root filesystem of `suite` from Debian's archive (cached)."""
    tarball = cache / f"debian-{suite}-slim.tar"
    if tarball.exists():
        return tarball
    cache.mkdir(parents=True, exist_ok=True)
    partial = tarball.with_suffix(".partial.tar")
    argv = ["mmdebstrap", "--variant=minbase", "--mode=root", "--format=tar", "--quiet"]
    argv += [f"--dpkgopt={opt}" for opt in _SLIM]
    argv += [suite, str(partial), DEBIAN_MIRROR]
    _run(argv, timeout=900, what="mmdebstrap")
    partial.rename(tarball)
    return tarball


def has_image(name: str) -> bool:
    proc = subprocess.run(
        ["buildah", "images", "--quiet", name], capture_output=True, text=True, check=False
    )
    return proc.returncode == 0 and bool(proc.stdout.strip())


def import_base(tarball: Path, name: str) -> None:
    """The tarball as image `name` in buildah's storage (what `podman import` does)."""
    if has_image(name):
        return
    ctr = _run(["buildah", "from", "scratch"], timeout=60, what="buildah from").strip()
    try:
        _run(["buildah", "add", ctr, str(tarball), "/"], timeout=300, what="buildah add")
        _run(
            [
                "buildah", "config", "--cmd", "/bin/bash",
                "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                ctr,
            ],
            timeout=60,
            what="buildah config",
        )  # fmt: skip
        _run(["buildah", "commit", "--quiet", ctr, name], timeout=300, what="buildah commit")
    finally:
        subprocess.run(["buildah", "rm", ctr], capture_output=True, check=False)


def build_image(tag: str, *, version: str) -> None:
    """`buildah bud` of the unchanged Containerfile from the repository root."""
    argv = [
        "buildah", "bud", "--isolation", "chroot", "--format", "docker", "--pull-never",
        "--layers", "--ignorefile", str(IGNOREFILE), "-f", str(CONTAINERFILE),
        "--build-arg", f"VERSION={version}", "-t", tag,
    ]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="cb-build-") as tmp:
        if HOST_CA.exists():
            pip_conf = Path(tmp) / "pip.conf"
            pip_conf.write_text("[global]\ncert = /run/host-ca.crt\n", encoding="utf-8")
            argv += ["-v", f"{HOST_CA}:/run/host-ca.crt:ro", "-v", f"{pip_conf}:/etc/pip.conf:ro"]
        _run([*argv, str(REPO)], timeout=1800, what="buildah bud")


class Container:
    """A working container of an image, removed on exit."""

    def __init__(self, image: str) -> None:
        self.image = image
        self.name = ""

    def __enter__(self) -> Container:
        self.name = _run(
            ["buildah", "from", "--pull-never", self.image], timeout=120, what="buildah from"
        ).strip()
        return self

    def __exit__(self, *_: object) -> None:
        subprocess.run(["buildah", "rm", self.name], capture_output=True, check=False)

    def argv(
        self,
        command: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        volumes: Mapping[Path, str] | None = None,
    ) -> list[str]:
        """`buildah run` of `command` as the image's user, on the host's network."""
        argv = ["buildah", "run", "--isolation", "chroot", "--network", "host"]
        for key, value in (env or {}).items():
            argv += ["--env", f"{key}={value}"]
        for host_path, inside in (volumes or {}).items():
            argv += ["-v", f"{host_path}:{inside}"]
        return [*argv, self.name, "--", *command]

    def run(
        self,
        command: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        volumes: Mapping[Path, str] | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(command, env=env, volumes=volumes),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, "BUILDAH_ISOLATION": "chroot"},
        )


# What `--read-only --tmpfs /tmp -v STATE:/var/lib/checkpoint-bot` does in a
# container runtime, done by hand: the image's root filesystem bind-mounted
# read-only in a private mount namespace, the volumes on it, /tmp a tmpfs,
# then chroot as the image's user with its environment and working directory.
_READ_ONLY = r"""
set -e
root=$1; shift
mount --bind "$root" "$root"
mount -o remount,bind,ro "$root"
mount -t tmpfs tmpfs "$root/tmp"
mount --rbind /dev "$root/dev"
mount -t proc proc "$root/proc"
while [ "$1" != -- ]; do mount --bind "$1" "$root$2"; shift 2; done
shift
cd /
exec chroot --userspec="$USERSPEC" "$root" /usr/bin/env -i "$@"
"""


def run_read_only(
    image: str,
    command: Sequence[str],
    *,
    volumes: Mapping[Path, str],
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """`command` in `image` with a read-only root (needs root and unshare)."""
    inspect = _run(["buildah", "inspect", "--type", "image", image], timeout=60, what="inspect")
    config = json.loads(inspect)["Docker"]["config"]
    workdir = config.get("WorkingDir") or "/"
    environment = [*config.get("Env", []), *(f"{k}={v}" for k, v in (env or {}).items())]
    mounts = [arg for host, inside in volumes.items() for arg in (str(host), inside)]
    with Container(image) as ctr:
        root = _run(["buildah", "mount", ctr.name], timeout=60, what="buildah mount").strip()
        try:
            return subprocess.run(
                [
                    "unshare", "--mount", "--propagation", "private", "sh", "-c", _READ_ONLY,
                    "sh", root, *mounts, "--", *environment,
                    "sh", "-c", 'cd "$0" && exec "$@"', workdir, *command,
                ],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                env={**os.environ, "USERSPEC": config.get("User") or "0:0"},
            )  # fmt: skip
        finally:
            subprocess.run(["buildah", "umount", ctr.name], capture_output=True, check=False)
