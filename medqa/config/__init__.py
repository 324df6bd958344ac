"""Hydra composition, medqa's resolvers, config -> settings objects, the one full validation, resume targets."""
