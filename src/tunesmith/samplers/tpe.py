from .base import Sampler
class TPESampler(Sampler):
    name="tpe"
