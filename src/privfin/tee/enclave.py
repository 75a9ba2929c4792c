"""Enclave runners: ``simulated`` (a separate local process, NOT a TEE) and ``gramine``
(manifest generation for SGX hardware; see docs/tee.md for signing and running it).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from privfin.config import Settings, require_insecure_allowed
from privfin.errors import PrivfinError, ProtocolAbort
from privfin.tee.broker import EncryptedDataset, ReleasedKey
from privfin.tee.result import Platform
from privfin.tee.simulated import SimulationRoot
from privfin.tee.verify import Evidence

__all__ = [
    "SIMULATED_LABEL",
    "SimulatedEnclave",
    "gramine_manifest",
    "measure_component",
]

log = logging.getLogger("privfin.tee")

SIMULATED_LABEL = "SIMULATED ENCLAVE (no hardware protection: the host can read its memory)"
#: The simulated enclave's "signer" (like MRSIGNER): a fixed digest naming privfin's builds.
_SIGNER = hashlib.sha256(b"privfin simulated enclave signer v1").digest()


def _measured_files() -> list[Path]:
    here = Path(__file__).resolve().parent
    return [here / "_enclave_main.py", here / "components.py"]


def measure_component(component: str) -> tuple[bytes, bytes]:
    """(measurement, signer) of the simulated enclave running ``component``: SHA-384 over the
    component name and the bytes of the code the enclave loads. An owner computes the same
    value from the same privfin release to put in its policy."""
    h = hashlib.sha384(b"privfin-simulated-enclave-v1\0" + component.encode() + b"\0")
    for path in _measured_files():
        data = path.read_bytes()
        h.update(len(data).to_bytes(8, "big") + data)
    return h.digest(), _SIGNER


@dataclass(frozen=True)
class _Started:
    public_key: bytes
    measurement: str


class SimulatedEnclave:
    """A simulated enclave: a child process with its own key pair.

    Refused unless ``settings`` allow insecure modes. Use as a context manager::

        with SimulatedEnclave("train_model", root, settings=s) as enclave:
            nonce = broker.challenge(job)
            keys = broker.release(job, enclave.attest(nonce), enclave.public_key, nonce, ids)
            sealed = enclave.run(job, keys, datasets, params, result_public, context)
    """

    backend = "simulated"

    def __init__(
        self,
        component: str,
        root: SimulationRoot,
        *,
        settings: Settings,
        debug: bool = False,
        timeout: float = 300.0,
    ) -> None:
        require_insecure_allowed(settings, "the simulated enclave", "a hardware TEE backend")
        self.component = component
        self._root = root
        self._debug = debug
        self._timeout = timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._started: _Started | None = None

    def __enter__(self) -> SimulatedEnclave:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        from privfin.tee._enclave_main import write_frame

        log.warning("%s: starting component %r", SIMULATED_LABEL, self.component)
        key_pem, cert_pem = self._root.issue_platform_key()
        # The child imports the very privfin this process runs (also when it was put on
        # sys.path by hand rather than installed).
        src = str(Path(__file__).resolve().parents[2])
        path = os.environ.get("PYTHONPATH", "")
        env = {**os.environ, "PYTHONPATH": src + (os.pathsep + path if path else "")}
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "privfin.tee._enclave_main"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        assert self._proc.stdin is not None and self._proc.stdout is not None
        write_frame(
            self._proc.stdin,
            {
                "op": "init",
                "component": self.component,
                "platform_key": key_pem.decode(),
                "platform_cert": cert_pem.decode(),
                "debug": self._debug,
            },
        )
        reply = self._read()
        if reply is None or "error" in reply:
            self.close()
            raise ProtocolAbort(f"the simulated enclave did not start: {reply}")
        self._started = _Started(bytes.fromhex(reply["public_key"]), reply["measurement"])

    def _read(self) -> dict[str, Any] | None:
        """The enclave's next reply; the process is killed (and ``None`` returned) if none
        comes within ``timeout`` seconds."""
        import threading

        from privfin.tee._enclave_main import read_frame

        proc = self._proc
        if proc is None or proc.stdout is None:
            return None
        watchdog = threading.Timer(self._timeout, proc.kill)
        watchdog.daemon = True
        watchdog.start()
        try:
            return read_frame(proc.stdout)
        except ValueError as exc:
            raise ProtocolAbort(f"the simulated enclave sent a malformed frame: {exc}") from None
        finally:
            watchdog.cancel()

    def _call(self, msg: dict[str, Any]) -> dict[str, Any]:
        from privfin.tee._enclave_main import write_frame

        if self._proc is None or self._proc.stdin is None or self._proc.stdout is None:
            raise PrivfinError("the simulated enclave is not running")
        write_frame(self._proc.stdin, msg)
        reply = self._read()
        if reply is None:
            raise ProtocolAbort("the simulated enclave exited (or timed out and was stopped)")
        if "error" in reply:
            raise ProtocolAbort(f"the simulated enclave failed: {reply['error']}")
        return reply

    @property
    def public_key(self) -> bytes:
        if self._started is None:
            raise PrivfinError("the simulated enclave is not running")
        return self._started.public_key

    @property
    def measurement(self) -> str:
        if self._started is None:
            raise PrivfinError("the simulated enclave is not running")
        return self._started.measurement

    def attest(self, nonce: bytes) -> Evidence:
        """Evidence binding the enclave's public key and ``nonce``."""
        reply = self._call({"op": "attest", "nonce": nonce.hex()})
        return Evidence(Platform.simulated, base64.b64decode(reply["evidence"]))

    def run(
        self,
        job: str,
        keys: Sequence[ReleasedKey],
        datasets: Sequence[EncryptedDataset],
        params: Mapping[str, Any],
        result_public: bytes,
        result_context: bytes,
    ) -> bytes:
        """Run the component on the datasets; returns the result sealed to ``result_public``
        under ``result_context``, authenticated by the enclave's key (open it with
        :func:`privfin.tee.sealing.open_authenticated` and the *attested* enclave key)."""
        log.warning("%s: running %r for job %s", SIMULATED_LABEL, self.component, job)

        def b64(b: bytes) -> str:
            return base64.b64encode(b).decode()

        reply = self._call(
            {
                "op": "run",
                "job": job,
                "keys": [
                    {
                        "owner": k.owner,
                        "dataset": k.dataset,
                        "key_id": k.key_id,
                        "blob": b64(k.blob),
                    }
                    for k in keys
                ],
                "datasets": [
                    {
                        "owner": d.owner,
                        "dataset": d.dataset,
                        "key_id": d.key_id,
                        "nonce": b64(d.nonce),
                        "ciphertext": b64(d.ciphertext),
                    }
                    for d in datasets
                ],
                "params": dict(params),
                "result_public": result_public.hex(),
                "result_context": result_context.decode(),
            }
        )
        return base64.b64decode(reply["sealed"])

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        from privfin.tee._enclave_main import write_frame

        if proc.stdin is not None:
            with contextlib.suppress(OSError):  # the process may be gone already
                write_frame(proc.stdin, {"op": "exit"})
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def gramine_manifest(
    component: str,
    *,
    python: str = "/usr/bin/python3",
    python_lib: str = "/usr/lib/python3.11",
    site_packages: str = "/usr/local/lib/python3.11/dist-packages",
    enclave_size: str = "4G",
    max_threads: int = 16,
) -> str:
    """The Gramine manifest (TOML) for running ``component`` in an SGX enclave.

    Production settings: ``sgx.debug = false``, DCAP remote attestation, every loaded file a
    *trusted* file (its hash is part of MRENCLAVE), no host environment passed in, no
    allowed (unhashed) files. The argv is fixed in the manifest, so the host cannot change
    which component runs. Sign it with ``gramine-sgx-sign`` and run it with ``gramine-sgx``
    on SGX hardware (docs/tee.md); MRENCLAVE printed by the signer goes into the owners'
    policies.
    """
    from privfin.tee.components import APPROVED

    if component not in APPROVED:
        raise PrivfinError(f"component {component!r} is not approved for enclaves")
    if max_threads < 1:
        raise PrivfinError("max_threads must be at least 1")

    def q(s: str) -> str:
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

    argv = [python, "-m", "privfin.tee._enclave_main"]
    lines = [
        "# Gramine manifest for the privfin enclave component " + q(component),
        "# Generated by privfin.tee.enclave.gramine_manifest; sign with gramine-sgx-sign.",
        'libos.entrypoint = "{{ entrypoint }}"',
        'loader.entrypoint.uri = "file:{{ gramine.libos }}"',
        'loader.log_level = "error"',
        "loader.insecure__use_cmdline_argv = false",
        "loader.argv = [" + ", ".join(q(a) for a in argv) + "]",
        'loader.env.LD_LIBRARY_PATH = "/lib:/usr/lib:/lib/x86_64-linux-gnu:'
        '/usr/lib/x86_64-linux-gnu"',
        'loader.env.PYTHONDONTWRITEBYTECODE = "1"',
        "loader.env.PRIVFIN_ENCLAVE_COMPONENT = " + q(component),
        "",
        "fs.mounts = [",
        '  { uri = "file:{{ gramine.runtimedir() }}", path = "/lib" },',
        '  { uri = "file:/lib/x86_64-linux-gnu", path = "/lib/x86_64-linux-gnu" },',
        '  { uri = "file:/usr/lib", path = "/usr/lib" },',
        f'  {{ uri = "file:{python}", path = "{python}" }},',
        f'  {{ uri = "file:{python_lib}", path = "{python_lib}" }},',
        f'  {{ uri = "file:{site_packages}", path = "{site_packages}" }},',
        '  { type = "tmpfs", path = "/tmp" },',
        "]",
        "",
        "sgx.debug = false",
        "sgx.edmm_enable = false",
        f'sgx.enclave_size = "{enclave_size}"',
        f"sgx.max_threads = {max_threads}",
        'sgx.remote_attestation = "dcap"',
        "sgx.isvprodid = 1",
        "sgx.isvsvn = 1",
        "sgx.trusted_files = [",
        '  "file:{{ gramine.libos }}",',
        '  "file:{{ gramine.runtimedir() }}/",',
        '  "file:/lib/x86_64-linux-gnu/",',
        '  "file:/usr/lib/x86_64-linux-gnu/",',
        f'  "file:{python}",',
        f'  "file:{python_lib}/",',
        f'  "file:{site_packages}/",',
        "]",
        "sgx.allowed_files = []",
        "",
    ]
    return "\n".join(lines)
