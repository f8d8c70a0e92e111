"""Ranges of the conversion options, in one place for the CLI's parser and `ConvertOptions.validate`.

A module of its own because the CLI parses its arguments before it imports numpy and the converter.
Beyond these ranges nothing useful happens, only overflow: 2**EV scales every pixel, and a latent
drawn at T=10 already saturates the output's range.
"""

MAX_EXPOSURE_EV = 32.0
MAX_TEMPERATURE = 10.0
