"""Check a dataset before training on it: its split files, then every video, fully decoded in parallel.

    python -m ar_experiments.check_data data=ucf101 data.root=/data/ucf101
    python -m ar_experiments.check_data data=ucf101 data.root=/data/ucf101 split=2 check.workers=8

Takes the training config's data settings (conf/check_data.yaml adds `check`).
Problems in the split files are listed with file and line; each unreadable
video with the reason, also in `unreadable_videos.txt` of the output folder.
Exit code 1 if anything is wrong. Decoding all of UCF101 (13,320 videos,
about 2.5 million frames) takes minutes per core.
"""

from __future__ import annotations

import logging
import os
import sys
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from functools import partial
from pathlib import Path

import hydra
from omegaconf import DictConfig

from .config.checks import ConfigError, data_problems, resolve
from .data.decode_check import find_decode_problem
from .data.splits import SPLITS, DatasetIndexError
from .data.video_limits import DEFAULT_MAX_ASPECT_RATIO
from .safety.atomic import atomic_write_text

log = logging.getLogger(__name__)


def indexed_videos(cfg: DictConfig, splits: list[int]) -> tuple[Path, list[str]]:
    """(videos folder, every video the split files list); DatasetIndexError with all problems of all splits."""
    from hydra.utils import instantiate

    problems: list[str] = []
    videos: set[str] = set()
    videos_dir = None
    for split in splits:
        datamodule = instantiate(cfg.data, split=split)
        videos_dir = datamodule.videos_dir
        try:
            index = datamodule.load_index()
        except DatasetIndexError as err:
            problems += [p for p in err.problems if p not in problems]  # classInd.txt problems repeat per split
            continue
        videos.update(record.path for record in index.train + index.test)
    if problems:
        raise DatasetIndexError(problems)
    return videos_dir, sorted(videos)


def scan_videos(videos_dir: Path, videos: list[str], workers: int, data: DictConfig) -> dict[str, str]:
    """{video: why it cannot be read} for every video that fails to decode completely.

    Every frame is converted as the loader converts it, with `data`'s short_side and max_aspect_ratio."""
    from tqdm import tqdm

    paths = [str(videos_dir / video) for video in videos]
    unreadable: dict[str, str] = {}
    problem_of = partial(
        find_decode_problem,
        short_side=data.get("short_side"),
        max_aspect_ratio=data.get("max_aspect_ratio", DEFAULT_MAX_ASPECT_RATIO),
    )
    progress = tqdm(total=len(paths), desc="decoding videos", unit="video", file=sys.stderr)
    # one worker: a thread, which starts at once and keeps tracebacks simple
    with ProcessPoolExecutor(workers) if workers > 1 else ThreadPoolExecutor(1) as pool:
        chunk = max(1, min(32, len(paths) // (workers * 8)))
        for video, problem in zip(videos, pool.map(problem_of, paths, chunksize=chunk)):
            progress.update()
            if problem:
                unreadable[video] = problem
                progress.write(f"unreadable: {video}: {problem}")
    progress.close()
    return unreadable


def check_data(cfg: DictConfig) -> int:
    """0 when the split files and every video they list are fine, else 1 (after saying what is wrong)."""
    splits = list(SPLITS) if cfg.split is None else [cfg.split]
    try:
        config = resolve(cfg)
        problems = data_problems({**config, "split": splits[0]})
        if problems:
            raise ConfigError(problems)
        videos_dir, videos = indexed_videos(cfg, splits)
    except (ConfigError, DatasetIndexError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"split files of split(s) {', '.join(map(str, splits))}: fine, {len(videos)} videos listed")
    workers = cfg.check.workers or os.cpu_count() or 1
    unreadable = scan_videos(videos_dir, videos, workers, cfg.data)
    if not unreadable:
        print(f"all {len(videos)} videos decode completely")
        return 0
    report = Path(cfg.paths.output_dir) / "unreadable_videos.txt"
    atomic_write_text(report, "".join(f"{video}\t{why}\n" for video, why in sorted(unreadable.items())))
    print(
        f"{len(unreadable)} of {len(videos)} videos cannot be read (list: {report}). Replace them, or train anyway: "
        "with data.on_bad_video=skip (the default) each is replaced by another video of its split in training "
        "and left out of validation and test (and counted in results.json)"
    )
    return 1


@hydra.main(version_base="1.3", config_path="../conf", config_name="check_data")
def main(cfg: DictConfig) -> None:
    status = check_data(cfg)
    if status:
        sys.exit(status)


if __name__ == "__main__":
    main()
