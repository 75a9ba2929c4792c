"""Build hook for the optional compiled kernels (everything else is in pyproject.toml).

``privfin.crypto._x25519_kernel`` (AVX-512 IFMA X25519), ``privfin.crypto._ot_kernel``
(AES-NI correlated OT) and ``privfin.crypto._vole_kernel`` (OKVS elimination, PCLMUL GF(2^128)),
see their sources, are built where a C compiler is available and
skipped otherwise (``optional=True``: a failed build is a warning, not an error); privfin then
uses its pure path, which gives byte-identical results.
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
        Extension(
            "privfin.crypto._vole_kernel",
            ["src/privfin/crypto/_vole_kernel.c"],
            extra_compile_args=_ARGS,
            optional=True,
        ),
    ]
)
