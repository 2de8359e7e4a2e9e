"""Out-of-domain checks: does a sample resemble the training cohort? (:mod:`.check`)."""

from nkpredict.domain.check import DomainAssessment, DomainModel
from nkpredict.domain.lineage import LineageRecognizer

__all__ = ["DomainAssessment", "DomainModel", "LineageRecognizer"]
