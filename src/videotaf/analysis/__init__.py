"""Analysis of trained models (paper Sec. 4.3-4.5): corruption robustness, temporal attention, figures, reports.

- :mod:`videotaf.analysis.corruptions`: ImageNet-C corruptions and temporal perturbations of clips (Table 3).
- :mod:`videotaf.analysis.robustness`: top-1/top-5 per corruption and severity, mPC and rPC.
- :mod:`videotaf.analysis.attention`: per-frame CAM share, entropy, weakest-frame share, shift under TA / CE-PGD.
- :mod:`videotaf.analysis.figures`: CAM figures (Fig. 1, 3, 6), loss curves (Fig. 5), class-wise change (Fig. 4).
- :mod:`videotaf.analysis.report`: one HTML page over run directories.
- :mod:`videotaf.analysis.stats`: paired seed / clip statistics and verdicts for ``videotaf compare``.
- :mod:`videotaf.analysis.render`: their text: intervals, mean ± sd, p, MDD, verdict cells, Markdown tables.

Submodules are imported on use, so ``import videotaf.analysis`` stays cheap (the CLI imports its commands).
"""
