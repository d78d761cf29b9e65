"""Reader benchmark (`make bench`): reading and validating full-sized dataset trees, no decoding.

Writes a CASME II-sized tree (26 subjects, 255 clips, 40-90 frames between onset and offset plus
frames before and after, as in `CASME2_RAW_selected`) and a SAMM-sized one (29 subjects, 159 clips)
in the real layouts, every frame a small valid JPEG (the readers list and check files, they do not
decode them), then times each reader: sheet parsing, frame listing in numeric order, onset..offset
checks, and the end-of-image check of every frame in the span. Best of `--repeats`. Not a test:
nothing here asserts a time (issue target: a 250-clip CASME II tree in under 2 s).

Also a 4DME-sized tree (267 clips in `4DMicro/gray_micro/<sub>/<fold_name>/`, some multi-label rows,
which the reader leaves out and counts) and a DFME tree: the full DFME has 7,526 clips of 671 subjects
in Parts A/B/C (500/300/200 fps); by default a tenth of it is written (`--dfme-fraction`, or `--full`).
Clip lengths of 4DME and DFME are not documented: 40-90 frames per clip, as for the others.

    .venv/bin/python benchmarks/bench_readers.py [--repeats 3] [--dfme-fraction 0.1 | --full]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from mer_lightning.data.readers import read_4dme, read_casme2, read_composite, read_dfme, read_samm
from mer_lightning.data.readers.casme import read_casme
from mer_lightning.data.readers.casme3 import read_casme3
from mer_lightning.data.readers.mmew import read_mmew
from mer_lightning.data.synthetic.writers.casme2 import COLUMNS as CASME2_COLUMNS
from mer_lightning.data.synthetic.writers.casme2 import SHEET as CASME2_SHEET
from mer_lightning.data.synthetic.writers.dfme import COLUMNS as DFME_COLUMNS
from mer_lightning.data.synthetic.writers.dfme import SHEET as DFME_SHEET
from mer_lightning.data.synthetic.writers.fourdme import COLUMNS as FOURDME_COLUMNS
from mer_lightning.data.synthetic.writers.fourdme import SHEET as FOURDME_SHEET
from mer_lightning.data.synthetic.writers.samm import COLUMNS as SAMM_COLUMNS
from mer_lightning.data.synthetic.writers.samm import SHEET as SAMM_SHEET
from mer_lightning.data.synthetic.writers.samm import SUBJECTS as SAMM_SUBJECTS

DFME_PARTS = (("A", 500, 1118, 72), ("B", 300, 969, 92), ("C", 200, 5439, 492))  # part, fps, clips, subjects


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


def fourdme_tree(root: Path, rng) -> int:
    """267 clips of 40 subjects (the subject count is not documented); every 30th row is multi-label."""
    subjects = [f"S{s:02d}" for s in range(1, 41)]
    rows = write_tree(root, 267, subjects, lambda s, c: root / "4DMicro" / "gray_micro" / s / f"{s}_1st_{c[2:]}",
                      lambda s, n: f"Frame_{n:09d}.jpg", rng)
    emotions = ["Negative", "Positive", "Surprise", "Repression", "Others"]
    sheet = [[s, 1, c, float(on), float(ap), float(off), "AU4",
              "Surprise+Positive" if i % 30 == 29 else emotions[i % 5], *[0] * 11]
             for i, (s, c, on, ap, off) in enumerate(rows)]
    pd.DataFrame([FOURDME_COLUMNS, *sheet]).to_excel(root / FOURDME_SHEET, header=False, index=False)
    return sum(off - on + 1 for *_, on, _, off in rows)


def dfme_tree(root: Path, rng, fraction: float) -> int:
    """DFME's parts at `fraction` of their clips and subjects: part folders, micro/<emotion>/<Filename>/."""
    jpeg, rows, first_subject, n_frames = tiny_jpeg(), [], 1, 0
    emotions = ["happiness", "sadness", "anger", "contempt", "fear", "disgust", "surprise"]
    for letter, fps, clips, subjects in DFME_PARTS:
        clips, subjects = max(1, round(clips * fraction)), max(1, round(subjects * fraction))
        last_subject = first_subject + subjects - 1
        part = root / f"USTC_MEv4_part{letter}_sub{first_subject:04d}_sub{last_subject:04d}"
        for k in range(clips):
            subject = f"sub{first_subject + k % subjects:04d}"
            name, emotion = f"{subject}_{k // subjects + 1:03d}", emotions[k % 7]
            folder = part / "micro" / emotion / name
            folder.mkdir(parents=True, exist_ok=True)
            span = int(rng.integers(40, 91))
            for n in range(1, span + 1):
                (folder / f"{n}.jpg").write_bytes(jpeg)
            rows.append([subject, name, 1, span // 2, span, "AU4", emotion, fps])
            n_frames += span
        first_subject = last_subject + 1
    (root / DFME_SHEET).parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([DFME_COLUMNS, *rows]).to_excel(root / DFME_SHEET, header=False, index=False)
    return n_frames


def casme3_tree(root: Path, rng, clips: int = 860) -> int:
    """CAS(ME)^3 part A: 94 subjects, 13 long videos each, several MEs per video (30 fps: 8-20 frames each,
    written with 5 frames either side, not the whole long video), the JpgIndex_v2 sheet."""
    from mer_lightning.data.synthetic.writers.casme3 import COLUMNS as CASME3_COLUMNS
    from mer_lightning.data.synthetic.writers.casme3 import FRAMES as CASME3_FRAMES
    from mer_lightning.data.synthetic.writers.casme3 import SHEET as CASME3_SHEET

    jpeg, rows = tiny_jpeg(), []
    emotions = ["disgust", "surprise", "others", "fear", "anger", "sad", "happy"]
    for k in range(clips):
        subject, video = f"spNO.{k % 94 + 1}", "abcdefghijklm"[k // 94 % 13]
        onset = 100 + 200 * (k // (94 * 13)) + int(rng.integers(0, 100))
        offset = onset + int(rng.integers(8, 21))
        folder = root / CASME3_FRAMES / subject / video / "color"
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(onset - 5, offset + 6):
            (folder / f"{n}.jpg").write_bytes(jpeg)
        rows.append([subject, video, onset, (onset + offset) // 2, offset, "4", "I", emotions[k % 7]])
    (root / "part_A/annotation").mkdir(parents=True)
    pd.DataFrame([CASME3_COLUMNS, *rows]).to_excel(root / "part_A/annotation" / CASME3_SHEET, header=False,
                                                   index=False)
    return sum(r[4] - r[2] + 1 for r in rows)


def casme_tree(root: Path, rng, clips: int = 189) -> int:
    """CASME: 19 subjects, 189 clips of 40-90 frames (60 fps), `<Filename>-045.jpg`, meb's sheet columns."""
    from mer_lightning.data.synthetic.writers.casme import COLUMNS as CASME_COLUMNS
    from mer_lightning.data.synthetic.writers.casme import SHEET as CASME_SHEET

    rows = write_tree(root, clips, [f"sub{s:02d}" for s in range(1, 20)],
                      lambda s, c: root / "CASME_raw_selected" / s / c, lambda s, n: f"f-{n:03d}.jpg", rng)
    emotions = ["disgust", "repression", "surprise", "tense", "sadness"]
    sheet = [[int(s[3:]), c, None, on, ap, None, off, None, "4", emotions[i % 5]]
             for i, (s, c, on, ap, off) in enumerate(rows)]
    pd.DataFrame([CASME_COLUMNS, *sheet]).to_excel(root / CASME_SHEET, header=False, index=False)
    return sum(off - on + 1 for *_, on, _, off in rows)


def mmew_tree(root: Path, rng, clips: int = 300) -> int:
    """MMEW: 300 clips of 20-60 frames from `1.jpg` in `Micro_Expression/<emotion>/` (others in `repression/`)."""
    from mer_lightning.data.synthetic.writers.mmew import COLUMNS as MMEW_COLUMNS
    from mer_lightning.data.synthetic.writers.mmew import SHEET as MMEW_SHEET

    jpeg, rows, total = tiny_jpeg(), [], 0
    emotions = ["happiness", "surprise", "disgust", "others", "fear", "sadness", "anger"]
    for k in range(clips):
        emotion, name, n = emotions[k % 7], f"S{k % 30 + 1:02d}-{k % 7 + 1:02d}-{k:03d}", int(rng.integers(20, 61))
        folder = root / "MMEW_Final/Micro_Expression" / ("repression" if emotion == "others" else emotion) / name
        folder.mkdir(parents=True)
        for i in range(1, n + 1):
            (folder / f"{i}.jpg").write_bytes(jpeg)
        rows.append([f"S{k % 30 + 1:02d}", name, 1, n // 2, n, "AU4", emotion, ""])
        total += n
    pd.DataFrame([MMEW_COLUMNS, *rows]).to_excel(root / "MMEW_Final" / MMEW_SHEET, header=False, index=False)
    return total


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
    parser.add_argument("--dfme-fraction", type=float, default=0.1, help="share of DFME's 7,526 clips to write")
    parser.add_argument("--more-a-scale", type=float, default=1.0,
                        help="CAS(ME)^3 (860 clips), CASME (189) and MMEW (300) trees at this fraction")
    parser.add_argument("--full", action="store_true", help="the full-sized DFME tree (7,526 clips)")
    args = parser.parse_args()
    fraction = 1.0 if args.full else args.dfme_fraction
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="mer-bench-readers-") as work:
        work = Path(work)
        start = time.perf_counter()
        frames = {"casme2": casme2_tree(work / "CASME2", rng), "samm": samm_tree(work / "SAMM", rng),
                  "4dme": fourdme_tree(work / "4DME", rng), "dfme": dfme_tree(work / "DFME", rng, fraction)}
        # CASME at 188 rows: a 189-row sheet is taken for meb's version, whose positional row fixes then
        # apply (readers/casme.py); this synthetic sheet is not that version
        sizes = {name: max(int(n * args.more_a_scale), 10) for name, n in (("casme3", 860), ("casme", 188),
                                                                            ("mmew", 300))}
        frames |= {"casme3": casme3_tree(work / "CASME3", rng, sizes["casme3"]),
                   "casme": casme_tree(work / "CASME", rng, sizes["casme"]),
                   "mmew": mmew_tree(work / "MMEW", rng, sizes["mmew"])}
        print(f"wrote the trees in {time.perf_counter() - start:.1f} s "
              f"({' + '.join(str(n) for n in frames.values())} annotated frames)\n")
        cases = [
            ("CASME II, 255 clips (sheet + listing + checks)", lambda: read_casme2(work / "CASME2"), frames["casme2"]),
            ("SAMM, 159 clips (header on row 14)", lambda: read_samm(work / "SAMM"), frames["samm"]),
            ("composite SAMM + CASME II", lambda: read_composite(work, sources=["samm", "casme2"]),
             frames["casme2"] + frames["samm"]),
            ("4DME, 267 rows (8 multi-label, left out)", lambda: read_4dme(work / "4DME"), frames["4dme"]),
            (f"DFME, {fraction:.0%} of 7,526 clips (A/B/C at 500/300/200 fps)", lambda: read_dfme(work / "DFME"),
             frames["dfme"]),
            ("composite SAMM + CASME II + 4DME", lambda: read_composite(work, sources=["samm", "casme2", "4dme"]),
             frames["casme2"] + frames["samm"] + frames["4dme"]),
            (f"CAS(ME)^3 part A, {sizes['casme3']} clips (long-video folders)", lambda: read_casme3(work / "CASME3"),
             frames["casme3"]),
            (f"CASME, {sizes['casme']} clips (two apex columns)", lambda: read_casme(work / "CASME"), frames["casme"]),
            (f"MMEW, {sizes['mmew']} clips (others in repression/)", lambda: read_mmew(work / "MMEW"), frames["mmew"]),
        ]
        print(f"| reader | clips | frames checked | seconds (best of {args.repeats}) | clips/s |")
        print("|---|---:|---:|---:|---:|")
        for name, read, n_frames in cases:
            seconds, table = best_of(args.repeats, read)
            assert not table.skipped, table.skipped[:3]
            print(f"| {name} | {len(table)} | {n_frames} | {seconds:.3f} | {len(table) / seconds:.0f} |")
            counts = table.summary()
            print(f"|  inspect: {counts['n_samples']} samples, {counts['n_subjects']} subjects, fps {counts['fps']}, "
                  f"notes {counts['notes'] or '-'} | | | | |")
        print("\nissue target: a 250-clip CASME II tree read and validated in under 2 s")


if __name__ == "__main__":
    main()
