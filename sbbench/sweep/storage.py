"""Optuna storage: a local journal file by default, any Optuna storage URL otherwise."""

from __future__ import annotations

from pathlib import Path

STATE_DIR = Path(".sbbench") / "optuna"  # project-local state folder


class StorageUnavailableError(RuntimeError):
    """The Optuna storage cannot be opened; raised before any compute."""


def default_storage_path(study_name: str) -> Path:
    return (STATE_DIR / f"{study_name}.journal").resolve()


def storage_url_for(storage: str | None, study_name: str) -> str:
    """What workers receive: an absolute journal path (journal:PATH) or the storage URL."""
    storage = (storage or "").strip().strip("'\"")
    if not storage or storage == "local":  # "local": the MLproject default
        return "journal:" + str(default_storage_path(study_name))
    if storage.startswith("journal:"):
        return "journal:" + str(Path(storage[len("journal:"):]).resolve())
    if storage.startswith("sqlite:///") and not storage.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(storage[len("sqlite:///"):]).resolve())
    if "://" not in storage:  # a bare path means a journal file
        return "journal:" + str(Path(storage).resolve())
    return storage


def open_storage(url: str):
    """Open (and so check) the storage. One-line StorageUnavailableError when it cannot."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    try:
        if url.startswith("journal:"):
            path = Path(url[len("journal:"):])
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(str(path)))
        storage = optuna.storages.RDBStorage(url, heartbeat_interval=60, grace_period=180)
        storage.get_all_studies()  # forces a connection now, not mid-sweep
        return storage
    except Exception as err:  # drivers raise many types; all mean "cannot use it"
        first_line = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise StorageUnavailableError(
            f"storage={url!r}: cannot open ({first_line}); allowed: empty (a local journal "
            "file), journal:PATH, postgresql://..., mysql://...") from None
