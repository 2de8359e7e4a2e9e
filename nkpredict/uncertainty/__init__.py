"""How sure a call is: calibrated probabilities and conformal prediction sets.

Both are fitted on the training job's out-of-fold predictions (:mod:`.calibration`,
:mod:`.conformal`) and stored with the model as plain numbers.
"""

from nkpredict.uncertainty.calibration import ProbabilityCalibrator
from nkpredict.uncertainty.conformal import DEFAULT_LEVEL, ConformalPredictor

__all__ = ["DEFAULT_LEVEL", "ConformalPredictor", "ProbabilityCalibrator"]
