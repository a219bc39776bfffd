"""Integrations with training frameworks and trackers, each imported only when used.

- ``tunesmith.integrations.xgboost``: pruning callback and preset space (extra ``xgboost``)
- ``tunesmith.integrations.lightgbm``: pruning callback and preset space (extra ``lightgbm``)
- ``tunesmith.integrations.lightning``: PyTorch Lightning callback (extra ``lightning``)
- ``tunesmith.integrations.transformers``: Trainer callback and ``search`` (extra ``transformers``)
- ``tunesmith.integrations.mlflow``: one MLflow run per trial (extra ``mlflow``)
- ``tunesmith.integrations.tensorboard``: the HParams dashboard (extra ``tensorboard``)

See docs/integrations.md.
"""
