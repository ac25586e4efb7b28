"""What can be run: presets, and which models and datasets are usable on this server now."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from app.core.config import Settings
from app.schemas import AssetList, AssetOut, PresetOut
from fedcore.assets import asset_status
from fedcore.data.sources import BUILTIN_DATASETS, DATASET_ASSETS, LOCAL_SUFFIXES
from fedcore.spec import preset, preset_about, preset_names

TINY_ABOUT = "random tiny model built from a config class (tests, smoke runs); no files needed"
MAX_LOCAL_FILES = 200


def presets() -> list[PresetOut]:
    return [
        PresetOut(name=n, about=preset_about(n), spec=preset(n).model_dump(mode="json"))
        for n in preset_names()
    ]


def assets(settings: Settings) -> AssetList:
    from fedcore.models.loading import KNOWN_MODELS  # imports torch: not at API start-up

    status = {s.name: s for s in asset_status(settings.assets_dir)}
    models = []
    for name in KNOWN_MODELS:
        if name.startswith("tiny-"):
            models.append(AssetOut(name=name, kind="model", usable=True, detail=TINY_ABOUT))
        elif name in status:
            st = status[name]
            usable, detail = st.present, st.detail
            if name == "smollm2-135m" and usable and importlib.util.find_spec("gguf") is None:
                usable, detail = (
                    False,
                    "installed, but loading it needs the gguf package: pip install 'fedheads[hub]'",
                )
            if not st.present:
                detail = f"{detail}; run `fedheads assets {name}`"
            models.append(AssetOut(name=name, kind="model", usable=usable, detail=detail))
        else:
            models.append(
                AssetOut(
                    name=name,
                    kind="model",
                    usable=False,
                    detail="hub model: needs network access to the model hub or a local hub cache",
                )
            )
    datasets = []
    for name, about in BUILTIN_DATASETS.items():
        asset = DATASET_ASSETS.get(name)
        if asset is None:
            datasets.append(AssetOut(name=name, kind="dataset", usable=True, detail=about))
            continue
        st = status[asset]
        hint = "" if st.present else f"; run `fedheads assets {asset}`"
        datasets.append(
            AssetOut(name=name, kind="dataset", usable=st.present, detail=f"{about} ({st.detail}{hint})")
        )
    datasets.extend(_local_files(settings.data_root))
    return AssetList(models=models, datasets=datasets)


def _local_files(root: Path) -> list[AssetOut]:
    root = root.expanduser()
    if not root.is_dir():
        return []
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix.lower() in LOCAL_SUFFIXES:
            rel = path.relative_to(root).as_posix()
            found.append(
                AssetOut(
                    name=rel,
                    kind="dataset",
                    usable=True,
                    detail=f"local file in the data root: use dataset 'local' with data_path '{rel}'",
                )
            )
            if len(found) >= MAX_LOCAL_FILES:
                break
    return found
