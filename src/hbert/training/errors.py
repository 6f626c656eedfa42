"""The error of a pretraining run that stops it with one line for the user (the command line prints it)."""


class TrainingError(RuntimeError):
    pass
