"""Adapter downloads: the final PEFT folder, or one built from a round's stored global checkpoint."""

from __future__ import annotations

import io
import threading
import uuid
import zipfile
from pathlib import Path

from sqlalchemy.orm import Session

from app.core.config import Settings, fedcore_paths
from app.services.errors import Conflict, NotFound
from app.services.experiments import get_experiment, get_round

_build_lock = threading.Lock()  # contexts are cached per process and share one model


def zip_folder(folder: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())
    return buf.getvalue()


def adapter_zip(
    *, db_session: Session, settings: Settings, experiment_id: uuid.UUID, round_: int | None
) -> tuple[bytes, str]:
    """The zip bytes and a file name."""
    exp = get_experiment(db_session=db_session, experiment_id=experiment_id)
    stem = f"{exp.name}-{str(exp.id)[:8]}"
    if round_ is None:
        if not exp.adapter_path or not Path(exp.adapter_path, "adapter_config.json").is_file():
            raise Conflict(
                f"experiment {experiment_id} has no final adapter (status {exp.status}); "
                f"ask for one round's adapter with ?round=N (rounds 1..{exp.rounds_done} are stored)"
            )
        return zip_folder(Path(exp.adapter_path)), f"{stem}-adapter.zip"
    row = get_round(db_session=db_session, experiment_id=experiment_id, round_=round_)
    folder = Path(exp.artifact_dir or settings.experiment_dir(exp.id))
    if row.checkpoint is None or not (folder / row.checkpoint).is_file():
        raise NotFound(f"the global checkpoint of round {round_} is not in the artifact store")
    out = folder / "adapters" / f"round_{round_:04d}"
    if not (out / "adapter_config.json").is_file():
        _build(exp.spec, folder / row.checkpoint, out, settings)
    return zip_folder(out), f"{stem}-round-{round_}-adapter.zip"


def _build(spec_data: dict, checkpoint: Path, out: Path, settings: Settings) -> None:
    from safetensors.torch import load_file

    from fedcore.context import get_context
    from fedcore.simulation import save_adapter
    from fedcore.spec import ExperimentSpec

    spec = ExperimentSpec.model_validate(spec_data)
    with _build_lock:
        ctx = get_context(spec, fedcore_paths(settings))
        tmp = out.with_name(out.name + f".tmp-{uuid.uuid4().hex[:8]}")
        save_adapter(ctx, load_file(str(checkpoint)), tmp)
        if out.exists():  # built meanwhile by another process
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.rename(out)
