"""Experiment recipes: arms x seeds on one budget, evaluated and reported side by side."""

from .runner import Recipe, RecipeError, RecipeInterrupted, run_recipe, validate

__all__ = ["Recipe", "RecipeError", "RecipeInterrupted", "run_recipe", "validate"]
