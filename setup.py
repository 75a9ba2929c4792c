"""Build hook for the optional compiled kernels (everything else is in pyproject.toml).

``privfin.crypto._x25519_kernel`` (AVX-512 IFMA X25519) and ``privfin.crypto._ot_kernel``
(the bit-matrix transpose of OT extension), see their sources, are built where a C compiler
is available and skipped otherwise (``optional=True``: a failed build is a warning, not an
error); privfin then uses its pure paths, which give byte-identical results.
"""

import sys

from setuptools import Extension, setup

_ARGS = [] if sys.platform == "win32" else ["-O3"]

setup(
    ext_modules=[
        Extension(
            "privfin.crypto._x25519_kernel",
            ["src/privfin/crypto/_x25519_kernel.c"],
            extra_compile_args=_ARGS,
            optional=True,
        ),
        Extension(
            "privfin.crypto._ot_kernel",
            ["src/privfin/crypto/_ot_kernel.c"],
            extra_compile_args=_ARGS,
            optional=True,
        ),
    ]
)
