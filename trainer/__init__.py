"""The platbench trainer: everything that runs inside the container (data, models, training, metrics).

It imports nothing from `platforms/`; see docs/design.md for the contract between the two.
"""
