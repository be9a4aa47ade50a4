"""Model families, training/export side. Built-in: MoMKE, DERL; more register themselves with
register_train_family() (docs/ARCHITECTURE.md §4a, "Add a family")."""

from .derl import DERLTrain
from .momke import MoMKETrain
from .registry import TrainFamily, get_train_family, register_train_family, train_family_names

register_train_family(MoMKETrain())
register_train_family(DERLTrain())

__all__ = ["TrainFamily", "get_train_family", "register_train_family", "train_family_names"]
