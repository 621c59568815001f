"""The tune stage: a hyperparameter search over [train] keys (Optuna)."""
