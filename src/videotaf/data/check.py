"""Dataset health check, the label-range check and the skip-bad-samples wrapper."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import Dataset

from videotaf.data.base import Sample, SkipCounter, VideoDataset, annotation_error
from videotaf.data.decode import (
    CorruptVideoError,
    ShortVideoError,
    decode_every_frame,
    folder_frame_numbers,
    verify_jpeg_frame,
)
from videotaf.data.errors import BadSampleError
from videotaf.data.sampling import clip_indices

__all__ = ["CheckReport", "check_dataset", "check_labels", "label_problems", "SkipBadSamples"]

log = logging.getLogger(__name__)

#: Bad frame files listed one by one per sample in a full check; the rest are summed up in one more line.
MAX_FRAME_PROBLEMS = 10


@dataclass
class CheckReport:
    """Result of :func:`check_dataset`: ``problems`` holds one message per bad annotation entry, sample or frame
    file (each naming its file, and the annotation line or entry of the sample).

    ``files_read`` / ``frames_read``: video and frame files opened, frames decoded; ``full``: every frame was
    decoded (else only those test sampling picks).
    """

    num_samples: int
    num_checked: int
    num_classes: int
    problems: list[str] = field(default_factory=list)
    bad_indices: list[int] = field(default_factory=list)
    files_read: int = 0
    frames_read: int = 0
    full: bool = True

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        state = "OK" if self.ok else f"{len(self.problems)} problem(s)"
        how = "every frame decoded" if self.full else "fast: only test-sampled frames decoded"
        return (
            f"{self.num_checked}/{self.num_samples} samples checked ({how}), {self.files_read} files and "
            f"{self.frames_read} frames read, {self.num_classes} classes: {state}"
        )


def _label_problem(s: Sample, num_classes: int, allow_unlabelled: bool, what: str, note: str = "") -> str | None:
    if (s.label == -1 and allow_unlabelled) or 0 <= s.label < num_classes:
        return None
    kind = " (an unlabelled test entry)" if s.label == -1 else ""
    return f"{s.source}: label {s.label}{kind} out of range [0, {num_classes}) ({what}={num_classes}{note})"


def label_problems(
    dataset: VideoDataset, num_classes: int, *, allow_unlabelled: bool = False, what: str = "num_classes"
) -> list[str]:
    """One message per sample of ``dataset`` whose label is outside ``[0, num_classes)``, naming its annotation
    file and line (or entry), the range, and the dataset's own class count when it differs.
    ``allow_unlabelled``: label -1 (unlabelled test split) is not a problem."""
    note = f"; the dataset has {dataset.num_classes} classes" if dataset.num_classes != num_classes else ""
    found = (_label_problem(s, num_classes, allow_unlabelled, what, note) for s in dataset.samples)
    return [p for p in found if p is not None]


def check_labels(
    *datasets: VideoDataset, num_classes: int, allow_unlabelled: bool = False, what: str = "num_classes"
) -> None:
    """Raise :class:`AnnotationError` when a sample of any of ``datasets`` has a label outside
    ``[0, num_classes)``: a one-line message naming the first such annotation line (or entry) and the range,
    and how many more there are (``problems`` lists them all). Call before training: a loss would otherwise fail
    on the first batch holding such a label. ``what`` names the setting ``num_classes`` comes from."""
    problems = [
        p for ds in datasets for p in label_problems(ds, num_classes, allow_unlabelled=allow_unlabelled, what=what)
    ]
    if problems:
        raise annotation_error(problems)


def check_dataset(
    dataset: VideoDataset,
    *,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    fast: bool = False,
    num_classes: int | None = None,
    workers: int = 0,
) -> CheckReport:
    """Scan every sample of ``dataset`` and list every problem, each naming its file.

    Default (full): every frame file of a JPEG folder is decoded completely (missing, truncated or corrupt
    files, sizes that differ), and every packet of a video is decoded (a decoder failure anywhere, a stream
    clearly shorter than its header or annotation). ``fast``: decode only the frames test sampling picks (the
    loader's own path; finds missing/unopenable files and truncation, not a corrupt frame nobody sampled).

    Annotation problems the dataset dropped under ``bad_input="skip"`` are reported too. ``num_classes``: also
    report labels outside ``[0, num_classes)`` (label -1 of an unlabelled test split is fine) and a class count
    that differs. ``limit`` checks only the first ``limit`` samples; ``workers`` > 0 checks in that many
    processes. The dataset is not modified. Returns a :class:`CheckReport`.
    """
    report = CheckReport(len(dataset), 0, dataset.num_classes, list(dataset.annotation_problems), full=not fast)
    n = len(dataset) if limit is None else min(limit, len(dataset))
    bad_label: dict[int, str] = {}
    if num_classes is not None:
        if dataset.num_classes != num_classes:
            source = dataset.class_source or "the dataset"
            report.problems.append(
                f"{source}: the dataset has {dataset.num_classes} classes but num_classes is {num_classes}"
            )
        for i, s in enumerate(dataset.samples[:n]):
            problem = _label_problem(s, num_classes, True, "num_classes")
            if problem is not None:
                bad_label[i] = problem
    for i, (problems, files, frames) in enumerate(_results(dataset, n, fast, workers)):
        if i in bad_label:
            problems = [bad_label[i], *problems]
        if problems:
            source = dataset.samples[i].source
            report.problems.extend(p if source in p else f"{p} (annotation {source})" for p in problems)
            report.bad_indices.append(i)
        report.files_read += files
        report.frames_read += frames
        report.num_checked += 1
        if progress is not None:
            progress(i + 1, n)
    return report


_Result = tuple[list[str], int, int]  # problems, files read, frames decoded


def _results(dataset: VideoDataset, n: int, fast: bool, workers: int) -> Iterator[_Result]:
    if workers <= 0 or n < 2:
        for i in range(n):
            yield _check_sample(dataset, i, fast)
        return
    with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(dataset, fast)) as pool:
        yield from pool.map(_check_in_worker, range(n), chunksize=max(1, min(64, n // (4 * workers))))


_WORKER: tuple[VideoDataset, bool] | None = None


def _init_worker(dataset: VideoDataset, fast: bool) -> None:
    global _WORKER
    torch.set_num_threads(1)
    _WORKER = (dataset, fast)


def _check_in_worker(i: int) -> _Result:
    assert _WORKER is not None
    return _check_sample(_WORKER[0], i, _WORKER[1])


def _check_sample(dataset: VideoDataset, i: int, fast: bool) -> _Result:
    s = dataset.samples[i]
    problems = []
    if s.label >= dataset.num_classes:
        problems.append(f"{s.path}: label {s.label} out of range [0, {dataset.num_classes})")
    try:
        if fast:
            found, files, frames = _check_sampled(dataset, i)
        elif s.is_video:
            found, files, frames = _check_video(dataset, i)
        else:
            found, files, frames = _check_folder(dataset, i)
    except BadSampleError as err:
        found, files, frames = [str(err)], 0, 0
    return problems + found, files, frames


def _check_sampled(dataset: VideoDataset, i: int) -> _Result:
    s = dataset.samples[i]
    count = dataset.frame_count(i)
    # Test sampling covers the whole video evenly; decoding up to its last index also finds truncation.
    clips = clip_indices(count, dataset.num_frames, train=False, num_clips=max(1, dataset.test_clips))
    indices = sorted({j for c in clips for j in c})
    files = 1 if s.is_video else len(indices)
    try:
        frames = dataset.read_frames(i, indices)
    except ShortVideoError as err:
        # A frame or two fewer than the header says is what loading tolerates (it resamples).
        problem = dataset.truncation_problem(i, err)
        return ([problem] if problem else []), files, err.decoded
    except BadSampleError as err:
        return [str(err)], files, 0
    if frames.ndim != 4 or frames.shape[-1] != 3 or min(frames.shape[:3]) < 1:
        return [f"{s.path}: decoded frames have shape {tuple(frames.shape)}"], files, 0
    return [], files, len(indices)


def _check_video(dataset: VideoDataset, i: int) -> _Result:
    s = dataset.samples[i]
    files = 1 if os.path.isfile(s.path) else 0
    try:
        dataset.frame_count(i)  # missing/empty/unopenable files, and truncation the header's duration reveals
        decoded = decode_every_frame(s.path)
    except CorruptVideoError as err:
        return [str(err)], files, err.decoded
    except BadSampleError as err:
        return [str(err)], files, 0
    problem = dataset.shortfall_problem(i, decoded)
    return ([problem] if problem else []), files, decoded


def _check_folder(dataset: VideoDataset, i: int) -> _Result:
    s = dataset.samples[i]
    template = dataset.frame_template_of(i)
    folder = Path(s.path)
    if s.num_frames is not None:
        last = s.start + s.num_frames - 1
    else:
        found = folder_frame_numbers(folder, template)
        if not found:
            return [f"{folder}: frames folder has no '{template}' images"], 0, 0
        # Loading reads files start .. start + count - 1; a gap shows up as a missing file in that range.
        last = max(found[-1], s.start + len(found) - 1)
    problems: list[str] = []
    files = frames = 0
    first: tuple[str, tuple[int, int]] | None = None
    bad = 0
    for number in range(s.start, last + 1):
        file = folder / template.format(number)
        problem = None
        if not os.path.isfile(file):
            problem = f"{file}: frame file not found"
        else:
            files += 1
            try:
                size = verify_jpeg_frame(file)
            except BadSampleError as err:
                problem = str(err)
            else:
                frames += 1
                if first is None:
                    first = (file.name, size)
                elif size != first[1]:
                    problem = f"{file}: frame is {size[0]}x{size[1]}, the first frame {first[0]} is {first[1][0]}x{first[1][1]}"
        if problem is not None:
            bad += 1
            if bad <= MAX_FRAME_PROBLEMS:
                problems.append(problem)
    if bad > MAX_FRAME_PROBLEMS:
        problems.append(f"{folder}: {bad - MAX_FRAME_PROBLEMS} more bad frame files (of {last - s.start + 1})")
    return problems, files, frames


class SkipBadSamples(Dataset):
    """Wrap any map-style dataset: a sample raising :class:`BadSampleError` is logged, counted and replaced.

    The substitute is the next index (mod ``len``), tried up to ``max_tries`` times; never a zero tensor.
    ``skipped`` is shared by DataLoader workers; read and zero it per epoch with :meth:`reset_skipped`.
    """

    def __init__(self, dataset: Dataset, max_tries: int = 20) -> None:
        self.dataset = dataset
        self.max_tries = int(max_tries)
        self._skips = SkipCounter()

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getattr__(self, name: str):
        # Expose classes, num_classes, samples, ... of the wrapped dataset.
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)

    @property
    def skipped(self) -> int:
        return self._skips.value

    def reset_skipped(self) -> int:
        return self._skips.reset()

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        n = len(self)
        err: Exception | None = None
        for attempt in range(self.max_tries):
            i = (index + attempt) % n
            try:
                return self.dataset[i]
            except BadSampleError as exc:
                err = exc
                self._skips.increment()
                log.warning("skipping bad sample %d: %s", i, exc)
        raise BadSampleError(f"{self.max_tries} consecutive bad samples from index {index}; last: {err}")
