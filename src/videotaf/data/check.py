"""Dataset health check and the skip-bad-samples wrapper."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch.utils.data import Dataset

from videotaf.data.datasets import SkipCounter, VideoDataset
from videotaf.data.decode import ShortVideoError
from videotaf.data.errors import BadSampleError

__all__ = ["CheckReport", "check_dataset", "SkipBadSamples"]

log = logging.getLogger(__name__)


@dataclass
class CheckReport:
    """Result of :func:`check_dataset`: ``problems`` holds one message per bad annotation entry or sample."""

    num_samples: int
    num_checked: int
    num_classes: int
    problems: list[str] = field(default_factory=list)
    bad_indices: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        state = "OK" if self.ok else f"{len(self.problems)} problem(s)"
        return f"{self.num_checked}/{self.num_samples} samples checked, {self.num_classes} classes: {state}"


def check_dataset(
    dataset: VideoDataset,
    *,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> CheckReport:
    """Scan every sample of ``dataset``: count its frames and decode the sampled frames (test sampling).

    Annotation problems the dataset dropped under ``bad_input="skip"`` are reported too. The dataset is not
    modified; ``limit`` checks only the first ``limit`` samples. Returns a :class:`CheckReport`.
    """
    report = CheckReport(len(dataset), 0, dataset.num_classes, list(dataset.annotation_problems))
    n = len(dataset) if limit is None else min(limit, len(dataset))
    for i in range(n):
        problem = _check_one(dataset, i)
        if problem is not None:
            source = dataset.samples[i].source
            report.problems.append(problem if source in problem else f"{problem} (annotation {source})")
            report.bad_indices.append(i)
        report.num_checked += 1
        if progress is not None:
            progress(i + 1, n)
    return report


def _check_one(dataset: VideoDataset, i: int) -> str | None:
    s = dataset.samples[i]
    try:
        if s.label >= dataset.num_classes:
            return f"{s.path}: label {s.label} out of range [0, {dataset.num_classes})"
        count = dataset.frame_count(i)
        # Test sampling covers the whole video evenly; decoding up to its last index also finds truncation.
        indices = sorted({j for c in _test_indices(dataset, count) for j in c})
        try:
            frames = dataset.read_frames(i, indices)
        except ShortVideoError as err:
            # A frame or two fewer than the header says is what loading tolerates (it resamples).
            return dataset.truncation_problem(i, err)
        if frames.ndim != 4 or frames.shape[-1] != 3 or min(frames.shape[:3]) < 1:
            return f"{s.path}: decoded frames have shape {tuple(frames.shape)}"
    except BadSampleError as err:
        return str(err)
    return None


def _test_indices(dataset: VideoDataset, count: int) -> list[list[int]]:
    from videotaf.data.sampling import clip_indices  # noqa: PLC0415

    return clip_indices(count, dataset.num_frames, train=False, num_clips=max(1, dataset.test_clips))


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
