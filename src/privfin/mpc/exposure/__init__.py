"""Cross-lender exposure: the result party learns each borrower's total outstanding amount
across lenders, and nothing else; no lender learns another's amounts. See SPEC.md."""

from privfin.mpc.exposure.component import exposure_component, plaintext_exposure

__all__ = ["exposure_component", "plaintext_exposure"]
