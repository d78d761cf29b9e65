"""Reader benchmark (`make bench`): reading and validating full-sized dataset trees, no decoding.

Writes a CASME II-sized tree (26 subjects, 255 clips, 40-90 frames between onset and offset plus
frames before and after, as in `CASME2_RAW_selected`) and a SAMM-sized one (29 subjects, 159 clips)
in the real layouts, every frame a small valid JPEG (the readers list and check files, they do not
decode them), then times each reader: sheet parsing, frame listing in numeric order, onset..offset
checks, and the end-of-image check of every frame in the span. Best of `--repeats`. Not a test:
nothing here asserts a time (issue target: a 250-clip CASME II tree in under 2 s).

    .venv/bin/python benchmarks/bench_readers.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from mer_lightning.data.readers import read_casme2, read_composite, read_samm
from mer_lightning.data.synthetic import (
    CASME2_COLUMNS,
    CASME2_SHEET,
    SAMM_COLUMNS,
    SAMM_SHEET,
    SAMM_SUBJECTS,
)


def tiny_jpeg() -> bytes:
    ok, data = cv2.imencode(".jpg", np.full((64, 64), 128, np.uint8))
    assert ok
    return data.tobytes()


def write_tree(root: Path, clips: int, subjects: list[str], clip_dir, frame_name, rng) -> list[tuple]:
    """Clip folders with frames; returns (subject, clip, onset, apex, offset) per clip."""
    jpeg, rows = tiny_jpeg(), []
    for k in range(clips):
        subject = subjects[k % len(subjects)]
        clip = f"EP{k // len(subjects) + 1:02d}_{k % 7 + 1:02d}"
        first = int(rng.integers(1, 3000))
        span = int(rng.integers(40, 91))
        onset, offset = first + 10, first + 10 + span
        folder = clip_dir(subject, clip)
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(first, offset + 10):
            (folder / frame_name(subject, n)).write_bytes(jpeg)
        rows.append((subject, folder.name, onset, (onset + offset) // 2, offset))
    return rows


def casme2_tree(root: Path, rng) -> int:
    subjects = [f"sub{s:02d}" for s in range(1, 27)]
    rows = write_tree(root, 255, subjects, lambda s, c: root / "CASME2_RAW_selected" / s / c,
                      lambda s, n: f"img{n}.jpg", rng)
    emotions = ["others", "disgust", "happiness", "repression", "surprise"]
    sheet = [[int(s[3:]), c, None, on, ap, off, None, "4", emotions[i % 5]] for i, (s, c, on, ap, off) in enumerate(rows)]
    pd.DataFrame([CASME2_COLUMNS, *sheet]).to_excel(root / CASME2_SHEET, header=False, index=False)
    return sum(off - on + 1 for *_, on, _, off in rows)


def samm_tree(root: Path, rng) -> int:
    subjects = [f"{s:03d}" for s in SAMM_SUBJECTS]
    rows = write_tree(root, 159, subjects, lambda s, c: root / "SAMM" / s / f"{s}_{c[2:]}",
                      lambda s, n: f"{s}_{n:05d}.jpg", rng)
    emotions = ["Anger", "Other", "Happiness", "Surprise", "Contempt"]
    sheet = [[int(s), c, "1", on, ap, off, off - on + 1, "Micro - 1/2", "AU4", emotions[i % 5], "", ""]
             for i, (s, c, on, ap, off) in enumerate(rows)]
    preamble = [["SAMM"], *[[""]] * 12]
    pd.DataFrame([*preamble, SAMM_COLUMNS, *sheet]).to_excel(root / SAMM_SHEET, header=False, index=False)
    return sum(off - on + 1 for *_, on, _, off in rows)


def best_of(repeats: int, fn) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="mer-bench-readers-") as work:
        work = Path(work)
        start = time.perf_counter()
        frames = {"casme2": casme2_tree(work / "CASME2", rng), "samm": samm_tree(work / "SAMM", rng)}
        print(f"wrote the trees in {time.perf_counter() - start:.1f} s "
              f"({frames['casme2']} + {frames['samm']} annotated frames)\n")
        cases = [
            ("CASME II, 255 clips (sheet + listing + checks)", lambda: read_casme2(work / "CASME2"), frames["casme2"]),
            ("SAMM, 159 clips (header on row 14)", lambda: read_samm(work / "SAMM"), frames["samm"]),
            ("composite SAMM + CASME II", lambda: read_composite(samm=work / "SAMM", casme2=work / "CASME2"),
             frames["casme2"] + frames["samm"]),
        ]
        print(f"| reader | clips | frames checked | seconds (best of {args.repeats}) | clips/s |")
        print("|---|---:|---:|---:|---:|")
        for name, read, n_frames in cases:
            seconds, table = best_of(args.repeats, read)
            assert not table.skipped, table.skipped[:3]
            print(f"| {name} | {len(table)} | {n_frames} | {seconds:.3f} | {len(table) / seconds:.0f} |")
        print("\nissue target: a 250-clip CASME II tree read and validated in under 2 s")


if __name__ == "__main__":
    main()
