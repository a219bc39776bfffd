"""Integrations with training frameworks and trackers, each imported only when used.

=====================================  ==========================  ==============
module                                 what                        extra
=====================================  ==========================  ==============
``tunesmith.integrations.xgboost``     pruning callback, space     ``xgboost``
``tunesmith.integrations.lightgbm``    pruning callback, space     ``lightgbm``
``tunesmith.integrations.lightning``   PyTorch Lightning callback  ``lightning``
``tunesmith.integrations.transformers``  Trainer callback, search  ``transformers``
``tunesmith.integrations.mlflow``      one MLflow run per trial    ``mlflow``
``tunesmith.integrations.tensorboard``  HParams summary            ``tensorboard``
=====================================  ==========================  ==============

See docs/integrations.md.
"""
