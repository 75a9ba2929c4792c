"""Datasets of privfin: the synthetic financial data generator and identity-number helpers.

:mod:`privfin.data.synthetic` builds seeded, multi-party tables for the six scenarios of the
platform (credit, fraud, blacklist, idverify, risk, marketing) from a documented generative model;
:mod:`privfin.data.identity` formats customer ids, Chinese resident identity numbers (GB 11643,
ISO 7064 MOD 11-2 check digit), mobile numbers and names. This layer imports only
:mod:`privfin.errors` / :mod:`privfin.config` and third-party libraries.
"""
