"""The SIMULATED enclave process (``python -m privfin.tee._enclave_main``).

It stands in for code running in a TEE: it generates its own X25519 key pair, measures the code
it loaded (this file and :mod:`privfin.tee.components`), signs evidence with the simulated
platform key its parent hands it, opens the data keys released to it, decrypts the datasets in
memory only, runs the approved component and seals the result to the result party. It talks to
its parent over stdin/stdout with length-prefixed JSON frames (never pickle), and writes
nothing to disk. NOT A TEE: the host can read this process's memory.
"""

from __future__ import annotations

import base64
import json
import struct
import sys
from typing import IO, Any

MAX_FRAME = 256 * 1024 * 1024


def read_frame(stream: IO[bytes]) -> dict[str, Any] | None:
    head = stream.read(4)
    if not head:
        return None
    if len(head) != 4:
        raise ValueError("truncated frame header")
    (size,) = struct.unpack(">I", head)
    if size > MAX_FRAME:
        raise ValueError("frame too large")
    body = stream.read(size)
    if len(body) != size:
        raise ValueError("truncated frame")
    msg = json.loads(body)
    if not isinstance(msg, dict):
        raise ValueError("a frame must be a JSON object")
    return msg


def write_frame(stream: IO[bytes], msg: dict[str, Any]) -> None:
    body = json.dumps(msg).encode()
    stream.write(struct.pack(">I", len(body)) + body)
    stream.flush()


def _b64(value: Any) -> bytes:
    return base64.b64decode(str(value), validate=True)


def main() -> int:
    from privfin.errors import PrivfinError
    from privfin.tee.broker import EncryptedDataset, decrypt_dataset, release_context
    from privfin.tee.components import APPROVED, read_table
    from privfin.tee.enclave import measure_component
    from privfin.tee.policy import bind_report_data
    from privfin.tee.sealing import SealKeyPair, open_sealed, seal_authenticated
    from privfin.tee.simulated import make_simulated_evidence

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    init = read_frame(stdin)
    if init is None or init.get("op") != "init":
        return 2
    component = str(init["component"])
    if component not in APPROVED:
        write_frame(stdout, {"error": f"component {component!r} is not approved"})
        return 2
    measurement, signer = measure_component(component)
    keys = SealKeyPair.generate()
    platform_key = str(init["platform_key"]).encode()
    platform_cert = str(init["platform_cert"]).encode()
    debug = bool(init.get("debug", False))
    write_frame(stdout, {"public_key": keys.public.hex(), "measurement": measurement.hex()})
    while True:
        msg = read_frame(stdin)
        if msg is None or msg.get("op") == "exit":
            return 0
        try:
            if msg.get("op") == "attest":
                nonce = bytes.fromhex(str(msg["nonce"]))
                evidence = make_simulated_evidence(
                    platform_key,
                    platform_cert,
                    measurement=measurement,
                    signer=signer,
                    report_data=bind_report_data(keys.public, nonce),
                    debug=debug,
                )
                write_frame(stdout, {"evidence": base64.b64encode(evidence).decode()})
            elif msg.get("op") == "run":
                job = str(msg["job"])
                data_keys: dict[str, bytes] = {}
                for k in msg["keys"]:
                    ctx = release_context(
                        job,
                        str(k["owner"]),
                        str(k["dataset"]),
                        str(k["key_id"]),
                        measurement.hex(),
                    )
                    data_keys[str(k["key_id"])] = open_sealed(_b64(k["blob"]), keys, ctx)
                tables: dict[str, Any] = {}
                for d in msg["datasets"]:
                    enc = EncryptedDataset(
                        str(d["owner"]),
                        str(d["dataset"]),
                        str(d["key_id"]),
                        _b64(d["nonce"]),
                        _b64(d["ciphertext"]),
                    )
                    if enc.key_id not in data_keys:
                        raise ValueError(f"no released key for dataset {enc.dataset!r}")
                    tables[enc.dataset] = read_table(decrypt_dataset(enc, data_keys[enc.key_id]))
                result = APPROVED[component](tables, dict(msg.get("params") or {}))
                payload = json.dumps(result, sort_keys=True).encode()
                sealed = seal_authenticated(
                    payload,
                    bytes.fromhex(str(msg["result_public"])),
                    keys,
                    str(msg["result_context"]).encode(),
                )
                del tables, data_keys
                write_frame(stdout, {"sealed": base64.b64encode(sealed).decode()})
            else:
                write_frame(stdout, {"error": "unknown op"})
        except Exception as exc:  # reported to the parent as data, the enclave stays up
            # Only privfin's own messages (which never quote data) leave the enclave; another
            # library's message could quote a value of the decrypted data, so only its type
            # is reported.
            text = str(exc) if isinstance(exc, PrivfinError) else "(message withheld)"
            write_frame(stdout, {"error": f"{type(exc).__name__}: {text}"[:500]})


if __name__ == "__main__":
    sys.exit(main())
