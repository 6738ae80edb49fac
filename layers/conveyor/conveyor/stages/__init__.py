"""The domain logic of each stage: models and ports in, models out."""
