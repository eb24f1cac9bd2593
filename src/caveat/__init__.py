"""caveat: fine-tune language models that are robust by construction and say when not to trust them."""

from caveat.api import attack, compare, evaluate, predict, train, tune
from caveat.config import RunConfig, load_config
from caveat.errors import CaveatError, ConfigError, DataError, RunDirError
from caveat.types import Predictions, Task

__version__ = "0.1.0"

__all__ = [
    "CaveatError", "ConfigError", "DataError", "Predictions", "RunConfig", "RunDirError", "Task",
    "__version__", "attack", "compare", "evaluate", "load_config", "predict", "train", "tune",
]
