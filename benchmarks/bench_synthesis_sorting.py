"""How hard are our synthetic recordings for a real sorter, next to SpikeInterface's generator?

Both generators make a 32-channel, 30 kHz recording with the same number of units, duration and
noise level; SpikeInterface's a SpikeInterface sorter (``simple`` with k-means clustering by default: no extra packages; ``spykingcircus2`` needs hdbscan) sorts each, and
``compare_sorter_to_ground_truth`` counts well-detected units (accuracy >= 0.8, the field's usual
cut). Similar counts mean our data is neither a toy nor harder than the field's benchmark data.
Also prints the peak-channel SNR range (trough / noise RMS) of each generator.

    .venv/bin/python benchmarks/bench_synthesis_sorting.py --seconds 30
"""

from __future__ import annotations

import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
from _common import Column, bench_parser, format_table, machine, write_json

SFREQ = 30_000.0


def _score(recording, gt_sorting, folder: Path, sorter: str, n_units: int) -> tuple[int, float]:  # type: ignore[no-untyped-def]
    import spikeinterface.comparison as sc
    import spikeinterface.sorters as ss

    t = time.perf_counter()
    # the simple sorter with k-means (scikit-learn) needs no extra package; it is told the unit
    # count, for both generators alike (in SpikeInterface 0.105.3 its isosplit and Gaussian-mixture
    # options hit singular covariances of the sparse SVD features, and hdbscan is not installed)
    params = (
        {
            "clusterer": "kmeans",
            "clusterer_kwargs": {"n_clusters": n_units, "random_state": 0},
        }
        if sorter == "simple"
        else {}
    )
    sorting = ss.run_sorter(
        sorter, recording, folder=folder, verbose=False, remove_existing_folder=True, **params
    )
    wall = time.perf_counter() - t
    cmp = sc.compare_sorter_to_ground_truth(gt_sorting, sorting, exhaustive_gt=True)
    return len(cmp.get_well_detected_units(well_detected_score=0.8)), wall


def main() -> None:
    ap = bench_parser(__doc__)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--units", type=int, default=20)
    ap.add_argument("--noise-uv", type=float, default=5.0)
    ap.add_argument("--sorter", default="simple", help="Any installed SpikeInterface sorter.")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()

    from spikeinterface.core import generate_ground_truth_recording

    from bci.synthesis import generate_recording

    ours = generate_recording(
        n_channels=32,
        n_units=args.units,
        duration_s=args.seconds,
        seed=args.seed,
        noise_uv=args.noise_uv,
    )
    our_rec, our_gt = ours.to_spikeinterface()
    our_rec = our_rec.save(folder=Path(tempfile.mkdtemp()) / "our_rec")  # sorters need a file
    our_snr = (
        -ours.templates[np.arange(ours.n_units), ours.trough_offset, ours.peak_channels]
        / args.noise_uv
    )

    si_rec, si_gt = generate_ground_truth_recording(
        durations=[args.seconds],
        sampling_frequency=SFREQ,
        num_channels=32,
        num_units=args.units,
        seed=args.seed,
        noise_kwargs={"noise_levels": args.noise_uv, "strategy": "on_the_fly"},
    )
    si_rec = si_rec.save(folder=Path(tempfile.mkdtemp()) / "si_rec")
    from spikeinterface.core import create_sorting_analyzer

    analyzer = create_sorting_analyzer(si_gt, si_rec, sparse=False)
    analyzer.compute(["random_spikes", "templates"])
    tpl = analyzer.get_extension("templates").get_data()  # (units, samples, channels)
    si_snr = np.abs(tpl).max(axis=(1, 2)) / args.noise_uv

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, rec, gt, snr in (
            ("bci.synthesis", our_rec, our_gt, our_snr),
            ("SpikeInterface", si_rec, si_gt, si_snr),
        ):
            row: dict[str, Any] = {
                "generator": label,
                "snr_min": float(snr.min()),
                "snr_median": float(np.median(snr)),
                "snr_max": float(snr.max()),
            }
            try:
                n_good, wall = _score(rec, gt, Path(tmp) / label, args.sorter, args.units)
                row |= {"well_detected": f"{n_good}/{args.units}", "sort_s": wall}
            except Exception as err:  # a sorter crash is a result too; keep the table going
                traceback.print_exc()
                row |= {"well_detected": f"failed ({type(err).__name__})", "sort_s": float("nan")}
            rows.append(row)
    print()
    print(
        format_table(
            rows,
            [
                Column("generator", "generator", width=16),
                Column("SNR min", "snr_min", ".1f"),
                Column("SNR median", "snr_median", ".1f"),
                Column("SNR max", "snr_max", ".1f"),
                Column("well detected", "well_detected"),
                Column("sort s", "sort_s", ".1f"),
            ],
            title=f"{args.sorter} on {args.units} units, 32 ch, {args.seconds:g} s, noise "
            f"{args.noise_uv:g} uV",
        )
    )
    write_json(args.json, {"args": vars(args), "rows": rows, "machine": machine()})


if __name__ == "__main__":
    main()
