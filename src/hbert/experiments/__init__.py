"""Experiment recipes: arms x seeds on one budget, evaluated and reported side by side. ``recipe.py``: the recipe
(schema, loading, validation, typed arms); ``runner.py``: running it (resume, cached scores); ``report.py``:
``results.csv`` and ``REPORT.md``; ``plots.py``: the plots; ``findings.py``: the report quotations of the docs."""

from .recipe import Arm, Recipe, RecipeError, validate
from .runner import RecipeInterrupted, run_recipe

__all__ = ["Arm", "Recipe", "RecipeError", "RecipeInterrupted", "run_recipe", "validate"]
