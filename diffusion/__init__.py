"""The mathematics of diffusion models: schedules, parameterisations, objectives.

Nothing here imports the rest of the project, networks or I/O.
"""
