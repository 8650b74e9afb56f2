"""Loading classifiers, their preprocessing and labels, layer discovery and the device/batch policy."""

from explorer.models.labels import imagenet_labels
from explorer.models.loaded import LoadedModel, Prediction
from explorer.models.loader import DEFAULT_MODEL, load_model, model_specs
from explorer.models.preprocess import Preprocess

__all__ = ["LoadedModel", "Prediction", "DEFAULT_MODEL", "imagenet_labels", "load_model", "model_specs", "Preprocess"]
