"""Where the real-world test data lies (tests/data/README.md says what and whence).

Two places, one rule: what its licence lets the project copy is in the repository
(`REPO_DATA`), so a fresh clone passes `make test` alone; the rest is read in place from
`outside_data()` by the accuracy suite (`make accuracy`, tests marked `shared_data`).
"""

from __future__ import annotations

from pathlib import Path

#: Copied into the repository: gpsd's logs, Traccar's frames, licensed photos.
REPO_DATA = Path(__file__).resolve().parent / "data"
GPSD_LOGS = REPO_DATA / "gpsd"
TRACCAR_FRAMES = REPO_DATA / "jt808" / "traccar_frames.json"


def outside_data() -> Path:
    """The folder of photos read in place (`$BONDWATCH_DATA`, else `../shared/data`)."""
    from devices.ocr.accuracy import default_data_dir  # the reader's heavy imports: on use

    return default_data_dir()


def missing_outside_data(where: Path) -> str:
    from devices.ocr.accuracy import DATA_ENV

    return (
        f"the photos read in place are not at {where}: put the project's shared data folder "
        f"there (beside the repository) or name it with {DATA_ENV}=DIR"
    )
