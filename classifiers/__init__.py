"""Topic models: features, per-topic scikit-learn models, keyword rules, evaluation. No I/O beyond model files."""
