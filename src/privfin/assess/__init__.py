"""The assessment system: every technology measured from seven perspectives (functionality,
security and leakage, accuracy, performance, communication, scalability, compliance), with
empirical attacks, ratings by a published rubric (docs/assessment.md) and reports.

:mod:`privfin.assess.model` holds the types every part shares.
"""
