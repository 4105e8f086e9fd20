"""videotaf: Temporal Adversarial Augmentation (TA) and the TAF fine-tuning framework.

Duan et al., "Improve Video Representation with Temporal Adversarial Augmentation", IJCAI 2023.

Layout follows the method: ``data`` -> ``models`` -> the TAF core (``cam`` Eq. 2-5, ``attack`` Eq. 1 and 6,
``bn`` the dual BatchNorm, ``objective`` Eq. 7) -> ``engine`` -> ``analysis`` -> ``cli``.
"""

__version__ = "0.1.0"
